"""MIDI input through python-rtmidi, in the "ccstore" style.

The MIDI thread only stores the latest value per parameter: instant ones
(intensity, mix, gain) straight into the engine's control targets, which the
audio callback reads at its next block; per-window ones into `latest`, which are
folded into the engine's Params and picked up by the worker at its next window.
Clock, active sensing, SysEx and unknown CCs are dropped at the door.

Messages are drained by one thread every millisecond rather than by rtmidi's
per-message callback: under a flood (10,000 messages a second) a Python callback
per message made the audio callback wait for the GIL often enough to cause
xruns; one wake-up per millisecond handles the same flood in batches.
"""
from __future__ import annotations

import math
import os
import threading
import time

from ..errors import MidiPortError, ParameterError, StreamDreamError
from ..native import quiet_native_stderr
from .mapping import KNOBS, Mapping, choose, keyboard_keys
from ..params import Params
from .presets import apply_preset, preset_from_params, save_preset

VIRTUAL_PORT = "streamdream"
# The virtual port's client: on JACK the audio client is already "streamdream" (live --name), and a
# second client of that name would be renamed "streamdream-01" behind the user's back.
VIRTUAL_CLIENT = "streamdream-midi"


def _rtmidi():
    import rtmidi
    return rtmidi


def available_apis() -> list[int]:
    """JACK first when its server is up (these machines have no ALSA sequencer), then ALSA."""
    rtmidi = _rtmidi()
    order = [rtmidi.API_UNIX_JACK, rtmidi.API_LINUX_ALSA, rtmidi.API_MACOSX_CORE, rtmidi.API_WINDOWS_MM]
    compiled = rtmidi.get_compiled_api()
    usable = []
    for api in order:
        if api not in compiled or (api == rtmidi.API_LINUX_ALSA and not os.path.exists("/dev/snd/seq")):
            continue
        try:
            with quiet_native_stderr():
                probe = rtmidi.MidiIn(api, name="streamdream-probe")
                probe.get_ports()
                probe.delete()
            usable.append(api)
        except Exception:
            continue
    return usable


def list_midi_ports() -> list[tuple[str, int, str]]:
    """(api name, index, port name) for every MIDI input port rtmidi can see."""
    rtmidi = _rtmidi()
    ports = []
    for api in available_apis():
        midi_in = rtmidi.MidiIn(api, name="streamdream-list")
        for index, name in enumerate(midi_in.get_ports()):
            ports.append((rtmidi.get_api_display_name(api), index, name))
        midi_in.delete()
    return ports


def find_port(names: list[str], spec: str) -> int:
    """--midi / --port by index or name substring (never our own virtual port); lists the ports if none fits."""
    if spec.isdigit() and int(spec) < len(names):
        return int(spec)
    hits = [i for i, n in enumerate(names) if spec.lower() in n.lower() and not n.startswith(VIRTUAL_CLIENT)]
    if not hits:
        listing = "; ".join(f"{i}: {n}" for i, n in enumerate(names)) or "none"
        raise MidiPortError(f"no MIDI input port matches {spec!r}; ports: {listing}")
    return hits[0]


class MidiControl:
    """Maps incoming MIDI onto an engine (anything with `controls.set`, `params`, `set_params`)."""

    IGNORED_STATUS = 0xF0  # system messages: SysEx, clock, start/stop, active sensing, reset

    def __init__(self, engine, mapping: Mapping, labels: list[str], layers: list[str],
                 presets: list[dict] | None = None, presets_path: str | None = None):
        self.engine = engine
        self.mapping = mapping
        self.by_cc = mapping.lookup()
        self.labels = labels
        # A model whose labels are piano keys ("C4", "F#2": the pitch model) is played like an
        # instrument: each held key is a dream target, its velocity its weight.
        self.keys = keyboard_keys(labels)
        self.held: dict[int, float] = {}      # note -> weight, in the order they were pressed
        self.layers = layers
        self.presets = presets or []
        self.presets_path = presets_path
        self.latest: dict[str, object] = {}   # per-window values waiting for the next window
        self.messages = 0
        self.ignored = 0
        self.saved: list[int] = []             # program numbers of presets saved from the controller
        self.last_change = 0.0                # perf_counter of the last stored change
        self.last_change_frame = -1           # the engine's output position then
        self.port_name: str | None = None
        self.port_lost = False
        self._midi_in = None
        self._virtual = None
        self._probe = None

    # ---- the rtmidi callback (its own thread): store, never wait
    def on_message(self, event, data=None) -> None:
        message, _delta = event
        self.messages += 1
        if not message:
            return
        status = message[0]
        if status >= self.IGNORED_STATUS:
            self.ignored += 1
            return
        kind, channel = status & 0xF0, (status & 0x0F) + 1
        if kind == 0xB0 and len(message) >= 3:
            self._control_change(channel, message[1], message[2])
        elif kind == 0x90 and len(message) >= 3 and message[2] > 0:
            self._note_on(channel, message[1], message[2])
        elif kind in (0x80, 0x90) and len(message) >= 3 and self.keys:
            self._note_off(channel, message[1])   # 0x90 with velocity 0 is a note-off too
        elif kind == 0xC0 and len(message) >= 2:
            self.latest["program"] = message[1]
        else:
            self.ignored += 1  # aftertouch, pitch bend (and note-off without a keyboard model): not mapped
            return
        self.last_change = time.perf_counter()
        self.last_change_frame = getattr(self.engine, "out_pos", -1)

    def _control_change(self, channel: int, cc: int, value: int) -> None:
        if cc == self.mapping.sustain_cc:
            self.latest["freeze"] = value >= 64
            return
        entry = self.by_cc.get((channel, cc)) or self.by_cc.get((0, cc))
        if entry is None:
            self.ignored += 1
            return
        if entry.param == "save_preset":
            if value >= 64:
                self.latest["save"] = True
        elif KNOBS[entry.param].kind == "instant":
            self.engine.controls.set(**{entry.param: entry.value(value)})
        elif KNOBS[entry.param].choice:  # layers in order; labels after "none"
            items = self.layers if KNOBS[entry.param].sweeps == "layers" else [None] + self.labels
            self.latest[entry.param] = choose(items, value)
        else:
            self.latest[entry.param] = entry.value(value)

    def _note_on(self, channel: int, note: int, velocity: int) -> None:
        if self.mapping.note_channel and channel != self.mapping.note_channel:
            self.ignored += 1
            return
        if self.keys:
            if note in self.keys:
                self.held[note] = velocity / 127.0
                self.latest["target"] = self._held_targets()
            else:
                self.ignored += 1
            return
        index = note - self.mapping.first_note
        if 0 <= index < len(self.labels):
            self.latest["target"] = self.labels[index]
        lo, hi = self.mapping.velocity_min, self.mapping.velocity_max
        self.latest["step_size"] = lo + (hi - lo) * (velocity - 1) / 126.0

    def _note_off(self, channel: int, note: int) -> None:
        if self.mapping.note_channel and channel != self.mapping.note_channel:
            return
        if self.held.pop(note, None) is not None:
            self.latest["target"] = self._held_targets()

    def _held_targets(self) -> str | None:
        """The held chord as a --target value, e.g. "C4:0.787,E4:0.551"; None when no key is down."""
        return ",".join(f"{self.keys[n]}:{w:.3g}" for n, w in self.held.items()) or None

    # ---- main loop: fold stored values into Params for the next window
    def apply(self) -> Params | None:
        """Returns the new Params if anything per-window changed (already handed to the engine)."""
        latest = dict(self.latest)  # a copy: the keys handled below are removed from it
        current = self.engine.params
        params = current
        if latest.pop("save", False):
            self.latest.pop("save", None)
            number = self.save_current(f"snapshot-{len(self.presets)}")
            self.saved.append(number)
        program = latest.pop("program", None)
        if program is not None:
            self.latest.pop("program", None)
            if program < len(self.presets):
                params = apply_preset(params, self.presets[program])
                for key in list(self.latest):   # a preset overrides earlier knob moves
                    self.latest.pop(key, None)
                latest = {}
                self.engine.controls.set(params.intensity, params.mix, params.gain_db)
        changes = {k: v for k, v in latest.items() if getattr(params, k) != v}
        if changes:
            params = params.with_changes(**changes)
        if params is current:
            return None
        self.engine.set_params(params, instant=program is not None)
        return params

    def save_current(self, name: str) -> int:
        if not self.presets_path:
            raise ParameterError("no --presets file to save into")
        params = self.engine.params
        c = self.engine.controls.target
        snapshot = params.with_changes(intensity=float(c[0]), mix=float(c[1]),
                                       gain_db=float(20 * math.log10(max(c[2], 1e-6))))
        preset = preset_from_params(name, snapshot)
        number = save_preset(self.presets_path, preset)
        self.presets = self.presets[:number] + [preset]
        return number

    # ---- ports
    def open(self, port: str | None, virtual: bool = True) -> None:
        rtmidi = _rtmidi()
        apis = available_apis()
        if not apis:
            raise MidiPortError("no MIDI system found (start JACK, or load the ALSA sequencer: modprobe snd-seq)")
        api = apis[0]
        if virtual:
            self._virtual = rtmidi.MidiIn(api, name=VIRTUAL_CLIENT)
            self._virtual.open_virtual_port(VIRTUAL_PORT)
            self._virtual.ignore_types(sysex=True, timing=True, active_sense=True)
        if port is not None:
            midi_in = rtmidi.MidiIn(api, name=f"{VIRTUAL_PORT}-in")
            names = midi_in.get_ports()
            try:
                index = find_port(names, port)
            except MidiPortError:
                midi_in.delete()
                self.close()
                raise
            midi_in.open_port(index)
            midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
            self._midi_in = midi_in
            # the watcher is made now, before audio starts: a new JACK client mid-stream is a graph change
            self._probe = rtmidi.MidiIn(api, name=f"{VIRTUAL_PORT}-watch")
            self.port_name = names[index]

    def drain(self) -> int:
        """Handle every message waiting on the open ports; returns how many."""
        count = 0
        for port in (self._midi_in, self._virtual):
            if port is None:
                continue
            while True:
                event = port.get_message()
                if event is None:
                    break
                self.on_message(event)
                count += 1
        return count

    def check_port(self) -> bool:
        """False once the opened controller port has vanished (unplugged); audio carries on."""
        if self._midi_in is None or self.port_lost:
            return not self.port_lost
        present = self.port_name in self._probe.get_ports()
        if not present:
            self.port_lost = True
        return present

    def close(self) -> None:
        for port in (self._midi_in, self._virtual, self._probe):
            if port is not None:
                try:
                    port.close_port()
                    port.delete()
                except Exception:
                    pass
        self._midi_in = self._virtual = self._probe = None


class MidiPump:
    """The MIDI thread: drain the ports every `poll` seconds, fold per-window values in every `period`."""

    def __init__(self, control: MidiControl, poll: float = 0.001, period: float = 0.02, report=print):
        self.control, self.poll, self.period, self.report = control, poll, period, report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamdream-midi", daemon=True)
        self._last_check = 0.0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception as exc:  # never let a bad message or port end MIDI control for the show
                self.report(f"MIDI: {type(exc).__name__}: {exc}; still listening")
                self._stop.wait(0.1)

    def _loop(self) -> None:
        last_apply = 0.0
        while not self._stop.wait(self.poll):
            self.control.drain()
            now = time.monotonic()
            if now - last_apply < self.period:
                continue
            last_apply = now
            try:
                self.control.apply()
            except StreamDreamError as exc:
                self.report(f"MIDI: {exc}")
            if now - self._last_check > 1.0:
                self._last_check = now
                if self.control._midi_in is not None and not self.control.port_lost and not self.control.check_port():
                    self.report(f"MIDI controller {self.control.port_name!r} disappeared; the audio keeps running "
                                "with the last values (the 'streamdream' virtual port still listens)")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
