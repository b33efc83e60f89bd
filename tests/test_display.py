"""The live status display: drawn by its own process, so rich never holds the audio process's GIL,
and nothing that happens to it (killed, paused terminal) stops or blocks the engine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import music_clip
from harness.terminal import Terminal

RATE = 16000


def _live(model, tmp_path: Path, seconds: float) -> list[str]:
    src = tmp_path / "in.wav"
    sf.write(src, music_clip(RATE, 4.0).T, RATE)
    return [sys.executable, "-m", "streamdream.cli", "live", "--input", str(src), "--model", str(model),
            "--set", "backend=eager", "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "steps=2", "--set", "octaves=2",
            "--device", "null", "--no-midi", "--duration", str(seconds), "--stats", str(tmp_path / "stats.json")]


def _drawer_of(pid: int, deadline_s: float = 120.0) -> int:
    """The pid of the engine's display process, waiting for it to start."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                if b"streamdream.stream.display" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("no display process started")


@pytest.mark.subprocess
def test_the_status_is_drawn_by_its_own_process_with_messages_above_it(mel_model, tmp_path):
    terminal = Terminal()
    proc = subprocess.Popen(_live(mel_model, tmp_path, 6.0), stdout=terminal.child_fd, stderr=terminal.child_fd)
    terminal.start_reading()
    try:
        _drawer_of(proc.pid)
        assert proc.wait(timeout=300) == 0
    finally:
        proc.kill()
    text = terminal.plain_text()
    # the status rows, redrawn, and the final status with every window of the run counted
    assert text.count("controls    intensity 1.00") >= 3
    final = json.loads((tmp_path / "stats.json").read_text())
    assert f"{final['windows_dreamed']} dreamed, {final['late_windows']} late" in text
    # messages from before, during and after the display
    assert text.index("latency") < text.index("windows ") < text.rindex("stopped after")


@pytest.mark.subprocess
def test_the_engine_plays_on_and_still_speaks_when_the_display_process_dies(mel_model, tmp_path):
    terminal = Terminal()
    proc = subprocess.Popen(_live(mel_model, tmp_path, 8.0), stdout=terminal.child_fd, stderr=terminal.child_fd)
    terminal.start_reading()
    try:
        os.kill(_drawer_of(proc.pid), signal.SIGKILL)
        assert proc.wait(timeout=300) == 0
    finally:
        proc.kill()
    snap = json.loads((tmp_path / "stats.json").read_text())
    assert snap["seconds_out"] == pytest.approx(8.0, abs=0.1)
    assert "stopped after 8.0 s" in terminal.plain_text()  # printed by the engine itself once its drawer was gone


def test_a_paused_terminal_never_blocks_the_engine(tmp_path):
    from rich.console import Console

    from streamdream.stream import display

    master, slave = os.openpty()  # nobody reads the master: a terminal paused with Ctrl-S
    console = Console(file=os.fdopen(slave, "w"), force_terminal=True, width=100)
    pipe = display.DisplayPipe(console)
    view = {"input_peak": 0.5, "output_peak": 0.25, "latency_s": 11.8, "latency_frames": 566512,
            "dream_seconds": {"last": 2.0, "mean": 2.0, "max": 2.5}, "real_time_factor": 0.22,
            "windows_dreamed": 7, "late_windows": 0, "failed_windows": 0, "warmup_windows": 1,
            "xruns": {"output_underflow": 0}, "controls": {"intensity": 1.0, "mix": 1.0, "gain": 1.0},
            "dreaming": [8, 1.0]}
    done = threading.Event()

    def engine_talks():
        for i in range(3000):
            pipe.status(view)
            pipe.say(f"message {i} " + "x" * 400)  # 1.2 MB in all: more than a pipe and a terminal hold
        done.set()

    threading.Thread(target=engine_talks, daemon=True).start()
    assert done.wait(timeout=60), "the engine waited for a paused terminal"
    assert pipe.alive and len(pipe.pending) <= display.MAX_PENDING
    # un-paused: the drawer catches up and draws the last status
    seen = bytearray()
    threading.Thread(target=_drain, args=(master, seen), daemon=True).start()
    pipe.close({**view, "windows_dreamed": 9, "dreaming": None}, timeout=30)
    assert pipe.proc.returncode == 0
    deadline = time.monotonic() + 10
    while b"9 dreamed" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"9 dreamed" in seen


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into += chunk
