#!/usr/bin/env python3
"""Every target by both ears, beside the noise control: a Markdown table from eval_dreams.py's JSON lines.

`lab/eval_dreams.py --ear lab/ear.onnx --ear lab/ear_disjoint.onnx --json RUNS.jsonl` writes one line per
ear for the same renders; this groups them by run (label, seed, clips) and prints, per target and for all
targets, each ear's rise, its rise over the noise control, and the share of renders that keep the music's
own label in the ear's top three (in brackets: the noise control's share), with the change's level.

    python3 lab/ears_table.py lab/ears-runs.jsonl [--labels vivid faithful] [--seeds 1 2]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

EARS = ("ear.onnx", "ear_disjoint.onnx")


def source(run: dict) -> str:
    return "recordings" if all("@" in c for c in run.get("clips", [])) else "arrangements"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--labels", nargs="+", help="only these runs (eval_dreams.py --label), in this order")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (pooled)")
    args = parser.parse_args()
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
    # (label, source) -> ear -> rows, pooled over seeds (a run judged twice by one ear counts once)
    grouped: dict = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        if "ear" not in run or (args.labels and run["label"] not in args.labels):
            continue
        if args.seeds and run.get("seed") not in args.seeds:
            continue
        grouped[(run["label"], source(run))][run["ear"]][run.get("seed")] = run["rows"]
    order = args.labels or sorted({label for label, _ in grouped})
    for label in order:
        for src in ("recordings", "arrangements"):
            by_ear = grouped.get((label, src))
            if not by_ear or not all(e in by_ear for e in EARS):
                continue
            rows = {e: [r for seed in sorted(by_ear[e]) for r in by_ear[e][seed]] for e in EARS}
            seeds = sorted(by_ear[EARS[0]])
            change = np.mean([r["change_db"] for r in rows[EARS[0]]])
            print(f"\n`{label}` on the {src} (seeds {', '.join(map(str, seeds))}; {len(rows[EARS[0]])} renders; "
                  f"change {change:+.1f} dB against the music)\n")
            print("| target | first ear: rise | over noise | label kept (noise) | disjoint ear: rise | over noise "
                  "| label kept (noise) |")
            print("|---|---|---|---|---|---|---|")
            targets = list(dict.fromkeys(r["target"] for r in rows[EARS[0]]))
            for t in targets + ["all"]:
                cells = []
                for e in EARS:
                    sel = [r for r in rows[e] if t == "all" or r["target"] == t]
                    rise = np.nanmean([r["rise"] for r in sel])
                    vs = np.nanmean([r["vs_noise"] for r in sel])
                    kept = np.mean([r["top3"] for r in sel])
                    noise = np.mean([r["noise_top3"] for r in sel])
                    cells += [f"{rise:+.2f}", f"{vs:+.2f}", f"{kept:.0%} ({noise:.0%})"]
                name = "**all**" if t == "all" else t
                print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
