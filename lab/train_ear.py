#!/usr/bin/env python3
"""Train the independent ear (`lab/ear.onnx`): a judge for dreams, never used to dream.

Same 18 labels as the default model, everything else different (see lab/ear.py): the
MIDI phrases of scripts/train_default_model.py rendered with Debian's TimGM6mb soundfont
instead of FluidR3, espeak-ng voices and languages the default model never heard, a
log-frequency front end with an 80 dB floor, and a dilated 1-D CNN. The data generation,
augmentation and training loop are the default model's own (imported, not copied).

    nice -n 10 python lab/train_ear.py                 # the committed run
    nice -n 10 python lab/train_ear.py --train-per-class 6 --test-per-class 3 --epochs 1 --out /tmp/ear
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))  # train_default_model: the music it renders
import train_default_model as data  # noqa: E402
from ear import BANDS, Ear, EarNet, ear_features  # noqa: E402
from streamdream.errors import exit_usage  # noqa: E402

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
# Languages and voice variants disjoint from the default model's VOICE_LANGS / VOICE_VARIANTS.
EAR_LANGS = ["ru", "hu", "ro", "tr", "el", "da", "nb", "hr", "sk", "bg", "lv", "en-gb-x-rp"]
EAR_VARIANTS = ["adam", "Alicia", "Andy", "antonio", "aunty", "benjamin", "boris", "caleb", "Denis", "Diogo", "ed",
                "edward2", "Gene", "gustave", "Henrique", "Hugo", "iven2", "Jacky", "Lee", "marcelo", "Marco",
                "Mario", "Michael", "michel", "miguel", "Mike", "pablo", "pedro", "rob", "robert", "steph2", "anika",
                "f5", "m3", "whisper", "whisperf", "grandpa"]


def augmented_features(args, x_train, y_train, gen, log) -> tuple[torch.Tensor, torch.Tensor]:
    """`--passes` augmented 2-s crops of every clip, as ear features and soft labels, computed once.

    The default model augments afresh every epoch; on a shared 2-core CPU that costs more
    than the ear's whole training, so the ear trains on a fixed bank of augmented views.
    """
    crop, clip = int(data.CROP_S * data.SAMPLE_RATE), x_train.shape[1]
    feats, targets = [], []
    for p in range(args.passes):
        order = torch.randperm(len(x_train), generator=gen).numpy()
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            starts = torch.randint(0, clip - crop + 1, (len(idx),), generator=gen).numpy()
            wave = torch.from_numpy(np.stack([x_train[j, s:s + crop] for j, s in zip(idx, starts)])
                                    .astype(np.float32) / 32768.0)
            target = torch.nn.functional.one_hot(torch.from_numpy(y_train[idx]), len(data.LABELS)).float()
            wave, target = data.mix_pairs(wave, target, gen)
            with torch.no_grad():
                feats.append(ear_features(data.augment(wave, gen)))
            targets.append(target)
        log(f"augmented pass {p + 1}/{args.passes}")
    return torch.cat(feats), torch.cat(targets)


def train(args, x_train, y_train, log) -> EarNet:
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    feats, targets = augmented_features(args, x_train, y_train, gen, log)
    net = EarNet(len(data.LABELS))
    steps_per_epoch = len(feats) // args.batch
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(feats), generator=gen)
        total, correct = 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch:(step + 1) * args.batch]
            logits = net(feats[idx])
            loss = data.soft_cross_entropy(logits, targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            correct += int((logits.argmax(1) == targets[idx].argmax(1)).sum())
        log(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps_per_epoch:.3f}, "
            f"train top-1 (augmented) {correct / (steps_per_epoch * args.batch):.3f}")
    return net.eval()


def export(net: EarNet, path: Path, accuracy: float) -> None:
    import onnx

    dummy = torch.zeros(1, BANDS, 100)
    torch.onnx.export(net.eval(), (dummy,), str(path), input_names=["features"], output_names=["logits"],
                      opset_version=17, dynamic_axes={"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}},
                      do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    for key, value in (("labels", ",".join(data.LABELS)), ("held_out_top1", f"{accuracy:.4f}"),
                       ("about", "streamdream's independent ear: judges dreams, never dreams; lab/ear.py")):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--train-per-class", type=int, default=150)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--passes", type=int, default=2, help="augmented views of each training clip")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--data-cache", type=Path, default=None, help="optional .npz to keep rendered clips in")
    args = parser.parse_args()
    if not TIMGM.exists():
        exit_usage("TimGM6mb missing; install with: sudo apt-get install timgm6mb-soundfont")
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:7.1f} s] {message}", flush=True)

    voices = dict(soundfonts=(TIMGM,), voice_langs=EAR_LANGS, voice_variants=EAR_VARIANTS)
    if args.data_cache and args.data_cache.exists():
        cached = np.load(args.data_cache)
        x_train, y_train, x_test, y_test = (cached[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            x_train, y_train = data.generate_split(args.seed, args.train_per_class, Path(tmp), "train", **voices)
            x_test, y_test = data.generate_split(args.seed + 1_000_003, args.test_per_class, Path(tmp), "test",
                                                 **voices)
        if args.data_cache:
            np.savez(args.data_cache, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    log(f"{len(x_train)} training and {len(x_test)} held-out clips (TimGM6mb, other voices)")

    net = train(args, x_train, y_train, log)
    logits = data.predict(net, ear_features, x_test)
    accuracy = float((logits.argmax(1) == y_test).mean())
    top3 = float(np.mean([y in np.argsort(row)[-3:] for row, y in zip(logits, y_test)]))
    per_class = {data.LABELS[i]: float((logits[y_test == i].argmax(1) == i).mean()) for i in range(len(data.LABELS))}
    log(f"held-out (TimGM6mb) top-1 {accuracy:.3f}, top-3 {top3:.3f}")

    path = args.out / "ear.onnx"
    export(net, path, accuracy)
    # The exported file, run as eval_dreams.py runs it, must give the same answers.
    ear = Ear(path)
    probe = x_test[:4].astype(np.float32) / 32768.0
    with torch.no_grad():
        ref = torch.softmax(net(ear_features(torch.from_numpy(probe))), 1).mean(0).numpy()
    assert np.allclose(ear.probabilities(probe, data.SAMPLE_RATE), ref, atol=1e-4)
    report = {"command": " ".join(["python", "lab/train_ear.py"] + sys.argv[1:]), "seed": args.seed,
              "train_clips": int(len(y_train)), "test_clips": int(len(y_test)), "epochs": args.epochs,
              "test_top1": accuracy, "test_top3": top3, "per_class_top1": per_class,
              "onnx_bytes": path.stat().st_size, "total_seconds": round(time.time() - started)}
    (args.out / "ear_report.json").write_text(json.dumps(report, indent=1))
    log(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
