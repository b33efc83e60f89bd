"""The control store: the latest value of each instant control (intensity, mix, gain), set by any
thread (MIDI, OSC, the web page's link, the main thread) and read by the audio callback, which glides
toward it per sample. `set_control` is the one way a parameter named in a message (OSC, the web page)
reaches a running engine.

Like python-rtmidi's "ccstore": writers only store the newest target; the callback takes one copy per
block, so a concurrent write cannot tear a block. Per-window settings travel with Params instead.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ParameterError
from ..memory import resident_zeros
from ..params import Params
from .mapping import KNOBS

SMOOTHING_S = 0.020          # instant controls glide over about 20 ms: no zipper noise


class Controls:
    """Instant controls: targets set by any thread, smoothed per sample by the callback."""

    def __init__(self, params: Params, sample_rate: int, max_block: int):
        # The output gain is the gain as set (a knob, the page, OSC, a preset) times the opening hours' fade
        # (`set_level`), each kept apart so that neither overwrites the other.
        self.gain = 10.0 ** (params.gain_db / 20.0)
        self.level = 1.0
        self.target = np.array([params.intensity, params.mix, self.gain], dtype=np.float64)
        self.current = self.target.copy()
        self._gliding = False
        self.ramp_started_at = 0.0   # perf_counter of the first block that moved toward a new target
        # per-sample smoothing coefficient for a one-pole glide of time constant SMOOTHING_S / 3
        self.coeff = math.exp(-3.0 / (SMOOTHING_S * sample_rate))
        self.powers = self.coeff ** np.arange(1, max_block + 1)
        self.ramps = np.zeros((3, max_block), dtype=np.float32)
        # the callback's work buffers (it allocates none): this block's targets, the glide in float64
        self._target = np.zeros(3)
        self._step = np.zeros(3)
        self._glide = resident_zeros((3, max_block))

    def set(self, intensity: float | None = None, mix: float | None = None, gain_db: float | None = None) -> None:
        if intensity is not None:
            self.target[0] = intensity
        if mix is not None:
            self.target[1] = mix
        if gain_db is not None:
            self.gain = 10.0 ** (gain_db / 20.0)
            self.target[2] = self.gain * self.level

    def set_level(self, level: float) -> None:
        """The schedule's fade, 0 (silent) to 1, applied on top of the gain as set."""
        self.level = level
        self.target[2] = self.gain * level

    def block(self, n: int):
        """(intensity, mix, gain) for the next n frames: float32 scalars when settled, else per-frame ramps."""
        target, current, step = self._target, self.current, self._step
        np.copyto(target, self.target)  # one read, so a concurrent set() cannot tear the block
        if np.array_equal(current, target):
            self._gliding = False
            return np.float32(target[0]), np.float32(target[1]), np.float32(target[2])
        if not self._gliding:
            self._gliding = True
            self.ramp_started_at = time.perf_counter()
        # current -> target exponentially: target + (current - target) * coeff^i, control by control
        # (1-D operations: numpy allocates work buffers for broadcasts, and this is the audio callback)
        np.subtract(current, target, out=step)
        powers = self.powers[:n]
        for i in range(3):
            glide = self._glide[i, :n]
            np.multiply(step[i], powers, out=glide)
            current[i] = target[i] + glide[-1]
            np.add(target[i], glide, out=glide)
            self.ramps[i, :n] = glide
        # snap once within float32 resolution so the settled path is exact
        np.subtract(current, target, out=step)
        if (np.abs(step, out=step) < 1e-7).all():
            np.copyto(current, target)
        return self.ramps[0, :n], self.ramps[1, :n], self.ramps[2, :n]


def set_control(engine, name: str, value, labels: list[str], layers: list[str]) -> None:
    """Set one parameter by name on a running engine, as MIDI's knobs do: instant ones (intensity, mix,
    gain_db) into the control store, per-window ones into the next window's Params, `feedback` into the
    feedback share. A choice must be one of `labels` / `layers` (what MIDI offers too), so a wrong name
    never reaches the worker. Raises ParameterError, with the command line's own message, and then
    changes nothing."""
    if name == "feedback":
        if engine.feedback is None:
            raise ParameterError("feedback is off in this run (start the piece with --feedback above 0)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ParameterError("feedback must be 0..1")
        engine.feedback.share = float(value)
        return
    knob = KNOBS.get(name)
    if knob is None or knob.kind == "action":
        known = ", ".join(k for k, v in KNOBS.items() if v.kind != "action")
        raise ParameterError(f"unknown parameter {name!r}; known: {known}, feedback")
    if knob.toggle:
        value = bool(value)
    elif knob.choice:
        value = None if value in ("", "none", "default") else str(value)
        choices = layers if knob.sweeps == "layers" else labels
        if value is not None and value not in choices:
            raise ParameterError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    params = engine.params.with_changes(**{name: value})  # validated: the CLI's own ranges and messages
    if knob.kind == "instant":
        engine.controls.set(**{name: value})
    else:
        engine.set_params(params, instant=False)
