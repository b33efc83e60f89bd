"""Time the true-peak limiter's block processing (the audio callback's largest piece of work).

    python scripts/bench_limiter.py [--rate 48000] [--block 512] [--blocks 2000]

Prints the median and 99th percentile microseconds per block for quiet input (under the ceiling:
the 4x interpolation is skipped), loud input (interpolation and gain reduction every block) and
peaks (a moderate signal with a 5-ms burst over the ceiling every 100 ms, as dreams tend to peak).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streamdream.audio.limiter import TruePeakLimiter  # noqa: E402


def signal(kind: str, rate: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "quiet":
        return (rng.standard_normal((2, frames)) * 0.05).astype(np.float32)
    if kind == "loud":
        return rng.standard_normal((2, frames)).astype(np.float32)
    audio = rng.standard_normal((2, frames)) * 0.1
    burst = int(0.005 * rate)
    for start in range(0, frames, int(0.1 * rate)):
        audio[:, start:start + burst] *= 20.0
    return audio.astype(np.float32)


def timings(rate: int, block: int, blocks: int, kind: str) -> np.ndarray:
    limiter = TruePeakLimiter(rate, 2)
    limiter.reserve(block)
    out = np.zeros((2, block), dtype=np.float32)
    audio = signal(kind, rate, block * 64)
    took = []
    for i in range(blocks):
        start = (i % 64) * block
        began = time.perf_counter()
        limiter.process(audio[:, start:start + block], out)
        took.append(time.perf_counter() - began)
    return np.array(took[blocks // 10:]) * 1e6  # the first tenth warms caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=2000)
    args = parser.parse_args()
    period = args.block / args.rate * 1e6
    for name in ("quiet", "loud", "peaks"):
        t = timings(args.rate, args.block, args.blocks, name)
        print(f"{name}: median {np.median(t):.0f} us, p99 {np.percentile(t, 99):.0f} us per {args.block}-frame block "
              f"({100 * np.median(t) / period:.1f}% / {100 * np.percentile(t, 99) / period:.1f}% of the period)")


if __name__ == "__main__":
    main()
