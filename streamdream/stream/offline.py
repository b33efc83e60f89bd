"""Offline render: the live data path with a file in place of the audio callback, streamed.

Audio comes in and goes out in pieces, window by window, so memory is bounded by a few
windows whatever the file's length. The arithmetic is the one a whole-array render would do,
in the same order (each frame's delta is 0 + window k's share + window k+1's share; the limiter's
output does not depend on how its input is cut), so the result is the same to the bit.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..audio.files import AudioReader, audio_writer
from ..audio.limiter import TruePeakLimiter
from ..params import Params
from ..dreaming.dreamer import Dreamer
from ..audio.mix import mix_output, window_delta
from ..windows import Schedule

LIMITER_BLOCK = 65536   # frames per limiter call: its work buffers scale with the block


@dataclass
class RenderReport:
    windows: int = 0
    failed_windows: int = 0       # dreams that went non-finite; their slot plays dry
    dream_seconds: list = field(default_factory=list)
    frames: int = 0               # input frames rendered


# read(n) -> (channels, m) float32 with m <= n; m < n only at the end of the input.
Reader = Callable[[int], np.ndarray]
# write(block) takes (channels, m) float32 output, in order.
Writer = Callable[[np.ndarray], None]


def render_stream(read: Reader, write: Writer, channels: int, sample_rate: int, params: Params,
                  dreamer: Dreamer | None = None, progress: Callable[[int], None] | None = None,
                  report: RenderReport | None = None) -> RenderReport:
    """Dream everything `read` yields and `write` the limited output, one hop at a time.

    Holds one window of input and of crossfaded delta; `progress(windows_done)` after each window.
    """
    schedule = Schedule.from_seconds(sample_rate, params.window_s, params.crossfade_s)
    dreamer = dreamer or Dreamer(params, sample_rate, channels, schedule.window)
    report = report if report is not None else RenderReport()
    window, hop = schedule.window, schedule.hop
    finisher = _Finisher(write, channels, sample_rate, params)
    dry = np.zeros((channels, window), dtype=np.float32)    # input frames [start, start + window), 0 past the end
    delta = np.zeros((channels, window), dtype=np.float32)  # summed window shares for the same frames
    have = 0          # frames of `dry` filled from the input
    total = None      # input length, known once `read` comes up short
    k = 0
    while True:
        if total is None and have < window:
            piece = read(window - have)
            dry[:, have:have + piece.shape[1]] = piece
            have += piece.shape[1]
            if have < window:
                total = schedule.start(k) + have
        start = schedule.start(k)
        if k > 0 and total is not None and start >= total:
            break
        began = time.perf_counter()
        dreamed = dreamer.dream_window(dry, k, params)
        report.dream_seconds.append(time.perf_counter() - began)
        report.failed_windows += dreamed is None
        delta += schedule.weights(k) * window_delta(dry, dreamed, params.match_loudness)
        report.windows += 1
        # Frames before the next window's start now have every share they will get.
        final = hop if total is None else min(hop, total - start)
        finisher.push(dry[:, :final], delta[:, :final])
        # Slide both by one hop; the rest of the next window is read on the next pass.
        dry[:, :window - hop] = dry[:, hop:]
        dry[:, window - hop:] = 0.0
        delta[:, :window - hop] = delta[:, hop:]
        delta[:, window - hop:] = 0.0
        have = max(0, have - hop)
        k += 1
        if progress:
            progress(k)
    finisher.close()
    report.frames = total
    return report


class _Finisher:
    """Instant controls and the limiter, exactly as the audio callback applies them, block by block."""

    def __init__(self, write: Writer, channels: int, sample_rate: int, params: Params):
        self.write = write
        self.gain = np.float32(10.0 ** (params.gain_db / 20.0))
        self.intensity, self.mix = np.float32(params.intensity), np.float32(params.mix)
        self.limiter = TruePeakLimiter(sample_rate, channels, params.limit_db)
        self.skip = self.limiter.latency  # the limiter's first output frames precede the input

    def push(self, dry: np.ndarray, delta: np.ndarray) -> None:
        for at in range(0, dry.shape[1], LIMITER_BLOCK):
            piece = slice(at, at + LIMITER_BLOCK)
            self._limit(mix_output(dry[:, piece], delta[:, piece], self.intensity, self.mix, self.gain))

    def _limit(self, block: np.ndarray) -> None:
        out = self.limiter.process(block)
        if self.skip:
            dropped = min(self.skip, out.shape[1])
            out, self.skip = out[:, dropped:], self.skip - dropped
        if out.shape[1]:
            self.write(out)

    def close(self) -> None:
        """Flush what the limiter still holds back."""
        self._limit(np.zeros((self.limiter.channels, self.limiter.latency), dtype=np.float32))


def render_file(source: str | os.PathLike, output: str | os.PathLike, params: Params, fmt: str = "float32",
                dreamer_for: Callable[..., Dreamer] | None = None,
                progress: Callable[[int, int], None] | None = None,
                tap: tuple[Writer, Writer] | None = None,
                before_publish: Callable[[RenderReport, int], None] | None = None) -> tuple[RenderReport, AudioReader]:
    """Dream the audio file `source` into `output` (written atomically), streamed window by window.

    `dreamer_for(params, rate, channels, window_frames)` gives the Dreamer (a batch worker reuses its
    loaded ones); `progress(windows_done, windows_total)`; `tap` sees each input and output block;
    `before_publish(report, rate)` runs before the output is renamed into place, so its failure leaves no output.
    Returns the report and the (closed) reader, whose `warnings()` are the caller's to tell.
    """
    dreamer_for = dreamer_for or Dreamer
    with AudioReader(source) as reader:
        rate, channels = reader.sample_rate, reader.channels
        schedule = Schedule.from_seconds(rate, params.window_s, params.crossfade_s)
        dreamer = dreamer_for(params, rate, channels, schedule.window)
        total = schedule.count(reader.frames)

        def read(n: int) -> np.ndarray:
            block = reader.read(n)
            if tap:
                tap[0](block)
            return block

        with audio_writer(output, rate, channels, fmt, reader.frames) as write_audio:
            def write(block: np.ndarray) -> None:
                write_audio(block)
                if tap:
                    tap[1](block)

            report = render_stream(read, write, channels, rate, params, dreamer,
                                   progress and (lambda done: progress(done, total)))
            if before_publish:
                before_publish(report, rate)
    return report, reader


def render_array(audio: np.ndarray, sample_rate: int, params: Params, dreamer: Dreamer | None = None,
                 progress: Callable[[int], None] | None = None,
                 report: RenderReport | None = None) -> np.ndarray:
    """The same render for a (channels, frames) float32 signal held in memory."""
    out = np.empty_like(audio)
    pos = {"in": 0, "out": 0}

    def read(n: int) -> np.ndarray:
        piece = audio[:, pos["in"]:pos["in"] + n]
        pos["in"] += piece.shape[1]
        return piece

    def write(block: np.ndarray) -> None:
        out[:, pos["out"]:pos["out"] + block.shape[1]] = block
        pos["out"] += block.shape[1]

    render_stream(read, write, audio.shape[0], sample_rate, params, dreamer, progress, report)
    return out
