"""`streamdream midi learn`: ask for each parameter, wait for a knob to move, write the TOML mapping."""
from __future__ import annotations

import select
import sys
import time
from pathlib import Path
from typing import Callable

from ..atomic import write_text_atomic
from ..errors import ParameterError
from .mapping import KNOBS, CCMap, Mapping, load_mapping

LEARN_ORDER = ["intensity", "mix", "gain_db", "step_size", "steps", "octaves", "layer", "target", "jitter_ms",
               "freeze", "save_preset"]
SETTLE_S = 0.4  # a turned knob sends a burst; wait this long for quiet before the next question


def learn_mapping(params: list[str], wait_for_cc: Callable[[str], tuple[int, int] | None],
                  say: Callable[[str], None] = print, defaults: Mapping | None = None) -> Mapping:
    """Ask for each parameter in turn. `wait_for_cc(param)` gives (channel, cc) of the moved knob, or None to skip.

    Ranges and curves come from the default mapping where it has the parameter, else the full range.
    """
    defaults = defaults or load_mapping()
    by_param = {m.param: m for m in defaults.cc}
    taken: dict[tuple[int, int], str] = {}
    entries = []
    for param in params:
        if param not in KNOBS:
            raise ParameterError(f"unknown parameter {param!r}; choose from {', '.join(LEARN_ORDER)}")
        while True:
            got = wait_for_cc(param)
            if got is None:
                say(f"  {param}: skipped")
                break
            channel, cc = got
            if cc == defaults.sustain_cc:
                say(f"  CC {cc} is the sustain pedal (freeze); move another knob for {param}")
                continue
            if (channel, cc) in taken:
                say(f"  CC {cc} on channel {channel} already controls {taken[(channel, cc)]}; move another knob")
                continue
            base = by_param.get(param)
            knob = KNOBS[param]
            lo, hi, curve = (base.lo, base.hi, base.curve) if base else (knob.lo, knob.hi, "linear")
            entries.append(CCMap(cc, channel, param, lo, hi, "toggle" if knob.toggle else curve))
            taken[(channel, cc)] = param
            say(f"  {param}: CC {cc}, channel {channel}")
            break
    return Mapping(entries, defaults.first_note, defaults.note_channel, defaults.velocity_min,
                   defaults.velocity_max, defaults.sustain_cc)


def write_mapping(path: str | Path, mapping: Mapping, force: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise ParameterError(f"{path} exists; pass --force to replace it, or choose another --out")
    return write_text_atomic(path, mapping.to_toml())


def rtmidi_waiter(midi_in, stdin=sys.stdin, say=print, timeout: float | None = None):
    """wait_for_cc over a real rtmidi port: the first CC that arrives, after its burst settles; Enter skips."""

    def wait(param: str):
        say(f"move the knob for {param} (Enter to skip)")
        while midi_in.get_message():  # forget anything that arrived before the question
            pass
        began = time.monotonic()
        found = None
        last = 0.0
        while True:
            message = midi_in.get_message()
            if message:
                data = message[0]
                if len(data) == 3 and data[0] & 0xF0 == 0xB0:
                    key = ((data[0] & 0x0F) + 1, data[1])
                    if found is None:
                        found = key
                    if key == found:
                        last = time.monotonic()
                continue
            if found is not None and time.monotonic() - last > SETTLE_S:
                return found
            if stdin is not None and found is None:
                ready, _, _ = select.select([stdin], [], [], 0.01)
                if ready:
                    stdin.readline()
                    return None
            else:
                time.sleep(0.005)
            if timeout is not None and time.monotonic() - began > timeout:
                return None

    return wait
