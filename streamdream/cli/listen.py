"""`streamdream listen make | score`: a blind A/B listening test on your own recording (streamdream/listen.py)."""
from __future__ import annotations

import argparse
import sys

from ..params import RANGES
from .dream import SET_HELP, parse_sets


def cmd_make(a: argparse.Namespace) -> int:
    from ..listen import DEFAULT_PRESETS, DEFAULT_TARGET, QUESTIONS, make_kit

    changes = parse_sets(a.set_values)  # the named options over --set, as in render
    changes["seed"] = a.seed if a.seed is not None else changes.get("seed", 1)
    if a.model is not None:
        changes["model"] = a.model
    shown = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if shown:
            print(f"\rdreamed {done} of {total} trials", end="\n" if done == total else "", file=sys.stderr,
                  flush=True)

    target = a.target if a.target is not None else changes.get("target", DEFAULT_TARGET)
    changes.pop("target", None)
    trials = make_kit(a.recording, a.kit, target=target, presets=a.preset or DEFAULT_PRESETS,
                      excerpts=a.excerpts, changes=changes, progress=progress)
    print(f"{len(trials)} trials in {a.kit}: read {a.kit}/{QUESTIONS}, then answer and score")
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from ..listen import score_kit

    print("\n".join(score_kit(a.kit, a.answers).lines()))
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(sub) -> None:
    from ..control.presets import BUILTIN_PRESETS
    from ..listen import DEFAULT_PRESETS, DEFAULT_TARGET, SECONDS

    p = sub.add_parser("listen", help="a blind A/B test of the dream against a noise control, on your recording",
                       description="A blind A/B test on your own recording: does the dream beat white noise of "
                                   "the same energy and loudness to your ear?")
    commands = p.add_subparsers(dest="listen_command", required=True, metavar="make | score")
    m = commands.add_parser("make", help="cut excerpts, dream them, pair each with a noise control: a new kit folder",
                            description=f"Cut excerpts (one dream window, {SECONDS:g} s) spread over RECORDING, "
                                        "dream each toward --target with each preset, pair every dream with white "
                                        "noise of the same energy and loudness as A and B at random, and write "
                                        "them, QUESTIONS.md and the key to the new folder KIT.")
    m.add_argument("recording", help=f"your recording (WAV, FLAC, ...), at least one excerpt ({SECONDS:g} s)")
    m.add_argument("kit", help="a new folder for the kit (never written over)")
    m.add_argument("--target", metavar="LABEL",
                   help=f"the label every dream goes toward (default {DEFAULT_TARGET})")
    m.add_argument("--preset", action="extend", type=_names, metavar="NAME",
                   help=f"{' | '.join(BUILTIN_PRESETS)}, repeatable (default {', '.join(DEFAULT_PRESETS)})")
    m.add_argument("--excerpts", type=int, default=4, metavar="N",
                   help="excerpts, spread over the recording; one trial each per preset (default 4)")
    m.add_argument("--seed", type=int, metavar="N", help="the dreams' random seed (default 1)")
    m.add_argument("--model", metavar="MODEL", help=RANGES["model"].help)
    m.add_argument("--set", dest="set_values", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    m.set_defaults(func=cmd_make)
    s = commands.add_parser("score", help="count your answers against the kit's key",
                            description="Count your answers against the kit's key: how often you picked the dream, "
                                        "and how likely that is if a coin had picked.")
    s.add_argument("kit", help="the folder `listen make` wrote")
    s.add_argument("answers", help="your answers: one line per trial, TRIAL LETTER LETTER (QUESTIONS.md)")
    s.set_defaults(func=cmd_score)
