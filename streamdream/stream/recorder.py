"""--record: what went to the speakers, written by a plain thread (never by the callback)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import soundfile as sf

from ..atomic import publish, temp_beside
from ..audio.files import check_output_path
from ..audio.ring import AudioRing


class Recorder:
    """Drains a ring the callback fills; the file appears under its name only when closed.

    The temp file is a valid, growing WAV/FLAC beside the target, so even a crash leaves the
    audio recorded so far on disk.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str = "float32",
                 seconds_buffered: float = 20.0):
        self.path, fmt, sf_subtype = check_output_path(path, subtype)
        self.ring = AudioRing(channels, int(seconds_buffered * sample_rate))
        self.tmp = temp_beside(self.path)
        self.file = sf.SoundFile(self.tmp, "w", sample_rate, channels, sf_subtype, format=fmt)
        self.read_pos = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamdream-recorder", daemon=True)

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

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._drain()

    def close(self) -> Path:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._drain()
        self.file.close()
        publish(self.tmp, self.path)
        return self.path
