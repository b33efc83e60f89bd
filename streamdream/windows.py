"""Window geometry and fade weights: a leaf module (imports only errors) that the dream
(dreaming/classify.py), the offline render and the live engine all use.

Window k covers frames [k*hop, k*hop + window). Every window fades out over its
last `crossfade` frames and every window but the first fades in over its first
`crossfade` frames, with equal-power (sin/cos) curves. Only "dream minus dry" is
crossfaded; the dry signal passes untouched, so at intensity 0 the output is the
input exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError


@dataclass(frozen=True)
class Schedule:
    window: int      # frames
    crossfade: int   # frames

    @classmethod
    def from_seconds(cls, sample_rate: int, window_s: float, crossfade_s: float) -> "Schedule":
        window = int(round(window_s * sample_rate))
        crossfade = int(round(crossfade_s * sample_rate))
        if not 0 <= crossfade <= window // 2:
            raise ParameterError("the crossfade must be at most half the window")
        return cls(window, crossfade)

    @property
    def hop(self) -> int:
        return self.window - self.crossfade

    def start(self, k: int) -> int:
        return k * self.hop

    def count(self, total_frames: int) -> int:
        """Windows needed so every frame of a `total_frames` signal gets its full dream weight."""
        return max(1, math.ceil(total_frames / self.hop))

    def weights(self, k: int) -> np.ndarray:
        w = np.ones(self.window, dtype=np.float32)
        c = self.crossfade
        if c:
            phase = (np.arange(c, dtype=np.float64) + 0.5) / c * (np.pi / 2)
            if k > 0:
                w[:c] = np.sin(phase)
            w[-c:] = np.cos(phase)
        return w
