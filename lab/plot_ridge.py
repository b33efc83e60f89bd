"""Judged runs against each other: how far the independent ear moved toward the target against how often the
music kept its label, and how both follow the change's level.

    python lab/plot_ridge.py RUNS.jsonl [MORE.jsonl ...] --out OUT.png [--mark LABEL ...]

RUNS.jsonl: what `lab/eval_dreams.py --json` appends, one run per line (its label and mean figures).
lab/ridge-runs.jsonl holds the 98 runs on the eight clips that lab/DREAMS.md plots.

Left: each run's mean rise toward the target against the share of renders whose input label stayed in the ear's
top 3, coloured by how loud the change was beside the music; the issue's targets as dashed lines. Right: the same
share, and the noise control's (the input plus white noise of the change's energy), against the change's level.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from streamdream.atomic import atomic_path  # noqa: E402
from streamdream.errors import StreamDreamError, exit_usage  # noqa: E402
from streamdream.plot import check_plot_path  # noqa: E402

NEEDED = ("rise", "top3", "noise_top3", "change_db")
RISE_TARGET, KEPT_TARGET = 0.30, 0.70  # the targets on lab/eval_dreams.py


def read_runs(paths: list[Path]) -> list[dict]:
    """Every run with a target in these files: {label, rise, top3, noise_top3, change_db}. Raises
    StreamDreamError (one line) for a file it cannot read or a line that is not an eval run."""
    runs = []
    for path in paths:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise StreamDreamError(f"cannot read {path}: {exc.strerror}; give a file lab/eval_dreams.py "
                                   "--json wrote") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                run = json.loads(line)
                mean = {key: float(run["mean"][key]) for key in NEEDED}
            except (ValueError, KeyError, TypeError) as exc:
                raise StreamDreamError(f"{path} line {number} is not a run of lab/eval_dreams.py --json "
                                       f"(with the change's level, since 2026-12-07); missing or bad: {exc}") from exc
            if not math.isnan(mean["rise"]):  # a run without a target has no rise to place
                runs.append({"label": str(run.get("label", "")), **mean})
    if not runs:
        raise StreamDreamError("no run with a target in " + ", ".join(map(str, paths)))
    return runs


def plot(runs: list[dict], out: Path, marked: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    try:
        levels = [r["change_db"] for r in runs]
        dots = left.scatter([r["rise"] for r in runs], [100 * r["top3"] for r in runs], c=levels, cmap="viridis",
                            s=22, edgecolors="none")
        fig.colorbar(dots, ax=left, label="the change against the music (dB)")
        left.axvline(RISE_TARGET, color="grey", linestyle="--", linewidth=1)
        left.axhline(100 * KEPT_TARGET, color="grey", linestyle="--", linewidth=1)
        left.set_xlabel("ear P(target) rise, mean over renders")
        left.set_ylabel("music's label still in the ear's top 3 (% of renders)")
        left.set_title("toward the target against the music kept")
        right.scatter(levels, [100 * r["top3"] for r in runs], s=22, color="tab:blue", label="the dream")
        right.scatter(levels, [100 * r["noise_top3"] for r in runs], s=22, facecolors="none", edgecolors="tab:red",
                      label="noise of the same energy")
        right.axhline(100 * KEPT_TARGET, color="grey", linestyle="--", linewidth=1)
        right.set_xlabel("the change against the music (dB)")
        right.set_ylabel("music's label still in the ear's top 3 (% of renders)")
        right.set_title("the music kept, by the change's level")
        right.legend(loc="lower left")
        named = sorted((r for r in runs if r["label"] in marked), key=lambda r: r["rise"])
        for i, run in enumerate(named):
            # a name that would run into one already written (same height, close on its left) goes under its dot
            crowded = any(abs(run["top3"] - before["top3"]) < 0.02 and run["rise"] - before["rise"] < 0.08
                          for before in named[:i])
            left.annotate(run["label"], (run["rise"], 100 * run["top3"]), textcoords="offset points",
                          xytext=(4, -11 if crowded else 4), fontsize=8)
        fig.tight_layout()
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="lab/eval_dreams.py --json files")
    parser.add_argument("--out", type=Path, required=True, help="the picture (.png)")
    parser.add_argument("--mark", nargs="*", default=[], metavar="LABEL", help="runs to name on the picture")
    args = parser.parse_args()
    try:
        check_plot_path(args.out, "--out")  # a .png, matplotlib there, a folder that takes it: before any work
        runs = read_runs(args.runs)
        unknown = sorted(set(args.mark) - {r["label"] for r in runs})
        if unknown:
            raise StreamDreamError(f"--mark {unknown[0]}: no run has that label")
        plot(runs, args.out, args.mark)
    except StreamDreamError as exc:
        exit_usage(str(exc))
    print(f"{len(runs)} runs -> {args.out}")


if __name__ == "__main__":
    main()
