"""Feedback ("ouroboros"): a share of what was played goes back into the dream's input.

Fed back raw, a dream of a dream of a dream ends in screeching or noise. Three things keep it musical:

* loudness normalisation: the fed-back output is brought to the source's level (slow followers of
  both mean squares), so the input never gets louder than the piece itself;
* the limiter, which already bounds every output sample;
* the runaway guard (main thread): it compares the recent output's spectral flatness (noise), its
  tonality (one screeching partial) and its level with the source's own, and halves the feedback
  while any is out of bounds, letting it back slowly when the output is musical again.

`Feedback` is real-time code: the callback calls `mix_into` before writing the input ring and
`keep` after the limiter; no allocation, no locks.
"""
from __future__ import annotations

import math

import numpy as np

from ..audio.ring import AudioRing
from ..memory import resident_zeros

FOLLOW_S = 3.0           # time constant of the level followers used for normalisation
MAX_NORM_GAIN = 4.0      # never lift a quiet output more than 12 dB to match the source
RECENT_S = 2.0           # output kept for the guard to analyse
FFT = 2048


class Feedback:
    def __init__(self, share: float, channels: int, max_block: int, sample_rate: int):
        if not 0.0 <= share <= 1.0:
            raise ValueError("feedback share must be 0..1")
        self.share = share
        self.scale = 1.0                 # the guard's pull-back, 0..1 (main thread writes it)
        self.sample_rate = sample_rate
        self.previous = resident_zeros((channels, max_block), np.float32)
        self.previous_frames = 0
        self._square = resident_zeros((channels, max_block), np.float32)
        self.source_ms = 0.0
        self.output_ms = 0.0
        self.recent = AudioRing(channels, int(RECENT_S * sample_rate) + max_block)

    @property
    def effective(self) -> float:
        return self.share * self.scale

    def _follow(self, level: float, block: np.ndarray, frames: int) -> float:
        np.square(block, out=self._square[:, :frames])
        a = math.exp(-frames / (FOLLOW_S * self.sample_rate))
        return a * level + (1.0 - a) * float(self._square[:, :frames].mean())

    def mix_into(self, block_in: np.ndarray, frames: int) -> None:
        """block_in (the source) becomes (1 - F) source + F g output, g matching the two levels."""
        self.source_ms = self._follow(self.source_ms, block_in, frames)
        share = self.effective
        if share <= 0.0:
            return
        gain = min(MAX_NORM_GAIN, math.sqrt(self.source_ms / self.output_ms)) if self.output_ms > 1e-12 else 0.0
        block_in *= np.float32(1.0 - share)
        n = min(frames, self.previous_frames)  # blocks differ in size only at the edges of a run
        block_in[:, :n] += self.previous[:, :n] * np.float32(share * gain)

    def keep(self, played: np.ndarray, frames: int) -> None:
        self.previous[:, :frames] = played
        self.previous_frames = frames
        self.output_ms = self._follow(self.output_ms, played, frames)
        self.recent.write(played)

    def recent_output(self, seconds: float = RECENT_S) -> np.ndarray:
        n = min(int(seconds * self.sample_rate), self.recent.written, self.recent.capacity)
        return self.recent.read(self.recent.written - n, n)


def spectral_shape(audio: np.ndarray) -> tuple[float, float]:
    """(flatness, tonality) of a (channels, frames) excerpt, averaged over FFT frames.

    flatness: geometric / arithmetic mean of the power spectrum (1 = white noise, ~0 = a few partials);
    tonality: the share of the power in the strongest partial (its peak bin and two either side): a
    screeching feedback tone -> ~1, a chord or a mix -> well below.
    """
    mono = audio.mean(axis=0)
    frames = [mono[i:i + FFT] for i in range(0, mono.size - FFT + 1, FFT // 2)]
    flat, tonal = [], []
    window = np.hanning(FFT)
    for frame in frames:
        power = np.abs(np.fft.rfft(frame * window)) ** 2 + 1e-20
        if power.sum() < 1e-12:  # silence says nothing about the shape
            continue
        flat.append(float(np.exp(np.mean(np.log(power))) / np.mean(power)))
        peak = int(np.argmax(power))
        tonal.append(float(power[max(0, peak - 2):peak + 3].sum() / power.sum()))
    if not flat:
        return 0.0, 0.0
    return float(np.median(flat)), float(np.median(tonal))


def rms_db(audio: np.ndarray) -> float:
    return 10.0 * math.log10(float(np.mean(np.square(audio, dtype=np.float64))) + 1e-20)


class FeedbackGuard:
    """Pulls feedback back when the output drifts from the source towards noise, one tone or loudness.

    Bounds are relative to the source's own shape (measured once from the loop material): a noisy
    piece may stay noisy, a piece may not become noisier than MAX_FLATNESS_RISE over itself.
    """

    MAX_FLATNESS_RISE = 0.25   # absolute rise of spectral flatness over the source's
    MAX_TONALITY_RISE = 0.30   # absolute rise of the strongest bins' share over the source's
    MAX_LEVEL_RISE_DB = 6.0    # output RMS over the source's RMS
    RECOVER_PER_CHECK = 0.02   # scale regained per calm check (a check a second: ~50 s back to full)

    def __init__(self, feedback: Feedback, source: np.ndarray, report=print):
        self.feedback = feedback
        self.report = report
        self.source_flatness, self.source_tonality = spectral_shape(source)
        self.source_db = rms_db(source)
        self.pullbacks = 0

    def problem(self, recent: np.ndarray) -> str | None:
        if recent.shape[1] < FFT:
            return None
        flatness, tonality = spectral_shape(recent)
        level = rms_db(recent)
        if flatness > self.source_flatness + self.MAX_FLATNESS_RISE:
            return f"spectral flatness {flatness:.2f} (source {self.source_flatness:.2f}): turning to noise"
        if tonality > self.source_tonality + self.MAX_TONALITY_RISE:
            return f"tonality {tonality:.2f} (source {self.source_tonality:.2f}): one tone taking over"
        if level > self.source_db + self.MAX_LEVEL_RISE_DB:
            return f"level {level:.1f} dB (source {self.source_db:.1f} dB): getting louder"
        return None

    def check(self, recent: np.ndarray | None = None) -> str | None:
        """Call about once a second. Returns the reason when it pulled feedback back."""
        recent = self.feedback.recent_output() if recent is None else recent
        reason = self.problem(recent)
        fb = self.feedback
        if reason is not None:
            fb.scale *= 0.5
            self.pullbacks += 1
            self.report(f"feedback pulled back to {fb.effective:.3f} ({reason})")
        else:
            fb.scale = min(1.0, fb.scale + self.RECOVER_PER_CHECK)
        return reason
