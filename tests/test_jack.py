"""The real audio path: PortAudio on a JACK server (dummy driver), fed and recorded by JACK's own clients."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from harness.jackserver import stop_clients


LIVE = [sys.executable, "-m", "streamdream.cli", "live", "--device", "system", "--samplerate", "48000",
        "--blocksize", "0", "--set", "window_s=2", "--set", "crossfade_s=0.5", "--budget", "1", "--set", "steps=2",
        "--set", "octaves=1", "--set", "backend=eager", "--quiet"]


def start_live(jack, model, tmp_path, *extra):
    stats = tmp_path / "stats.json"
    cmd = LIVE + ["--model", str(model), "--stats", str(stats), *map(str, extra)]
    proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jack.clients = getattr(jack, "clients", []) + [proc]
    jack.wait_for_port("streamdream:out_1")
    deadline = time.monotonic() + 120
    while not (stats.exists() and json.loads(stats.read_text())["seconds_out"] > 0):  # the stream is running
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.1)
    return proc, stats


def play_metronome_and_record(jack, seconds):
    """jack_metro (880 Hz bursts, 4 per second) into streamdream; jack_rec takes both, cycle-aligned."""
    metro = subprocess.Popen(["jack_metro", "-n", "metro", "-b", "240", "-f", "880", "-D", "5"], env=jack.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jack.clients.append(metro)
    jack.wait_for_port("metro:240_bpm")
    jack.connect("metro:240_bpm", "streamdream:in_0")
    jack.connect("metro:240_bpm", "streamdream:in_1")
    out = jack.run("jack_rec", "-f", str(jack.recording), "-d", str(seconds), "-b", "32", "metro:240_bpm",
                   "streamdream:out_0", "streamdream:out_1", timeout=seconds + 30)
    assert out.returncode == 0, out.stderr
    stop_clients([metro])
    data, rate = sf.read(jack.recording, dtype="int32")
    assert rate == 48000
    return data[:, 0].astype(np.int64), data[:, 1:].astype(np.int64)


def stated_latency(stats):
    deadline = time.monotonic() + 60
    while not stats.exists():
        assert time.monotonic() < deadline, "no --stats file written"
        time.sleep(0.1)
    return json.loads(stats.read_text())["latency_frames"]


def start_loop(jack, model, src, stats, *extra):
    """`streamdream loop SRC` on the JACK server, small and fast settings, stats to `stats`."""
    cmd = [sys.executable, "-m", "streamdream.cli", "loop", str(src), "--device", "system", "--samplerate", "48000",
           "--set", "window_s=2", "--set", "crossfade_s=0.5", "--set", "steps=2", "--set", "octaves=1", "--set", "backend=eager", "--quiet",
           "--no-midi", "--model", str(model), "--stats", str(stats), *map(str, extra)]
    proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    jack.clients.append(proc)
    return proc


def seconds_out(stats) -> float:
    """Audio played so far, from the stats file (0 before it is written)."""
    try:
        return json.loads(stats.read_text())["seconds_out"]
    except (OSError, ValueError):
        return 0.0


@pytest.mark.parametrize("intensity", ["0", "1"])
def test_jack_output_is_the_input_delayed_by_the_stated_latency(jack, mel_model, tmp_path, intensity):
    jack.recording = tmp_path / "jack_rec.wav"
    live, stats = start_live(jack, mel_model, tmp_path, "--intensity", intensity, "--duration", "60")
    metro, out = play_metronome_and_record(jack, 7)
    latency = stated_latency(stats)
    live.terminate()
    live.wait(timeout=60)
    assert np.count_nonzero(metro) > 1000  # the metronome really played
    delayed_input = metro[:-latency]
    for channel in range(2):
        heard = out[latency:, channel]
        if intensity == "0":
            assert np.array_equal(heard, delayed_input)  # to the sample, bit for bit
        else:
            assert not np.array_equal(heard, delayed_input)
            # still the same timing: the loudest burst lines up with the input's
            assert abs(int(np.argmax(np.abs(heard))) % 12000 - int(np.argmax(np.abs(delayed_input))) % 12000) < 600


def test_jack_server_vanishing_stops_cleanly_and_keeps_the_recording(jack, mel_model, tmp_path):
    record = tmp_path / "kept.wav"
    live, stats = start_live(jack, mel_model, tmp_path, "--duration", "120", "--record", record)
    deadline = time.monotonic() + 60
    while json.loads(stats.read_text())["seconds_out"] < 1.5:  # well over a second recorded before the loss
        assert live.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    jack.stop()  # the server goes away, as when an interface is unplugged
    _, err = live.communicate(timeout=60)
    assert live.returncode == 1, err  # a failure after a good start, not bad usage
    lines = [line for line in err.splitlines() if line.startswith("streamdream: error:")]
    assert len(lines) == 1 and "device stopped" in lines[0] and str(record) in lines[0]
    audio, rate = sf.read(record)
    assert rate == 48000 and audio.shape[0] > 48000  # more than a second of what was played survived


@pytest.mark.parametrize("ask", [True, False])
def test_the_audio_callback_thread_is_real_time_only_when_asked_and_allowed(jack, mel_model, tmp_path, ask):
    import os
    import resource
    live, stats = start_live(jack, mel_model, tmp_path, "--duration", "60", *(["--realtime"] if ask else []))
    snap = json.loads(stats.read_text())
    deadline = time.monotonic() + 10
    while snap["audio_thread"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
        snap = json.loads(stats.read_text())
    classes = subprocess.run(["ps", "-L", "-o", "cls=", "-p", str(live.pid)], capture_output=True,
                             text=True).stdout.split()  # the scheduling class of each of its threads
    live.terminate()
    live.wait(timeout=60)
    allowed = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0
    if not ask:  # this JACK runs --no-realtime, so nothing in the process may be real-time
        assert snap["audio_thread"].startswith("as the audio system set it") and "FF" not in classes
    elif allowed:
        assert snap["audio_thread"].startswith("real-time") and "FF" in classes
    else:
        assert snap["audio_thread"].startswith("normal: no permission") and "FF" not in classes
    assert classes.count("FF") <= 1  # only the audio thread; the main and MIDI threads stay ordinary


def test_loop_with_its_watchdog_plays_on_when_the_jack_server_comes_back(jack, mel_model, tmp_path):
    """Installation mode: the server stops mid-run and is started again; the engine that lost it ends with
    its recording finished, the watchdog tries a fresh engine every few seconds until the server is back."""
    from conftest import music_clip
    from harness.jackserver import JackServer
    src, stats, log, rec = tmp_path / "in.wav", tmp_path / "stats.json", tmp_path / "piece.log", tmp_path / "rec.wav"
    sf.write(src, music_clip(48000, 4.0).T, 48000)
    proc = start_loop(jack, mel_model, src, stats, "--log", log, "--record", rec, "--watchdog")

    def logged():
        return log.read_text() if log.exists() else ""

    deadline = time.monotonic() + 300
    while seconds_out(stats) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.1)
    jack.stop()  # the server goes away ...
    while logged().count("watchdog: the engine ended") < 2:  # the lost engine, then a failed attempt
        assert proc.poll() is None and time.monotonic() < deadline, logged()[-2000:]
        time.sleep(0.2)
    again = JackServer(jack.name)  # ... and comes back under the same name
    jack.clients.append(again)
    while seconds_out(stats) < 2:  # a new engine plays (its stats file is new)
        assert proc.poll() is None and time.monotonic() < deadline, logged()[-2000:]
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert "the audio device stopped" in logged()
    assert sf.info(str(rec)).frames > 2 * 48000  # the first engine's recording, finished when it lost the device
    later = sorted(tmp_path.glob("rec-*.wav"))
    assert later and sf.info(str(later[-1])).frames == round(json.loads(stats.read_text())["seconds_out"] * 48000)


def test_a_stalled_server_is_recorded_as_the_silence_it_played_so_the_recording_keeps_wall_time(jack, mel_model,
                                                                                                tmp_path):
    """The JACK server is stopped twice for 0.3 s, as a VM stall does: it drops the cycles it missed and the
    engine is never called for them. The recording holds each as a run of silence, so it stays as long as
    the wall time the piece ran, and everything played is in it around the gaps."""
    import signal
    src, stats, rec = tmp_path / "tone.wav", tmp_path / "stats.json", tmp_path / "rec.wav"
    t = np.arange(4 * 48000) / 48000
    sf.write(src, np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32), 48000)
    proc = start_loop(jack, mel_model, src, stats, "--intensity", 0, "--record", rec)
    deadline = time.monotonic() + 300
    for when in (5.0, 8.0):  # after the tone is heard (it starts one budget after the start)
        while seconds_out(stats) < when:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.1)
        os.kill(jack.proc.pid, signal.SIGSTOP)
        time.sleep(0.3)  # the stall itself
        os.kill(jack.proc.pid, signal.SIGCONT)
    while seconds_out(stats) < 11.0:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    snap = json.loads(stats.read_text())
    audio, _ = sf.read(rec, dtype="float32")
    played, skipped = round(snap["seconds_out"] * 48000), round(snap["skipped_s"] * 48000)
    assert audio.shape[0] == played + skipped
    # each stop loses what the server did not run: 0.3 s, less the cycle or two it runs at once on waking
    assert 2 * 0.25 * 48000 <= skipped <= 2 * 0.31 * 48000
    # the gaps are where the tone was playing: exact zeros in runs of more than 10 ms, and only those
    silent = np.all(audio == 0.0, axis=1)
    first = int(np.argmax(~silent))
    edges = np.flatnonzero(np.diff(silent[first:].astype(np.int8)))
    runs = [(b - a) for a, b in zip(edges[::2], edges[1::2])]
    gaps = [r for r in runs if r > 480]
    assert len(gaps) == 2 and abs(sum(gaps) - skipped) < 512  # (a watch after a gap may add a few frames more)
