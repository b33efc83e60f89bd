#!/usr/bin/env python3
"""A blind listening test on your own recording: does the dream beat white noise to a person's ear?

The independent ear in scripts/eval_dreams.py is a model. The issue's last word is a person's: render
your own recording toward a label and hear that label's colour grow out of the music. This makes that
check blind and countable. `make` cuts a few 9-s excerpts from the recording, dreams each toward the
target with each preset, and pairs every dream with the control the eval uses (the excerpt with white
noise of the same energy added instead), brought to the dream's loudness so the louder one cannot win.
The pairs are named A and B at random; the key stays in a file you do not open until you have answered.
`score` reads your answers and says how often you picked the dream, and how likely that count is if a
coin had picked.

    python scripts/listening_test.py make MY_RECORDING.flac kit --target brass
    (listen; write kit/answers.txt as kit/QUESTIONS.md says)
    python scripts/listening_test.py score kit kit/answers.txt

Anything after `--` goes to every render (e.g. `-- --steps 8`). Renders run on this machine's CPU with
the shipped model: about 2 s of work per dream here (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from eval_dreams import RATE, SECONDS, noise_control, stereo_at_eval_rate  # noqa: E402
from streamdream import cli  # noqa: E402
from streamdream.atomic import raise_on_sigterm  # noqa: E402
from streamdream.control.presets import BUILTIN_PRESETS  # noqa: E402
from streamdream.errors import StreamDreamError, exit_usage  # noqa: E402

KEY = "key.json"


def excerpt_offsets(frames: int, count: int) -> list[int]:
    """Start frames of `count` 9-s excerpts spread evenly over the recording, each in the middle of its
    share of it, so the test hears the whole piece and not only its opening."""
    length = int(SECONDS * RATE)
    room = frames - length
    return [int(round(room * (k + 0.5) / count)) for k in range(count)]


def loudness_matched(audio: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`audio` scaled to the RMS of `like`, so the two in a pair differ in what they add, not in level."""
    rms = lambda a: np.sqrt(np.mean(np.square(a, dtype=np.float64)))  # noqa: E731
    return (audio * (rms(like) / max(rms(audio), 1e-30))).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> None:
    sf.write(str(path), np.ascontiguousarray(audio.T), RATE, subtype="FLOAT")


def questions(target: str, recording: str, trials: list[dict], excerpts: int) -> str:
    rows = "\n".join(f"| {t['trial']} | dry-{t['excerpt']}.wav | trial-{t['trial']}-A.wav, trial-{t['trial']}-B.wav |"
                     for t in trials)
    return f"""# Listening test: does the dream sound like {target} growing out of the music?

Recording: {recording}, {excerpts} excerpts of {SECONDS:g} s (`dry-1.wav` to `dry-{excerpts}.wav`, as they are).

Each trial is two versions of one excerpt. One is streamdream's dream toward {target}. The other is the same
excerpt with white noise of the same energy added instead, at the same loudness as the dream. Which is
which is in `{KEY}`: do not open it before you have answered every trial.

For each trial, listen to its dry excerpt, then to A and B, as often as you like. Write one line per trial
in a text file (e.g. `answers.txt` here):

    TRIAL  LETTER-THAT-SOUNDS-MORE-LIKE-{target.upper()}  LETTER-THAT-KEEPS-MORE-OF-THE-MUSIC

for example `3 B A`. Lines starting with # are ignored. Then:

    python scripts/listening_test.py score THIS_FOLDER answers.txt

| trial | listen first | the pair |
|---|---|---|
{rows}
"""


def make(args, render_args: list[str]) -> None:
    if args.folder.exists():
        exit_usage(f"{args.folder} already exists; give a new folder "
                   "(a kit, and any answers in it, is never written over)")
    if not args.folder.parent.is_dir():
        exit_usage(f"folder {args.folder.parent} does not exist; create it first")
    unknown = [p for p in args.presets if p not in BUILTIN_PRESETS]
    if unknown:
        exit_usage(f"unknown preset {unknown[0]!r}; choose from {', '.join(BUILTIN_PRESETS)}")
    if args.excerpts < 1:
        exit_usage("--excerpts must be 1 or more")
    try:
        audio = stereo_at_eval_rate(args.recording)
    except StreamDreamError as exc:  # unreadable, or shorter than an excerpt
        exit_usage(str(exc))
    raise_on_sigterm()  # a stopped kit is cleaned up below, by a service manager's SIGTERM too
    rng = np.random.default_rng()  # the A/B order: unseeded, so no two kits share it
    # Built in a hidden folder beside the kit and renamed into place when whole: a kit stopped halfway
    # leaves nothing that looks like a kit.
    work = Path(tempfile.mkdtemp(prefix=f".{args.folder.name}.", suffix=".part", dir=args.folder.parent))
    try:
        length = int(SECONDS * RATE)
        starts = excerpt_offsets(audio.shape[1], args.excerpts)
        for e, start in enumerate(starts, 1):
            write_wav(work / f"dry-{e}.wav", audio[:, start:start + length])
        # presets and excerpts in a random order, so that neither is heard in a run
        jobs = [(e, preset) for e in range(1, len(starts) + 1) for preset in args.presets]
        trials = []
        for trial, job in enumerate(rng.permutation(len(jobs)), 1):
            e, preset = jobs[job]
            dry = audio[:, starts[e - 1]:starts[e - 1] + length]
            dreamed = work / f"dream-{trial}.wav"
            argv = ["render", str(work / f"dry-{e}.wav"), str(dreamed), "--seed", str(args.seed),
                    "--crossfade", "0", "--quiet", "--target", args.target, "--preset", preset, *render_args]
            code = cli.main(argv)
            if code != 0:
                raise SystemExit(code)  # render said why, on its own line
            wet = sf.read(str(dreamed), dtype="float32", always_2d=True)[0].T
            dreamed.unlink()
            control = loudness_matched(noise_control(dry, wet, seed=trial), wet)
            dream_letter = "A" if rng.random() < 0.5 else "B"
            write_wav(work / f"trial-{trial}-A.wav", wet if dream_letter == "A" else control)
            write_wav(work / f"trial-{trial}-B.wav", control if dream_letter == "A" else wet)
            trials.append({"trial": trial, "excerpt": e, "start_s": round(starts[e - 1] / RATE, 2), "preset": preset,
                           "dream": dream_letter})
        (work / KEY).write_text(json.dumps({"recording": str(args.recording), "target": args.target,
                                            "render": render_args, "seed": args.seed, "trials": trials},
                                           indent=1) + "\n")
        (work / "QUESTIONS.md").write_text(questions(args.target, args.recording.name, trials, args.excerpts))
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the kit is the person's, with the usual mode
        work.rename(args.folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"{len(trials)} trials in {args.folder}: read {args.folder / 'QUESTIONS.md'}")


def chance_of_at_least(k: int, n: int) -> float:
    """P(k or more of n) if each pick were a fair coin: how easily chance alone gives this count."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def read_answers(path: Path, count: int) -> dict[int, tuple[str, str]]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        exit_usage(f"cannot read {path}: {exc.strerror}")
    answers = {}
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if (len(words) != 3 or not words[0].isdigit() or not 1 <= int(words[0]) <= count
                or any(w.upper() not in ("A", "B") for w in words[1:])):
            exit_usage(f"{path} line {number}: {line.strip()!r}; write TRIAL LETTER LETTER, e.g. '3 B A', "
                       f"trials 1 to {count}")
        trial = int(words[0])
        if trial in answers:
            exit_usage(f"{path} line {number}: trial {trial} is answered twice; keep one line per trial")
        answers[trial] = (words[1].upper(), words[2].upper())
    return answers


def score(args) -> None:
    try:
        key = json.loads((args.folder / KEY).read_text())
    except (OSError, ValueError):
        exit_usage(f"{args.folder} has no readable {KEY}; give the folder `make` wrote")
    trials = key["trials"]
    answers = read_answers(args.answers, len(trials))
    if not answers:
        exit_usage(f"{args.answers} answers no trial; write one line per trial, e.g. '3 B A'")
    answered = [t for t in trials if t["trial"] in answers]
    print(f"{len(answered)} of {len(trials)} trials answered; the dream toward {key['target']} against white noise "
          f"of the same energy and loudness ({key['recording']})")
    for question, which in ((f"sounds more like {key['target']}", 0), ("keeps more of the music", 1)):
        picked = [t for t in answered if answers[t["trial"]][which] == t["dream"]]
        print(f"{question}: the dream in {len(picked)} of {len(answered)} "
              f"(a coin would do this well with probability {chance_of_at_least(len(picked), len(answered)):.3f})")
        for preset in dict.fromkeys(t["preset"] for t in answered):
            of = [t for t in answered if t["preset"] == preset]
            print(f"  {preset:10s} {sum(t in picked for t in of)} of {len(of)}")


def main():
    argv = sys.argv[1:]
    render_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    kit = commands.add_parser("make", help="cut, dream and pair the excerpts into a new folder")
    kit.add_argument("recording", type=Path)
    kit.add_argument("folder", type=Path, help="a new folder for the kit")
    kit.add_argument("--target", default="brass", help="the label to dream toward (default: brass, as the issue asks)")
    kit.add_argument("--presets", type=lambda s: s.split(","), default=["toward", "faithful"],
                     help="comma-separated presets, one trial each per excerpt (default: toward,faithful)")
    kit.add_argument("--excerpts", type=int, default=4, help="9-s excerpts, spread over the recording (default 4)")
    kit.add_argument("--seed", type=int, default=1, help="render --seed")
    marks = commands.add_parser("score", help="count a person's answers against the key")
    marks.add_argument("folder", type=Path)
    marks.add_argument("answers", type=Path)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args, render_args)
    else:
        score(args)


if __name__ == "__main__":
    main()
