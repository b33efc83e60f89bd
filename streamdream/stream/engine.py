"""The live engine: input ring -> dream worker -> crossfaded delta slots -> audio callback.

Timeline (frames; W window, C crossfade, H = W - C hop, B processing budget):

* Window k covers input frames [kH, kH + W). Its last frame arrives at kH + W.
* The worker dreams it and publishes "weights x (dream - dry)" into slot k % n_slots.
* The callback plays input frame f = (output frame) - D, with D = W + B: window k
  is first needed when output reaches kH + D = kH + W + B, i.e. B after it was
  complete. Total latency = D + the limiter's lookahead; printed at start.
* The first block that touches window k latches whether its dream is there. If not,
  that window plays dry (the neighbours' equal-power fades make it click-free) and
  is counted late; a dream published afterwards is ignored.

The audio callback (`Engine.process`, on the device's thread) keeps these rules, as sounddevice
states for its callbacks:

* no locks, no waiting, no printing or logging, no file I/O: problems are counted in `stats`
  and reported by the main thread;
* no memory allocation for audio: every buffer exists before the stream starts, and numpy is
  used only in ways that do not make temporaries (1-D operations with `out=`; numpy allocates work
  buffers for broadcasts and multi-axis reductions). What Python itself makes per call (floats,
  array views) is small and freed at once. tests/test_engine.py::test_the_callback_allocates_no_buffers;
* it always fills the whole output block (with dry signal when a dream is late);
* it shares, without locks: the input ring and the dream slots with the worker (audio/shared.py:
  one writer per array, a slot published last), the control store's targets (control/store.py).
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque

import numpy as np

from ..audio.limiter import TruePeakLimiter
from ..audio.mix import mix_output
from ..audio.ring import AudioRing
from ..audio.shared import (W_CURRENT, W_DREAMED, W_FAILED, W_HEAP_FREE, W_HEAP_USED, W_LAST_S, W_MAX_S, W_RSS,
                            W_STARTED, W_SUM_S, DreamExchange)
from ..control.store import Controls
from ..memory import resident_zeros
from ..params import Params
from ..windows import Schedule
from .feedback import Feedback
from .recorder import SkippedTime
from .worker import DreamWorker

CHANNELS = 2                 # the live engine is stereo; mono sources are duplicated
TIMING_BINS_PER_DECADE = 100  # callback durations are counted in bins 2.3% wide, from 1 us to 1 s
XRUN_HISTORY = 256           # times of the most recent callbacks that carried an xrun flag
SLOW_FRACTION = 0.10         # a callback using more than this share of its block's time counts as slow
SLOW_HISTORY = 1024          # (start, duration) of the most recent slow callbacks
# Knobs move for weeks: nothing the engine keeps per change or per window may grow without bound.
VERSION_HISTORY = 4096       # Params versions kept for `heard` (MIDI applies every 20 ms: 80 s, far beyond the latency)
HEARD_HISTORY = 1024         # the most recent windows heard, with their Params
STATUS_FLAGS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow", "priming_output")


class FileSource:
    """A file played in real time in place of the capture side; loops unless told not to."""

    def __init__(self, audio: np.ndarray, loop: bool = True):
        if audio.shape[0] == 1:
            audio = np.repeat(audio, CHANNELS, axis=0)
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.loop = loop
        self.position = 0

    def fill(self, out: np.ndarray) -> None:
        n, total, done = out.shape[1], self.audio.shape[1], 0
        while done < n:
            if self.position >= total:
                if not self.loop:
                    out[:, done:] = 0.0
                    self.position += n - done
                    return
                self.position = 0
            take = min(n - done, total - self.position)
            out[:, done:done + take] = self.audio[:, self.position:self.position + take]
            self.position += take
            done += take


def _peak(block: np.ndarray) -> float:
    """Largest magnitude in a (channels, n) block, row by row (a 2-D reduction would allocate)."""
    top = 0.0
    for row in block:
        top = max(top, float(row.max()), -float(row.min()))
    return top


class EngineStats:
    def __init__(self, worker_counters: np.ndarray):
        self.worker = worker_counters  # written by the worker (maybe another process), see audio/shared.py W_*
        self.late_windows = 0
        self.callback_errors = 0
        self.warmup_windows = 0
        self.flags = {name: 0 for name in STATUS_FLAGS}
        # when (time.perf_counter) the last XRUN_HISTORY flagged callbacks ran, so an xrun can be
        # matched with what else happened on the machine at that moment
        self.xrun_times = np.full(XRUN_HISTORY, np.nan)
        self.xrun_events = 0
        self.slow_callbacks = np.full((SLOW_HISTORY, 2), np.nan)
        self.slow_events = 0
        # A histogram, not a list: percentiles of a long list took the main thread 10 ms with the
        # GIL held, and the audio callback had to wait for it.
        self.callback_bins = np.zeros(6 * TIMING_BINS_PER_DECADE + 1, dtype=np.int64)
        self.callback_max = 0.0
        self.callbacks = 0
        self.last_frames = 0
        self.frames_out = 0
        self.input_peak = 0.0
        self.output_peak = 0.0

    windows_dreamed = property(lambda self: int(self.worker[W_DREAMED]))
    failed_windows = property(lambda self: int(self.worker[W_FAILED]))  # NaN/Inf dreams: discarded, dry played
    current_window = property(lambda self: int(self.worker[W_CURRENT]))
    window_started = property(lambda self: float(self.worker[W_STARTED]))

    def dream_seconds(self) -> dict:
        n = self.windows_dreamed
        if n == 0:
            return {"last": None, "mean": None, "max": None}
        return {"last": float(self.worker[W_LAST_S]), "mean": float(self.worker[W_SUM_S]) / n,
                "max": float(self.worker[W_MAX_S])}

    def worker_memory(self) -> dict:
        """The dream worker's memory after its last window, in bytes (all 0 before the first)."""
        return {"rss_bytes": int(self.worker[W_RSS]), "heap_used_bytes": int(self.worker[W_HEAP_USED]),
                "heap_free_bytes": int(self.worker[W_HEAP_FREE])}

    def count_callback(self, seconds: float) -> None:
        b = int((math.log10(max(seconds, 1e-6)) + 6.0) * TIMING_BINS_PER_DECADE)
        self.callback_bins[min(b, self.callback_bins.size - 1)] += 1
        self.callback_max = max(self.callback_max, seconds)
        self.callbacks += 1

    def callback_percentiles(self) -> dict:
        """Seconds per callback since the start; each percentile is its bin's upper edge (<= 2.3% high)."""
        if self.callbacks == 0:
            return {}
        ranks = np.cumsum(self.callback_bins)
        out = {}
        for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
            b = int(np.searchsorted(ranks, q * self.callbacks))
            out[name] = min(10.0 ** ((b + 1) / TIMING_BINS_PER_DECADE - 6.0), self.callback_max)
        out["max"] = self.callback_max
        return out


class Engine:
    """Everything between the audio callback and the dream worker.

    Parameters
    ----------
    params : Params
        Dream and instant settings; `set_params` swaps them while running.
    sample_rate, blocksize : int
        blocksize is the largest block the callback will be given (0 = up to 8192).
    budget_s : float
        Processing budget B: how long after a window is complete its dream is needed.
    source : FileSource or None
        Replaces the capture side; pre-rolled by one window so sound starts after B.
    dreamer_factory : callable(params) -> object with dream_window(window, k, params), optional
        Thread mode only.
    lockstep : bool
        The null device in lockstep (live --lockstep): the clock waits for each dream instead of playing dry.
    monitor : bool
        Live capture only: until the delayed signal arrives (one latency after start), play the input
        as it comes in, fading out just before the delayed stream begins; its first 20 ms fade in.
    worker : "thread" or "process"
        Where the dream worker runs (see worker.py for why live uses a process).
    threads : int
        torch threads of a process worker (None: the fastest measured, dreaming/threads.py).
    feedback : float or None
        Installation mode: this share (0..1) of the output goes back into the input (see feedback.py);
        None leaves the feedback path out altogether.
    """

    def __init__(self, params: Params, sample_rate: int, blocksize: int = 512, budget_s: float = 3.0,
                 source: FileSource | None = None, dreamer_factory=None, lockstep: bool = False,
                 worker: str = "thread", threads: int | None = 1, monitor: bool = False, feedback: float | None = None):
        self.params = params.validate()
        self.sample_rate = sample_rate
        self.schedule = Schedule.from_seconds(sample_rate, params.window_s, params.crossfade_s)
        self.budget = int(round(budget_s * sample_rate))
        self.delay = self.schedule.window + self.budget
        self.limiter = TruePeakLimiter(sample_rate, CHANNELS, params.limit_db)
        self.latency = self.delay + self.limiter.latency
        self.max_block = blocksize if blocksize > 0 else 8192
        self.limiter.reserve(self.max_block)
        self.source = source
        self.preroll = self.schedule.window if source is not None else 0
        # A capture starts silent for a whole latency (9 s window + budget); the monitor fills that
        # time with the live input, gone (faded over the crossfade) before the delayed stream starts.
        self.monitor = monitor and source is None
        self.monitor_fade = max(1, min(self.schedule.crossfade, self.delay // 2))
        self.capture_fade = max(1, int(round(0.020 * sample_rate)))  # the delayed stream starts with this
        self._ramp = np.zeros(self.max_block, dtype=np.float32)
        self._frame_index = np.arange(self.max_block, dtype=np.float32)
        self.lockstep = lockstep
        w, h = self.schedule.window, self.schedule.hop
        self.n_slots = math.ceil(self.delay / h) + 2
        # room for the delay, two windows for the worker to read, and the largest block
        self.exchange = DreamExchange(CHANNELS, self.delay + self.preroll + 2 * w + self.max_block, self.n_slots, w,
                                      shared=worker == "process")
        self.in_ring = self.exchange.in_ring
        self.slots = self.exchange.slots
        self.slot_window = self.exchange.slot_window    # published window per slot (worker writes)
        self.slot_ok = self.exchange.slot_ok
        self.slot_version = self.exchange.slot_version  # which Params version each window was dreamed with
        self.params_version = 0
        # a ring: version v at v % VERSION_HISTORY; a window dreamed with a version since overwritten is
        # heard with Params None (only measurements read these)
        self._versions: list[tuple[int, Params] | None] = [None] * VERSION_HISTORY
        self._versions[0] = (0, self.params)
        # (window, perf_counter first heard, its Params) of the last HEARD_HISTORY windows; heard_total counts all
        self.heard: deque[tuple[int, float, Params | None]] = deque(maxlen=HEARD_HISTORY)
        self.heard_total = 0
        self.latched_window = [-1] * self.n_slots  # callback's decision per slot
        self.latched_use = [False] * self.n_slots
        self.controls = Controls(params, sample_rate, self.max_block)
        self.stats = EngineStats(self.exchange.counters)
        self.out_pos = 0
        self.record_ring: AudioRing | None = None        # --record: what goes to the speakers
        self.input_record_ring: AudioRing | None = None  # --record-input: what came in
        self.skipped_time = SkippedTime(sample_rate)  # cycles the device skipped: silence in the recording
        self.feedback = Feedback(feedback, CHANNELS, self.max_block, sample_rate) if feedback is not None else None
        self.callback_error: BaseException | None = None  # the first exception the callback caught
        self._in_buf = np.zeros((CHANNELS, self.max_block), dtype=np.float32)
        self._dry = np.zeros((CHANNELS, self.max_block), dtype=np.float32)
        self._delta = np.zeros((CHANNELS, self.max_block), dtype=np.float32)
        self._limited = np.zeros((CHANNELS, self.max_block), dtype=np.float32)
        self._mixed = resident_zeros((CHANNELS, self.max_block), np.float32)
        self._amount = resident_zeros(self.max_block, np.float32)  # mix x intensity per frame, while gliding
        self.worker = DreamWorker(self, worker, threads, dreamer_factory)
        if source is not None:
            pre = np.zeros((CHANNELS, self.preroll), dtype=np.float32)
            source.fill(pre)
            self.in_ring.write(pre)

    # ---- control surface (any thread)
    def set_params(self, params: Params, instant: bool = True) -> None:
        """Per-window settings apply from the next window; instant ones (if `instant`) glide in at the next block.

        MIDI passes instant=False: its knobs write the instant targets directly.
        """
        self.params = params.validate()
        self.params_version += 1
        self._versions[self.params_version % VERSION_HISTORY] = (self.params_version, self.params)
        self.worker.send_params(self.params_version, self.params)
        if instant:
            self.controls.set(params.intensity, params.mix, params.gain_db)

    def params_of_version(self, version: int) -> Params | None:
        entry = self._versions[version % VERSION_HISTORY]
        return entry[1] if entry is not None and entry[0] == version else None

    def input_frame_for_output(self, out_pos: int) -> int:
        return out_pos - self.delay + self.preroll

    # ---- the audio callback: real-time code
    def process(self, indata: np.ndarray | None, outdata: np.ndarray, frames: int, status_flags=None) -> None:
        """indata/outdata are (frames, channels) as sounddevice gives them.

        A bug in here must not end the show or be mistaken for a lost device: the block is silence,
        the error is kept for the main thread to report (and counted), and the next block tries again.
        """
        out_pos, captured = self.out_pos, self.in_ring.written
        now = time.perf_counter()
        skipped = self.skipped_time.block(now, frames, self._count_xrun(status_flags, now))
        recordings = (self.record_ring, self.input_record_ring)
        for ring in recordings:
            if ring is not None and skipped:
                ring.write_zeros(skipped)  # what the speakers played (and the input gave) while the device skipped
        recorded = [ring.written if ring is not None else 0 for ring in recordings]
        try:
            self._process(indata, outdata, frames)
        except Exception as exc:
            outdata.fill(0.0)
            # keep input and output on their timeline, so the stated latency still holds afterwards, and
            # the recordings on theirs: the block played as silence
            for ring, before in ((self.in_ring, captured), *zip(recordings, recorded)):
                if ring is not None and ring.written < before + frames:
                    ring.write_zeros(before + frames - ring.written)
            self.out_pos = self.stats.frames_out = out_pos + frames
            self.stats.callback_errors += 1
            if self.callback_error is None:
                self.callback_error = exc

    def _count_xrun(self, status_flags, now: float) -> bool:
        """Count the device's xrun flags on this callback; True if it carried any."""
        if status_flags is None:
            return False
        stats = self.stats
        flagged = False
        for name in STATUS_FLAGS:
            if getattr(status_flags, name, False):
                stats.flags[name] += 1
                flagged = True
        if flagged:
            stats.xrun_times[stats.xrun_events % XRUN_HISTORY] = now
            stats.xrun_events += 1
        return flagged

    def _process(self, indata: np.ndarray | None, outdata: np.ndarray, frames: int) -> None:
        if frames > self.max_block:  # a block larger than prepared: take it in prepared-size pieces
            for start in range(0, frames, self.max_block):
                n = min(self.max_block, frames - start)
                self._process(None if indata is None else indata[start:start + n], outdata[start:start + n], n)
            return
        began = time.perf_counter()
        stats = self.stats
        block_in = self._in_buf[:, :frames]
        if self.source is not None:
            self.source.fill(block_in)
        elif indata is None:
            block_in[:] = 0.0
        elif indata.shape[1] == 1:
            block_in[:] = indata[:, 0]
        else:
            block_in[:] = indata[:, :CHANNELS].T
        if self.input_record_ring is not None:
            self.input_record_ring.write(block_in)  # the input as it came, before any feedback is mixed in
        monitoring = self.monitor and self.out_pos < self.delay
        if monitoring:
            self._start_monitor(block_in, frames)
        if self.feedback is not None:
            self.feedback.mix_into(block_in, frames)
        self.in_ring.write(block_in)

        first_frame = self.input_frame_for_output(self.out_pos)
        dry = self._dry[:, :frames]
        self.in_ring.read_into(first_frame, dry)
        delta = self._delta[:, :frames]
        delta[:] = 0.0
        self._add_dreams(first_frame, frames, delta)

        intensity, mix, gain = self.controls.block(frames)
        out = mix_output(dry, delta, intensity, mix, gain, self._mixed[:, :frames], self._amount)
        if monitoring:
            monitor_gain = self._monitor_gain(frames)
            np.multiply(monitor_gain, gain, out=monitor_gain)
            for c in range(CHANNELS):  # delta is spent: reuse its buffer
                np.add(out[c], np.multiply(block_in[c], monitor_gain, out=delta[c]), out=out[c])
        limited = self.limiter.process(out, self._limited[:, :frames])
        outdata[:, :CHANNELS] = limited.T
        if outdata.shape[1] > CHANNELS:
            outdata[:, CHANNELS:] = 0.0
        if self.record_ring is not None:
            self.record_ring.write(limited)
        if self.feedback is not None:
            self.feedback.keep(limited, frames)
        self.out_pos += frames
        stats.frames_out = self.out_pos
        stats.last_frames = frames
        stats.input_peak = max(stats.input_peak * 0.9, _peak(block_in))
        stats.output_peak = max(stats.output_peak * 0.9, _peak(limited))
        took = time.perf_counter() - began
        stats.count_callback(took)
        if took > SLOW_FRACTION * frames / self.sample_rate:
            stats.slow_callbacks[stats.slow_events % SLOW_HISTORY] = began, took
            stats.slow_events += 1

    def _start_monitor(self, block_in: np.ndarray, frames: int) -> None:
        """Fade in the very first capture frames: the delayed stream will start with them."""
        captured = self.in_ring.written
        if captured < self.capture_fade:
            ramp = np.add(self._frame_index[:frames], captured + 1, out=self._ramp[:frames])
            np.minimum(np.divide(ramp, self.capture_fade, out=ramp), 1.0, out=ramp)
            for c in range(CHANNELS):
                np.multiply(block_in[c], ramp, out=block_in[c])

    def _monitor_gain(self, frames: int) -> np.ndarray:
        """1 until `monitor_fade` frames before the delayed stream starts, then an equal-power fade to 0."""
        left = np.subtract(self.delay - self.out_pos, self._frame_index[:frames], out=self._ramp[:frames])
        ramp = np.clip(np.divide(left, self.monitor_fade, out=left), 0.0, 1.0, out=left)  # left: frames to go
        np.sin(np.multiply(ramp, np.pi / 2, out=ramp), out=ramp)
        return ramp

    def _windows_touching(self, first_frame: int, frames: int) -> range:
        w, h = self.schedule.window, self.schedule.hop
        first = max(0, -(-(first_frame - w + 1) // h))
        last = (first_frame + frames - 1) // h
        return range(first, last + 1) if last >= 0 else range(0)

    def _add_dreams(self, first_frame: int, frames: int, delta: np.ndarray) -> None:
        w, h = self.schedule.window, self.schedule.hop
        for k in self._windows_touching(first_frame, frames):
            s = k % self.n_slots
            if self.latched_window[s] != k:
                # first block of window k: decide once whether its dream plays
                published = self.slot_window[s] == k
                self.latched_window[s] = k
                self.latched_use[s] = published and bool(self.slot_ok[s])
                if self.latched_use[s]:
                    self.heard.append((k, time.perf_counter(), self.params_of_version(int(self.slot_version[s]))))
                    self.heard_total += 1
                if not published:
                    if self.input_frame_for_output(0) > k * h:
                        self.stats.warmup_windows += 1
                    else:
                        self.stats.late_windows += 1
            if not self.latched_use[s]:
                continue
            lo, hi = max(first_frame, k * h), min(first_frame + frames, k * h + w)
            for c in range(CHANNELS):
                part = delta[c, lo - first_frame:hi - first_frame]
                np.add(part, self.slots[s, c, lo - k * h:hi - k * h], out=part)

    # ---- the dream worker (its lifecycle lives in worker.DreamWorker)
    def start_worker(self, timeout: float = 300.0) -> None:
        """Start the worker; a process worker is ready (model loaded, warmed up) when this returns."""
        self.worker.start(timeout)

    def poll_worker(self) -> None:
        """Main thread: pick up an error the worker reported, or its death."""
        self.worker.poll()

    def stop_worker(self) -> None:
        self.worker.stop()

    @property
    def worker_error(self) -> BaseException | None:
        return self.worker.error

    def close(self) -> None:
        """Free shared memory (process mode); the engine cannot run afterwards. Stats stay readable."""
        self.stop_worker()
        if self.exchange.shm is not None and self.exchange.counters is not None:  # not already closed
            self.stats.worker = self.exchange.counters.copy()
            self.exchange.release(unlink=True)

    def wait_for_dreams(self, frames: int, timeout: float = 600.0) -> None:
        """Lockstep only: block until every window the next block touches is published."""
        first_frame = self.input_frame_for_output(self.out_pos)
        deadline = time.monotonic() + timeout
        for k in self._windows_touching(first_frame, frames):
            s = k % self.n_slots
            ready = self.worker.ready
            with ready:
                while self.slot_window[s] != k and self.latched_window[s] != k:
                    if self.worker.error is not None or self.worker.stopping:
                        return
                    self.poll_worker()
                    # a process worker cannot signal this condition: poll it every few ms
                    wait = 0.005 if self.worker.mode == "process" else max(0.0, deadline - time.monotonic())
                    if not ready.wait(timeout=wait) and time.monotonic() > deadline:
                        raise TimeoutError(f"window {k} was not dreamed within {timeout:.0f} s")
