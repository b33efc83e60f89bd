"""Faults an unattended piece survives, each injected: the dream worker raising, hanging or killed, a GPU
failing, an exception inside the audio callback, a full disk, a closed terminal, SIGKILL while recording."""
import io
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

from conftest import music_clip, run_cli
from streamdream.audio.devices import NullDevice
from streamdream.audio.ring import AudioRing
from streamdream.dreaming.dreamer import Dreamer
from streamdream.params import Params
from streamdream.stream import live
from streamdream.stream.engine import Engine, FileSource
from streamdream.stream.live import LiveOptions, Say, Session

RATE, BLOCK = 16000, 256


def fast_params(model, **changes):
    return Params(model=str(model), steps=2, octaves=2, window_s=1.5, crossfade_s=0.25, backend="eager", **changes)


class Faulty:
    """A real dreamer that fails on chosen windows: raise, or hang (until released)."""

    def __init__(self, inner, raise_on=(), hang_on=(), release=None):
        self.inner, self.raise_on, self.hang_on = inner, set(raise_on), set(hang_on)
        self.release = release or threading.Event()

    def dream_window(self, window, k, params=None):
        if k in self.raise_on:
            self.raise_on.discard(k)  # once: the restarted worker gets past it
            raise RuntimeError(f"injected failure in window {k}")
        if k in self.hang_on:
            self.hang_on.discard(k)
            self.release.wait(120)
        return self.inner.dream_window(window, k, params)


class StopWhen:
    """A session tick that ends the run as soon as `done(engine)` holds (the duration stays the limit)."""

    def __init__(self, done):
        self.done, self.session = done, None

    def tick(self, engine, seconds, say):
        if self.done(engine):
            self.session.stop.set()


def run_session(engine, seconds, monkeypatch=None, until=None, **opts):
    """The real main-thread watch (live.Session) over a paced null device; returns (snapshot, said, output).
    `until(engine)`, when given, ends the run early once it holds."""
    out = []

    def process(indata, outdata, frames, status):
        engine.process(indata, outdata, frames, status)
        out.append(outdata.T.copy())

    device = NullDevice(process, engine.sample_rate, BLOCK, max_frames=int(seconds * engine.sample_rate))
    text = io.StringIO()
    engine.start_worker()
    ticks = [StopWhen(until)] if until else []
    session = Session(engine, device, None, LiveOptions(duration=seconds, quiet=True, **opts), Say(Console(file=text)),
                      ticks)
    for tick in ticks:
        tick.session = session
    snap = session.run()
    return snap, text.getvalue(), np.concatenate(out, axis=1)


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(live, "WORKER_BACKOFF_S", (0.2, 0.4))


@pytest.mark.slow
def test_a_worker_that_raises_is_restarted_and_dry_plays_meanwhile(mel_model, quick_backoff):
    params = fast_params(mel_model)
    inner = Dreamer(params, RATE, 2, int(1.5 * RATE))
    faulty = Faulty(inner, raise_on={2})
    engine = Engine(params, RATE, BLOCK, budget_s=0.6, source=FileSource(music_clip(RATE, 4.0)),
                    dreamer_factory=lambda p: faulty)
    snap, said, out = run_session(engine, 9.0)
    assert snap["worker_restarts"] == 1 and engine.worker.restarts == 1
    assert "the dream worker failed: injected failure in window 2" in said and "dream worker restarted" in said
    assert snap["windows_dreamed"] >= 4 and snap["seconds_out"] == pytest.approx(9.0, abs=BLOCK / RATE)
    assert np.all(np.isfinite(out))


@pytest.mark.slow
def test_a_worker_that_hangs_past_its_budget_is_replaced(mel_model, quick_backoff, monkeypatch):
    monkeypatch.setattr(live, "HANG_FLOOR_S", 1.0)  # 4 budgets of 0.3 s: a hang is declared after 1.2 s
    params = fast_params(mel_model)
    inner = Dreamer(params, RATE, 2, int(1.5 * RATE))
    release = threading.Event()
    faulty = Faulty(inner, hang_on={1}, release=release)
    engine = Engine(params, RATE, BLOCK, budget_s=0.3, source=FileSource(music_clip(RATE, 4.0)),
                    dreamer_factory=lambda p: faulty)
    try:
        snap, said, out = run_session(engine, 10.0,
                                      until=lambda e: e.worker.restarts >= 1 and e.stats.windows_dreamed >= 4)
    finally:
        release.set()
    assert "has been on one window for over" in said and snap["worker_restarts"] == 1
    assert snap["late_windows"] >= 1 and snap["windows_dreamed"] >= 4  # the new worker dreams on


@pytest.mark.subprocess
def test_a_killed_worker_process_is_restarted(mel_model, quick_backoff):
    engine = Engine(fast_params(mel_model), RATE, BLOCK, budget_s=0.6, source=FileSource(music_clip(RATE, 4.0)),
                    worker="process")

    def kill_once_dreaming():
        deadline = time.monotonic() + 120
        while engine.stats.windows_dreamed < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for child in multiprocessing.active_children():
            if child.name == "streamdream-dream":
                os.kill(child.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_dreaming)
    killer.start()
    try:
        snap, said, _ = run_session(engine, 25.0,
                                    until=lambda e: e.worker.restarts >= 1 and e.stats.windows_dreamed >= 4)
    finally:
        killer.join()
        engine.close()
    assert "the dream worker failed: the dream worker process" in said and snap["worker_restarts"] == 1
    assert "dream worker restarted" in said
    assert snap["windows_dreamed"] >= 4


def test_a_gpu_failure_falls_back_to_the_cpu(mel_model):
    """No GPU here: the dreamer for a cuda device raises CUDA's own out-of-memory message."""
    params = fast_params(mel_model, torch_device="cuda")
    cpu = Dreamer(params.with_changes(torch_device="cpu"), RATE, 2, int(1.5 * RATE))

    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError's name
        pass

    class Gpu:
        def dream_window(self, window, k, params=None):
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    made = []

    def factory(p):
        made.append(p.torch_device)
        return Gpu() if p.torch_device != "cpu" else cpu

    engine = Engine(params, RATE, BLOCK, budget_s=0.5, source=FileSource(music_clip(RATE, 5.0), loop=False),
                    dreamer_factory=factory, lockstep=True)
    snap, said, _ = run_session(engine, 5.0)
    assert made[0] == "cuda" and "cpu" in made
    assert "dreaming on the GPU failed (OutOfMemoryError: CUDA out of memory" in said
    assert snap["failed_windows"] == 1 and snap["windows_dreamed"] >= 3 and snap["worker_restarts"] == 0


def test_an_exception_in_the_callback_gives_silence_and_the_real_error(mel_model):
    params = fast_params(mel_model, intensity=0.0)
    engine = Engine(params, RATE, BLOCK, budget_s=0.5, source=FileSource(music_clip(RATE, 4.0)))
    real = engine.limiter.process
    calls = [0]

    def limiter_with_a_bug(block, out):
        calls[0] += 1
        if calls[0] in (100, 101):
            raise ZeroDivisionError("injected bug in the limiter")
        return real(block, out)

    engine.limiter.process = limiter_with_a_bug
    snap, said, out = run_session(engine, 4.0)
    assert snap["callback_errors"] == 2
    assert "error in the audio callback" in said and "ZeroDivisionError: injected bug in the limiter" in said
    assert "unplugged" not in said
    assert not np.any(out[:, 99 * BLOCK:101 * BLOCK]) and np.any(out[:, 101 * BLOCK:102 * BLOCK])
    assert snap["seconds_out"] == pytest.approx(4.0, abs=BLOCK / RATE)  # the run went on


def test_an_exception_before_the_input_is_kept_still_keeps_the_stated_latency(mel_model):
    """The source raises before the block's input reaches the ring: the callback fills that input with
    silence, so input and output stay one latency apart for the rest of the run."""
    params = fast_params(mel_model, intensity=0.0)
    engine = Engine(params, RATE, BLOCK, budget_s=0.5, source=FileSource(music_clip(RATE, 4.0)))
    real = engine.source.fill
    calls = [0]

    def source_with_a_bug(block):
        calls[0] += 1
        if calls[0] == 100:
            raise ValueError("injected bug in the source")
        return real(block)

    engine.source.fill = source_with_a_bug
    engine.record_ring, engine.input_record_ring = AudioRing(2, 8 * RATE), AudioRing(2, 8 * RATE)
    snap, said, played = run_session(engine, 4.0)
    assert snap["callback_errors"] == 1 and "ValueError: injected bug in the source" in said
    assert engine.in_ring.written - engine.preroll == engine.out_pos == round(snap["seconds_out"] * RATE)
    # the recordings keep the timeline too: --record is what played, the failed block's silence included
    assert engine.record_ring.written == engine.input_record_ring.written == engine.out_pos
    assert np.array_equal(engine.record_ring.data[:, :played.shape[1]], played)

def _loop_cmd(model, tmp_path, *extra):
    src = tmp_path / "in.wav"
    sf.write(src, music_clip(RATE, 4.0).T, RATE)
    return [sys.executable, "-m", "streamdream.cli", "loop", str(src), "--model", str(model), "--set", "backend=eager",
            "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "steps=2", "--set", "octaves=2", "--device", "null",
            "--no-midi", "--quiet", *map(str, extra)]


@pytest.mark.subprocess
def test_a_full_disk_stops_the_recording_with_a_message_and_the_audio_plays_on(mel_model, tmp_path):
    rec, stats = tmp_path / "rec.wav", tmp_path / "stats.json"
    limit = 1_000_000  # bytes: about 8 s of float32 stereo at 16 kHz (the recorder writes up to 4 s at once)

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # a thread worker: the process worker's shared memory is a file the size limit would refuse too
    out = subprocess.run(_loop_cmd(mel_model, tmp_path, "--lockstep", "--duration", 30, "--record", rec,
                                   "--stats", stats, "--worker", "thread"), preexec_fn=small_disk, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert "recording stopped: writing the recording failed" in out.stderr and "the audio plays on" in out.stderr
    snap = json.loads(stats.read_text())
    assert snap["seconds_out"] == pytest.approx(30.0, abs=0.1)  # the piece played to the end
    assert 2.0 <= snap["recorded_s"] < 8.0
    kept, _ = sf.read(rec, dtype="float32")  # what was written before the disk filled is a readable file
    assert kept.shape[0] >= RATE


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_closed_terminal_or_a_stop_signal_finishes_the_recording(mel_model, tmp_path, sig):
    """SIGHUP used to kill `live --record` and leave no recording; the terminal is gone too (closed pipe)."""
    rec, stats = tmp_path / "rec.flac", tmp_path / "stats.json"
    proc = subprocess.Popen(_loop_cmd(mel_model, tmp_path, "--record", rec, "--stats", stats), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (stats.exists() and json.loads(stats.read_text())["seconds_out"] > 3):
        time.sleep(0.1)
    proc.stdout.close()
    proc.stderr.close()  # nobody reads the screen any more
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == (130 if sig == signal.SIGINT else 0)  # 130: Ctrl-C, as in every command
    recorded = sf.info(str(rec))
    snap = json.loads(stats.read_text())
    assert recorded.subtype == "PCM_24" and recorded.frames == round(snap["seconds_out"] * RATE) and recorded.frames > 3 * RATE
    assert not list(tmp_path.glob(".rec.flac.*"))


@pytest.mark.subprocess
@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_after_sigkill_everything_up_to_the_last_flush_is_readable(mel_model, tmp_path, suffix):
    rec, stats = tmp_path / f"rec{suffix}", tmp_path / "stats.json"
    proc = subprocess.Popen(_loop_cmd(mel_model, tmp_path, "--record", rec, "--stats", stats),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (stats.exists() and json.loads(stats.read_text())["seconds_out"] > 6):
        time.sleep(0.1)
    played = json.loads(stats.read_text())["seconds_out"]
    proc.kill()
    proc.wait(timeout=60)
    for child in multiprocessing.active_children():
        child.kill()
    partial = list(tmp_path.glob(f".rec{suffix}.*.part{suffix}"))
    assert len(partial) == 1 and not rec.exists()
    # sox (libFLAC) as a user would; a killed FLAC's header does not know its length, which libsndfile dislikes
    stat = subprocess.run(["sox", str(partial[0]), "-n", "stat"], capture_output=True, text=True, timeout=60).stderr
    frames = int(stat.split("Samples read:")[1].split()[0]) // 2
    # flushed at least once a second (FLAC: up to one 4096-frame block still in the encoder); the stats
    # file is written once a second too
    assert frames >= (played - 2.5) * RATE
    assert float(stat.split("Maximum amplitude:")[1].split()[0]) > 0.01


# live in this process, its dream worker a thread: what is tested is the recording, not the processes
LIVE_HERE = ["live", "--device", "null", "--lockstep", "--duration", "3", "--blocksize", "500", "--quiet", "--no-midi",
             "--worker", "thread", "--set", "backend=eager", "--set", "window_s=1.5", "--set", "crossfade_s=0.25",
             "--set", "steps=1", "--set", "octaves=1"]


@pytest.mark.parametrize("name,fmt,subtype", [("r.wav", None, "FLOAT"), ("r.wav", "16", "PCM_16"),
                                              ("r.wav", "24", "PCM_24"), ("r.flac", "16", "PCM_16"),
                                              ("r.flac", None, "PCM_24")])
def test_live_records_every_format_render_writes(mel_model, tmp_path, name, fmt, subtype):
    src = tmp_path / "in.wav"
    sf.write(src, music_clip(RATE, 3.0).T, RATE)
    out = run_cli(*LIVE_HERE, "--input", src, "--record", tmp_path / name, "--model", mel_model,
                  *(["--record-format", fmt] if fmt else []))
    assert out.returncode == 0, out.stderr
    info = sf.info(str(tmp_path / name))
    assert info.subtype == subtype and info.frames == 3 * RATE



def test_record_input_keeps_the_input_as_it_came_on_the_recordings_timeline(mel_model, tmp_path):
    src, out_path, in_path = tmp_path / "in.wav", tmp_path / "out.flac", tmp_path / "heard.flac"
    source = music_clip(RATE, 6.0)
    sf.write(src, source.T, RATE, subtype="PCM_24")
    out = run_cli(*LIVE_HERE, "--input", src, "--record", out_path, "--record-input", in_path, "--model", mel_model)
    assert out.returncode == 0, out.stderr
    assert f"recorded 3.0 s to {in_path}" in out.stderr
    played, _ = sf.read(out_path, dtype="float32")
    heard, _ = sf.read(in_path, dtype="float32")
    assert heard.shape == played.shape == (3 * RATE, 2)
    # a file input is read one window ahead (so its first dream is ready when it is first heard): at output
    # frame n the engine takes in the file's frame n + 1.5 s, bit for bit (both 24-bit)
    wanted, _ = sf.read(src, dtype="float32")
    assert np.array_equal(heard, wanted[int(1.5 * RATE):int(4.5 * RATE)])


def test_record_input_and_record_must_be_two_files(mel_model, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, music_clip(RATE, 2.0).T, RATE)
    out = run_cli("live", "--input", src, "--device", "null", "--duration", "1", "--record", tmp_path / "a.wav",
                  "--record-input", tmp_path / "a.wav", "--quiet", "--no-midi", "--model", mel_model)
    assert out.returncode == 2 and "--record-input and --record name the same file" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


@pytest.mark.subprocess
def test_a_dream_slower_than_its_budget_is_said_once_with_a_budget_that_fits(mel_model, tmp_path):
    """Windows that come late because the dream outlasts its budget are not only counted: the performer is
    told once, with the budget the measured dream needs. In a process of its own, as a performer runs it:
    a warning is printed once there too (not again by Python's logging)."""
    src, stats = tmp_path / "in.wav", tmp_path / "stats.json"
    sf.write(src, music_clip(RATE, 3.0).T, RATE)
    out = subprocess.run([sys.executable, "-m", "streamdream.cli", "live", "--input", src, "--device", "null",
                          "--duration", "4", "--budget", "0.1", "--worker", "thread", "--quiet", "--no-midi",
                          "--model", mel_model, "--set", "window_s=1.5", "--set", "crossfade_s=0.25",
                          "--set", "steps=30", "--stats", stats], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stderr.splitlines() if "windows come late" in line]
    snap = json.loads(stats.read_text())
    assert snap["late_windows"] >= 2 and snap["dream_seconds_per_window"]["mean"] > 0.1
    assert len(said) == 1, out.stderr  # once, however many come late
    enough = float(re.search(r"--budget ([0-9.]+)", said[0]).group(1))
    assert enough >= snap["dream_seconds_per_window"]["mean"] and "--preset tint" in said[0]


@pytest.mark.subprocess
@pytest.mark.parametrize("named_in", ["command line", "piece file"])
def test_the_watchdog_restarts_a_killed_engine_and_numbers_the_new_recording(mel_model, tmp_path, named_in):
    rec, stats, log = tmp_path / "night.wav", tmp_path / "stats.json", tmp_path / "piece.log"
    if named_in == "piece file":  # a recording named only in the piece TOML is numbered too, not overwritten
        (tmp_path / "piece.toml").write_text('[piece]\nrecord = "night.wav"\n')
        where = ["--config", tmp_path / "piece.toml"]
    else:
        where = ["--record", rec]
    proc = subprocess.Popen(_loop_cmd(mel_model, tmp_path, "--watchdog", *where, "--stats", stats,
                                      "--log", log), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def engine_pid():
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
            children = fh.read().split()
        return int(children[0]) if children else None

    def playing(more_than):
        return stats.exists() and json.loads(stats.read_text())["seconds_out"] > more_than

    deadline = time.monotonic() + 300
    while not playing(2) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = engine_pid()
    os.kill(first, signal.SIGKILL)  # the engine dies as in a native crash
    while not (engine_pid() not in (None, first) and playing(2)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine_pid() not in (None, first)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    assert "watchdog: the engine ended (exit -9); restarting it" in log.read_text()
    assert sf.info(str(tmp_path / "night-2.wav")).duration > 2  # the second start's recording, finished
    assert list(tmp_path.glob(".night.wav.*.part.wav"))  # the killed start's, readable up to its last flush
