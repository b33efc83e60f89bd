#!/usr/bin/env python3
"""Does the shipped `streamdream/data/default.onnx` still make sense on a soundfont it never heard?

The model was trained only on FluidR3_GM renders. This renders a held-out set of the 17
MIDI classes (every label but `voice`) with the training script's own phrase generator
(`class_midi`, seed 777, unlike training's 1234 and test's 1234 + 1_000_003), twice: with
FluidR3_GM and with TimGM6mb (same MIDI files, same fluidsynth flags), and classifies each
clean, peak-normalised 3-s clip the way streamdream does (its `mel` view + the onnx2torch
conversion, as in `streamdream.dreaming.classify`, one window per clip, no padding).
Prints a markdown table. Needs fluidsynth, fluid-soundfont-gm and timgm6mb-soundfont.

    nice -n 10 python lab/eval_other_soundfont.py
    nice -n 10 python lab/eval_other_soundfont.py --per-class 4   # quick smoke run
    nice -n 10 python lab/eval_other_soundfont.py --model /tmp/run/default.onnx   # a retrained model
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from streamdream.dreaming.classify import classify  # noqa: E402
from streamdream.dreaming.model import convert, read_model_info  # noqa: E402
from streamdream.dreaming.views import build_view  # noqa: E402
from streamdream.errors import StreamDreamError, exit_usage  # noqa: E402

_spec = importlib.util.spec_from_file_location("train_default_model", REPO / "scripts" / "train_default_model.py")
train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train)

SOUNDFONTS = {"FluidR3": train.SOUNDFONT, "TimGM6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2")}
RATE = train.SAMPLE_RATE


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--model", default=None, help="an ONNX model with the 18 labels (default: the shipped one)")
    args = parser.parse_args()
    try:  # the model first: a wrong path or model fails in a second, not after the renders
        info = read_model_info(args.model)
        if info.labels != train.LABELS or info.view != "mel":
            raise StreamDreamError(f"{info.path.name} is not a model of the training script's 18 labels on the "
                                   "mel view; pass one that scripts/train_default_model.py wrote")
    except StreamDreamError as error:
        exit_usage(str(error))
    for name, path in SOUNDFONTS.items():
        if not path.exists():
            exit_usage(f"{path} missing ({name}); apt-get install fluid-soundfont-gm timgm6mb-soundfont")
    torch.set_num_threads(2)
    started = time.time()
    labels = [i for i in range(len(train.LABELS)) if i != train.VOICE]

    # 1. One MIDI file per class, rendered with both soundfonts, cut into 3-s clips.
    clips = {name: {} for name in SOUNDFONTS}  # soundfont -> label -> (n, frames) float32
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for label in labels:
            mid = Path(tmp) / f"{label}.mid"
            train.class_midi(np.random.default_rng([args.seed, label]), label, args.per_class, mid)
            jobs += [(name, label, mid) for name in SOUNDFONTS]

        def run(job):
            name, label, mid = job
            audio = train.render_midi(mid, Path(tmp) / f"{name}_{label}.wav", SOUNDFONTS[name])
            cut = [train.to_int16(c) for c in train.cut_slots(audio, args.per_class)]  # as the test set
            return name, label, np.stack(cut).astype(np.float32) / 32768.0

        with ThreadPoolExecutor(2) as pool:
            for name, label, x in pool.map(run, jobs):
                clips[name][label] = x
    silent = {name: sum(int((np.abs(x).max(axis=1) == 0).sum()) for x in per.values()) for name, per in clips.items()}
    print(f"rendered {len(jobs)} files in {time.time() - started:.0f} s; silent clips: {silent}", file=sys.stderr)

    # 2. streamdream's own classification path, built once: model metadata -> view -> onnx2torch module.
    view = build_view(info.view, info.front, RATE, info.image_hw)
    frames = int(train.CLIP_S * RATE)
    model = convert(info, [info.output_names[0]], [1] + list(view(torch.zeros(1, frames)).shape[1:])).module
    preds, top3 = {name: {} for name in SOUNDFONTS}, {name: [] for name in SOUNDFONTS}
    with torch.no_grad():
        for name in SOUNDFONTS:
            for label in labels:
                logits = model(view(torch.from_numpy(clips[name][label])))
                preds[name][label] = logits.argmax(1).numpy()
                top3[name] += (logits.topk(3, dim=1).indices == label).any(1).tolist()
    # Cross-check one clip against the public classify() (3-s window, so no zero padding).
    probe = clips["TimGM6mb"][labels[0]][0]
    probs = classify(probe[None], RATE, info=info, window_s=train.CLIP_S)
    assert max(probs, key=probs.get) == train.LABELS[preds["TimGM6mb"][labels[0]][0]], "classify() disagrees"

    # 3. Report.
    def top1(name, label):
        return float((preds[name][label] == label).mean())

    print(f"\nseed {args.seed}, {args.per_class} clips per class, {len(labels) * args.per_class} clips per soundfont\n")
    print("| class | FluidR3 top-1 | TimGM6mb top-1 | TimGM6mb: most common wrong answers |")
    print("|---|---|---|---|")
    for label in labels:
        wrong = Counter(train.LABELS[p] for p in preds["TimGM6mb"][label] if p != label).most_common(2)
        wrong_text = ", ".join(f"{lab} ({n})" for lab, n in wrong) or "-"
        print(f"| {train.LABELS[label]} | {top1('FluidR3', label):.0%} | {top1('TimGM6mb', label):.0%} | {wrong_text} |")
    overall = {name: np.mean([top1(name, label) for label in labels]) for name in SOUNDFONTS}
    print(f"| **all 17** | **{overall['FluidR3']:.1%}** | **{overall['TimGM6mb']:.1%}** | |")

    pairs = Counter((train.LABELS[label], train.LABELS[p]) for label in labels
                    for p in preds["TimGM6mb"][label] if p != label)
    print("\nMost common confusions on TimGM6mb (true -> predicted, clips): "
          + "; ".join(f"{t} -> {p} ({n})" for (t, p), n in pairs.most_common(8)))
    agree = np.mean(np.concatenate([preds["FluidR3"][l] == preds["TimGM6mb"][l] for l in labels]))
    print("Top-3 over all clips: " + ", ".join(f"{name} {np.mean(hits):.1%}" for name, hits in top3.items()))
    print(f"Same top-1 answer for both renders of a clip: {agree:.1%}")
    print(f"\n({time.time() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
