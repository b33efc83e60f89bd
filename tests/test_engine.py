"""The live engine on the null device: streaming equals offline, latency to the sample, the grid, late windows."""
import io
import json
import multiprocessing
import os
import resource
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

from conftest import music_clip
from streamdream.params import Params
from streamdream.dreaming.dreamer import Dreamer
from streamdream.errors import StreamDreamError
from streamdream.stream.engine import Engine, FileSource
from streamdream.stream.live import LiveOptions, run_live
from streamdream.stream.offline import render_array

QUIET = Console(file=io.StringIO())


def fast_params(model, rate, **changes):
    return Params(model=str(model), steps=2, octaves=2, window_s=1.5, crossfade_s=0.25, backend="eager",
                  **changes)


def run_engine(engine: Engine, total_frames: int, block, capture=None) -> np.ndarray:
    """Drive the engine's callback in lockstep (the null device in lockstep) and collect the output.

    `block` is the frames per callback, or a function giving the next callback's frames."""
    out = np.zeros((total_frames, 2), dtype=np.float32)
    next_block = block if callable(block) else lambda: block
    buf = np.zeros((8192, 2), dtype=np.float32)
    engine.start_worker()
    try:
        pos = 0
        while pos < total_frames:
            n = min(next_block(), total_frames - pos)
            indata = None
            if capture is not None:
                indata = np.zeros((n, 2), dtype=np.float32)
                chunk = capture[pos:pos + n]
                indata[:len(chunk)] = chunk
            if engine.lockstep:
                engine.wait_for_dreams(n)
            engine.process(indata, buf[:n], n, None)
            out[pos:pos + n] = buf[:n]
            pos += n
    finally:
        engine.stop_worker()
    return out.T


@pytest.mark.subprocess
def test_live_output_equals_offline_render_sample_for_sample(mel_model, tmp_path):
    rate = 16000
    clip = music_clip(rate, 4.0, seed=3)
    src, rec, stats = tmp_path / "in.wav", tmp_path / "rec.wav", tmp_path / "stats.json"
    sf.write(src, clip.T, rate, subtype="FLOAT")
    params = fast_params(mel_model, rate, seed=11, intensity=1.3, gain_db=3.0)
    budget = 0.5
    import torch
    # the dream process gets this process's torch thread count: conv sums are ordered by threads
    opts = LiveOptions(output_device="null", samplerate=rate, blocksize=100, input_file=str(src), loop_input=False,
                       duration=6.0, record_path=str(rec), stats_path=str(stats), quiet=True, budget_s=budget,
                       lockstep=True, threads=torch.get_num_threads(), midi=False)
    snap = run_live(params, opts, QUIET)
    live = sf.read(rec, dtype="float32", always_2d=True)[0].T
    offline = render_array(clip, rate, params)
    # a file source is pre-rolled by one window, so the file starts after budget + limiter lookahead
    from streamdream.audio.limiter import TruePeakLimiter
    lag = int(budget * rate) + TruePeakLimiter(rate, 2).latency
    assert snap["latency_frames"] == int(1.5 * rate) + lag
    assert np.array_equal(live[:, lag:lag + clip.shape[1]], offline)
    assert snap["windows_dreamed"] >= 3 and snap["late_windows"] == 0
    assert json.loads(stats.read_text())["windows_dreamed"] == snap["windows_dreamed"]


@pytest.mark.parametrize("intensity", [0.0, 1.0])
def test_impulse_comes_out_exactly_at_the_stated_latency(mel_model, intensity):
    rate, block = 16000, 256
    params = fast_params(mel_model, rate, intensity=intensity)
    engine = Engine(params, rate, block, budget_s=0.5, lockstep=True)
    capture = np.zeros((rate * 5, 2), dtype=np.float32)
    capture[3000] = 0.5
    out = run_engine(engine, rate * 5, block, capture)
    peak = int(np.argmax(np.abs(out[0])))
    assert peak == 3000 + engine.latency
    if intensity == 0.0:
        expected = np.zeros_like(out)
        expected[:, 3000 + engine.latency] = 0.5
        assert np.array_equal(out, expected)


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("block", [64, 100, 256, 512, 1024, 2048])
def test_grid_no_bad_samples_no_clicks_at_joins(mel_model, rate, block):
    window, crossfade, budget = 1.0, 0.2, 0.3
    params = Params(model=str(mel_model), steps=1, octaves=1, window_s=window, crossfade_s=crossfade,
                    backend="eager", intensity=1.5)
    clip = music_clip(rate, 3.0, seed=rate + block)
    engine = Engine(params, rate, block, budget_s=budget, source=FileSource(clip, loop=False), lockstep=True)
    total = int(4.0 * rate) + 7  # not a multiple of the block: the last block is short
    out = run_engine(engine, total, block)
    assert out.shape == (2, total)
    assert np.all(np.isfinite(out))
    tiny = (out != 0) & (np.abs(out) < np.finfo(np.float32).tiny)
    assert not tiny.any(), "subnormal samples"
    # joins: every window start and end, in output frames
    lag = engine.latency - engine.preroll
    hop, win = engine.schedule.hop, engine.schedule.window
    joins = [lag + k * hop + edge for k in range(4) for edge in (0, win)]
    step = np.abs(np.diff(out, axis=1)).max(axis=0)
    near = np.zeros(step.size, dtype=bool)
    for j in joins:
        near[max(0, j - 32):j + 32] = True
    signal = slice(lag + 100, lag + clip.shape[1] - 100)
    own = np.percentile(step[signal][~near[signal]], 99.9)
    assert step[near & (np.arange(step.size) > lag + 100) & (np.arange(step.size) < lag + clip.shape[1] - 100)].max() <= 1.5 * own


class SlowDreamer:
    """A real Dreamer that, on chosen windows, does not finish until `until(k)` is true: late by
    construction, however fast or slow the machine is."""

    def __init__(self, inner, slow_windows, until=lambda k: True):
        self.inner, self.slow, self.until = inner, slow_windows, until

    def dream_window(self, window, k, params=None):
        if k in self.slow:
            deadline = time.monotonic() + 120
            while not self.until(k):
                assert time.monotonic() < deadline, f"window {k} was never passed"
                time.sleep(0.005)
        return self.inner.dream_window(window, k, params)


class PoisonedDreamer(SlowDreamer):
    def dream_window(self, window, k, params=None):
        out = self.inner.dream_window(window, k, params)
        if k in self.slow:
            out = out.copy()
            out[0, 10] = np.nan
        return out


def _paced_run(engine, seconds, block):
    """Real time: a paced null device, the worker racing the clock."""
    from streamdream.audio.devices import NullDevice

    out = []

    def process(indata, outdata, frames, status):
        engine.process(indata, outdata, frames, status)
        out.append(outdata.copy())

    device = NullDevice(process, engine.sample_rate, block, max_frames=int(seconds * engine.sample_rate))
    engine.start_worker()
    device.start()
    device.join(timeout=seconds * 3 + 30)
    engine.stop_worker()
    return np.concatenate(out).T


@pytest.mark.slow
def test_late_window_plays_dry_is_counted_and_the_worker_catches_up(mel_model):
    rate, block = 16000, 256
    params = fast_params(mel_model, rate)
    clip = music_clip(rate, 8.0, seed=5)
    inner = Dreamer(params, rate, 2, int(1.5 * rate))
    def passed(k):  # the callback has decided window k's fate (it played it dry)
        return engine.latched_window[k % engine.n_slots] == k
    engine = Engine(params, rate, block, budget_s=0.6, source=FileSource(clip, loop=False),
                    dreamer_factory=lambda p: SlowDreamer(inner, {1}, passed))
    out = _paced_run(engine, 7.0, block)
    assert engine.stats.late_windows >= 1
    assert engine.stats.windows_dreamed >= 3  # later windows dreamed again after the skip
    lag = engine.latency - engine.preroll
    h, w, c = engine.schedule.hop, engine.schedule.window, engine.schedule.crossfade
    # window 1's full-weight middle (between its fades, away from window 0 and 2) is the dry signal exactly
    lo, hi = h + c, h + w - c
    assert np.array_equal(out[:, lag + lo:lag + hi], clip[:, lo:hi])
    assert np.all(np.isfinite(out))


@pytest.mark.subprocess
def test_a_dream_process_killed_while_starting_is_reported_at_once(mel_model):
    """Out of memory while loading the model kills the worker without a word; the engine must not wait
    out its start-up timeout, and must still close cleanly."""
    engine = Engine(fast_params(mel_model, 16000), 16000, 256, budget_s=0.6, worker="process")

    def kill_the_worker_when_it_appears():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in multiprocessing.active_children():
                if child.name == "streamdream-dream":
                    child.kill()  # long before it is ready: spawning and importing torch take seconds
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_worker_when_it_appears)
    killer.start()
    began = time.monotonic()
    with pytest.raises(StreamDreamError, match="ended while starting"):
        engine.start_worker(timeout=600)
    killer.join()
    assert time.monotonic() - began < 120  # the dead worker was noticed, not timed out
    engine.close()


@pytest.mark.subprocess
def test_the_callback_never_waits_for_memory_the_kernel_has_not_supplied(mel_model):
    """Every buffer the callback touches is in memory before the stream starts, so the first pass through
    the input ring and the slots and the limiter's first loud block do not fault page after page (in live
    runs that was a fault per block for ~35 s, and 2.9 ms for the first loud block)."""
    rate, block = 16000, 256
    clip = music_clip(rate, 12.0)
    clip[:, 200 * block:] *= 4.0  # from block 200 on the limiter's full path runs
    engine = Engine(fast_params(mel_model, rate), rate, block, budget_s=0.6, source=FileSource(clip), lockstep=True,
                    worker="process")  # as live runs it: ring and slots in shared memory
    assert engine.exchange.ring.shape[1] < clip.shape[1]  # the run wraps the ring
    first_touched_pages = engine.exchange.ring.nbytes // 4096  # by the callback, as it writes the ring
    out = np.zeros((block, 2), dtype=np.float32)
    faults = limited_blocks = 0
    engine.start_worker()
    try:
        for n in range(clip.shape[1] // block):
            engine.wait_for_dreams(block)
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            engine.process(None, out, block, None)
            if n >= 10:  # the interpreter's first calls fault in its own code and objects
                faults += resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
            limited_blocks += engine.limiter.last_peak > 0.0  # set only when the 4x interpolation ran
    finally:
        engine.close()  # also frees the shared memory
    assert engine.stats.windows_dreamed >= 5
    assert limited_blocks > 50
    # Writing the ring alone, page by page, would fault once per page; what may remain is the
    # interpreter growing its heap for a few small objects (5 or 6 faults here).
    assert faults < first_touched_pages // 10


@pytest.mark.subprocess
def test_the_dream_process_allocates_with_jemalloc_and_reports_its_heap(mel_model, monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    rate, block = 16000, 256
    engine = Engine(fast_params(mel_model, rate), rate, block, budget_s=0.6, source=FileSource(music_clip(rate, 6.0)),
                    lockstep=True, worker="process")
    out = np.zeros((block, 2), dtype=np.float32)
    engine.start_worker()
    try:
        maps = open(f"/proc/{engine.worker._handle.pid}/maps").read()
        assert "LD_PRELOAD" not in os.environ  # the audio process's own environment is as it was
        deadline = time.monotonic() + 120
        while engine.stats.windows_dreamed < 2:
            assert time.monotonic() < deadline, "no window dreamed within 120 s"
            engine.wait_for_dreams(block)
            engine.process(None, out, block, None)
        memory = engine.stats.worker_memory()
    finally:
        engine.close()
    assert "libjemalloc" in maps
    # jemalloc's statistics: the model and the dream's buffers are in use, and the worker is resident
    assert 1 << 20 < memory["heap_used_bytes"] < memory["rss_bytes"]


def test_nan_dream_is_discarded_counted_and_dry_plays(mel_model):
    rate, block = 16000, 256
    params = fast_params(mel_model, rate)
    clip = music_clip(rate, 5.0, seed=6)
    inner = Dreamer(params, rate, 2, int(1.5 * rate))
    engine = Engine(params, rate, block, budget_s=0.5, source=FileSource(clip, loop=False), lockstep=True,
                    dreamer_factory=lambda p: PoisonedDreamer(inner, {1}))
    out = run_engine(engine, int(5 * rate), block)
    assert engine.stats.failed_windows == 1 and np.all(np.isfinite(out))
    lag = engine.latency - engine.preroll
    h, w, c = engine.schedule.hop, engine.schedule.window, engine.schedule.crossfade
    assert np.array_equal(out[:, lag + h + c:lag + h + w - c], clip[:, h + c:h + w - c])


def test_a_block_larger_than_prepared_gives_the_same_output(mel_model):
    """Dreams playing (intensity 1, workers running): blocks of 4,000 frames into an engine prepared for
    64 give what blocks of 64 give."""
    rate = 16000
    params = fast_params(mel_model, rate, intensity=1.0)
    capture = music_clip(rate, 6.0, seed=4).T.copy()
    small = Engine(params, rate, 64, budget_s=0.5, lockstep=True)
    big = run_engine(small, capture.shape[0], 4000, capture)
    reference = run_engine(Engine(params, rate, 64, budget_s=0.5, lockstep=True), capture.shape[0], 64, capture)
    assert small.stats.windows_dreamed >= 3 and small.stats.late_windows == 0
    assert np.array_equal(big, reference)
    dry_only = run_engine(Engine(params.with_changes(intensity=0.0), rate, 64, budget_s=0.5, lockstep=True),
                          capture.shape[0], 64, capture)
    assert not np.array_equal(big, dry_only)  # the dreams were in it


def test_first_sound_within_three_seconds_with_a_file_source(mel_model):
    rate = 16000
    params = Params(model=str(mel_model), backend="eager")  # default 9-s window and default budget
    engine = Engine(params, rate, 512, budget_s=LiveOptions().budget_s, source=FileSource(music_clip(rate, 12.0)))
    first_sound = engine.latency - engine.preroll
    assert first_sound / rate <= 3.0
    out = run_engine(engine, int(3.0 * rate), 512)
    assert np.abs(out[:, first_sound:]).max() > 0 and not out[:, :first_sound - 1].any()


def test_callback_timing_percentiles_come_from_the_histogram_within_one_bin(mel_model):
    engine = Engine(fast_params(mel_model, 16000), 16000, 512)
    durations = [0.001] * 990 + [0.005] * 9 + [0.020]
    for seconds in np.random.default_rng(0).permutation(durations):
        engine.stats.count_callback(float(seconds))
    pct = engine.stats.callback_percentiles()
    assert 0.001 <= pct["p50"] <= 0.001 * 1.024 and 0.001 <= pct["p99"] <= 0.001 * 1.024
    assert 0.005 <= pct["p99.9"] <= 0.005 * 1.024
    assert pct["max"] == 0.020 and engine.stats.callbacks == 1000


def test_live_input_is_heard_at_once_and_hands_over_to_the_delayed_stream(mel_model):
    rate, block = 16000, 256
    params = Params(model=str(mel_model), backend="eager", intensity=0.0)  # default 9-s window and budget
    capture = music_clip(rate, 16.0).T.copy()
    monitored = Engine(params, rate, block, budget_s=LiveOptions().budget_s, lockstep=True, monitor=True)
    plain = Engine(params, rate, block, budget_s=LiveOptions().budget_s, lockstep=True)
    out = run_engine(monitored, capture.shape[0], block, capture)
    silent_start = run_engine(plain, capture.shape[0], block, capture)
    lim, d, fade = monitored.limiter.latency, monitored.delay, monitored.monitor_fade
    assert not silent_start[:, :d + lim].any()
    # heard at once: the input itself, one limiter lookahead late, until the fade before the handover
    start = lim + monitored.capture_fade
    assert np.array_equal(out[:, start:d - fade + lim], capture.T[:, start - lim:d - fade])
    # the monitor fades out before the delayed stream begins ...
    tail = np.abs(out[:, d - fade // 4 + lim:d + lim]).max()
    assert tail < 0.5 * np.abs(capture.T[:, d - fade:d]).max() and np.abs(out[:, d - 2 + lim:d + lim]).max() < 1e-3
    # ... and from then on the output is exactly what it is without a monitor, after its first 20 ms
    after = d + lim + monitored.capture_fade
    assert np.array_equal(out[:, after:], silent_start[:, after:])
    ramp_in = out[:, d + lim:after]
    assert np.all(np.abs(ramp_in) <= np.abs(silent_start[:, d + lim:after]) + 1e-7)


def _callback_allocation_peaks(model, source: str, block: int) -> tuple[list[int], int]:
    """Bytes allocated at the peak of each callback (tracemalloc, which also sees numpy's array
    memory) and how many blocks the limiter reduced, with the dream in its own process as live runs it."""
    import tracemalloc
    rate = 16000
    clip = music_clip(rate, 10.0) * 4.0  # loud: the limiter's full path runs
    capture = np.ascontiguousarray(clip.T)
    engine = Engine(fast_params(model, rate), rate, block, budget_s=0.6, lockstep=True, worker="process",
                    source=FileSource(clip) if source == "file" else None, monitor=source == "capture")
    out = np.zeros((block, 2), dtype=np.float32)
    indata = np.zeros((block, 2), dtype=np.float32)
    peaks, limited_blocks = [], 0
    engine.start_worker()
    tracemalloc.start()
    try:
        for n in range(capture.shape[0] // block):
            engine.wait_for_dreams(block)
            if n % 4 == 2:  # a knob moves: the next blocks glide per sample
                engine.controls.set(intensity=0.5 + (n % 8) / 8, gain_db=-(n % 7))
            indata[:] = capture[n * block:(n + 1) * block]
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            engine.process(indata if source == "capture" else None, out, block, None)
            if n >= 2:  # the first calls create the interpreter's caches
                peaks.append(tracemalloc.get_traced_memory()[1] - before)
            limited_blocks += engine.limiter.last_peak > 0.0  # set only when the 4x interpolation ran
    finally:
        tracemalloc.stop()
        engine.close()
    assert engine.stats.windows_dreamed >= 3
    return peaks, limited_blocks


@pytest.mark.subprocess
@pytest.mark.parametrize("source", ["file", "capture"])
def test_the_callback_allocates_no_buffers(mel_model, source):
    """No callback makes a temporary array, whether controls glide, the monitor fades, the limiter
    works or dreams are mixed in: what it allocates does not grow with the block (a 4096-frame block's
    temporary would be 16 KiB or more). What remains is Python's own small objects (floats, array
    views), freed at once, a few KiB whatever the block size."""
    small, limited_small = _callback_allocation_peaks(mel_model, source, 256)
    large, limited_large = _callback_allocation_peaks(mel_model, source, 4096)
    assert limited_small > 10 and limited_large > 10  # the limiter's loud path ran in both
    assert max(large) < 8192 and max(large) - max(small) < 1024, (sorted(small)[-3:], sorted(large)[-3:])


@pytest.mark.parametrize("channels", [2, 1])
def test_live_equals_offline_over_a_random_sequence_of_block_sizes(mel_model, channels):
    """The callback given blocks of ever-changing size (powers of two, their odd neighbours, one frame,
    and blocks larger than prepared) writes exactly what render writes, delayed by the latency; a
    mono file comes out as render's mono result on both channels."""
    rate, prepared = 16000, 512
    clip = music_clip(rate, 4.0, channels=channels, seed=5)
    params = fast_params(mel_model, rate, seed=7, intensity=1.2, gain_db=2.0)
    rng = np.random.default_rng(channels)
    sizes = [1, 63, 64, 65, 127, 128, 255, 256, 511, 512, 1000, 1025, 2048]
    engine = Engine(params, rate, prepared, budget_s=0.5, source=FileSource(clip, loop=False), lockstep=True,
                    dreamer_factory=lambda p: Dreamer(p, rate, 2, int(p.window_s * rate)))
    used = []

    def next_size():
        used.append(int(rng.choice(sizes)))
        return used[-1]
    live = run_engine(engine, engine.latency + clip.shape[1], next_size)
    assert set(used) == set(sizes)
    offline = render_array(clip, rate, params)  # (channels, frames)
    lag = engine.latency - engine.schedule.window  # a file source is pre-rolled by one window
    heard = live[:, lag:lag + clip.shape[1]]
    if channels == 2:
        assert np.array_equal(heard, offline)
    else:
        # The live engine is stereo and plays a mono file on both channels; render dreams mono as L = R too
        assert np.array_equal(heard[0], heard[1])
        assert np.array_equal(heard[0], offline[0])
    assert engine.stats.late_windows == 0 and engine.stats.windows_dreamed >= 3
