"""Installation mode on the live engine: the looped material as the source, with feedback, evolution,
the day's schedule and a rotating log. The ticks run on the main thread, never in the audio callback:
run_live calls each about ten times a second with the engine and the audio time so far."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ParameterError
from ...params import Params
from .evolve import Evolver
from .material import load_loop, read_playlist
from .piece import Piece, check_piece


def setup_log(path: str | None) -> None:
    """A rotating log file (10 x 5 MB) beside the screen, so a week's messages survive and never fill the disk."""
    import logging
    from logging.handlers import RotatingFileHandler

    log = logging.getLogger("streamdream")
    log.setLevel(logging.INFO)
    if path is None or any(getattr(h, "baseFilename", None) == str(Path(path).resolve()) for h in log.handlers):
        return
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ParameterError(f"log folder {folder} does not exist; create it first")
    handler = RotatingFileHandler(path, maxBytes=5 * 2**20, backupCount=10)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)


def run_loop(piece: Piece, params: Params, opts, console, ticks=()) -> dict:
    """Installation mode on run_live: the looped material as the source, feedback, evolution, schedule."""
    from ...dreaming.model import read_model_info
    from ..live import run_live

    check_piece(piece)
    setup_log(piece.log)
    # the loop is made once at the rate the device will run (the null device: the material's own rate)
    audio, rate = load_loop(read_playlist(piece.files), opts.samplerate or (None if opts.output_device == "null" else 48000))
    ticks = list(ticks)
    if piece.evolve:
        info = read_model_info(params.model, params.view)
        ticks.append(Evolver(params, info.layer_choices, info.labels, piece.evolve_seed,
                             piece.evolve_period_s))
    if piece.schedule is not None:
        ticks.append(piece.schedule)
    if piece.feedback > 0:
        ticks.append(GuardTick(audio, rate))
    return run_live(params, opts, console, source_audio=(audio, rate), ticks=ticks,
                    feedback=piece.feedback if piece.feedback > 0 else None)


class GuardTick:
    """Runs the feedback guard once per second of audio (it needs the engine's Feedback, made later)."""

    def __init__(self, source: np.ndarray, rate: int):
        self.source = source[:, :min(source.shape[1], 60 * rate)]  # the first minute is enough to know its shape
        self.guard = None
        self.next_check = 1.0

    def tick(self, engine, seconds: float, say) -> None:
        if self.guard is None:
            from ..feedback import FeedbackGuard
            self.guard = FeedbackGuard(engine.feedback, self.source, report=say.warn if hasattr(say, "warn") else say)
        if seconds >= self.next_check:
            self.next_check = seconds + 1.0
            self.guard.check()
