#!/usr/bin/env python3
"""Offline render at length: peak memory against file length, and what render costs beyond the dream.

    python scripts/bench_render.py [--long-minutes 60] [--only memory|speed] [--workdir DIR]

* memory: `streamdream render` of a 1-minute and a long (default 60-minute) 48 kHz stereo file with
  --steps 1 --octaves 1 (the dream's own memory does not depend on the file's length, and a short
  dream keeps the hour-long run short); peak RSS of each render process (wait4's ru_maxrss).
* speed: default settings on a 45-s and a 90-s file. Marginal real-time factor = (time(90 s) -
  time(45 s)) / 45 s, for the whole command (wall clock) and for the dream alone (the seconds
  render reports it spent dreaming): model loading and warm-up cancel out in the difference.

Prints markdown for docs/BENCHMARKS.md. Everything is measured in this run.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
RATE = 48000


def make_file(path: Path, seconds: float) -> Path:
    """A stereo chord progression with noise, written 10 s at a time (the long file never sits in memory)."""
    rng = np.random.default_rng(0)
    total = int(seconds * RATE)
    with sf.SoundFile(path, "w", RATE, 2, "FLOAT") as fh:
        for start in range(0, total, 10 * RATE):
            t = (start + np.arange(min(10 * RATE, total - start))) / RATE
            x = np.zeros((2, t.size))
            for i, f in enumerate((110, 220, 277, 330, 440, 660)):
                x[i % 2] += 0.08 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * (0.3 + i * 0.1) * t))
            fh.write((x + 0.01 * rng.standard_normal(x.shape)).T.astype(np.float32))
    return path


def render(src: Path, dst: Path, *flags: str) -> dict:
    """One `streamdream render` in its own process: wall seconds, peak RSS, dream seconds it reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamdream.cli", "render", str(src), str(dst), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    err = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"render failed ({proc.returncode}): {err}")
    dreamed = re.search(r"([\d.]+) s dreaming", err)
    return {"wall": wall, "rss": usage.ru_maxrss * 1024, "dream": float(dreamed.group(1)) if dreamed else None}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    return f"{model}, {os.cpu_count()} cores, load average {' / '.join(f'{v:.1f}' for v in os.getloadavg())}"


def memory(work: Path, long_minutes: float) -> None:
    flags = ["--set", "steps=1", "--set", "octaves=1"]
    rows = []
    for minutes in (1, long_minutes):
        src = make_file(work / f"in_{minutes:g}min.wav", minutes * 60)
        result = render(src, work / "out.wav", *flags)
        rows.append((minutes, result))
        src.unlink()
    print(f"\nmachine: {machine()}\n")
    print("| file | render wall time | peak RSS |")
    print("|---|---|---|")
    for minutes, r in rows:
        print(f"| {minutes:g} min, 48 kHz stereo | {r['wall']:.0f} s | {r['rss'] / 2**20:.0f} MiB |")
    print(f"\npeak RSS ratio {long_minutes:g} min / 1 min: {rows[1][1]['rss'] / rows[0][1]['rss']:.2f} "
          f"(settings: {' '.join(flags)}, shipped model)")


def speed(work: Path) -> None:
    runs = {}
    for seconds in (45, 90):
        src = make_file(work / f"in_{seconds}s.wav", seconds)
        runs[seconds] = render(src, work / "out.wav")
    print(f"\nmachine: {machine()}\n")
    print("| file | render wall time | of which dreaming |")
    print("|---|---|---|")
    for seconds, r in runs.items():
        print(f"| {seconds} s, 48 kHz stereo | {r['wall']:.1f} s | {r['dream']:.1f} s |")
    render_rtf = (runs[90]["wall"] - runs[45]["wall"]) / 45
    dream_rtf = (runs[90]["dream"] - runs[45]["dream"]) / 45
    print(f"\nmarginal real-time factor, default settings: render {render_rtf:.3f}, dream alone {dream_rtf:.3f}, "
          f"ratio {render_rtf / dream_rtf:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long-minutes", type=float, default=60.0)
    ap.add_argument("--only", choices=["memory", "speed"])
    ap.add_argument("--workdir", help="where the test files go (default: a temp folder, removed after)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.workdir) as work:
        if a.only != "speed":
            memory(Path(work), a.long_minutes)
        if a.only != "memory":
            speed(Path(work))


if __name__ == "__main__":
    main()
