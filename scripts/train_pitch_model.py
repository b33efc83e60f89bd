#!/usr/bin/env python3
"""Train streamdream's `pitch` model: which of the 88 piano keys (A0..C8) sound in a window.

A multi-label CNN on a pitch-friendly log-mel (128 bands from 27.5 Hz to 8 kHz, 64-ms window),
trained from scratch on clips generated here, seeded:

* FluidR3_GM renders of single notes, intervals and chords (triads, sevenths, inversions) across the
  pitched GM families, each within its family's range (piano across all 88 keys);
* espeak-ng speech made monotone (SSML prosody range 0%) and moved to a set key by resampling, so
  the sung-on-one-note voice is labelled by that key;
* augmented like the default model (EQ, band limits, rooms, noise, level), and mixed in pairs whose
  labels are the union of both clips' keys (more polyphony for free).

The MIDI writer, renderer, espeak call and augmentation are imported from
`scripts/train_default_model.py` (one home per idea). The net and data are kept small on purpose:
the whole run took about 10 minutes of CPU on the 2-core build machine, shared with other jobs.

    nice -n 10 python scripts/train_pitch_model.py                 # the committed run
    nice -n 10 python scripts/train_pitch_model.py --train-slots 200 --test-slots 50 --epochs 1 --out /tmp/smoke --model-out /tmp/smoke/pitch.onnx
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import train_default_model as base  # noqa: E402
from streamdream.control.mapping import note_name  # noqa: E402
from streamdream.dreaming import model as sd_model  # noqa: E402
from streamdream.dreaming.views import FrontEnd, SpectrogramView  # noqa: E402
from streamdream.errors import exit_usage  # noqa: E402

SAMPLE_RATE = base.SAMPLE_RATE
FIRST_KEY, LAST_KEY = 21, 108                     # A0 .. C8, MIDI numbers
KEYS = list(range(FIRST_KEY, LAST_KEY + 1))
LABELS = [note_name(k) for k in KEYS]            # "A0", "A#0", ... "C8"
OTHER_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SLOT_S = 2.0      # one event per slot: notes start at 0 and are released by NOTE_S
NOTE_S = 1.2
CLIP_S = 1.0      # what is kept per slot (from the onset); training crops CROP_S of it
CROP_S = 0.75
PITCHED_FAMILIES = range(14)                      # GM families 0..13 (14 percussive, 15 effects: not pitched)
INTERVALS = list(range(1, 13))
CHORD_SHAPES = [[0, 4, 7], [0, 3, 7], [0, 3, 6], [0, 4, 8], [0, 5, 7], [0, 4, 7, 11], [0, 3, 7, 10], [0, 4, 7, 10]]


def front_end() -> FrontEnd:
    return FrontEnd(window_ms=64.0, hop_ms=16.0, n_mels=128, fmin_hz=27.5, fmax_hz=8000.0)


# ----------------------------------------------------------------------------------------------
# Data


def key_range(program: int) -> tuple[int, int]:
    family = program // 8
    low, high = (FIRST_KEY, LAST_KEY) if family == 0 else base.PITCH_RANGE[family]
    return max(low, FIRST_KEY), min(high, LAST_KEY)


def slot_event(rng, program: int) -> list[int]:
    """Keys of one slot: a single note, an interval or a chord (any inversion), inside the program's range."""
    low, high = key_range(program)
    kind = rng.choice(["single", "interval", "chord"], p=[0.45, 0.25, 0.30])
    if kind == "single":
        offsets = [0]
    elif kind == "interval":
        offsets = [0, int(rng.choice(INTERVALS))]
    else:
        shape = list(CHORD_SHAPES[rng.integers(len(CHORD_SHAPES))])
        for _ in range(int(rng.integers(0, len(shape)))):  # inversions: lowest note up an octave
            shape = shape[1:] + [shape[0] + 12]
        offsets = [o - shape[0] for o in shape]
    span = max(offsets)
    root = int(rng.integers(low, max(low + 1, high - span + 1)))
    return sorted({min(root + o, high) for o in offsets})


def slots_midi(rng, n_slots: int, path: Path) -> list[list[int]]:
    """n_slots events on fresh channels, one per SLOT_S; returns each slot's keys."""
    events, keys = [], []
    for slot in range(n_slots):
        t0 = slot * SLOT_S
        ch = [c for c in range(16) if c != 9][slot % 15]
        program = 8 * int(rng.choice(list(PITCHED_FAMILIES))) + int(rng.integers(8))
        events.append((t0, bytes([0xC0 | ch, program])))
        base.control(events, ch, t0, 7, rng.integers(80, 128))
        base.control(events, ch, t0, 91, 0 if rng.random() < 0.5 else rng.integers(10, 100))
        notes = slot_event(rng, program)
        for k in notes:
            base.note(events, ch, t0 + 0.01, NOTE_S, k, int(rng.integers(40, 121)))
        keys.append(notes)
    base.control(events, 0, n_slots * SLOT_S, 121, 0)
    base.write_midi(path, events)
    return keys


def cut(audio: np.ndarray, n_slots: int) -> list[np.ndarray]:
    slot, clip = int(SLOT_S * SAMPLE_RATE), int(CLIP_S * SAMPLE_RATE)
    audio = np.pad(audio, (0, max(0, n_slots * slot - len(audio))))
    return [audio[i * slot: i * slot + clip] for i in range(n_slots)]


def monotone_f0(audio: np.ndarray, rate: int) -> float | None:
    """Median autocorrelation f0 of the voiced frames, or None when it wanders more than a semitone."""
    win, hop = int(0.04 * rate), int(0.02 * rate)
    lo, hi = int(rate / 800), int(rate / 50)
    f0s = []
    for s in range(0, len(audio) - win, hop):
        frame = audio[s:s + win]
        if np.sqrt(np.mean(frame ** 2)) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[win - 1:]
        f0s.append(rate / (lo + int(np.argmax(ac[lo:hi]))))
    if len(f0s) < 5:
        return None
    f0s = np.array(f0s)
    spread = 12 * np.log2(np.percentile(f0s, 80) / np.percentile(f0s, 20))
    return float(np.median(f0s)) if spread < 1.0 else None


def voice_clip(rng, wav: Path) -> tuple[np.ndarray, list[int]] | None:
    """espeak-ng nonsense on one pitch (SSML range 0%), resampled so that pitch is a set key (G2..C6)."""
    voice = base.random_voice(rng)
    text = f'<speak><prosody range="0%">{base.nonsense_text(rng)}</prosody></speak>'
    cmd = ["espeak-ng", "-m", "-v", voice, "-p", str(int(rng.integers(30, 99))), "-s", str(int(rng.integers(100, 200))),
           "-w", str(wav), text]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    audio = audio.mean(axis=1)
    f0 = monotone_f0(audio, rate)
    if f0 is None:
        return None
    key = int(rng.integers(43, 85))          # G2 .. C6
    target = 440.0 * 2 ** ((key - 69) / 12)
    # resampling by f0/target and playing at `rate` moves every frequency by target/f0
    moved = soxr.resample(audio, rate, rate * f0 / target)
    wave = soxr.resample(moved, rate, SAMPLE_RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(wave) > 0.05 * (np.abs(wave).max() + 1e-9))
    wave = wave[loud[0]:] if len(loud) else wave
    clip = int(CLIP_S * SAMPLE_RATE)
    return np.tile(wave, -(-clip // max(len(wave), 1)))[:clip], [key]


def generate(seed: int, slots: int, voices: int, workdir: Path, tag: str, soundfont: Path = base.SOUNDFONT):
    """(N, CLIP_S*rate) int16 clips and (N, 88) multi-hot keys."""
    chunk = 100
    jobs = []
    for start in range(0, slots, chunk):
        n = min(chunk, slots - start)
        mid = workdir / f"{tag}_{start}.mid"
        keys = slots_midi(np.random.default_rng([seed, start]), n, mid)
        jobs.append((n, mid, keys))

    def run(job):
        n, mid, keys = job
        return cut(base.render_midi(mid, mid.with_suffix(".wav"), soundfont), n), keys

    def run_voice(i):
        return voice_clip(np.random.default_rng([seed, 7, i]), workdir / f"{tag}_voice_{i}.wav")

    clips, targets = [], []
    with ThreadPoolExecutor(2) as pool:
        for cut_clips, keys in pool.map(run, jobs):
            clips += [base.to_int16(c) for c in cut_clips]
            targets += keys
        for result in pool.map(run_voice, range(voices)):
            if result is not None:
                clips.append(base.to_int16(result[0]))
                targets.append(result[1])
    y = np.zeros((len(targets), len(KEYS)), dtype=np.float32)
    for i, keys in enumerate(targets):
        y[i, [k - FIRST_KEY for k in keys]] = 1.0
    return np.stack(clips), y


# ----------------------------------------------------------------------------------------------
# The network


class PitchCNN(nn.Module):
    """Three conv stages over (B, 1, 128 mels, T) that keep the full frequency resolution (pitch lives
    there) and pool only time; a mean over time; one linear layer from (channels x bands) to 88 keys."""

    def __init__(self, bands: int = 128, widths=(16, 24, 32)):
        super().__init__()
        layers, c_in = [], 1
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d((1, 2)))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(c_in * bands, len(KEYS))

    def forward(self, x):
        x = self.features(x).mean(dim=3)          # (B, C, bands)
        return self.classifier(self.dropout(x.flatten(1)))


def fold_batchnorm(net: PitchCNN) -> PitchCNN:
    net = copy.deepcopy(net).eval()
    mods = list(net.features)
    for i, m in enumerate(mods):
        if isinstance(m, nn.BatchNorm2d):
            mods[i - 1] = torch.nn.utils.fusion.fuse_conv_bn_eval(mods[i - 1], m)
            mods[i] = nn.Identity()
    net.features = nn.Sequential(*mods)
    return net


def mix_pairs(wave, target, gen, p=0.3):
    """Sum a fraction of clips with another one; the keys of both then sound."""
    partner = torch.randperm(len(wave), generator=gen)
    mixed = torch.rand(len(wave), generator=gen) < p
    lam = torch.where(mixed, 0.4 + 0.3 * torch.rand(len(wave), generator=gen), torch.zeros(len(wave)))
    wave = wave + lam[:, None] * wave[partner]
    target = torch.where(mixed[:, None], torch.maximum(target, target[partner]), target)
    return wave, target


def train(args, x, y, front, log):
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    view = SpectrogramView(front, SAMPLE_RATE, "mel")
    net = PitchCNN(front.n_mels)
    steps = max(1, len(x) // args.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps, pct_start=0.2)
    crop, clip = int(CROP_S * SAMPLE_RATE), x.shape[1]
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen).numpy()
        t0, total = time.time(), 0.0
        for step in range(steps):
            idx = order[step * args.batch:(step + 1) * args.batch]
            starts = torch.randint(0, clip - crop + 1, (len(idx),), generator=gen).numpy()
            wave = torch.from_numpy(np.stack([x[i, s:s + crop] for i, s in zip(idx, starts)]).astype(np.float32) / 32768)
            wave, target = mix_pairs(wave, torch.from_numpy(y[idx]), gen)
            with torch.no_grad():
                feats = view(base.augment(wave, gen))
            loss = F.binary_cross_entropy_with_logits(net(feats), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        log(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps:.4f}, {time.time() - t0:.0f} s")
    return net.eval()


# ----------------------------------------------------------------------------------------------
# Evaluation


def predict(module, view, x, batch=32) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.sigmoid(module(view(torch.from_numpy(x[i:i + batch].astype(np.float32) / 32768)))).numpy())
    return np.concatenate(out)


def scores(prob: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict:
    """Micro F1 over all (clip, key) pairs, mean per-key F1 over keys that occur, and for single notes
    the top key: right, an octave off (12, 24 or 36 semitones), or other."""
    pred = prob >= threshold
    truth = y > 0.5
    tp, fp, fn = (pred & truth).sum(0), (pred & ~truth).sum(0), (~pred & truth).sum(0)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    present = truth.sum(0) > 0
    per_key = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    single = truth.sum(1) == 1
    true_key = truth[single].argmax(1)
    top = prob[single].argmax(1)
    diff = np.abs(top - true_key)
    octave = (diff > 0) & (diff % 12 == 0)
    # false positives that sit an octave from a sounding key, among all false positives
    fp_mask = pred & ~truth
    shifted = np.zeros_like(truth)
    for s in (12, 24):
        shifted[:, s:] |= truth[:, :-s]
        shifted[:, :-s] |= truth[:, s:]
    return {"clips": int(len(y)), "micro_f1": round(float(micro), 4),
            "mean_per_key_f1": round(float(np.nanmean(per_key)), 4),
            "per_key_f1": {LABELS[i]: round(float(per_key[i]), 3) for i in range(len(LABELS)) if present[i]},
            "single_notes": int(single.sum()), "single_top1": round(float((diff == 0).mean()), 4),
            "single_octave_errors": round(float(octave.mean()), 4),
            "false_positives_at_octaves": round(float((fp_mask & shifted).sum() / max(fp_mask.sum(), 1)), 4),
            "polyphonic_exact_sets": round(float((pred[~single] == truth[~single]).all(1).mean()), 4)}


# ----------------------------------------------------------------------------------------------


def export(net: PitchCNN, front: FrontEnd, path: Path, log) -> None:
    import onnx

    folded = fold_batchnorm(net)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(folded, (torch.zeros(1, 1, front.n_mels, 101),), str(tmp), input_names=["input"],
                      output_names=["logits"], opset_version=17, do_constant_folding=True, dynamo=False,
                      dynamic_axes={"input": {0: "batch", 3: "time"}, "logits": {0: "batch"}})
    proto = onnx.load(str(tmp))
    tmp.unlink()
    relus = [n.output[0] for n in proto.graph.node if n.op_type == "Relu"]
    layers = [{"name": name, "description": text} for name, text in zip(relus, [
        "stage 1 (16 ch, every mel band): partials and their onsets",
        "stage 2 (24 ch, every band, 1/2 time): harmonic stacks",
        "stage 3 (32 ch, every band, 1/4 time): pitch evidence the keys are read from"])]
    layers.append({"name": "logits", "description": "the 88 keys A0..C8 (multi-label): play them with --target or MIDI notes"})
    sd_model.write_metadata(proto, "mel", front, LABELS, layers, default_layer=relus[-1], multi_label=True)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    log(f"wrote {path} ({path.stat().st_size} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=88)
    parser.add_argument("--train-slots", type=int, default=2000)
    parser.add_argument("--train-voices", type=int, default=250)
    parser.add_argument("--test-slots", type=int, default=400)
    parser.add_argument("--test-voices", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=REPO / "models", help="directory for pitch_report.json")
    parser.add_argument("--model-out", type=Path, default=REPO / "streamdream" / "data" / "pitch.onnx",
                        help="where the ONNX model goes (default: the shipped one, package data)")
    parser.add_argument("--data-cache", type=Path, help="optional .npz to save rendered clips to and reuse")
    args = parser.parse_args()
    base.check_tools()
    if not OTHER_SOUNDFONT.exists():
        exit_usage(f"{OTHER_SOUNDFONT} missing; install with: sudo apt-get install timgm6mb-soundfont")
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:7.1f} s] {message}", flush=True)

    cpu0 = time.process_time()
    if args.data_cache and args.data_cache.exists():
        d = np.load(args.data_cache)
        x_train, y_train, x_test, y_test, x_other, y_other = (d[k] for k in ("x_train", "y_train", "x_test", "y_test",
                                                                              "x_other", "y_other"))
        log(f"loaded clips from {args.data_cache}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            x_train, y_train = generate(args.seed, args.train_slots, args.train_voices, Path(tmp), "train")
            log(f"rendered {len(x_train)} training clips")
            # held out: other seeds (other programs, keys, voices); the same MIDI on TimGM6mb for the independent check
            x_test, y_test = generate(args.seed + 1_000_003, args.test_slots, args.test_voices, Path(tmp), "test")
            x_other, y_other = generate(args.seed + 1_000_003, args.test_slots, 0, Path(tmp), "other", OTHER_SOUNDFONT)
            log(f"rendered {len(x_test)} test clips and {len(x_other)} TimGM6mb clips")
        if args.data_cache:
            np.savez(args.data_cache, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     x_other=x_other, y_other=y_other)

    gen = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(x_train), generator=gen)[:256].numpy()
    with torch.no_grad():
        sample = SpectrogramView(front_end(), SAMPLE_RATE, "mel")(
            base.augment(torch.from_numpy(x_train[pick].astype(np.float32) / 32768), gen))
    raw = front_end().to_dict()
    front = FrontEnd.from_dict({**raw, "mean": round(float(sample.mean()), 4), "std": round(float(sample.std()), 4)})
    log(f"front end: {front.to_dict()}")

    net = train(args, x_train, y_train, front, log)
    onnx_path = args.model_out
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    export(net, front, onnx_path, log)
    info = sd_model.read_model_info(onnx_path)
    loaded = sd_model.convert(info, ["logits"], [1, 1, front.n_mels, 63])
    log(f"onnx2torch vs ONNX Runtime: {loaded.parity_error:.2e}")

    view = SpectrogramView(front, SAMPLE_RATE, "mel")
    held_out = scores(predict(loaded.module, view, x_test), y_test)
    other = scores(predict(loaded.module, view, x_other), y_other)
    voice = y_test.shape[0] - args.test_slots
    voice_scores = scores(predict(loaded.module, view, x_test[args.test_slots:]), y_test[args.test_slots:]) if voice else {}
    for name, s in (("held-out FluidR3", held_out), ("TimGM6mb (never heard)", other), ("held-out voice", voice_scores)):
        if s:
            log(f"{name}: micro F1 {s['micro_f1']}, mean per-key F1 {s['mean_per_key_f1']}, single-note top-1 "
                f"{s['single_top1']}, octave errors {s['single_octave_errors']}")
    report = {"command": " ".join(["python", "scripts/train_pitch_model.py"] + sys.argv[1:]), "seed": args.seed,
              "train_clips": int(len(x_train)), "epochs": args.epochs, "front_end": front.to_dict(),
              "parameters": int(sum(p.numel() for p in net.parameters())), "parity_relative": loaded.parity_error,
              "held_out_fluidr3": held_out, "timgm6mb": other, "held_out_voice": voice_scores,
              "cpu_seconds": round(time.process_time() - cpu0), "wall_seconds": round(time.time() - started)}
    (args.out / "pitch_report.json").write_text(json.dumps(report, indent=1))
    log("done")


if __name__ == "__main__":
    main()
