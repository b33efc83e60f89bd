#!/usr/bin/env python3
"""Long feedback run, offline: does a piece fed back into itself stay musical?

    python lab/feedback_offline.py [--minutes 120] [--feedback 1.0] [--model tiny|default|FILE]

Runs `streamdream loop` on the null device in lockstep (every window dreamed, as fast as the dreams allow,
the real loop path: feedback, normalisation, limiter, guard) over the demo clip, records it, then reads
the recording back in 10-s pieces and reports level and spectral shape against the source's, per
tenth of the run, and the guard's pull-backs. `tiny` (default) is the test suite's small random CNN, so
hours of audio take minutes; `default` is the shipped model.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # harness/: the test suite's small random CNN

from streamdream.errors import exit_usage  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402
from streamdream.stream.feedback import FeedbackGuard, rms_db, spectral_shape  # noqa: E402
from streamdream.stream.installation.material import load_loop  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--feedback", type=float, default=1.0)
    parser.add_argument("--intensity", type=float, default=2.0)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--recording", help="analyse this earlier run's recording instead of running again")
    args = parser.parse_args()
    if args.recording is None and args.minutes * 60 < 100:
        exit_usage("--minutes must give at least 100 s: the report reads each tenth of the run in 10-s pieces")
    work = Path(tempfile.mkdtemp(prefix="feedback_offline."))
    from streamdream.data import DEMO_CLIP, shipped_path
    demo = shipped_path(DEMO_CLIP)
    dream = []
    if args.model == "tiny":
        from harness.models import make_audio_model
        dream = ["--model", str(make_audio_model(work / "tiny.onnx")), "--set", "backend=eager",
                 "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "steps=2", "--set", "octaves=2"]
    elif args.model != "default":
        dream = ["--model", args.model]
    rec, log = work / "out.wav", work / "run.log"
    cmd = [sys.executable, "-m", "streamdream.cli", "loop", str(demo), *dream, "--intensity", str(args.intensity),
           "--feedback", str(args.feedback), "--device", "null", "--lockstep", "--samplerate", "16000",
           "--duration", str(args.minutes * 60), "--record", str(rec), "--record-format", "16", "--log", str(log),
           "--quiet", "--no-midi"]
    began = time.monotonic()
    if args.recording:
        rec, log = Path(args.recording), Path(args.recording).with_name("run.log")
    else:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    took = time.monotonic() - began
    source, rate = load_loop([demo], 16000)
    src_flat, src_tonal = spectral_shape(source)
    src_db = rms_db(source)
    rows, bad = [], 0
    with sf.SoundFile(str(rec)) as fh:
        rate = fh.samplerate
        tenth = fh.frames // 10
        for part in range(10):
            levels, flats, tonals = [], [], []
            for _ in range(tenth // (10 * rate)):
                chunk = fh.read(10 * rate, dtype="float32", always_2d=True).T
                levels.append(rms_db(chunk))
                f, t = spectral_shape(chunk)
                flats.append(f)
                tonals.append(t)
                bad += int(abs(levels[-1] - src_db) >= 6 or f >= src_flat + FeedbackGuard.MAX_FLATNESS_RISE
                           or t >= src_tonal + FeedbackGuard.MAX_TONALITY_RISE)
            rows.append((part, min(levels), max(levels), max(flats), max(tonals)))
    pullbacks = sum("feedback pulled back" in line for line in log.read_text().splitlines())
    cpu = cpu_name()
    print(f"machine: {cpu}; {args.minutes:g} min of audio in {took / 60:.1f} min; model {args.model}; "
          f"command: {' '.join(cmd[2:])}\n")
    print(f"source: level {src_db:.1f} dB, flatness {src_flat:.3f}, tonality {src_tonal:.3f}\n")
    print("| tenth of the run | level min..max (dB, 10-s pieces) | flatness max | tonality max |")
    print("|---|---|---|---|")
    for part, lo, hi, flat, tonal in rows:
        print(f"| {part + 1} | {lo:.1f}..{hi:.1f} | {flat:.3f} | {tonal:.3f} |")
    print(f"\n10-s pieces outside the bounds (level +-6 dB, flatness +{FeedbackGuard.MAX_FLATNESS_RISE}, tonality "
          f"+{FeedbackGuard.MAX_TONALITY_RISE} over the source): {bad}; guard pull-backs: {pullbacks}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
