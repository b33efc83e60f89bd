"""Presets: named sets of parameter values in TOML; program change N loads the N-th (from 0).

    [[preset]]
    name = "glass"
    intensity = 1.2
    step_size = 0.08
    layer = "/stage2/relu/Relu_output_0"
    target = "strings"      # or "none"
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import ParameterError
from ..params import Params, check_value
from .mapping import KNOBS, _table_lines, read_toml_text

# What a saved preset holds: every parameter a knob can move while the dream runs (params.RANGES).
SAVED_KEYS = tuple(name for name, knob in KNOBS.items() if knob.kind != "action")

# The built-in presets (`--preset NAME`), named by what a listener hears; their names are public API.
# Each is measured by an independent ear beside a same-energy noise control (docs/SOUND.md).
# The gentler ones shape the change frame by frame and hold nothing else: that is how they were measured.
_FRAME_BY_FRAME = {"sustain_ms": 0.0, "hold_others": 0.0, "swell_db": 24.0, "steps": 8}
BUILTIN_PRESETS: dict[str, dict] = {
    # the defaults (Params()): a target comes through clearly while the music keeps its shape; real time
    "vivid": {},
    # the change held to the music's level in every time-frequency cell: colours a recording, keeps it
    # itself (eight steps: the ceiling costs about two)
    "faithful": {"ceiling_db": 0.0, "steps": 8},
    # a light colour at about half the cost: a quarter of the default depth, four steps per octave
    "tint": {**_FRAME_BY_FRAME, "steps": 4, "step_size": 0.025, "octave_scale": 1.4, "keep": 0.0},
    # the strongest push: the target wins over the music's own label
    "deep": {**_FRAME_BY_FRAME, "octave_scale": 1.4, "keep": 0.0},
    # no target: the original DeepDream, more of what the music already is (with the shipped model,
    # each label it hears in the input pushed by its probability)
    "bloom": {**_FRAME_BY_FRAME, "target": None, "away": None},
    # no target, nothing added: each step only re-EQs the music's own spectrum in octave bands
    "tone": {**_FRAME_BY_FRAME, "target": None, "away": None, "eq_bands": 1.0},
}
OBJECTIVE = ("layer", "target", "away")  # what a built-in preset switched to at run time leaves alone
# Names of earlier versions, so an old command line says what to use now.
RENAMED = {"live": "is now 'vivid'", "toward": "is now 'vivid'", "subtle": "is now 'tint'",
           "amplify": "is now 'bloom'", "amplify-eq": "is now 'tone'",
           "musical": "was retired ('tint' is nearest; lab/README.md gives its --set values)",
           "unshaped": "was retired (lab/README.md gives its --set values)"}


def builtin_preset(name: str) -> Params:
    if name not in BUILTIN_PRESETS:
        said = f"preset {name!r} {RENAMED[name]}" if name in RENAMED else f"unknown preset {name!r}"
        raise ParameterError(f"{said}; choose one of {', '.join(BUILTIN_PRESETS)}")
    return Params().with_changes(**BUILTIN_PRESETS[name])


def parse_presets(text: str, source: str = "presets") -> list[dict]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{source}: not valid TOML: {exc}") from None
    if set(data) - {"preset"}:
        raise ParameterError(f"{source}: only [[preset]] tables are allowed, found {sorted(set(data) - {'preset'})}")
    lines = _table_lines(text, "[[preset]]")
    presets = []
    entries = data.get("preset", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ParameterError(f"{source}: presets must be [[preset]] tables, each with a name and settings")
    for i, entry in enumerate(entries):
        where = f"{source} line {lines[i] if i < len(lines) else '?'}"
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ParameterError(f"{where}: every preset needs a name = \"...\"")
        values = {}
        for key, value in entry.items():
            if key == "name":
                continue
            if key not in SAVED_KEYS:
                raise ParameterError(f"{where}: unknown key {key!r}; presets hold {', '.join(SAVED_KEYS)}")
            values[key] = check_value(key, value, where)
        presets.append({"name": name, **values})
    return presets


def load_presets(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []  # saving a preset creates it
    return parse_presets(read_toml_text(path, "presets file"), str(path))


def preset_from_params(name: str, params: Params) -> dict:
    out = {"name": name}
    for key in SAVED_KEYS:
        value = getattr(params, key)
        if KNOBS[key].choice:
            value = value or "none"
        out[key] = value
    return out


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def save_preset(path: str | Path, preset: dict) -> int:
    """Append (or replace, by name) a preset; the file is rewritten atomically. Returns its program number."""
    path = Path(path)
    presets = [p for p in load_presets(path) if p["name"] != preset["name"]] + [preset]
    write_text_atomic(path, presets_text(presets))
    return len(presets) - 1


def presets_text(presets: list[dict]) -> str:
    """A presets file's text: what `parse_presets` reads back."""
    text = ["# streamdream presets: program change N loads the N-th preset (from 0)", ""]
    for p in presets:
        text.append("[[preset]]")
        text += [f"{key} = {_toml_value(value)}" for key, value in p.items()]
        text.append("")
    return "\n".join(text)


def apply_preset(params: Params, preset: dict) -> Params:
    changes = {k: v for k, v in preset.items() if k != "name"}
    for key in [k for k in changes if KNOBS[k].choice]:
        if changes.get(key) == "none":
            changes[key] = None
    return params.with_changes(**changes)


def preset_names(file_presets: list[dict]) -> list[str]:
    """The presets a running engine can switch to by name: the built-in ones, then the presets file's."""
    return list(BUILTIN_PRESETS) + [p["name"] for p in file_presets if p["name"] not in BUILTIN_PRESETS]


def switch_preset(params: Params, name: str, file_presets: list[dict]) -> Params:
    """`params` with the settings a knob reaches taken from the preset `name`: one of the presets file's
    whole, or a built-in one as `--preset` gives it, except that the objective (layer, target, away)
    stays unless the preset names it (the target is chosen on its own). What is fixed for the run stays."""
    for preset in file_presets:
        if preset["name"] == name and name not in BUILTIN_PRESETS:
            return apply_preset(params, preset)
    built_in = builtin_preset(name)  # refuses an unknown name with the list of built-in ones
    keys = [key for key in SAVED_KEYS if key not in OBJECTIVE or key in BUILTIN_PRESETS[name]]
    return params.with_changes(**{key: getattr(built_in, key) for key in keys})
