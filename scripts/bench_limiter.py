"""Time the true-peak limiter's block processing (the audio callback's largest piece of work).

    python scripts/bench_limiter.py [--rate 48000] [--block 512] [--blocks 2000]

Prints the median and 99th percentile microseconds per block for quiet input (under the ceiling:
the 4x interpolation is skipped) and loud input (interpolation and gain reduction every block).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streamdream.audio.limiter import TruePeakLimiter  # noqa: E402


def timings(rate: int, block: int, blocks: int, level: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    limiter = TruePeakLimiter(rate, 2)
    limiter.reserve(block)
    out = np.zeros((2, block), dtype=np.float32)
    audio = (rng.standard_normal((2, block * 64)) * level).astype(np.float32)
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
    for name, level in (("quiet", 0.05), ("loud", 1.0)):
        t = timings(args.rate, args.block, args.blocks, level)
        print(f"{name}: median {np.median(t):.0f} us, p99 {np.percentile(t, 99):.0f} us per {args.block}-frame block "
              f"({100 * np.median(t) / period:.1f}% / {100 * np.percentile(t, 99) / period:.1f}% of the period)")


if __name__ == "__main__":
    main()
