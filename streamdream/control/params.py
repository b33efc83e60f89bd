"""Every knob streamdream has, with its range.

Per-window parameters are read by the dream worker when it starts a window;
instant ones (intensity, mix, gain) act on the very next audio block.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..errors import ParameterError

INSTANT = ("intensity", "mix", "gain_db")
RECONSTRUCT_MODES = ("none", "phase", "griffinlim")
BACKENDS = ("torchscript", "eager")


@dataclass(frozen=True)
class Params:
    # --- per window: what and how hard to dream
    model: str | None = None        # .onnx path; None = the shipped default
    view: str | None = None         # override the model's own view
    reconstruct: str = "none"       # stft baselines: dream magnitudes, resynthesise
    layer: str | None = None        # "NAME", "NAME@CHANNEL" or "A:0.5,B:1.0"
    target: str | None = None       # class label to dream toward
    away: str | None = None         # class label to dream away from
    steps: int = 4                  # gradient steps per octave
    step_size: float = 0.05         # per step, relative to the window's RMS level
    octaves: int = 3
    octave_scale: float = 1.4
    jitter_ms: float = 30.0         # maximum circular shift per step
    seed: int = 0
    top_db: float = 0.0             # view's log floor under each frame's loudest band, dB; 0 = the model's own
    shape: float = 0.0              # shape each step by the input's spectrum (0 = off, 1 = in proportion)
    eot: float = 0.0                # expectation over transformation: random gain/EQ/noise per step (0 = off)
    freeze: bool = False            # live: keep replaying the current dream
    backend: str = "torchscript"
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
        checks = [
            (1 <= self.steps <= 1000, "--steps must be 1..1000"),
            (0.0 <= self.step_size <= 10.0, "--step-size must be 0..10 (relative to the window's RMS)"),
            (1 <= self.octaves <= 8, "--octaves must be 1..8"),
            (1.0 <= self.octave_scale <= 4.0, "--octave-scale must be 1..4"),
            (0.0 <= self.jitter_ms <= 2000.0, "--jitter must be 0..2000 ms"),
            (0.0 <= self.top_db <= 200.0, "--top-db must be 0..200 dB (0 = the model's own floor)"),
            (0.0 <= self.shape <= 4.0, "--shape must be 0..4 (0 = off)"),
            (0.0 <= self.eot <= 2.0, "--eot must be 0..2 (0 = off)"),
            (0.0 <= self.intensity <= 2.0, "--intensity must be 0..2"),
            (0.0 <= self.mix <= 1.0, "--mix must be 0..1"),
            (-60.0 <= self.gain_db <= 24.0, "--gain must be -60..24 dB"),
            (-20.0 <= self.limit_db <= 0.0, "--limit must be -20..0 dBFS"),
            (1.0 <= self.window_s <= 30.0, "--window must be 1..30 s"),
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
