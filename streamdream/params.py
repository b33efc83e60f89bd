"""The dream's configuration (Params) and the one table of parameter ranges (RANGES).

RANGES is read by Params.validate, the CLI's help, the MIDI mapping (control/mapping.py) and the
presets (control/presets.py), so anything one of them accepts the others accept too: a preset
saved from any valid state loads back.

Per-window parameters are read by the dream worker when it starts a window;
instant ones (intensity, mix, gain) act on the very next audio block.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .errors import ParameterError


@dataclass(frozen=True)
class Range:
    """The values a numeric parameter may take, and the CLI option that sets it (named in messages)."""
    lo: float
    hi: float
    option: str
    unit: str = ""         # shown after the span: "0..2000 ms"
    integer: bool = False

    def __str__(self) -> str:
        if self.integer:  # :g would print a large whole number as 4.29497e+09
            return f"{int(self.lo)}..{int(self.hi)}{self.unit}"
        return f"{self.lo:g}..{self.hi:g}{self.unit}"

    def __contains__(self, value) -> bool:
        return self.lo <= value <= self.hi


RANGES = {
    "steps": Range(1, 1000, "--steps", integer=True),
    "seed": Range(0, 2 ** 32 - 1, "--seed", integer=True),  # numpy's generators take no negative seed
    "step_size": Range(0.0, 10.0, "--step-size", " (relative to the window's RMS)"),
    "octaves": Range(1, 8, "--octaves", integer=True),
    "octave_scale": Range(1.0, 4.0, "--octave-scale"),
    "jitter_ms": Range(0.0, 2000.0, "--jitter", " ms"),
    "top_db": Range(0.0, 200.0, "--top-db", " dB (0 = the model's own floor)"),
    "shape": Range(0.0, 4.0, "--shape", " (0 = off)"),
    "sustain_ms": Range(0.0, 1000.0, "--sustain", " ms (0 = frame by frame)"),
    "eq_bands": Range(0.0, 12.0, "--eq-bands", " per octave (0 = off)"),
    "eq_depth_db": Range(0.5, 40.0, "--eq-depth", " dB"),
    "eot": Range(0.0, 2.0, "--eot", " (0 = off)"),
    "keep": Range(0.0, 2.0, "--keep", " (0 = off)"),
    "hold_others": Range(0.0, 10.0, "--hold-others", " (0 = off)"),
    "ceiling_db": Range(-24.0, 24.0, "--ceiling", " dB over the music in any cell (24 = off)"),
    "swell_db": Range(-24.0, 24.0, "--swell", " dB over the music at any moment (24 = off)"),
    "intensity": Range(0.0, 2.0, "--intensity"),
    "mix": Range(0.0, 1.0, "--mix"),
    "gain_db": Range(-60.0, 24.0, "--gain", " dB"),
    "limit_db": Range(-20.0, 0.0, "--limit", " dBFS"),
    "window_s": Range(1.0, 30.0, "--window", " s"),
}
RECONSTRUCT_MODES = ("none", "phase", "griffinlim")
CEILING_OFF_DB = RANGES["ceiling_db"].hi  # the top of --ceiling's (and --swell's) range is no limit (a knob fully up)
BACKENDS = ("auto", "torchscript", "eager")


@dataclass(frozen=True)
class Params:
    # --- per window: what and how hard to dream
    model: str | None = None        # .onnx path; None = the shipped default
    view: str | None = None         # override the model's own view
    reconstruct: str = "none"       # stft baselines: dream magnitudes, resynthesise
    layer: str | None = None        # "NAME", "NAME@CHANNEL" or "A:0.5,B:1.0"
    target: str | None = None       # class label to dream toward
    away: str | None = None         # class label to dream away from
    steps: int = 10                 # gradient steps per octave
    step_size: float = 0.1          # per step, relative to the window's RMS level
    octaves: int = 3
    octave_scale: float = 1.2       # each coarser octave's time axis is this much shorter
    jitter_ms: float = 30.0         # maximum circular shift per step
    seed: int = 0
    # How the dream is kept musical (the defaults are --preset toward; docs/DREAMS.md)
    top_db: float = 60.0            # view's log floor under each frame's loudest band, dB; 0 = the model's own
    shape: float = 1.0              # shape each step by the input's spectrum (0 = off, 1 = in proportion)
    sustain_ms: float = 128.0       # with --target: ... averaged over this long either side (0 = frame by frame)
    eq_bands: float = 0.0           # > 0: each step only re-EQs the input, in this many bands per octave (0 = off)
    eq_depth_db: float = 6.0        # with eq_bands: no band is raised or cut by more than this (dB)
    eot: float = 0.0                # expectation over transformation: random gain/EQ/noise per step (0 = off)
    keep: float = 0.2               # with --target: also push the input's own top label, at this weight (0 = off)
    hold_others: float = 1.0        # with --target: hold the model's view of the other labels at this weight (0 = off)
    ceiling_db: float = 24.0        # the change, in every STFT cell, at most this far over the music there (24 = off)
    swell_db: float = 6.0           # the finished change, in every STFT frame, at most this far over the music there
    freeze: bool = False            # live: keep replaying the current dream
    backend: str = "auto"           # eager on the CPU, TorchScript on a GPU (dreamer.loop_backend)
    device: str = "auto"
    # --- instant: applied per block
    intensity: float = 1.0          # scales dream minus dry, 0..2
    mix: float = 1.0                # 0 = dry only, 1 = dry + intensity * delta
    gain_db: float = 0.0            # output gain before the limiter
    # --- output and windowing
    match_loudness: bool = True     # each dreamed window gets the dry window's RMS
    limit_db: float = -1.0          # true-peak ceiling
    window_s: float = 9.0
    crossfade_s: float = 1.0

    def validate(self) -> "Params":
        for name, span in RANGES.items():
            if not span.lo <= getattr(self, name) <= span.hi:
                raise ParameterError(f"{span.option} must be {span}")
        checks = [
            (0.0 <= self.crossfade_s <= self.window_s / 2, "--crossfade must be 0..window/2 s"),
            (self.reconstruct in RECONSTRUCT_MODES, f"--reconstruct must be one of {', '.join(RECONSTRUCT_MODES)}"),
            (self.reconstruct == "none" or self.view in (None, "stft"), "--reconstruct needs --view stft"),
            (self.backend in BACKENDS, f"--backend must be one of {', '.join(BACKENDS)}"),
            (self.device in ("auto", "cpu") or self.device.startswith("cuda"), "--device must be auto, cpu or cuda[:N]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)
        return self

    def with_changes(self, **changes) -> "Params":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ParameterError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **changes).validate()
