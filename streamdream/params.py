"""The dream's settings: the one table of parameters (RANGES) and the Params built from it.

Every parameter is one entry in RANGES: its default, its range or choices, when a change is heard and
what it does. Params, `--set KEY=VALUE`, the piece TOML's [dream] table, `streamdream params`, the
MIDI knobs (control/mapping.py), OSC and the presets (control/presets.py) all read this table, so
anything one of them accepts the others accept too, and a new parameter is one entry here.

When a change is heard:

* "block": at the next audio block (intensity, mix, gain glide in over 20 ms);
* "window": from the next dreamed window;
* "start": fixed for the run (the model, the windowing, the compute device).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, make_dataclass, replace

from .errors import ParameterError

VIEWS = ("mel", "stft", "raw-image", "waveform")
RECONSTRUCT_MODES = ("none", "phase", "griffinlim")
BACKENDS = ("auto", "torchscript", "eager")
HEARD = {"block": "next audio block", "window": "next window", "start": "at start"}


@dataclass(frozen=True)
class Range:
    """One parameter: its default, the values it may take, when it is heard and what it does.

    `option` is the front-panel command-line option that sets it, if it has one; every parameter is
    also `--set NAME=VALUE`. `sweeps` names the list a MIDI knob sweeps for a text parameter
    ("layers" or "labels")."""
    default: object
    help: str
    heard: str = "window"
    lo: float | None = None
    hi: float | None = None
    unit: str = ""                   # shown after the span: "0..2000 ms"
    integer: bool = False
    choices: tuple[str, ...] = ()    # a text parameter's allowed values (empty: free text)
    option: str | None = None
    sweeps: str | None = None

    @property
    def kind(self) -> str:
        if isinstance(self.default, bool):
            return "bool"
        if self.lo is not None:
            return "int" if self.integer else "float"
        return "text"

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def __str__(self) -> str:
        """The values it takes, as help and error messages show them."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "text":
            return " | ".join(self.choices) if self.choices else "text"
        if self.integer:  # :g would print a large whole number as 4.29497e+09
            return f"{int(self.lo)}..{int(self.hi)}{self.unit}"
        return f"{self.lo:g}..{self.hi:g}{self.unit}"

    def __contains__(self, value) -> bool:
        return self.lo <= value <= self.hi


def _number(default, lo, hi, help, unit="", heard="window", option=None) -> Range:
    return Range(default, help, heard, lo, hi, unit, isinstance(default, int) and not isinstance(default, bool),
                 option=option)


# name -> Range. The order is the order of `streamdream params` and of the Params fields.
RANGES: dict[str, Range] = {
    # --- what the dream hears and where it pushes (model and view are fixed for a run)
    "model": Range(None, "ONNX file, or a shipped model: default (instruments), pitch (piano keys)",
                   "start", option="--model"),
    "view": Range(None, "override the model's own view of the audio", "start", choices=VIEWS),
    "reconstruct": Range("none", "stft views only: dream magnitudes, resynthesise with the input's phase or "
                                 "Griffin-Lim (baselines)", "start", choices=RECONSTRUCT_MODES),
    "layer": Range(None, "what to amplify: NAME, NAME@CHANNEL, A:0.5,B:1 or heard (`models info` lists them)",
                   option="--layer", sweeps="layers"),
    "target": Range(None, "label(s) to dream toward: LABEL, or A,B:0.5 for several, weighted",
                    option="--target", sweeps="labels"),
    "away": Range(None, "label(s) to dream away from (same form as target)", option="--away", sweeps="labels"),
    # --- how hard, per window
    "steps": _number(10, 1, 1000, "gradient steps per octave"),
    "step_size": _number(0.1, 0.0, 10.0, "depth: each step, relative to the window's level", " x RMS"),
    "octaves": _number(3, 1, 8, "octaves: the window is dreamed at this many time scales, coarse to fine"),
    "octave_scale": _number(1.2, 1.0, 4.0, "each coarser octave's time axis is this much shorter"),
    "jitter_ms": _number(30.0, 0.0, 2000.0, "largest random circular shift per step", " ms"),
    "seed": _number(0, 0, 2 ** 32 - 1, "random seed: the same seed gives the same output",
                    option="--seed"),  # numpy's generators take no negative seed
    # --- how the dream is kept musical
    "top_db": _number(60.0, 0.0, 200.0, "the view ignores what lies this far under each frame's loudest band "
                                        "(0 = the model's own floor)", " dB", heard="start"),
    "shape": _number(1.0, 0.0, 4.0, "shape each step by the input's spectrum, so the change grows where the "
                                    "music has energy (0 = off, 1 = in proportion)"),
    "sustain_ms": _number(128.0, 0.0, 1000.0, "with a target: shape by the spectrum averaged over this long "
                                              "either side, so the target's colour holds between hits", " ms"),
    "eq_bands": _number(0.0, 0.0, 12.0, "above 0: the dream may only re-EQ the music, a smooth gain in this "
                                        "many bands per octave (0 = off)"),
    "eq_depth_db": _number(6.0, 0.5, 40.0, "with eq_bands: the most any band is raised or cut", " dB"),
    "eot": _number(0.0, 0.0, 2.0, "random gain, EQ and noise per step, so only changes that survive them grow "
                                  "(0 = off)"),
    "keep": _number(0.2, 0.0, 2.0, "with a target: also push the label the model hears most in the input, at "
                                   "this weight, so the music stays itself (0 = off)"),
    "hold_others": _number(1.0, 0.0, 10.0, "with a target: hold what else the model hears in the input at this "
                                           "weight, so no neighbour of the target takes over (0 = off)"),
    "ceiling_db": _number(24.0, -24.0, 24.0, "hold the change in every time-frequency cell to at most this far "
                                             "over the music there (24 = off; 0 = never covers the music)", " dB"),
    "swell_db": _number(6.0, -24.0, 24.0, "hold the finished change at every moment to at most this far over "
                                          "the music then, so tails and gaps do not swell (24 = off)", " dB"),
    "freeze": Range(False, "keep replaying the current dream (live)"),
    # --- instant: every audio block
    "intensity": _number(1.0, 0.0, 2.0, "how much of the dreamed change is heard",
                         heard="block", option="--intensity"),
    "mix": _number(1.0, 0.0, 1.0, "0 = the input only, 1 = the full dream", heard="block", option="--mix"),
    "gain_db": _number(0.0, -60.0, 24.0, "output gain before the limiter", " dB", heard="block", option="--gain"),
    # --- output, windowing and compute: fixed for a run
    "match_loudness": Range(True, "bring each dreamed window to the input's level", "start"),
    "limit_db": _number(-1.0, -20.0, 0.0, "true-peak ceiling of the output", " dBFS", heard="start"),
    "window_s": _number(9.0, 1.0, 30.0, "window length", " s", heard="start"),
    "crossfade_s": _number(1.0, 0.0, 15.0, "equal-power crossfade between windows, at most half the window",
                           " s", heard="start"),
    "backend": Range("auto", "the gradient loop: auto (eager on a CPU, TorchScript on a GPU), torchscript or "
                             "eager", "start", choices=BACKENDS),
    "torch_device": Range("auto", "where the dream is computed: auto (CUDA if present), cpu, cuda[:N]",
                          "start", option="--torch-device"),
}
CEILING_OFF_DB = RANGES["ceiling_db"].hi  # the top of ceiling_db's (and swell_db's) range is no limit (a knob fully up)
_TYPES = {"bool": bool, "int": int, "float": float, "text": "str | None"}


def named(name: str) -> str:
    """How a parameter is named to the user: its option if it has one, else its --set key."""
    return RANGES[name].option or name


def _validate(self) -> "Params":
    for name in RANGES:
        check_value(name, getattr(self, name), label=named(name))
    if not self.crossfade_s <= self.window_s / 2:
        raise ParameterError("crossfade_s must be at most half of window_s")
    if self.reconstruct != "none" and self.view not in (None, "stft"):
        raise ParameterError("reconstruct needs view stft")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.torch_device):
        raise ParameterError(f"{named('torch_device')} must be auto, cpu or cuda[:N]")
    return self


def _with_changes(self, **changes) -> "Params":
    """A copy with `changes` (field names) applied, checked against the table."""
    unknown = set(changes) - set(RANGES)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(sorted(unknown))}; `streamdream params` lists them")
    return replace(self, **changes).validate()


Params = make_dataclass(
    "Params", [(name, _TYPES[spec.kind], spec.default) for name, spec in RANGES.items()], frozen=True,
    namespace={"validate": _validate, "with_changes": _with_changes,
               "__doc__": "The dream's settings, one field per entry of params.RANGES (defaults: the `vivid` preset)."})
Params.__module__ = __name__  # so a Params pickles by name (the dream worker process receives them)


def parse_value(name: str, text: str):
    """A parameter's value from text (`--set KEY=VALUE`), checked against the table; one-line errors."""
    if name not in RANGES:
        raise ParameterError(f"unknown parameter {name!r}; `streamdream params` lists them")
    spec = RANGES[name]
    if spec.kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
            raise ParameterError(f"{name} must be true or false, not {text!r}")
        value = lowered in ("true", "on", "yes", "1")
    elif spec.numeric:
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(f"{name} must be a number ({spec}), not {text!r}") from None
    else:
        value = None if text.strip().lower() in ("", "none") else text
    return check_value(name, value)


def check_value(name: str, value, where: str = "", label: str | None = None) -> object:
    """One parameter's value (from TOML, `--set`, a knob or a Params field): the right type and in range.
    Returns it as Params holds it (an int for an integer parameter). `label` names it in messages (default:
    its --set key)."""
    prefix = f"{where}: " if where else ""
    if name not in RANGES:
        raise ParameterError(f"{prefix}unknown parameter {name!r}; `streamdream params` lists them")
    spec, label = RANGES[name], label or name
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ParameterError(f"{prefix}{label} must be true or false")
        return value
    if spec.kind == "text":
        if value is not None and not isinstance(value, str):
            raise ParameterError(f"{prefix}{label} must be a string")
        if spec.choices and value is not None and value not in spec.choices:
            raise ParameterError(f"{prefix}{label} must be one of {', '.join(spec.choices)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{prefix}{label} must be a number, got {value!r}")
    if value not in spec:  # False for nan too
        raise ParameterError(f"{prefix}{label} must be {spec}, not {value:g}")
    if spec.integer and value != int(value):
        raise ParameterError(f"{prefix}{label} must be a whole number, got {value!r}")
    return int(value) if spec.integer else float(value)


def params_table() -> list[dict]:
    """Every parameter as `streamdream params` lists it."""
    return [{"name": name, "values": str(spec), "default": spec.default, "heard": HEARD[spec.heard],
             "option": spec.option or f"--set {name}=", "help": spec.help} for name, spec in RANGES.items()]
