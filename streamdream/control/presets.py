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
from .mapping import KNOBS, _table_lines, read_toml_text
from ..params import Params

SAVED_KEYS = ("intensity", "mix", "gain_db", "step_size", "steps", "octaves", "octave_scale", "jitter_ms",
              "eq_bands", "eq_depth_db", "keep", "hold_others", "sustain_ms", "ceiling_db", "swell_db", "layer",
              "target", "freeze")


# Built-in presets (`--preset NAME`), measured with scripts/eval_dreams.py (docs/DREAMS.md).
# "live" is Params() itself: the defaults of render, live and the Python API, which are "toward".
# The change grows where the music has energy, frame by frame, and a target pushes only itself (and keep):
# sustain and the hold came with the defaults of 2026-12-06, ten steps per octave with those of 2026-12-07,
# the swell limit later that day, and the presets below were measured without them.
MUSICAL = {"top_db": 60.0, "shape": 1.0, "sustain_ms": 0.0, "hold_others": 0.0, "steps": 8, "swell_db": 24.0}
LIGHT = {**MUSICAL, "steps": 4, "step_size": 0.05, "octave_scale": 1.4, "keep": 0.0}  # about half the defaults' cost
BUILTIN_PRESETS: dict[str, dict] = {
    "live": {},                                             # Params(): the defaults
    "toward": {},                                           # the defaults by name: best measured (Params() holds the values)
    "faithful": {"ceiling_db": 0.0, "steps": 8},            # the change held to the music's level: more of its
    #                                                         label kept (eight steps: the ceiling costs about two)
    "musical": LIGHT,                                       # the defaults before 2026-12-04: half the cost
    "unshaped": {**LIGHT, "top_db": 0.0, "shape": 0.0},     # the plain gradient (the defaults before 2026-11-23)
    "subtle": {**LIGHT, "step_size": 0.025},                # a quarter of the defaults' step: a tint
    "deep": {**MUSICAL, "steps": 8, "step_size": 0.1, "octave_scale": 1.4, "keep": 0.0},  # the music's own label not kept
    "amplify": {**MUSICAL, "target": None, "away": None},   # the original DeepDream: the model's default layer
    #                                                         (the shipped model's: `heard`, what it hears, in proportion)
    "amplify-eq": {**MUSICAL, "target": None, "away": None, "eq_bands": 1.0},  # the same as a re-EQ in octave
    #   bands, within Params.eq_depth_db: the ear's own label gains more on the eval clips, half of it as a tone curve
}


def builtin_preset(name: str) -> Params:
    if name not in BUILTIN_PRESETS:
        raise ParameterError(f"unknown preset {name!r}; choose one of {', '.join(BUILTIN_PRESETS)}")
    return Params().with_changes(**BUILTIN_PRESETS[name])


def _check_value(key: str, value, where: str):
    knob = KNOBS[key]
    if key in ("layer", "target"):
        if not isinstance(value, str):
            raise ParameterError(f"{where}: {key} must be a string")
        return value
    if knob.toggle:
        if not isinstance(value, bool):
            raise ParameterError(f"{where}: {key} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{where}: {key} must be a number, got {value!r}")
    if not knob.lo <= value <= knob.hi:
        raise ParameterError(f"{where}: {key} = {value:g} is outside {knob.lo:g}..{knob.hi:g}")
    return int(value) if knob.integer else float(value)


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
            values[key] = _check_value(key, value, where)
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
        if key in ("layer", "target"):
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
    text = ["# streamdream presets: program change N loads the N-th preset (from 0)", ""]
    for p in presets:
        text.append("[[preset]]")
        text += [f"{key} = {_toml_value(value)}" for key, value in p.items()]
        text.append("")
    write_text_atomic(path, "\n".join(text))
    return len(presets) - 1


def apply_preset(params: Params, preset: dict) -> Params:
    changes = {k: v for k, v in preset.items() if k != "name"}
    for key in ("layer", "target"):
        if changes.get(key) == "none":
            changes[key] = None
    return params.with_changes(**changes)
