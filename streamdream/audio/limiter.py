"""A true-peak safety limiter that never colours a signal it does not have to touch.

Dreams get loud. This limiter keeps the 4x-oversampled (true) peak at or below
the threshold, with a short lookahead so gain reduction is in place before the
peak arrives, and a linear release. Two properties the rest of streamdream relies on:

* Below the threshold the gain is exactly 1.0, so the output equals the input
  delayed by `latency` samples, bit for bit.
* The output does not depend on how the stream is cut into blocks: every output
  sample is computed by the same arithmetic from the same inputs. That is what
  lets the live engine (any block size) match the offline render sample for sample.
"""
from __future__ import annotations

import numpy as np

OVERSAMPLE = 4
TAPS = 32                 # interpolation filter length per phase
MARGIN_DB = 0.2           # the 4x interpolator is an estimate (measured up to 0.12 dB low); aim this far under


def _interpolation_filters() -> np.ndarray:
    """(OVERSAMPLE - 1, TAPS) windowed-sinc filters for the points i + p/4, p = 1..3.

    Tap k multiplies x[i + k - TAPS//2 + 1].
    """
    offsets = np.arange(TAPS) - TAPS // 2 + 1
    filters = []
    for phase in range(1, OVERSAMPLE):
        t = offsets - phase / OVERSAMPLE
        window = 0.5 + 0.5 * np.cos(np.pi * t / (TAPS / 2 + 0.5))
        h = np.sinc(t) * window
        filters.append(h / h.sum())
    return np.array(filters)


class TruePeakLimiter:
    """Streaming limiter: `process(block)` returns the limited block, `latency` samples late.

    Parameters
    ----------
    sample_rate : int
    channels : int
    threshold_db : float
        Ceiling for the true peak, dBFS.
    lookahead_ms, release_ms : float
        Attack ramp length (also the lookahead) and time for full gain recovery.
    """

    def __init__(self, sample_rate: int, channels: int, threshold_db: float = -1.0,
                 lookahead_ms: float = 2.0, release_ms: float = 150.0):
        self.channels = channels
        self.threshold = 10.0 ** ((threshold_db - MARGIN_DB) / 20.0)
        self.lookahead = max(1, round(lookahead_ms * sample_rate / 1000.0))
        self.release_step = 1.0 / max(1.0, release_ms * sample_rate / 1000.0)
        self.filters = _interpolation_filters()
        self.half = TAPS // 2
        self.latency = self.half + self.lookahead
        # Attack shape: reduction needed at i + j is applied from i with weight 1 - j/(L+1).
        self.attack_weights = 1.0 - np.arange(self.lookahead + 1) / (self.lookahead + 1)
        self.history = max(TAPS - 1, self.latency)
        self.reset()

    def reset(self) -> None:
        self.x_hist = np.zeros((self.channels, self.history), dtype=np.float64)
        self.r_hist = np.zeros(self.lookahead, dtype=np.float64)
        self.last_peak = 0.0
        self.env = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """block: (channels, n) float. Returns (channels, n) float32, delayed by `latency`."""
        n = block.shape[1]
        if n == 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        x_all = np.concatenate([self.x_hist, block.astype(np.float64, copy=False)], axis=1)
        k = self.history
        first = k - self.half  # x_all index of the first sample whose peak is now computable

        # Peak of each sample interval [i, i+1): the sample and three interpolated points.
        peak = np.abs(x_all[:, first:first + n]).max(axis=0)
        for h in self.filters:
            interp = np.zeros((self.channels, n))
            start = first - self.half + 1
            for tap in range(TAPS):
                interp += h[tap] * x_all[:, start + tap:start + tap + n]
            np.maximum(peak, np.abs(interp).max(axis=0), out=peak)
        # A sample touches the intervals on both sides of it.
        both = np.maximum(peak, np.concatenate([[self.last_peak], peak[:-1]]))
        self.last_peak = float(peak[-1])
        need = np.zeros(n)
        over = both > self.threshold
        need[over] = 1.0 - self.threshold / both[over]

        r_all = np.concatenate([self.r_hist, need])
        attack = np.zeros(n)
        for j in range(self.lookahead + 1):
            # output position o = (new r position) - lookahead; it sees r[o + j]
            np.maximum(attack, r_all[j:j + n] * self.attack_weights[j], out=attack)
        self.r_hist = r_all[n:]

        env = self._release(attack)
        delayed = x_all[:, first - self.lookahead:first - self.lookahead + n]
        out = delayed if env is None else delayed * (1.0 - env)
        self.x_hist = x_all[:, n:]
        return out.astype(np.float32)

    def _release(self, attack: np.ndarray):
        """Reduction envelope with a linear release; None when no reduction at all (gain exactly 1)."""
        if self.env == 0.0 and not attack.any():
            return None
        env = np.empty_like(attack)
        state, step = self.env, self.release_step
        for i, a in enumerate(attack.tolist()):
            state = state - step
            if state < 0.0:
                state = 0.0
            if a > state:
                state = a
            env[i] = state
        self.env = state
        return env

    def process_all(self, audio: np.ndarray) -> np.ndarray:
        """Whole signal at once, latency removed. audio: (channels, n)."""
        self.reset()
        out = self.process(np.concatenate([audio, np.zeros((self.channels, self.latency))], axis=1))
        return out[:, self.latency:]


def true_peak(audio: np.ndarray) -> float:
    """4x-oversampled peak magnitude of (channels, n) audio, by an independent method (soxr)."""
    import soxr

    up = soxr.resample(np.ascontiguousarray(audio.T, dtype=np.float64), 1, OVERSAMPLE, quality="VHQ")
    return float(np.abs(up).max()) if up.size else 0.0
