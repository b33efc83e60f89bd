#!/usr/bin/env python3
"""Does a chord dreamed with the `pitch` model sound as that chord to a transcriber the dream never used?

Input: a held pad (GM program 89, "warm pad") playing one chord (default A major: A3 C#4 E4) for
18 s, rendered by fluidsynth with MuseScore General Lite (a soundfont the pitch model never heard; it
learned from FluidR3), re-struck every 6 s. It is dreamed toward another chord (default C4,E4,G4)
with `streamdream render --model pitch --target ...` (in this process), and judged by Basic Pitch
(Spotify's polyphonic transcriber, trained on recordings elsewhere; its ONNX model ships inside the
`basic-pitch` package and runs through that package's own `predict` on ONNX Runtime). Nothing here is
tuned to it: it is the judge only.

For the input, the dream and the noise control (the input plus white noise of the dream's change energy,
streamdream.listen.noise_control) it reports, over Basic Pitch's note frames (about 86 a second):

  all        share of frames where every target note's posterior is at least --threshold (Basic Pitch's
             own default frame threshold, 0.3): the chord is heard
  mean       the target notes' mean posterior
  kept       share of frames where every note of the pad is still heard (what survives of the music)
  change     the change's RMS against the input's, dB

Basic Pitch needs TensorFlow by its declared dependencies on Python 3.11, but runs its ONNX model without
it; install it beside streamdream in a venv of its own, so its pins touch nothing else:

    python3 -m venv --system-site-packages /tmp/bpv
    /tmp/bpv/bin/pip install --no-deps basic-pitch==0.4.0 'resampy<0.4.3' pretty-midi mir-eval librosa 'setuptools<81'
    nice -n 10 /tmp/bpv/bin/python lab/eval_chord.py --label defaults               # fluidsynth too
    nice -n 10 /tmp/bpv/bin/python lab/eval_chord.py --label swell -- --set swell_db=24   # after --: render's
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import train_default_model as music  # noqa: E402
from streamdream import cli  # noqa: E402
from streamdream.errors import exit_usage  # noqa: E402
from streamdream.listen import noise_control  # noqa: E402

RATE = 48000
PAD_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
NAMES = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "A": 9, "A#": 10, "B": 11}
LOWEST_MIDI = 21  # Basic Pitch's 88 note rows start at A0


def midi_number(name: str) -> int:
    return 12 * (int(name[-1]) + 1) + NAMES[name[:-1]]


def render_pad(notes: list[int], seconds: float, program: int, path: Path) -> np.ndarray:
    events: list = []
    events.append((0.0, bytes([0xC0, program])))
    strike = 6.0
    for start in np.arange(0.0, seconds, strike):
        for pitch in notes:
            music.note(events, 0, float(start), min(strike, seconds - start) - 0.05, pitch, 90)
    mid = path.with_suffix(".mid")
    music.write_midi(mid, events)
    mono = music.render_midi(mid, path, PAD_SOUNDFONT)[: int(seconds * RATE)]
    mono = 0.5 * mono / max(float(np.abs(mono).max()), 1e-6)
    return np.stack([mono, mono]).astype(np.float32)


def posteriors(audio: np.ndarray, path: Path) -> np.ndarray:
    """Basic Pitch's note posteriors, (frames, 88), for a (channels, frames) array."""
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import predict

    sf.write(path, audio.T, RATE)
    with contextlib.redirect_stdout(io.StringIO()):
        output, _, _ = predict(str(path), ICASSP_2022_MODEL_PATH)
    return output["note"]


def heard(post: np.ndarray, notes: list[int], threshold: float) -> tuple[float, float]:
    rows = post[:, [n - LOWEST_MIDI for n in notes]]
    return float(np.mean(np.all(rows >= threshold, axis=1))), float(rows.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="C4,E4,G4", help="the chord dreamed toward (render --target)")
    parser.add_argument("--pad", default="A3,C#4,E4", help="the chord the input pad plays")
    parser.add_argument("--seconds", type=float, default=18.0)
    parser.add_argument("--program", type=int, default=89, help="GM program of the pad, from 0 (89: warm pad)")
    parser.add_argument("--threshold", type=float, default=0.3, help="a note is heard at this posterior")
    parser.add_argument("--seed", type=int, default=1, help="render --seed and the noise's seed")
    parser.add_argument("--label", default="defaults")
    parser.add_argument("--json", type=Path, help="append this run's figures here (one JSON object per line)")
    parser.add_argument("--keep", type=Path, help="keep the input, the dream and the control in this directory")
    parser.add_argument("render_args", nargs="*", help="after --: more streamdream render options")
    args = parser.parse_args()
    if importlib.util.find_spec("basic_pitch") is None:
        exit_usage("Basic Pitch is missing: install it as this script's docstring says (python lab/eval_chord.py -h)")
    if not PAD_SOUNDFONT.exists():
        exit_usage(f"{PAD_SOUNDFONT} is missing; install it with: apt-get install musescore-general-soundfont-small")
    target = [midi_number(n) for n in args.target.split(",")]
    pad = [midi_number(n) for n in args.pad.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dry_path, wet_path = work / "pad.wav", work / "dream.wav"
        dry = render_pad(pad, args.seconds, args.program, work / "pad-render.wav")
        sf.write(dry_path, dry.T, RATE, subtype="FLOAT")
        code = cli.main(["render", str(dry_path), str(wet_path), "--model", "pitch", "--target", args.target,
                         "--seed", str(args.seed), *args.render_args])
        if code:
            return code
        wet = sf.read(wet_path, dtype="float32", always_2d=True)[0].T
        control = noise_control(dry, wet, args.seed)
        change_db = 20 * np.log10(np.sqrt(np.mean((wet - dry) ** 2)) / np.sqrt(np.mean(dry ** 2)))
        row = {"label": args.label, "target": args.target, "pad": args.pad, "seed": args.seed,
               "render_args": args.render_args, "change_db": round(float(change_db), 2)}
        for name, audio in (("input", dry), ("dream", wet), ("noise", control)):
            post = posteriors(audio, work / f"judged-{name}.wav")
            every, mean = heard(post, target, args.threshold)
            kept, _ = heard(post, pad, args.threshold)
            row[name] = {"all": round(every, 3), "mean": round(mean, 3), "kept": round(kept, 3)}
    print(f"| {args.label} | {row['input']['all']:.0%} / {row['dream']['all']:.0%} / {row['noise']['all']:.0%} "
          f"| {row['input']['mean']:.2f} / {row['dream']['mean']:.2f} / {row['noise']['mean']:.2f} "
          f"| {row['dream']['kept']:.0%} ({row['noise']['kept']:.0%}) | {row['change_db']:+.1f} dB |")
    if args.json:
        with args.json.open("a") as out:
            out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
