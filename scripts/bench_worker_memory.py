#!/usr/bin/env python3
"""The dream worker's memory and speed under glibc's malloc and under jemalloc, window after window.

    python scripts/bench_worker_memory.py [--windows 30] [--pairs 3] [--knobs]

Each run is a fresh process that does what the live worker does with its one Dreamer: one torch thread,
the default model and settings, 9-s stereo 48 kHz windows of the demo clip one after another (with
--knobs, random steps, step size and jitter per window, as the soak's MIDI moves them). The runs
alternate glibc, jemalloc, glibc, ... `--pairs` times, so the host's drift falls on both alike. Prints, per
run, RSS after the first and the last window, the heap kept for reuse, page faults and seconds per window,
and the jemalloc/glibc ratio of seconds per window for each pair.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamdream.memory import jemalloc_for_spawned  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402

WINDOW_S, RATE = 9.0, 48000


def one_run(windows: int, knobs: bool) -> dict:
    """In this process: dream `windows` windows as the live worker does; per-window figures."""
    import numpy as np
    import soundfile as sf
    import torch

    from streamdream.data import DEMO_CLIP, shipped_path
    from streamdream.dreaming.dreamer import Dreamer
    from streamdream.memory import allocator, heap_bytes, no_huge_pages, rss_bytes
    from streamdream.params import Params

    torch.set_num_threads(1)  # the live worker's count on 2 cores: all but the audio's
    no_huge_pages()
    audio = sf.read(str(shipped_path(DEMO_CLIP)), dtype="float32", always_2d=True)[0].T
    frames = int(WINDOW_S * RATE)
    params = Params()
    dreamer = Dreamer(params, RATE, 2, frames).warm_up()
    rng = random.Random(1)
    rows = []
    for k in range(windows):
        start = (k * 7 * RATE) % (audio.shape[1] - frames)
        window = np.ascontiguousarray(audio[:, start:start + frames])
        p = params.with_changes(steps=rng.randint(1, 8), step_size=rng.uniform(0.01, 0.3),
                                jitter_ms=rng.uniform(0, 2000)) if knobs else params
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        began = time.perf_counter()
        dreamer.dream_window(window, k, p)
        seconds = time.perf_counter() - began
        used, kept = heap_bytes()
        rows.append({"seconds": seconds, "rss": rss_bytes(), "used": used, "kept": kept,
                     "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults})
    return {"allocator": allocator(), "windows": rows}


def spawn(allocator: str, windows: int, knobs: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--windows", str(windows)] + (["--knobs"] if knobs else [])
    if allocator == "jemalloc":
        with jemalloc_for_spawned():
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    else:
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if (result["allocator"] == "jemalloc") != (allocator == "jemalloc"):
        raise SystemExit(f"the {allocator} run did not get its allocator: install libjemalloc2 (README)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--knobs", action="store_true", help="random steps, step size and jitter per window")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.windows, args.knobs)))
        return 0
    cpu = cpu_name()
    print(f"machine: {cpu}, {os.cpu_count()} cores; {args.windows} windows per run, knobs "
          f"{'moving' if args.knobs else 'fixed'}\n")
    print("| run | allocator | RSS after window 1 -> last | kept for reuse, last | faults per window (median) "
          "| s per window (mean) |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for pair in range(args.pairs):
        means = {}
        for allocator in ("glibc", "jemalloc"):
            rows = spawn(allocator, args.windows, args.knobs)["windows"]
            means[allocator] = statistics.mean(r["seconds"] for r in rows)
            print(f"| {pair + 1} | {allocator} | {rows[0]['rss'] / 2**20:.0f} -> {rows[-1]['rss'] / 2**20:.0f} MiB "
                  f"({100 * (rows[-1]['rss'] / rows[0]['rss'] - 1):+.1f}%) | {rows[-1]['kept'] / 2**20:.0f} MiB | "
                  f"{statistics.median(r['faults'] for r in rows):.0f} | {means[allocator]:.2f} |", flush=True)
        ratios.append(means["jemalloc"] / means["glibc"])
    print(f"\njemalloc / glibc, seconds per window, by pair: {', '.join(f'{r:.3f}' for r in ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
