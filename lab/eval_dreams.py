#!/usr/bin/env python3
"""Does a dream sound like its target to another ear, and does it grow out of the music?

Writes a few short multi-instrument arrangements (written in code below) rendered with
fluidsynth and a soundfont neither model trained on (MuseScore General Lite, Debian
musescore-general-soundfont-small; the default model heard FluidR3, the ear TimGM6mb),
dreams each toward each target label with the CLI (`streamdream render`, its entry point
called in this process so torch is imported once),
and judges every render with the independent ear (lab/ear.onnx, lab/ear.py), never
with the model that dreamed:

  rise       ear P(target) after - before
  vs noise   ear P(target) after - with white noise of the same change energy added instead
             (per channel, same RMS as the dream's change)
  own        ear P(the input's own top-1 label) after - before, and after - with the noise control:
             does a dream without a target make the music more itself (--preset bloom)?
  top3       the input's ear top-1 label is still in the ear's top 3 after the dream
  noise top3 the same for the noise control: how much identity the change's energy alone costs
  quiet      share of the change's energy in STFT cells > 50 dB below their frame's loudest
             input cell (STFT 2048/512, Hann, left channel)
  above      share of all those cells where the change is louder than the input
  moments    share of the frames where the change, summed over frequency, is louder than the input
             (frames within 60 dB of the clip's loudest): where the dream is heard over the music
  change     the change's RMS against the input's, dB (both channels): how loud the dream is beside the
             music, and so the level of the noise control's noise
  level      output RMS - input RMS, dB;  peak: output true peak, dBTP

    python lab/eval_dreams.py                                  # the defaults (vivid)
    python lab/eval_dreams.py --label deep -- --preset deep    # anything after -- goes to render
    python lab/eval_dreams.py --files a.ogg b.flac --offset 30 # 9-s excerpts of recordings instead
    python lab/eval_dreams.py --recordings /usr/share/games/wesnoth/1.16/data/core/music
                                   # lab/DREAMS.md's recordings: every fourth track of 60 s or more
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))  # train_default_model: the music the default model learned
sys.path.insert(0, str(REPO))
from ear import EAR_PATH, Ear  # noqa: E402
from train_default_model import control, note, write_midi  # noqa: E402
from streamdream import cli  # noqa: E402
from streamdream.audio.limiter import true_peak  # noqa: E402
from streamdream.errors import StreamDreamError, exit_usage  # noqa: E402
# One home for the recording loader and the noise control: the listening kit (`streamdream listen`) that a
# person hears and this eval share them, so the control heard is the control measured.
from streamdream.listen import RATE, SECONDS, check_recording, noise_control  # noqa: E402
from streamdream.listen import load_recording as stereo_at_eval_rate  # noqa: E402

SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
TARGETS = ["brass", "strings", "organ", "voice"]
QUIET_DB = 50.0

# (name, tempo bpm, [(role, GM program, pan, volume)], with drums?). Roles: bass, chords, arp, melody, pad.
ARRANGEMENTS = [
    ("band", 104, [("bass", 33, 64, 105), ("chords", 4, 40, 80), ("melody", 73, 80, 95)], True),
    ("chamber", 72, [("bass", 42, 50, 95), ("pad", 48, 80, 70), ("melody", 71, 40, 100)], False),
    ("piano", 90, [("bass", 0, 64, 90), ("arp", 0, 64, 80), ("melody", 0, 64, 100)], False),
    ("folk", 120, [("bass", 32, 60, 100), ("arp", 24, 30, 85), ("melody", 40, 95, 95)], True),
    # Added 2026-12-06, before any dream was measured on them: with four clips one render moved the
    # identity share by 6 points, as much as any setting differed from another.
    ("jazz", 132, [("bass", 32, 64, 105), ("chords", 11, 45, 75), ("melody", 66, 85, 100)], True),
    ("rock", 116, [("bass", 34, 64, 105), ("chords", 29, 35, 80), ("melody", 30, 90, 90)], True),
    ("synth", 100, [("bass", 38, 64, 100), ("pad", 89, 50, 75), ("melody", 80, 78, 90)], False),
    ("pastoral", 84, [("bass", 70, 55, 95), ("arp", 46, 75, 90), ("melody", 68, 45, 100)], False),
]
# I - vi - IV - V in C and relatives; each arrangement gets its own key and progression order.
CHORDS = [[0, 4, 7], [9, 12, 16], [5, 9, 12], [7, 11, 14], [2, 5, 9], [4, 7, 11]]


def arrangement_events(index: int) -> list:
    """One arrangement as MIDI events: a chord progression with bass, chords/arpeggio/pad, a melody, maybe drums."""
    name, bpm, parts, drums = ARRANGEMENTS[index]
    rng = np.random.default_rng(index)
    beat = 60.0 / bpm
    key = 48 + int(rng.integers(-5, 6))
    progression = [CHORDS[i] for i in rng.permutation(len(CHORDS))[:4]]
    events = []
    for ch, (role, program, pan, volume) in enumerate(parts):
        events.append((0.0, bytes([0xC0 | ch, program])))
        control(events, ch, 0.0, 10, pan)
        control(events, ch, 0.0, 7, volume)
        control(events, ch, 0.0, 91, 50)
    t, bar = 0.0, 0
    while t < SECONDS:
        chord = [key + c for c in progression[bar % len(progression)]]
        for ch, (role, _, _, _) in enumerate(parts):
            if role == "bass":
                for b in (0, 2):
                    note(events, ch, t + b * beat, 1.8 * beat, chord[0] - 12, 100)
            elif role == "chords":
                for b in (0, 1.5, 2, 3):
                    for p in chord:
                        note(events, ch, t + b * beat, 0.45 * beat, p + 12, 70)
            elif role == "pad":
                for p in chord:
                    note(events, ch, t, 3.9 * beat, p + 12, 65)
            elif role == "arp":
                tones = [chord[0], chord[1], chord[2], chord[0] + 12]
                for i in range(8):
                    note(events, ch, t + i * beat / 2, beat / 2, tones[i % 4] + 12, 60 + 10 * (i % 2 == 0))
            else:  # melody: chord tones and passing notes, a new note every half or whole beat
                b = 0.0
                while b < 4:
                    length = float(rng.choice([0.5, 1.0, 1.0, 1.5]))
                    pitch = chord[int(rng.integers(3))] + 24 + int(rng.choice([0, 0, 2, -1]))
                    note(events, ch, t + b * beat, min(length, 4 - b) * beat * 0.9, pitch, 90)
                    b += length
        if drums:
            for i in range(8):
                note(events, 9, t + i * beat / 2, 0.1, 42, 70 if i % 2 == 0 else 50)
            for b in (0, 2.5):
                note(events, 9, t + b * beat, 0.1, 36, 110)
            for b in (1, 3):
                note(events, 9, t + b * beat, 0.1, 38, 95)
        t += 4 * beat
        bar += 1
    control(events, 0, SECONDS + 0.5, 121, 0)
    return events


def make_clip(index: int, path: Path) -> None:
    """Render arrangement `index` to a 9-s stereo 48 kHz WAV peaking at -3 dBFS."""
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "clip.mid", Path(tmp) / "clip.wav"
        write_midi(mid, arrangement_events(index))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(RATE), "-R", "1", "-C", "0", "-O", "float",
                        "-T", "wav", "-F", str(wav), str(SOUNDFONT), str(mid)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    audio = audio[: int(SECONDS * RATE)]
    audio *= 10 ** (-3 / 20) / np.abs(audio).max()
    sf.write(str(path), audio, RATE, subtype="FLOAT")


def excerpt_clip(source: Path, offset_s: float, path: Path) -> None:
    """A 9-s stereo 48 kHz excerpt of an audio file from `offset_s` (earlier if the file ends sooner)."""
    try:
        audio = stereo_at_eval_rate(source)
    except StreamDreamError as exc:
        exit_usage(str(exc))
    length = int(SECONDS * RATE)
    start = min(int(offset_s * RATE), audio.shape[1] - length)
    sf.write(str(path), np.ascontiguousarray(audio[:, start:start + length].T), RATE, subtype="FLOAT")


def every_fourth_recording(folder: Path) -> list[Path]:
    """The recordings lab/DREAMS.md judges: of the audio files in `folder` that last at least 60 s, in name
    order, the first and every fourth after it (a rule fixed before any was dreamed, so none is picked for
    how it dreams). Files soundfile cannot read are not recordings and are passed over."""
    long_enough = []
    for path in sorted(folder.iterdir()):
        try:
            if path.is_file() and sf.info(str(path)).duration >= 60.0:
                long_enough.append(path)
        except RuntimeError:  # soundfile's error for a file it cannot read
            continue
    return long_enough[::4]


def stft_mag(x: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """|STFT| (frames, bins) with a Hann window, frames zero-padded at the ends."""
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    count = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(padded, (count, n_fft), (padded.strides[0] * hop, padded.strides[0]))
    return np.abs(np.fft.rfft(frames * window, axis=1))


def where_the_change_lands(dry: np.ndarray, change: np.ndarray) -> tuple[float, float, float]:
    """(share of the change's energy in cells > 50 dB below their frame's peak, share of cells where it is louder,
    share of the moments where it is louder: frames whose change outweighs the music in them, counted over the
    frames within 60 dB of the window's loudest, so a clip's leading silence does not count)."""
    x, d = stft_mag(dry.astype(np.float64)), stft_mag(change.astype(np.float64))
    quiet = x < x.max(axis=1, keepdims=True) * 10 ** (-QUIET_DB / 20)
    energy = d ** 2
    music, dream = (x ** 2).sum(axis=1), energy.sum(axis=1)
    heard = music > music.max() * 1e-6
    return (float(energy[quiet].sum() / max(energy.sum(), 1e-30)), float(np.mean(d > x)),
            float(np.mean(dream[heard] > music[heard])))


def tone_control(dry: np.ndarray, wet: np.ndarray) -> np.ndarray:
    """The dry clip (channels, frames) through the render's long-term tone curve: the render's average power
    over the dry clip's per frequency (STFT 2048, both channels, smoothed over a third of an octave), applied
    as one static zero-phase EQ, at the render's level. A dream that only re-balanced the music's bands
    would do no better than this; what it does beyond it is in time: which notes, hits and moments change."""
    power = lambda a: sum(stft_mag(ch.astype(np.float64)) ** 2 for ch in a).sum(axis=0)  # noqa: E731
    ratio = power(wet) / np.maximum(power(dry), 1e-30)
    freqs = np.arange(len(ratio)) * RATE / 2048
    octave = np.log2(np.maximum(freqs, 20.0))
    near = np.abs(octave[:, None] - octave[None, :]) <= 1 / 6
    curve = np.sqrt((near * ratio[None, :]).sum(axis=1) / near.sum(axis=1))
    spectrum = np.fft.rfft(dry.astype(np.float64), axis=1)
    gains = np.interp(np.fft.rfftfreq(dry.shape[1], 1 / RATE), freqs, curve)
    toned = np.fft.irfft(spectrum * gains, n=dry.shape[1], axis=1)
    toned *= np.sqrt(np.mean(np.square(wet, dtype=np.float64)) / max(np.mean(toned ** 2), 1e-30))
    return toned.astype(np.float32)


def mean_of(values: list) -> float:
    """Mean over the figures that exist (a render without a target has no rise): NaN when none do."""
    values = [float(v) for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def judge(ear: Ear, dry: np.ndarray, wet: np.ndarray, target: int, seed: int) -> dict:
    """Every figure for one render; dry and wet are (channels, frames)."""
    change = wet - dry
    before, after = ear.probabilities(dry, RATE), ear.probabilities(wet, RATE)
    own = int(np.argmax(before))  # the input's label, to the ear
    control_probs = ear.probabilities(noise_control(dry, wet, seed), RATE)
    tone_probs = ear.probabilities(tone_control(dry, wet), RATE)
    quiet, above, moments = where_the_change_lands(dry[0], change[0])
    rms = lambda a: np.sqrt(np.mean(np.square(a, dtype=np.float64)))  # noqa: E731
    if target < 0:  # no target (amplify what is there): no rise to measure
        before_t = after_t = control_t = tone_t = float("nan")
    else:
        before_t, after_t, control_t = float(before[target]), float(after[target]), float(control_probs[target])
        tone_t = float(tone_probs[target])
    return {"before": before_t, "after": after_t, "rise": after_t - before_t, "vs_noise": after_t - control_t,
            "vs_tone": after_t - tone_t,
            "own_rise": float(after[own] - before[own]), "own_vs_noise": float(after[own] - control_probs[own]),
            "own_vs_tone": float(after[own] - tone_probs[own]),
            "top3": bool(own in np.argsort(after)[-3:]),
            "noise_top3": bool(own in np.argsort(control_probs)[-3:]),
            "quiet": quiet, "above": above, "moments": moments, "level_db": float(20 * np.log10(rms(wet) / rms(dry))),
            "change_db": float(20 * np.log10(max(rms(change), 1e-30) / rms(dry))),
            "peak_dbtp": float(20 * np.log10(true_peak(wet))),
            "top_before": ear.labels[own], "top_after": ear.labels[int(np.argmax(after))]}


def main():
    argv = sys.argv[1:]
    render_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=len(ARRANGEMENTS),
                        help="dream the first N arrangements (all 8 by default; the figures before 2026-12-06 used 4)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="comma-separated labels; 'none' dreams without a target (no rise to measure)")
    parser.add_argument("--seed", type=int, default=1, help="render --seed")
    parser.add_argument("--label", default="defaults", help="name of this run in the printout and JSON")
    parser.add_argument("--json", type=Path, help="append this run's figures here (one JSON object per line)")
    parser.add_argument("--keep", type=Path, help="keep clips and renders in this directory (and reuse them)")
    parser.add_argument("--render-only", action="store_true", help="render, do not judge")
    parser.add_argument("--files", nargs="+", type=Path, metavar="AUDIO",
                        help="dream a 9-s excerpt of each of these recordings instead of the arrangements")
    parser.add_argument("--recordings", type=Path, metavar="DIR",
                        help="--files of every fourth recording of 60 s or more in DIR, in name order (lab/DREAMS.md "
                             "uses Debian wesnoth-music's /usr/share/games/wesnoth/1.16/data/core/music)")
    parser.add_argument("--offset", type=float, default=30.0, help="with --files: where each excerpt starts (s)")
    parser.add_argument("--ear", type=Path, action="append", metavar="ONNX",
                        help="judge with this ear (lab/ear.onnx by default; lab/ear_disjoint.onnx is the ear trained "
                             "on sources the dreaming model never heard); give it twice to judge the same renders by "
                             "both, one block and one JSON line each")
    args = parser.parse_args(argv)
    if args.recordings:
        if args.files:
            parser.error("give --files or --recordings, not both")
        if not args.recordings.is_dir():
            parser.error(f"--recordings {args.recordings}: not a folder; give the folder that holds the recordings")
        args.files = every_fourth_recording(args.recordings)
        if not args.files:
            parser.error(f"--recordings {args.recordings}: no audio file of 60 s or more there")
    if not args.files and (shutil.which("fluidsynth") is None or not SOUNDFONT.exists()):
        exit_usage("needs fluidsynth and MuseScore General; apt-get install fluidsynth "
                   "musescore-general-soundfont-small")
    for source in args.files or []:  # every recording checked before anything is written
        try:
            check_recording(source)
        except StreamDreamError as exc:
            exit_usage(str(exc))
    targets = args.targets.split(",")
    for path in args.ear or []:
        if not path.is_file():
            exit_usage(f"--ear {path}: no such file (the ears are lab/ear.onnx and lab/ear_disjoint.onnx)")
    ears = [Ear(path) for path in (args.ear or [EAR_PATH])]
    ear = ears[0]
    for t in targets:
        if t not in ear.labels + ["none"]:
            exit_usage(f"unknown target {t!r}; labels: {', '.join(ear.labels)}")
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="eval_dreams_"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    # 1. Renders (a render already in --keep with this label is reused: same command, same file).
    jobs = []
    if args.files:
        clips = [(f"{source.stem}@{args.offset:g}",
                  lambda path, source=source: excerpt_clip(source, args.offset, path)) for source in args.files]
    else:
        clips = [(ARRANGEMENTS[c][0], lambda path, c=c: make_clip(c, path))
                 for c in range(min(args.clips, len(ARRANGEMENTS)))]
    for c, (name, make) in enumerate(clips):
        clip = workdir / f"{name}.wav"
        if not clip.exists():
            make(clip)
        for target in targets:
            out = workdir / f"{name}-{target}-{args.label}.wav"
            if not out.exists():
                # The CLI's own entry point, in this process (one torch import for all renders).
                argv = ["render", str(clip), str(out), "--seed", str(args.seed), "--set", "crossfade_s=0", "--quiet",
                        *(["--target", target] if target != "none" else []), *render_args]  # one 9-s window
                code = cli.main(argv)
                if code != 0:  # the CLI has said why on its line; its exit code says whose fault it was
                    print(f"error: render failed: streamdream {' '.join(argv)}", file=sys.stderr)
                    sys.exit(code)
            jobs.append((c, name, clip, target, out))
    if args.render_only:
        print(f"rendered {len(jobs)} files into {workdir} ({time.time() - started:.0f} s)")
        return
    # 2. Each ear's verdict.
    for path, ear in zip(args.ear or [EAR_PATH], ears):
        verdict(args, ear, path, render_args, clips, jobs, targets, started)
    if not args.keep:
        shutil.rmtree(workdir)


def verdict(args, ear: Ear, ear_path: Path, render_args: list, clips: list, jobs: list, targets: list,
            started: float) -> None:
    """One ear's figures for every render, printed and (with --json) appended as one line."""
    rows = []
    print(f"# {args.label}: render {' '.join(render_args) or '(defaults)'}; judged by {ear_path.name}")
    width = max(8, *(len(name) for name, _ in clips))
    print(f"{'clip':{width}s} {'target':8s} {'before':>6s} {'after':>6s} {'rise':>6s} {'vs noise':>8s} "
          f"{'top3':>4s} "
          f"{'noise':>5s} {'own':>6s} {'quiet':>6s} {'above':>6s} {'moment':>6s} {'change':>6s} {'level':>6s} "
          f"{'peak':>6s}  "
          "ear top-1 before -> after")
    for c, name, clip, target, out in jobs:
        dry, _ = sf.read(str(clip), dtype="float32", always_2d=True)
        wet, _ = sf.read(str(out), dtype="float32", always_2d=True)
        r = judge(ear, dry.T, wet.T, ear.labels.index(target) if target != "none" else -1, seed=c)
        rows.append({"clip": name, "target": target, **r})
        print(f"{name:{width}s} {target:8s} {r['before']:6.2f} {r['after']:6.2f} {r['rise']:+6.2f} "
              f"{r['vs_noise']:+8.2f} "
              f"{'yes' if r['top3'] else 'no':>4s} {'yes' if r['noise_top3'] else 'no':>5s} {r['own_rise']:+6.2f} "
              f"{r['quiet']:6.1%} {r['above']:6.1%} {r['moments']:6.1%} {r['change_db']:+6.1f} {r['level_db']:+6.1f} "
              f"{r['peak_dbtp']:+6.1f}  "
              f"{r['top_before']} -> {r['top_after']}", flush=True)
    mean = {k: mean_of([r[k] for r in rows]) for k in ("rise", "vs_noise", "vs_tone", "own_rise", "own_vs_noise",
                                                      "own_vs_tone", "top3", "noise_top3", "quiet", "above", "moments",
                                                      "change_db", "level_db", "peak_dbtp")}
    mean["peak_dbtp_max"] = float(max(r["peak_dbtp"] for r in rows))
    toward = "" if np.isnan(mean["rise"]) else f"rise {mean['rise']:+.3f}, vs noise {mean['vs_noise']:+.3f}, "
    print(f"MEAN over {len(rows)} renders ({args.label}): {toward}"
          f"top-1 kept in top 3 {mean['top3']:.0%} (noise control {mean['noise_top3']:.0%}), "
          f"own label {mean['own_rise']:+.3f} (vs noise {mean['own_vs_noise']:+.3f}), "
          f"quiet {mean['quiet']:.1%}, above {mean['above']:.1%}, louder moments {mean['moments']:.1%}, "
          f"change {mean['change_db']:+.1f} dB against the music, "
          f"level {mean['level_db']:+.2f} dB, "
          f"true peak max {mean['peak_dbtp_max']:+.2f} dBTP ({time.time() - started:.0f} s)")
    toward_tone = "" if np.isnan(mean["rise"]) else f"rise {mean['vs_tone']:+.3f}, "
    print(f"  over the tone control (the dry clip through each render's average EQ): {toward_tone}"
          f"own label {mean['own_vs_tone']:+.3f}")
    # The mean over targets hides which targets carry it (lab/DREAMS.md: mostly voice).
    by_target = {t: {k: mean_of([r[k] for r in rows if r["target"] == t]) for k in ("rise", "vs_noise", "vs_tone",
                                                                                   "top3")}
                 for t in targets if t != "none"}
    for t, m in by_target.items():
        print(f"  {t:8s} rise {m['rise']:+.3f}, vs noise {m['vs_noise']:+.3f}, vs tone {m['vs_tone']:+.3f}, "
              f"top-1 kept in top 3 {m['top3']:.0%}")
    if args.json:
        with args.json.open("a") as fh:
            fh.write(json.dumps({"label": args.label, "render_args": render_args, "ear": ear_path.name, "seed": args.seed,
                                 "clips": [name for name, _ in clips],
                                 "mean": mean, "by_target": by_target, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
