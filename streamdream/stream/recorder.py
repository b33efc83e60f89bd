"""--record: what went to the speakers, written by a plain thread (never by the callback).

Built for nights unattended:

* the file is flushed, its header brought up to date and synced to disk at least once a second, so
  after a SIGKILL or a power cut everything up to the last flush is readable;
* .wav recordings are RF64 (WAV with 64-bit sizes) once they pass 4 GB, plain WAV until then
  (a float32 stereo night at 48 kHz is about 13 GB);
* a full disk (or any write error) stops the recording with a message; the audio plays on;
* it keeps the wall clock's time: cycles the audio device skipped (SkippedTime) are recorded as the
  silence they were, so an hour of recording is an hour long even on a machine that stalls.

While recording, the audio grows in a hidden ".NAME.XXXX.part.EXT" beside the target (atomic.temp_beside);
it takes the target's name when the run ends.
"""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import soundfile as sf

from ..atomic import publish, temp_beside
from ..audio.files import check_output_path
from ..audio.ring import AudioRing

FLUSH_EVERY_S = 1.0
_SFC_UPDATE_HEADER_NOW = 0x1060   # libsndfile: rewrite the header for the frames written so far
_SFC_RF64_AUTO_DOWNGRADE = 0x1210  # libsndfile: an RF64 file under 4 GB is closed as plain WAV
DEFAULT_FORMATS = {".wav": "float32", ".flac": "24"}


def default_format(path: str | os.PathLike, asked: str | None) -> str:
    """--record-format when not given: float32 in a .wav, 24-bit in a .flac (FLAC holds no floats)."""
    return asked or DEFAULT_FORMATS.get(Path(path).suffix.lower(), "float32")


class SkippedTime:
    """How many frames the audio device skipped, measured against the wall clock.

    When the machine or the audio server stalls, the server drops the time it missed (JACK's dummy
    driver restarts its cycle; a sound card underruns): the callback is simply not called for it,
    and the audio falls behind the wall clock by that much. The recording should hold what the
    speakers played then, which is silence.

    Each callback's lag is (time since the first callback) - (frames the device asked for, plus
    those already counted as skipped) / rate. A callback that carries an xrun flag opens a watch of
    SETTLE callbacks (a flag during it starts it again). The lowest lag in the watch, minus the steady
    lag before it (_steady_lag: lowest lags over stretches as long, their median over the last second),
    is the time skipped, counted in frames, since a restarted server loses any span:

    * lowest against lowest of as many callbacks, so callback jitter does not add up over thousands
      of xruns (in the tests: 6 us per xrun, 1.2 ms over 200);
    * the watch's first CATCH_UP callbacks are left out: a JACK server that missed a deadline runs the
      next cycle at once and starts its new timeline one period after that cycle's end, so the
      callback run at once is early by the cycle's processing time (0.2-0.5 ms per xrun in the hour
      soak, lost to the recording until this was seen);
    * a second of history, so a flag that comes some callbacks after the stall still finds the lag from
      before it, while a sound card's clock a few ppm off the system's moves it by microseconds;
    * without an xrun flag nothing is counted: a slow clock, or a late callback the device catches
      up on, adds no silence.

    The silence goes into the recording when the watch ends, 0.17 s after the gap itself. Called once
    per device callback, on the audio thread: arithmetic on a fixed list; a few small lists per xrun.
    """

    SETTLE = 16    # callbacks: 0.17 s at 48 kHz / 512
    CATCH_UP = 4   # the watch's first callbacks, left out of its lowest (see above)
    HISTORY = 96   # callbacks: 1 s

    def __init__(self, sample_rate: int):
        self.rate = float(sample_rate)
        self.start = -1.0
        self.frames = 0    # frames the device asked for, plus those counted as skipped
        self.skipped = 0
        self.recent = [math.inf] * self.HISTORY  # the last HISTORY lags, a ring
        self.at = 0
        self.watch = 0     # callbacks left in the watch after an xrun
        self.offset = 0.0  # the steady lag before the watch
        self.lowest = 0.0  # lowest lag in the watch
        self.first_offset = math.inf  # lowest lag of the first HISTORY callbacks

    def block(self, now: float, frames: int, xrun: bool) -> int:
        """A callback starting at `now` (time.perf_counter) for `frames` frames -> frames skipped, to record
        as silence before it."""
        if self.start < 0:
            self.start = now
        lag = (now - self.start) - self.frames / self.rate
        if xrun:
            if self.watch == 0:
                self.offset = self._steady_lag()
            self.watch, self.lowest = self.SETTLE, math.inf
        if 0 < self.watch <= self.SETTLE - self.CATCH_UP:
            self.lowest = min(self.lowest, lag)
        self.recent[self.at] = lag
        self.at = (self.at + 1) % self.HISTORY
        if self.at == 0 and self.first_offset == math.inf:
            self.first_offset = min(self.recent)
        skipped = 0
        if self.watch > 0:
            self.watch -= 1
            if self.watch == 0 and self.offset < math.inf:  # (no offset yet: an xrun in the first callbacks)
                skipped = max(0, round((self.lowest - self.offset) * self.rate))
                # The watch's settled lags are now measured with the skipped frames counted; they are all at or
                # above the lowest, so none goes below the offset. Older ones stay: from before the stall they
                # are right; from between stall and flag, and the catch-up, they are high or early by a cycle's
                # processing, which a later watch's offset would pick up, so they are raised out of its way.
                for back in range(self.CATCH_UP + 1, self.SETTLE + 1):
                    self.recent[(self.at - back) % self.HISTORY] = math.inf
                for back in range(1, self.SETTLE - self.CATCH_UP + 1):
                    self.recent[(self.at - back) % self.HISTORY] -= skipped / self.rate
        self.frames += skipped + frames
        self.skipped += skipped
        return skipped

    def _steady_lag(self) -> float:
        """The median, over the HISTORY's stretches of SETTLE - CATCH_UP callbacks, of each stretch's lowest lag.
        A watch's lowest is taken over as many callbacks, so both are "lowest of so many" and the jitter
        cancels; a median, so the few stretches a late flag leaves high do not move it. Once per xrun."""
        n = self.SETTLE - self.CATCH_UP
        lows = sorted(min(self.recent[i:i + n]) for i in range(0, self.HISTORY, n))
        middle = len(lows) // 2
        return (lows[middle - 1] + lows[middle]) / 2 if len(lows) % 2 == 0 else lows[middle]

    def behind_s(self) -> float:
        """How far the recording's timeline is behind the wall clock now, against its first second
        (lowest lags of each); what skipped time went uncounted. Read by the stats, from any thread."""
        return min(self.recent) - self.first_offset if self.first_offset < math.inf else 0.0


class Recorder:
    """Drains a ring the callback fills into a file that is safe on disk every second."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str | None = None,
                 seconds_buffered: float = 20.0):
        self.path, fmt, sf_subtype = check_output_path(path, default_format(path, subtype))
        self.ring = AudioRing(channels, int(seconds_buffered * sample_rate))
        self.tmp = temp_beside(self.path)
        self.file = sf.SoundFile(self.tmp, "w", sample_rate, channels, sf_subtype,
                                 format="RF64" if fmt == "WAV" else fmt)
        if fmt == "WAV":
            self._command(_SFC_RF64_AUTO_DOWNGRADE, 1)
        self.read_pos = 0
        self.frames_written = 0
        self.dropped = 0
        self.error: str | None = None    # set when writing failed; nothing more is written
        self.error_said = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamdream-recorder", daemon=True)

    def _command(self, command: int, value: int) -> None:
        sf._snd.sf_command(self.file._file, command, sf._ffi.NULL, value)

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        written = self.ring.written
        if written - self.read_pos > self.ring.capacity:  # the disk fell behind: count what was lost
            self.dropped += written - self.ring.capacity - self.read_pos
            self.read_pos = written - self.ring.capacity
        while self.read_pos < written:
            n = min(written - self.read_pos, 65536)
            self.file.write(self.ring.read(self.read_pos, n).T)
            self.read_pos += n
            self.frames_written += n

    def _flush(self) -> None:
        self.file.flush()
        self._command(_SFC_UPDATE_HEADER_NOW, 0)
        # soundfile does not expose libsndfile's descriptor; any descriptor of the file syncs its pages
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _run(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.wait(0.1):
            try:
                self._drain()
                if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                    self._flush()
                    last_flush = time.monotonic()
            except Exception as exc:  # disk full, file too large, device gone: stop recording, keep playing
                self.error = _describe(exc)
                return

    def close(self) -> Path:
        """Finish the file and give it its name (also after a write error: what was written is kept)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.error is None:
            try:
                self._drain()
            except Exception as exc:
                self.error = _describe(exc)
        try:
            self.file.close()
        except Exception as exc:
            self.error = self.error or _describe(exc)
        publish(self.tmp, self.path)
        return self.path

    def abandon(self) -> None:
        """Before start: the run never began, so the empty file goes."""
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def _describe(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"writing the recording failed ({text}); is the disk full?"
