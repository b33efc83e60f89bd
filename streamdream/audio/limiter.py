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

from ..memory import resident_zeros

OVERSAMPLE = 4
TAPS = 32                 # interpolation filter length per phase
# Input is clipped to +-CLIP before anything else: the gain 1 - (1 - threshold/peak) loses all its
# precision in float64 once the peak passes ~1e16 and a 1e30 sample came out as digital silence.
# 120 dB over full scale is far beyond any real signal, so nothing real is changed by it.
CLIP = 1e6
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
        # tap k of the three phases as a (1, phases, 1) column: column @ (channels, 1, n) samples gives
        # every phase's and channel's products in one batched matrix product (a broadcast multiply
        # would make numpy allocate work buffers in the audio callback)
        self.taps = [np.ascontiguousarray(self.filters[None, :, tap:tap + 1]) for tap in range(TAPS)]
        self.bound = float(np.abs(self.filters).sum(axis=1).max())  # largest gain of an interpolator
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
        self._capacity = 0

    def reserve(self, n: int) -> None:
        """Work buffers for blocks of up to n frames, reused from then on (call it before the stream
        starts; a larger block grows them once) so the audio callback allocates nothing, nor waits for
        the kernel to supply the loud path's pages when a dream first gets loud."""
        if n <= self._capacity:
            return
        c, k, lookahead = self.channels, self.history, self.lookahead
        x = resident_zeros((c, k + n))
        x[:, :k] = self.x_hist
        r = resident_zeros(lookahead + n)
        r[:lookahead] = self.r_hist
        self._x, self._r = x, r
        self.x_hist, self.r_hist = x[:, :k], r[:lookahead]
        phases = OVERSAMPLE - 1
        self._interp, self._term = resident_zeros(c * phases * n), resident_zeros(c * phases * n)
        self._abs = resident_zeros((c, n))
        self._peak, self._phase_peak, self._both = (resident_zeros(n) for _ in range(3))
        self._need, self._attack, self._gain, self._env = (resident_zeros(n) for _ in range(4))
        self._quiet = resident_zeros(n, dtype=bool)
        self._weighted, self._scaled = resident_zeros(n), resident_zeros(n)
        self._positive = resident_zeros(lookahead + n, dtype=bool)
        self._capacity = n

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """block: (channels, n) float. Returns (channels, n) float32 (into `out` if given), `latency` late."""
        n = block.shape[1]
        if out is None:
            out = np.empty((self.channels, n), dtype=np.float32)
        if n == 0:
            return out
        self.reserve(n)
        k = self.history
        x_all = self._x[:, :k + n]
        x_all[:, k:] = block
        np.clip(x_all[:, k:], -CLIP, CLIP, out=x_all[:, k:])  # in place, float64: no temporaries
        first = k - self.half  # x_all index of the first sample whose peak is now computable
        start = first - self.half + 1  # first sample any of this block's interpolation filters read
        span = x_all[:, start:start + n + TAPS - 1]
        # No interpolated point exceeds max|x| times the filters' largest absolute sum: when even
        # that is under the threshold nothing needs reducing and the 4x interpolation is skipped.
        top = max(max(float(row.max()), -float(row.min())) for row in span)
        loud = top * self.bound > self.threshold
        need = self._need[:n]
        need[:] = 0.0
        if loud:
            self._reduction_needed(x_all, first, start, n, need)
        else:
            self.last_peak = 0.0  # under the threshold: acts exactly as its true value would

        lookahead = self.lookahead
        r_all = self._r[:lookahead + n]
        r_all[lookahead:] = need
        attack = self._attack[:n]
        attack[:] = 0.0
        if r_all.max() > 0.0:  # reductions are >= 0 (and .any() would allocate a cast buffer)
            # Output position o sees the reduction needed at o + j with weight 1 - j/(L+1), one 1-D
            # pass per j (a 2-D sliding-window product made numpy allocate in the callback), and only
            # over the outputs that can see a reduction: those from L before the first to the last.
            positive = self._positive[:lookahead + n]
            np.greater(r_all, 0.0, out=positive)
            first_needed = int(positive.argmax())
            np.greater(r_all[::-1], 0.0, out=positive)
            last_needed = lookahead + n - 1 - int(positive.argmax())
            lo, hi = max(0, first_needed - lookahead), min(n, last_needed + 1)
            span, weighted = attack[lo:hi], self._weighted[:hi - lo]
            np.multiply(r_all[lo:hi], self.attack_weights[0], out=span)
            for j in range(1, lookahead + 1):
                np.multiply(r_all[lo + j:hi + j], self.attack_weights[j], out=weighted)
                np.maximum(span, weighted, out=span)
        r_all[:lookahead] = r_all[n:n + lookahead].copy() if n < lookahead else r_all[n:n + lookahead]

        env = self._release(attack)
        delayed = x_all[:, first - lookahead:first - lookahead + n]
        if env is None:
            out[:] = delayed
        else:
            gain = np.subtract(1.0, env, out=self._gain[:n])
            scaled = self._scaled[:n]
            for c in range(self.channels):  # row by row: a broadcast would allocate
                out[c] = np.multiply(delayed[c], gain, out=scaled)
        x_all[:, :k] = x_all[:, n:n + k].copy() if n < k else x_all[:, n:n + k]
        return out

    def _reduction_needed(self, x_all: np.ndarray, first: int, start: int, n: int, need: np.ndarray) -> None:
        """Fill `need` with the gain reduction each sample needs so its true peak meets the threshold."""
        # Peak of each sample interval [i, i+1): the sample and three interpolated points.
        # (every operation here is 1-D or a plain matrix product: numpy allocates work buffers for
        # broadcasts and multi-axis reductions, and this runs in the audio callback)
        peak = self._peak[:n]
        for c in range(self.channels):
            magnitude = np.abs(x_all[c, first:first + n], out=self._abs[c, :n])
            if c == 0:
                np.copyto(peak, magnitude)
            else:
                np.maximum(peak, magnitude, out=peak)
        shape = (self.channels, OVERSAMPLE - 1, n)
        size = shape[0] * shape[1] * n
        interp, term = self._interp[:size].reshape(shape), self._term[:size].reshape(shape)
        x = x_all[:, None, :]  # (channels, 1, samples)
        np.matmul(self.taps[0], x[:, :, start:start + n], out=interp)
        for tap in range(1, TAPS):  # every phase and channel per tap, each summed in tap order
            np.matmul(self.taps[tap], x[:, :, start + tap:start + tap + n], out=term)
            np.add(interp, term, out=interp)
        np.abs(interp, out=interp)
        phase_peak = self._phase_peak[:n]
        np.copyto(phase_peak, interp[0, 0])
        for c in range(shape[0]):
            for p in range(shape[1]):
                np.maximum(phase_peak, interp[c, p], out=phase_peak)
        np.maximum(peak, phase_peak, out=peak)
        # A sample touches the intervals on both sides of it.
        both = self._both[:n]
        both[0] = max(peak[0], self.last_peak)
        np.maximum(peak[1:], peak[:-1], out=both[1:])
        self.last_peak = float(peak[-1])
        if both.max() <= self.threshold:
            return
        quiet = np.less_equal(both, self.threshold, out=self._quiet[:n])
        np.maximum(both, 1e-30, out=both)  # changes only samples that are zeroed below
        np.divide(self.threshold, both, out=need)
        np.subtract(1.0, need, out=need)
        np.copyto(need, 0.0, where=quiet)

    def _release(self, attack: np.ndarray):
        """Reduction envelope with a linear release; None when no reduction at all (gain exactly 1)."""
        if self.env == 0.0 and not attack.max() > 0.0:
            return None
        env = self._env[:attack.size]
        state, step = self.env, self.release_step
        # memoryviews: Python floats one at a time (no list of them), and stores without numpy's
        # per-item overhead
        written = memoryview(env)
        for i, a in enumerate(memoryview(attack)):
            state = state - step
            if state < 0.0:
                state = 0.0
            if a > state:
                state = a
            written[i] = state
        self.env = state
        return env

    def process_all(self, audio: np.ndarray, block: int = 65536) -> np.ndarray:
        """Whole signal, latency removed. audio: (channels, n).

        Worked through in blocks so the work buffers stay one block's size; the output is the
        same as from one call (see the module doc)."""
        self.reset()
        n, lag = audio.shape[1], self.latency
        out = np.empty((self.channels, n), dtype=np.float32)
        for at in range(0, n + lag, block):  # the input stream is the audio, then `lag` zeros
            end = min(at + block, n + lag)
            piece = audio[:, at:min(end, n)]
            if end > n:
                piece = np.concatenate([piece, np.zeros((self.channels, end - max(at, n)))], axis=1)
            limited = self.process(piece)
            keep = max(at, lag)  # stream frame j comes out as output frame j - lag
            out[:, keep - lag:end - lag] = limited[:, keep - at:]
        return out


def true_peak(audio: np.ndarray) -> float:
    """4x-oversampled peak magnitude of (channels, n) audio, by an independent method (soxr)."""
    import soxr

    up = soxr.resample(np.ascontiguousarray(audio.T, dtype=np.float64), 1, OVERSAMPLE, quality="VHQ")
    return float(np.abs(up).max()) if up.size else 0.0
