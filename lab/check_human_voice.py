#!/usr/bin/env python3
"""Do the two models' "voice" labels mean a human voice, or espeak-ng's?

Both the dreaming model and the independent ear learned "voice" from espeak-ng (other voices and
languages for the ear), so a dream's rise toward voice could be espeak's sound more than a person's.
This plays them recordings of a real person: the ALSA speaker-test prompts ("Front Left", ...;
Debian `alsa-utils`, /usr/share/sounds/alsa, 48 kHz mono), each alone and all in a row, with the
package's own noise file beside them; and, as the control, espeak-ng saying the same words (its
default English voice, which both models' training used among others). It prints, per sound, each
model's top three labels and P(voice); the dreaming model hears each sound whole, as
`streamdream.dreaming.classify` does.

    python lab/check_human_voice.py [--model M] [--ear lab/ear_disjoint.onnx]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(REPO / "scripts"))
from ear import EAR_PATH, Ear  # noqa: E402
from train_default_model import SAMPLE_RATE, speak  # noqa: E402
from streamdream.dreaming.classify import classify  # noqa: E402
from streamdream.dreaming.model import read_model_info  # noqa: E402
from streamdream.errors import StreamDreamError, exit_usage  # noqa: E402

ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
NOISE = "Noise.wav"


def top3(probs: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(probs.items(), key=lambda kv: -kv[1])[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="dreaming model (default: the shipped one)")
    parser.add_argument("--ear", type=Path, default=EAR_PATH,
                        help="the ear to ask (default lab/ear.onnx; lab/ear_disjoint.onnx learned voice from festival)")
    args = parser.parse_args()
    voices = sorted(p for p in ALSA_SOUNDS.glob("*.wav") if p.name != NOISE)
    if not voices:
        exit_usage(f"no recordings in {ALSA_SOUNDS}; install them with: apt-get install alsa-utils")
    try:
        model = read_model_info(args.model)
    except StreamDreamError as exc:
        exit_usage(str(exc))
    if shutil.which("espeak-ng") is None:
        exit_usage("espeak-ng is missing; install it with: apt-get install espeak-ng")
    sounds = {}  # name: (audio (channels, frames), rate)
    for path in voices + [ALSA_SOUNDS / NOISE]:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        sounds[path.stem] = (audio.T, rate)
    gap = np.zeros((1, rate // 4), dtype=np.float32)
    in_a_row = np.concatenate([part for p in voices for part in (sounds[p.stem][0], gap)], axis=1)
    sounds["all eight in a row"] = (in_a_row, rate)
    with tempfile.TemporaryDirectory() as tmp:
        for path in voices:
            words = path.stem.replace("_", " ")
            # espeak-ng's own default pitch (50) and speed (175 words a minute)
            sounds[f"espeak-ng: {words}"] = (speak(words, "en", 50, 175, Path(tmp) / "prompt.wav")[None], SAMPLE_RATE)
    ear = Ear(args.ear)
    print("| sound | seconds | ear: top 3 | ear P(voice) | dreaming model: top 3 | model P(voice) |")
    print("|---|---|---|---|---|---|")
    heard = {}  # name: (the ear's probabilities, the dreaming model's)
    for name, (audio, rate) in sounds.items():
        heard[name] = (dict(zip(ear.labels, ear.probabilities(audio, rate))), classify(audio, rate, info=model))
        ear_probs, model_probs = heard[name]
        print(f"| {name} | {audio.shape[1] / rate:.1f} | {top3(ear_probs)} | {ear_probs['voice']:.2f} | "
              f"{top3(model_probs)} | {model_probs['voice']:.2f} |")
    print()
    for who, k in (("ear", 0), ("dreaming model", 1)):
        for speaker, names in (("person", [p.stem for p in voices]),
                               ("espeak-ng", [n for n in heard if n.startswith("espeak-ng: ")])):
            probs = [heard[n][k] for n in names]
            first = sum(max(pr, key=pr.get) == "voice" for pr in probs)
            print(f"{who}, {speaker}: voice is the top label of {first} of {len(probs)} prompts, mean P(voice) "
                  f"{np.mean([pr['voice'] for pr in probs]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
