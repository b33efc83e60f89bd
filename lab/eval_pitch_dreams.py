#!/usr/bin/env python3
"""Does dreaming toward a key with the `pitch` model make that pitch appear? Measured by ears the dream never used.

Inputs: 3-s phrases of several GM families from the default model's phrase generator
(`class_midi`, seed 4242), rendered with TimGM6mb (a soundfont neither model was trained on).
For each clip the target is the key (C3..B5) whose pitch class the clip holds least of, so a
rise is the pitch appearing, not one already there growing. Each clip is rendered the way
`streamdream render --model pitch --target KEY` does it (same Dreamer, same offline path).

Two ears, neither of them the pitch model:
* chroma share: the fraction of spectral energy (55 Hz..5 kHz, a plain numpy STFT) whose bins
  fall on the target pitch class (+-50 cents);
* YIN (de Cheveigne & Kawahara 2002, written below): the fraction of voiced 40-ms frames whose
  f0 has the target pitch class, on the output (does the pitch become the dominant one?) and on
  the change alone (out - dry: is what the dream added that pitch?).

Control: the dry clip plus white noise with exactly the energy of the dream's change
(out - dry). Prints a markdown table of before / dream / noise for both ears, and the chord case
(--target C4,E4,G4, chroma share of C, E and G together).

No key held (`live` with no MIDI note, `render --model pitch` without --target): each clip is
also dreamed with the pitch model's default layer and with `--layer heard` (every key by the
pitch model's probability for it in the clip). Does the music's own pitch get clearer? Two ears:
the chroma share of the clip's own three strongest pitch classes, and the fraction of the dry
clip's voiced YIN frames whose pitch class the output's YIN still gives (a change that hides the
melody lowers it; one that strengthens its fundamentals keeps or raises it).

    nice -n 10 python lab/eval_pitch_dreams.py               # the documented run
    nice -n 10 python lab/eval_pitch_dreams.py --clips 2     # smoke run
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import train_default_model as music  # noqa: E402
from streamdream.control.mapping import note_name  # noqa: E402
from streamdream.dreaming.dreamer import Dreamer  # noqa: E402
from streamdream.params import Params  # noqa: E402
from streamdream.stream.offline import render_array  # noqa: E402
from streamdream.windows import Schedule  # noqa: E402

RATE = music.SAMPLE_RATE
OTHER_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
FAMILIES = [0, 3, 4, 5, 7, 8, 10, 11]   # piano, guitar, bass, strings, brass, reed, synth lead, synth pad
CHORD = [60, 64, 67]                     # C4, E4, G4


def chroma_share(audio: np.ndarray, pitch_classes: list[int], n_fft: int = 8192, hop: int = 2048) -> float:
    """Energy on the given pitch classes (+-50 cents) over all energy in 55 Hz..5 kHz."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    band = (freqs >= 55) & (freqs <= 5000)
    midi = 69 + 12 * np.log2(freqs[band] / 440.0)
    on_class = np.isin(np.round(midi).astype(int) % 12, pitch_classes)
    return float(power[band][on_class].sum() / max(power[band].sum(), 1e-20))


def yin_f0(audio: np.ndarray, frame: int = 1920, hop: int = 960, fmin: float = 60, fmax: float = 1000,
           threshold: float = 0.15) -> np.ndarray:
    """f0 per frame (NaN when unvoiced): YIN's cumulative-mean-normalised difference, first dip under threshold,
    parabolic interpolation."""
    lo, hi = int(RATE / fmax), int(RATE / fmin)
    out = []
    for start in range(0, len(audio) - frame - hi, hop):
        x = audio[start:start + frame + hi]
        base = x[:frame]
        d = np.array([np.sum((base - x[tau:tau + frame]) ** 2) for tau in range(hi + 1)])
        cmnd = d[1:] * np.arange(1, hi + 1) / np.maximum(np.cumsum(d[1:]), 1e-20)
        cmnd = np.concatenate([[1.0], cmnd])
        below = np.flatnonzero(cmnd[lo:hi] < threshold)
        if not len(below) or np.sqrt(np.mean(base ** 2)) < 1e-3:
            out.append(np.nan)
            continue
        tau = lo + below[0]
        while tau + 1 < hi and cmnd[tau + 1] < cmnd[tau]:
            tau += 1
        a, b, c = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        out.append(RATE / (tau + shift))
    return np.array(out)


def yin_share(audio: np.ndarray, pitch_class: int) -> float:
    """Fraction of voiced frames whose YIN f0 lands on the pitch class."""
    f0 = yin_f0(audio)
    voiced = f0[np.isfinite(f0)]
    if not len(voiced):
        return 0.0
    return float(np.mean(np.round(69 + 12 * np.log2(voiced / 440.0)).astype(int) % 12 == pitch_class))


def yin_kept(dry: np.ndarray, audio: np.ndarray) -> float:
    """Fraction of the dry clip's voiced YIN frames whose pitch class YIN gives again, frame by frame, on `audio`."""
    def classes(x):
        f0 = yin_f0(x)
        return np.where(np.isfinite(f0), np.round(69 + 12 * np.log2(np.nan_to_num(f0, nan=440.0) / 440.0)) % 12, -1)
    before, after = classes(dry), classes(audio)
    voiced = before >= 0
    return float(np.mean(after[voiced] == before[voiced])) if voiced.any() else 0.0


def render_clips(n: int, seed: int) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for i in range(n):
            family = FAMILIES[i % len(FAMILIES)]
            mid = Path(tmp) / f"{i}.mid"
            music.class_midi(np.random.default_rng([seed, i]), family, 1, mid)
            audio = music.render_midi(mid, Path(tmp) / f"{i}.wav", OTHER_SOUNDFONT)
            clip = music.cut_slots(audio, 1)[0]
            clips.append((0.5 * clip / max(np.abs(clip).max(), 1e-6)).astype(np.float32))
    return clips


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--step-size", type=float, default=0.05)
    parser.add_argument("--octaves", type=int, default=3)
    parser.add_argument("--jitter", type=float, default=30.0, help="ms")
    parser.add_argument("--shape", type=float, default=Params.shape,
                        help="shape each step by the input's spectrum (render --shape; default: render's)")
    parser.add_argument("--top-db", type=float, default=Params.top_db, help="render --top-db (default: render's)")
    parser.add_argument("--sustain", type=float, default=Params.sustain_ms,
                        help="render --sustain, ms (default: render's; the figures before 2026-12-06, seventh session: 0)")
    parser.add_argument("--eq-bands", type=float, default=Params.eq_bands,
                        help="each step only re-EQs the input, in this many bands per octave (render --eq-bands)")
    parser.add_argument("--ceiling", type=float, default=Params.ceiling_db,
                        help="render --ceiling, dB over the music per time-frequency cell (default: render's, off)")
    parser.add_argument("--contrast", type=float, default=0.0,
                        help="also dream away from every other key, with this total weight (spread evenly)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.time()
    clips = render_clips(args.clips, args.seed)
    rng = np.random.default_rng(args.seed)
    base = Params(model="pitch", steps=args.steps, step_size=args.step_size, window_s=3.0, crossfade_s=0.0,
                  jitter_ms=args.jitter, octaves=args.octaves, shape=args.shape, top_db=args.top_db,
                  sustain_ms=args.sustain, eq_bands=args.eq_bands, ceiling_db=args.ceiling)
    schedule = Schedule.from_seconds(RATE, base.window_s, base.crossfade_s)
    dreamer = Dreamer(base.with_changes(target="C4"), RATE, 1, schedule.window)  # one build: targets are per window
    no_key = {name: Dreamer(base.with_changes(layer=layer), RATE, 1, schedule.window)
              for name, layer in (("default layer", None), ("heard", "heard"))}

    def with_noise(dry, out):
        noise = rng.standard_normal(len(dry)).astype(np.float32)
        change = out - dry
        noisy = dry + noise * np.sqrt(np.sum(change ** 2) / np.sum(noise ** 2))
        return out, noisy, float(10 * np.log10(np.sum(change ** 2) / np.sum(dry ** 2)))

    def dream(dry, target):
        away = None
        if args.contrast:
            held = {part.split(":")[0] for part in target.split(",")}
            others = [note_name(k) for k in range(21, 109) if note_name(k) not in held]
            away = ",".join(f"{k}:{args.contrast / len(others):.4g}" for k in others)
        params = base.with_changes(target=target, away=away)
        return with_noise(dry, render_array(dry[None], RATE, params, dreamer)[0])

    rows, chord_rows, own_rows = [], [], {name: [] for name in no_key}
    for i, dry in enumerate(clips):
        pcs = [chroma_share(dry, [pc]) for pc in range(12)]
        pc = int(np.argmin(pcs))
        key = 48 + pc + 12 * int(rng.integers(0, 3))        # C3..B5 with the least-present pitch class
        out, noisy, change_db = dream(dry, note_name(key))
        rows.append([chroma_share(x, [pc]) for x in (dry, out, noisy)] + [yin_share(x, pc) for x in (dry, out, noisy)]
                    + [change_db, yin_share(out - dry, pc), yin_share(noisy - dry, pc),
                       chroma_share(out - dry, [pc]), chroma_share(noisy - dry, [pc])])
        out, noisy, change_db = dream(dry, ",".join(note_name(k) for k in CHORD))
        chord_rows.append([chroma_share(x, [k % 12 for k in CHORD]) for x in (dry, out, noisy)] + [change_db])
        own = list(np.argsort(pcs)[-3:])
        for name, no_key_dreamer in no_key.items():
            out, noisy, change_db = with_noise(dry, render_array(dry[None], RATE, base, no_key_dreamer)[0])
            own_rows[name].append([chroma_share(x, own) for x in (dry, out, noisy)]
                                  + [yin_kept(dry, x) for x in (out, noisy)] + [change_db])
            print(f"clip {i}, no key, {name}: own chroma {own_rows[name][-1][0]:.3f} -> {own_rows[name][-1][1]:.3f} / "
                  f"noise {own_rows[name][-1][2]:.3f}; YIN kept {own_rows[name][-1][3]:.3f} / {own_rows[name][-1][4]:.3f}; "
                  f"change {change_db:.1f} dB", file=sys.stderr)
        print(f"clip {i}: family {FAMILIES[i % len(FAMILIES)]}, target {note_name(key)}: chroma "
              f"{rows[-1][0]:.3f} -> dream {rows[-1][1]:.3f} / noise {rows[-1][2]:.3f}; YIN {rows[-1][3]:.3f} -> "
              f"{rows[-1][4]:.3f} / {rows[-1][5]:.3f}; YIN of the change {rows[-1][7]:.3f} / {rows[-1][8]:.3f}; "
              f"change {change_db:.1f} dB", file=sys.stderr)
    r, c = np.array(rows), np.array(chord_rows)
    print(f"\n{len(clips)} TimGM6mb clips, 3 s each; --steps {args.steps} --step-size {args.step_size} --octaves "
          f"{args.octaves} --jitter {args.jitter:g} --shape {args.shape:g} --top-db {args.top_db:g} "
          f"--sustain {args.sustain:g} --ceiling {args.ceiling:g} --contrast {args.contrast:g}, one window "
          f"per clip; change energy {r[:, 6].mean():.1f} dB re the dry clip (single key), {c[:, 3].mean():.1f} dB (chord); "
          f"{time.time() - started:.0f} s\n")
    print("| target | ear | dry | dream | noise control | dream > noise in |")
    print("|---|---|---|---|---|---|")
    print(f"| one key (least-present pitch class) | chroma share of its pitch class | {r[:, 0].mean():.3f} | "
          f"{r[:, 1].mean():.3f} | {r[:, 2].mean():.3f} | {int((r[:, 1] > r[:, 2]).sum())}/{len(r)} clips |")
    print(f"| one key | YIN frames on its pitch class | {r[:, 3].mean():.3f} | {r[:, 4].mean():.3f} | "
          f"{r[:, 5].mean():.3f} | {int((r[:, 4] > r[:, 5]).sum())}/{len(r)} clips |")
    print(f"| one key | YIN frames of the change alone on its pitch class | - | {r[:, 7].mean():.3f} | "
          f"{r[:, 8].mean():.3f} | {int((r[:, 7] > r[:, 8]).sum())}/{len(r)} clips |")
    print(f"| one key | chroma share of the change alone (white noise: ~1/12) | - | {r[:, 9].mean():.3f} | "
          f"{r[:, 10].mean():.3f} | {int((r[:, 9] > r[:, 10]).sum())}/{len(r)} clips |")
    print(f"| chord C4,E4,G4 | chroma share of C, E, G | {c[:, 0].mean():.3f} | {c[:, 1].mean():.3f} | "
          f"{c[:, 2].mean():.3f} | {int((c[:, 1] > c[:, 2]).sum())}/{len(c)} clips |")
    print("\nNo key held (the dream's objective alone):\n")
    print("| objective | change re dry | chroma share of the clip's own 3 pitch classes: dry / dream / noise | "
          "dream > noise in | YIN frames kept: dream / noise | dream >= noise in |")
    print("|---|---|---|---|---|---|")
    for name, table in own_rows.items():
        o = np.array(table)
        print(f"| {name} | {o[:, 5].mean():.1f} dB | {o[:, 0].mean():.3f} / {o[:, 1].mean():.3f} / {o[:, 2].mean():.3f} | "
              f"{int((o[:, 1] > o[:, 2]).sum())}/{len(o)} clips | {o[:, 3].mean():.3f} / {o[:, 4].mean():.3f} | "
              f"{int((o[:, 3] >= o[:, 4]).sum())}/{len(o)} clips |")


if __name__ == "__main__":
    main()
