#!/usr/bin/env python3
"""Does dreaming toward a label make the model hear it? Before/after probabilities on the demo clip.

    python lab/target_table.py [--targets brass,strings,voice,drums,organ] [--input streamdream/data/demo.flac]

Renders the input once per target with default settings (`streamdream render IN OUT --target T`
through the Python API, same path) and classifies input and output with the same model.
Prints a markdown table for models/MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamdream.audio.files import read_audio  # noqa: E402
from streamdream.params import Params  # noqa: E402
from streamdream.dreaming.classify import classify  # noqa: E402
from streamdream.stream.offline import render_array  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="brass,strings,voice,drums,organ,synth-pad")
    parser.add_argument("--input", default=str(ROOT / "streamdream" / "data" / "demo.flac"))
    args = parser.parse_args()
    loaded = read_audio(args.input)
    before = classify(loaded.audio, loaded.sample_rate)
    top_before = max(before, key=before.get)
    print(f"input: {args.input} ({loaded.audio.shape[1] / loaded.sample_rate:.1f} s); default settings "
          f"({Params().octaves} octaves x {Params().steps} steps, step size {Params().step_size}); "
          f"the model hears it as {top_before} ({100 * before[top_before]:.0f}%)\n")
    print("| --target | P(target) before | P(target) after | top label after | render seconds |")
    print("|---|---|---|---|---|")
    for target in args.targets.split(","):
        began = time.perf_counter()
        out = render_array(loaded.audio, loaded.sample_rate, Params(target=target))
        seconds = time.perf_counter() - began
        after = classify(out, loaded.sample_rate)
        top = max(after, key=after.get)
        print(f"| {target} | {100 * before[target]:.1f}% | {100 * after[target]:.1f}% | {top} "
              f"({100 * after[top]:.0f}%) | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
