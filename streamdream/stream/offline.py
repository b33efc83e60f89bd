"""Offline render: the live data path with a file in place of the audio callback."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..audio.limiter import TruePeakLimiter
from ..params import Params
from ..dreaming.dreamer import Dreamer
from ..audio.mix import mix_output, window_delta
from ..windows import Schedule


@dataclass
class RenderReport:
    windows: int = 0
    failed_windows: int = 0       # dreams that went non-finite; their slot plays dry
    dream_seconds: list = field(default_factory=list)


def dream_delta(audio: np.ndarray, sample_rate: int, params: Params, dreamer: Dreamer | None = None,
                progress: Callable[[int, int], None] | None = None,
                report: RenderReport | None = None) -> np.ndarray:
    """Crossfaded "dream minus dry" for a whole (channels, frames) signal."""
    import time

    schedule = Schedule.from_seconds(sample_rate, params.window_s, params.crossfade_s)
    dreamer = dreamer or Dreamer(params, sample_rate, audio.shape[0], schedule.window)
    report = report if report is not None else RenderReport()
    total = audio.shape[1]
    n = schedule.count(total)
    padded = np.zeros((audio.shape[0], schedule.start(n - 1) + schedule.window), dtype=np.float32)
    padded[:, :total] = audio
    delta = np.zeros_like(padded)
    for k in range(n):
        start = schedule.start(k)
        dry = padded[:, start:start + schedule.window]
        began = time.perf_counter()
        dreamed = dreamer.dream_window(dry, k, params)
        report.dream_seconds.append(time.perf_counter() - began)
        report.failed_windows += dreamed is None
        delta[:, start:start + schedule.window] += schedule.weights(k) * window_delta(dry, dreamed, params.match_loudness)
        report.windows += 1
        if progress:
            progress(k + 1, n)
    return delta[:, :total]


def finish(audio: np.ndarray, delta: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
    """Instant controls and the limiter, exactly as the audio callback applies them."""
    gain = np.float32(10.0 ** (params.gain_db / 20.0))
    out = mix_output(audio, delta, np.float32(params.intensity), np.float32(params.mix), gain)
    limiter = TruePeakLimiter(sample_rate, audio.shape[0], params.limit_db)
    return limiter.process_all(out)


def render_array(audio: np.ndarray, sample_rate: int, params: Params, dreamer: Dreamer | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 report: RenderReport | None = None) -> np.ndarray:
    delta = dream_delta(audio, sample_rate, params, dreamer, progress, report)
    return finish(audio, delta, sample_rate, params)
