"""A performer's controller on a JACK server: random knob moves and notes sent to streamdream's MIDI port.

Used by scripts/soak.py and scripts/bench_live.py, so the engine is measured with knobs moving, as users
run it.
"""
from __future__ import annotations

import random
import threading
import time

from streamdream.control.midi import VIRTUAL_CLIENT, VIRTUAL_PORT

OBJECTIVE = [(24, 127), (25, 127)]  # layer and target: each new one builds a Dreamer


def instant_and_depth(most_steps: int) -> list[tuple[int, int]]:
    """(CC, highest value sent) in the default MIDI map (streamdream/control/default_map.toml): intensity,
    gain, mix, step size, jitter, and steps (CC 22, 1..16) up to `most_steps`. Deeper dreams than the
    machine can dream within the budget give late windows by design: a setting, not a fault."""
    steps_cc = int((most_steps - 1) * 127 / 15)
    return [(1, 127), (7, 127), (20, 127), (21, 127), (22, steps_cc), (26, 127)]


class KnobTraffic:
    """`rate` messages a second: knob moves from `knobs` and, with `notes`, one in five a note on and off
    (a target, briefly)."""

    def __init__(self, rate: float, knobs: list[tuple[int, int]], notes: bool = True, seed: int = 1):
        import rtmidi

        self.rate, self.knobs, self.notes, self.rng = rate, knobs, notes, random.Random(seed)
        self.sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="knobtraffic")
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self, alive, timeout: float = 300.0) -> None:
        """Wait for streamdream's port (the engine loads its model first) while alive() holds."""
        port = f"{VIRTUAL_CLIENT}:{VIRTUAL_PORT}"
        deadline = time.monotonic() + timeout
        while port not in self.sender.get_ports():
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError(f"streamdream's MIDI port {port} did not appear")
            time.sleep(0.2)
        self.sender.open_port(self.sender.get_ports().index(port))

    def send_one(self) -> None:
        if not self.notes or self.rng.random() < 0.8:
            cc, top = self.rng.choice(self.knobs)
            self.sender.send_message([0xB0, cc, self.rng.randrange(top + 1)])
        else:
            note = self.rng.randrange(60, 72)
            self.sender.send_message([0x90, note, self.rng.randrange(1, 128)])
            self.sender.send_message([0x80, note, 0])
        self.sent += 1

    def start(self, sweep_layers: int = 0, hold_s: float = 16.0) -> None:
        """Send from a thread until stop(). With `sweep_layers`, first hold every layer the layer knob
        reaches (CC 24), each with no target and with one (CC 25), for `hold_s`, so that every objective
        the knobs reach has been dreamed before the random moves begin."""
        def run():
            for layer in range(sweep_layers):
                for target in (0, 127):  # "none", then the last label
                    self.sender.send_message([0xB0, 24, int((layer + 0.5) * 128 / sweep_layers)])
                    self.sender.send_message([0xB0, 25, target])
                    self.sent += 2
                    if self._stop.wait(hold_s):
                        return
            while not self._stop.wait(1.0 / self.rate):
                self.send_one()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sender.close_port()
        del self.sender
