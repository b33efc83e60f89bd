"""MIDI mapping: which CC (and channel) moves which parameter, over what range, along what curve.

A mapping is a TOML file::

    [[cc]]
    cc = 1              # 0..127
    channel = 0         # 1..16, or 0 for any channel
    param = "intensity"
    min = 0.0
    max = 2.0
    curve = "linear"    # linear | exp | toggle

    [notes]             # note-on picks the target label, velocity sets the depth
    first_note = 48     # C3: consecutive notes from here cover the labels in order
    channel = 0
    velocity_min = 0.01 # step size at velocity 1 ...
    velocity_max = 0.2  # ... and at velocity 127
                        # With a model whose labels are piano keys (`--model pitch`) the keyboard is
                        # played instead: every held key is a target, velocity its weight, note-off
                        # removes it; first_note and the velocity depths do not apply.

    [sustain]
    cc = 64             # pedal down holds freeze
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ParameterError
from ..params import RANGES

DEFAULT_MAP = Path(__file__).with_name("default_map.toml")


@dataclass(frozen=True)
class Knob:
    kind: str          # "instant": next audio block; "window": the next dreamed window; "action": a button
    lo: float
    hi: float
    integer: bool = False
    sweeps: str | None = None  # a text parameter: the knob sweeps this list ("layers" or "labels")
    toggle: bool = False

    @property
    def choice(self) -> bool:
        return self.sweeps is not None


def _knob(spec) -> Knob | None:
    """The knob of a parameter the running dream can take: over its whole valid range (params.RANGES), so
    MIDI and Params agree. None for what is fixed for a run or is free text with no list to sweep."""
    if spec.heard == "start":
        return None
    kind = "instant" if spec.heard == "block" else "window"
    if spec.kind == "bool":
        return Knob(kind, 0, 1, toggle=True)
    if spec.kind == "text":
        return Knob(kind, 0, 1, sweeps=spec.sweeps) if spec.sweeps else None
    return Knob(kind, spec.lo, spec.hi, integer=spec.integer)


# Every parameter a knob (MIDI, OSC, a preset) can move, from the one table; and the preset-saving button.
KNOBS = {name: knob for name, knob in ((name, _knob(spec)) for name, spec in RANGES.items()) if knob is not None}
KNOBS["save_preset"] = Knob("action", 0, 1, toggle=True)  # press: save the current state to --presets
CURVES = ("linear", "exp", "toggle")


@dataclass(frozen=True)
class CCMap:
    cc: int
    channel: int        # 0 = any
    param: str
    lo: float
    hi: float
    curve: str = "linear"

    def value(self, raw: int):
        """A 0..127 controller value -> the parameter's value."""
        x = raw / 127.0
        knob = KNOBS[self.param]
        if knob.toggle or self.curve == "toggle":
            return raw >= 64
        if self.curve == "exp":
            v = self.lo * (self.hi / self.lo) ** x
        else:
            v = self.lo + (self.hi - self.lo) * x
        if knob.integer:
            return int(round(v))
        return v


@dataclass
class Mapping:
    cc: list[CCMap] = field(default_factory=list)
    first_note: int = 48
    note_channel: int = 0
    velocity_min: float = 0.01
    velocity_max: float = 0.2
    sustain_cc: int = 64

    def lookup(self) -> dict:
        """(channel, cc) -> CCMap, with channel 0 standing for any channel."""
        return {(m.channel, m.cc): m for m in self.cc}

    def to_toml(self) -> str:
        lines = ["# streamdream MIDI mapping (see streamdream/control/mapping.py for the format)", ""]
        for m in self.cc:
            lines += ["[[cc]]", f"cc = {m.cc}", f"channel = {m.channel}", f'param = "{m.param}"',
                      f"min = {m.lo!r}", f"max = {m.hi!r}", f'curve = "{m.curve}"', ""]
        lines += ["[notes]", f"first_note = {self.first_note}", f"channel = {self.note_channel}",
                  f"velocity_min = {self.velocity_min!r}", f"velocity_max = {self.velocity_max!r}", "",
                  "[sustain]", f"cc = {self.sustain_cc}", ""]
        return "\n".join(lines)


def _table_lines(text: str, header: str) -> list[int]:
    """1-based line numbers of each `[[cc]]` (or other) header, to point errors at the right place."""
    return [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith(header)]


def _whole(value) -> bool:
    """An integer that is not a bool (TOML's true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{where}: {what} must be a number, got {value!r}")
    return float(value)


def parse_mapping(text: str, source: str = "mapping") -> Mapping:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"cc", "notes", "sustain"}
    if unknown:
        raise ParameterError(f"{source}: unknown section(s) {sorted(unknown)}; use [[cc]], [notes] and [sustain]")
    for section, kind in (("cc", list), ("notes", dict), ("sustain", dict)):
        if not isinstance(data.get(section, kind()), kind):
            shape = "[[cc]] tables (an array of tables)" if kind is list else f"a [{section}] table"
            raise ParameterError(f"{source}: {section} must be {shape}, not {type(data[section]).__name__}")
    cc_lines = _table_lines(text, "[[cc]]")
    entries = []
    seen = {}
    for i, entry in enumerate(data.get("cc", [])):
        where = f"{source} line {cc_lines[i] if i < len(cc_lines) else '?'}"
        if not isinstance(entry, dict):
            raise ParameterError(f"{where}: each [[cc]] must be a table")
        extra = set(entry) - {"cc", "channel", "param", "min", "max", "curve"}
        if extra:
            raise ParameterError(f"{where}: unknown key(s) {sorted(extra)}; allowed: cc, channel, param, min, max, curve")
        param = entry.get("param")
        if param not in KNOBS:
            raise ParameterError(f"{where}: unknown param {param!r}; choose one of {', '.join(KNOBS)}")
        knob = KNOBS[param]
        cc = entry.get("cc")
        if not _whole(cc) or not 0 <= cc <= 127:
            raise ParameterError(f"{where}: cc must be a whole number 0..127, got {cc!r}")
        channel = entry.get("channel", 0)
        if not _whole(channel) or not 0 <= channel <= 16:
            raise ParameterError(f"{where}: channel must be 1..16, or 0 for any, got {channel!r}")
        curve = entry.get("curve", "toggle" if knob.toggle else "linear")
        if curve not in CURVES:
            raise ParameterError(f"{where}: unknown curve {curve!r}; choose one of {', '.join(CURVES)}")
        lo = _number(entry.get("min", knob.lo), "min", where)
        hi = _number(entry.get("max", knob.hi), "max", where)
        if not knob.choice and not knob.toggle:
            for name, v in (("min", lo), ("max", hi)):
                if not knob.lo <= v <= knob.hi:
                    raise ParameterError(f"{where}: {name} = {v:g} is outside {param}'s range {knob.lo:g}..{knob.hi:g}")
        if curve == "exp" and (lo <= 0 or hi <= 0):
            raise ParameterError(f"{where}: an exp curve needs min and max above 0")
        if (channel, cc) in seen:
            raise ParameterError(f"{where}: cc {cc} on channel {channel or 'any'} is already mapped to {seen[(channel, cc)]}")
        seen[(channel, cc)] = param
        entries.append(CCMap(cc, channel, param, lo, hi, curve))
    mapping = Mapping(entries)
    notes = data.get("notes", {})
    where = f"{source} line {(_table_lines(text, '[notes]') or ['?'])[0]}"
    if notes:
        extra = set(notes) - {"first_note", "channel", "velocity_min", "velocity_max"}
        if extra:
            raise ParameterError(f"{where}: unknown key(s) {sorted(extra)} in [notes]")
        mapping.first_note = notes.get("first_note", mapping.first_note)
        mapping.note_channel = notes.get("channel", mapping.note_channel)
        mapping.velocity_min = _number(notes.get("velocity_min", mapping.velocity_min), "velocity_min", where)
        mapping.velocity_max = _number(notes.get("velocity_max", mapping.velocity_max), "velocity_max", where)
        if not _whole(mapping.first_note) or not 0 <= mapping.first_note <= 127:
            raise ParameterError(f"{where}: first_note must be 0..127, a note number")
        if not _whole(mapping.note_channel) or not 0 <= mapping.note_channel <= 16:
            raise ParameterError(f"{where}: channel must be 1..16, or 0 for any")
        for v in (mapping.velocity_min, mapping.velocity_max):
            if not KNOBS["step_size"].lo <= v <= KNOBS["step_size"].hi:
                raise ParameterError(f"{where}: velocity depth {v:g} is outside step_size's range 0..10")
    sustain = data.get("sustain", {})
    if sustain:
        where = f"{source} line {(_table_lines(text, '[sustain]') or ['?'])[0]}"
        cc = sustain.get("cc", 64)
        if not _whole(cc) or not 0 <= cc <= 127 or set(sustain) - {"cc"}:
            raise ParameterError(f"{where}: [sustain] takes one key, cc = 0..127")
        mapping.sustain_cc = cc
    return mapping


def read_toml_text(path: Path, what: str) -> str:
    """The text of a TOML file the user named, or one line saying why it cannot be read."""
    if path.is_dir():
        raise ParameterError(f"{what} {path} is a folder; give a .toml file")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{what} {path} is not a text file; give a .toml file") from None


def load_mapping(path: str | Path | None = None) -> Mapping:
    path = Path(path) if path else DEFAULT_MAP
    return parse_mapping(read_toml_text(path, "MIDI mapping"), str(path))


def describe(mapping: Mapping) -> list[str]:
    """One line per control, for the docs and `midi learn` summaries."""
    out = []
    for m in mapping.cc:
        chan = "any channel" if m.channel == 0 else f"channel {m.channel}"
        span = "on/off" if m.curve == "toggle" or KNOBS[m.param].toggle else (
            "sweeps the list" if KNOBS[m.param].choice else f"{m.lo:g}..{m.hi:g} {m.curve}")
        out.append(f"CC {m.cc:>3} ({chan}): {m.param} {span}")
    out.append(f"notes from {note_name(mapping.first_note)} choose the target label; velocity sets depth "
               f"{mapping.velocity_min:g}..{mapping.velocity_max:g}")
    out.append(f"CC {mapping.sustain_cc} (sustain pedal) holds freeze; program change N loads preset N")
    return out


def keyboard_keys(labels: list[str]) -> dict[int, str]:
    """MIDI note -> label, for a model whose labels are piano keys ("C4", "F#2": the pitch model); else {}."""
    names = set(labels)
    return {n: note_name(n) for n in range(128) if note_name(n) in names}


def note_name(note: int) -> str:
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    return f"{names[note % 12]}{note // 12 - 1}"


def choose(items: list, raw: int):
    """A 0..127 knob sweeping a list: equal slices of the knob travel."""
    if not items:
        return None
    return items[min(len(items) - 1, int(math.floor(raw / 128.0 * len(items))))]

