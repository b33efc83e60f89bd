#!/usr/bin/env python3
"""Batch render throughput: a shell loop of single renders against one batch command.

    python scripts/bench_batch.py [--files 40] [--seconds 20] [--workdir DIR] [--only loop,jobs1,jobs2,ray]

Audio seconds per wall second, default settings toward brass, for
* a loop of `streamdream render IN OUT`, one process per file (start-up and model load paid per file),
* `streamdream render IN_DIR OUT_DIR --jobs 1` (one worker: the command's own process),
* `--jobs 2` (two worker processes, one torch thread each by default),
* `--ray` (a new local Ray with this machine's CPUs: one actor per CPU).
Each command runs in its own process; peak RSS is wait4's ru_maxrss, the largest process of the tree
that was waited for (the command, or one of its worker processes; Ray's workers are not its children,
so for --ray it is the driver alone). Prints markdown for docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench_render import RATE, make_file, render

DREAM = ("--target", "brass", "--quiet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workdir", type=Path, help="keep the files here (default: a temp folder, removed)")
    ap.add_argument("--only", default="loop,jobs1,jobs2,ray", help="the runs to make, in this order")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_batch."))
    inputs = work / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    first = make_file(inputs / "f00.wav", a.seconds)
    for i in range(1, a.files):
        shutil.copy(first, inputs / f"f{i:02d}.wav")
    audio = a.files * a.seconds

    runs = {"loop": ("shell loop of `render IN OUT`", None), "jobs1": ("`--jobs 1`", ("--jobs", "1")),
            "jobs2": ("`--jobs 2`", ("--jobs", "2")), "ray": (f"`--ray` (local, {os.cpu_count()} CPUs)", ("--ray",))}
    rows = []
    for name in a.only.split(","):
        label, flags = runs[name]
        out = work / name
        if flags is None:
            out.mkdir(exist_ok=True)
            began, rss = time.perf_counter(), 0
            for src in sorted(inputs.glob("*.wav")):
                rss = max(rss, render(src, out / src.name, *DREAM)["rss"])
            rows.append((label, time.perf_counter() - began, rss))
        else:
            done = render(inputs, out, *DREAM, *flags)
            rows.append((label, done["wall"], done["rss"]))

    print(f"{a.files} files of {a.seconds:g} s, {RATE} Hz stereo, default settings toward brass\n")
    print("| run | wall s | audio s per wall s | vs the first row | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for label, wall, rss in rows:
        print(f"| {label} | {wall:.1f} | {audio / wall:.2f} | {rows[0][1] / wall:.2f}x | {rss / 2**20:.0f} |")
    if not a.workdir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
