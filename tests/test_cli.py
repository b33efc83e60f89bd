"""Command-line conventions: --version, devices (defaults, JSON), separate input/output devices and
capture channels, ambiguous names refused, the JACK client name, and exit codes (2 bad input,
1 failure after a good start, 130 after Ctrl-C) in real processes."""
import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import music_clip

pytestmark = pytest.mark.subprocess  # every test here runs the command line in a child process

CLI = [sys.executable, "-m", "streamdream.cli"]
FAST = ["--set", "window_s=2", "--set", "crossfade_s=0.5", "--budget", "1", "--set", "steps=1", "--set", "octaves=1",
        "--set", "backend=eager", "--quiet"]


def wait_for(predicate, what: str, timeout: float = 120.0, proc=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first: {proc.stderr.read()}")
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)


def test_version():
    out = subprocess.run(CLI + ["--version"], capture_output=True, text=True)
    assert out.returncode == 0 and re.fullmatch(r"streamdream \d+\.\d+\.\d+\S*\n", out.stdout)


def test_devices_marks_the_defaults_and_speaks_json(jack):
    listed = json.loads(subprocess.run(CLI + ["devices", "--json"], env=jack.env, capture_output=True, text=True,
                                       check=True).stdout)
    [system] = [d for d in listed["audio"] if d["name"] == "system"]
    # on a machine whose only sound system is this JACK server, its ports are the defaults both ways
    assert system["inputs"] == 2 and system["outputs"] == 2
    assert system["default_input"] and system["default_output"]
    assert [d["index"] for d in listed["audio"] if d["default_input"]] == [system["index"]]
    text = subprocess.run(CLI + ["devices"], env=jack.env, capture_output=True, text=True, check=True).stdout
    [line] = [line for line in text.splitlines() if re.search(r"\bsystem\b", line)]
    assert line.startswith("><")


def test_an_ambiguous_device_name_is_refused_with_the_matches(jack, mel_model, tmp_path):
    metros = []
    for name in ("metroA", "metroB"):  # two JACK clients whose names share "metro": two capture devices
        metros.append(subprocess.Popen(["jack_metro", "-n", name, "-b", "120"], env=jack.env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        jack.clients.append(metros[-1])
        jack.wait_for_port(f"{name}:120_bpm")
    out = tmp_path / "rec.wav"
    proc = subprocess.run(CLI + ["live", "--input-device", "metro", "--output-device", "system", "--model", mel_model,
                                 "--record", out, *FAST], env=jack.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "'metro' matches several input devices" in proc.stderr
    assert "metroA" in proc.stderr and "metroB" in proc.stderr and "system" not in proc.stderr.split("(")[1]
    assert not out.exists()
    for metro in metros:  # leave gracefully: a killed client can hold the server's shutdown up
        metro.terminate()
        metro.wait(timeout=30)


def test_jack_client_name_and_capture_channels_are_chosen(jack, mel_model, tmp_path):
    """--name names the JACK client; --input-channels 2 takes the second capture port only (mono in)."""
    stats = tmp_path / "stats.json"
    live = subprocess.Popen(CLI + ["live", "--device", "system", "--name", "dreamA", "--input-channels", "2",
                                   "--intensity", "0", "--model", str(mel_model), "--stats", str(stats),
                                   "--duration", "60", *FAST], env=jack.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    jack.clients.append(live)
    jack.wait_for_port("dreamA:out_1")
    assert "dreamA:in_1" in jack.ports()  # two capture ports opened (channel 2 needs both), one used
    wait_for(lambda: stats.exists() and json.loads(stats.read_text())["seconds_out"] > 0, "audio running", proc=live)
    metro = subprocess.Popen(["jack_metro", "-n", "metro", "-b", "240", "-f", "880", "-D", "5"], env=jack.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jack.clients.append(metro)
    jack.wait_for_port("metro:240_bpm")
    latency = json.loads(stats.read_text())["latency_frames"]
    recordings = {}
    for port in ("dreamA:in_0", "dreamA:in_1"):
        jack.connect("metro:240_bpm", port)
        rec = tmp_path / f"{port[-1]}.wav"
        seconds = latency / 48000 + 2
        done = jack.run("jack_rec", "-f", str(rec), "-d", str(seconds), "-b", "32", "dreamA:out_0",
                        "dreamA:out_1", timeout=seconds + 30)
        assert done.returncode == 0, done.stderr
        jack.run("jack_disconnect", "metro:240_bpm", port, timeout=10)
        recordings[port] = sf.read(rec, dtype="float32")[0]
    live.terminate()
    live.wait(timeout=60)
    metro.terminate()
    metro.wait(timeout=30)
    # channel 1 is not listened to: nothing of it comes out; channel 2 comes out on both sides (mono input)
    assert np.max(np.abs(recordings["dreamA:in_0"])) == 0.0
    heard = recordings["dreamA:in_1"]
    assert np.max(np.abs(heard[:, 0])) > 0.1 and np.array_equal(heard[:, 0], heard[:, 1])


def test_input_channel_choices_outside_the_device_are_refused(jack, mel_model):
    for choice, message in (("3", "has 2 channel(s)"), ("1,1", "one or two channel numbers"),
                            ("0", "one or two channel numbers"), ("x", "one or two channel numbers")):
        proc = subprocess.run(CLI + ["live", "--device", "system", "--input-channels", choice, "--model",
                                     str(mel_model), *FAST], env=jack.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_live_ctrl_c_exits_130_and_finishes_the_recording(mel_model, tmp_path):
    src, rec, stats = tmp_path / "in.wav", tmp_path / "rec.wav", tmp_path / "stats.json"
    sf.write(src, music_clip(16000, 3.0).T, 16000)
    live = subprocess.Popen(CLI + ["live", "--output-device", "null", "--input", str(src), "--model", str(mel_model),
                                   "--record", str(rec), "--stats", str(stats), "--duration", "600", "--no-midi", *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: stats.exists() and json.loads(stats.read_text())["seconds_out"] > 0.5, "audio running", proc=live)
    live.send_signal(signal.SIGINT)
    _, err = live.communicate(timeout=120)
    assert live.returncode == 130, err
    assert sf.info(rec).frames > 0.5 * 16000  # the recording was closed properly, not lost
    # the last stats written hold exactly the documented keys, with the schema version
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "STATS.md").read_text()
    documented = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", doc, re.M):
        documented.update(re.findall(r"`([a-z_0-9.]+)`", cell))
    snap = json.loads(stats.read_text())
    assert snap["schema_version"] == 1
    assert set(snap) == documented - {"midi", "feedback"}  # --no-midi, no loop --feedback: the optional keys


def test_midi_learn_ctrl_c_exits_130(jack, tmp_path):
    # stdin is a pipe nobody writes to: an Enter (or end of file) would skip the knobs one by one
    learn = subprocess.Popen(CLI + ["midi", "learn", "--out", str(tmp_path / "map.toml")], env=jack.env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jack.clients.append(learn)
    assert "listening" in learn.stdout.readline()
    assert "move the knob for intensity" in learn.stdout.readline()  # waiting for a knob now
    learn.send_signal(signal.SIGINT)
    learn.wait(timeout=60)
    assert learn.returncode == 130 and not (tmp_path / "map.toml").exists()


@pytest.mark.parametrize("args,message", [
    (["render", "--device", "cpu"], "unrecognized arguments: --device"),   # the torch device is --torch-device
    (["live", "--lockstep", "--output-device", "system"], "--lockstep runs on the null device only"),
    (["live", "--input", "x.wav", "--input-device", "1"], "--input FILE replaces the capture device"),
])
def test_one_name_per_meaning(args, message, tmp_path):
    proc = subprocess.run(CLI + args + (["a.wav", "b.wav"] if args[0] == "render" else []), capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
