"""Audio files through libsndfile: read with validation, write atomically."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from ..atomic import atomic_path, check_writable
from ..errors import AudioFileError, ParameterError
from ..native import quiet_native_stderr

MIN_RATE, MAX_RATE = 8000, 192000
SUBTYPES = {"float": "FLOAT", "float32": "FLOAT", "16": "PCM_16", "pcm16": "PCM_16", "24": "PCM_24", "pcm24": "PCM_24"}
FORMATS = {".wav": "WAV", ".flac": "FLAC"}


@dataclass
class LoadedAudio:
    audio: np.ndarray      # (channels, frames) float32
    sample_rate: int
    replaced_nonfinite: int  # NaN/Inf samples set to 0
    warnings: list[str] = field(default_factory=list)  # truncation, NaN/Inf, beyond full scale


def valid_audio(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Check an in-memory signal: (channels, frames) or (frames,), 1-2 channels, finite floats.

    Returns a float32 (channels, frames) copy with NaN/Inf replaced by 0 and how many were replaced.
    """
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise ParameterError(f"audio must be floating point, got {audio.dtype}; divide integer PCM by its full scale")
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ParameterError(f"audio must have shape (channels, frames) with 1 or 2 channels, got {audio.shape}")
    if audio.shape[1] == 0:
        raise ParameterError("audio is empty; give at least one frame")
    if not (MIN_RATE <= int(sample_rate) <= MAX_RATE):
        raise ParameterError(f"sample rate {sample_rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz; resample the input")
    out = audio.astype(np.float32, copy=True)
    bad = ~np.isfinite(out)
    count = int(bad.sum())
    if count:
        out[bad] = 0.0
    return out, count


class AudioReader:
    """An audio file read in blocks: checked when opened, NaN/Inf replaced (and counted) as it is read.

    Use as a context manager; `read(n)` gives (channels, m) float32 with m < n only at the end.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.exists():
            raise AudioFileError(f"input file {path} does not exist; check the path")
        if path.is_dir():
            raise AudioFileError(f"input {path} is a directory; give an audio file")
        try:
            with quiet_native_stderr():
                info = sf.info(str(path))
        except Exception as exc:
            raise AudioFileError(f"{path} is not an audio file libsndfile can read (WAV, FLAC, OGG, AIFF...): "
                                 f"{_first_line(exc)}") from exc
        if info.channels > 2:
            raise AudioFileError(f"{path} has {info.channels} channels; streamdream takes mono or stereo, "
                                 "mix it down first (e.g. sox in.wav -c 2 out.wav)")
        if not (MIN_RATE <= info.samplerate <= MAX_RATE):
            raise AudioFileError(f"{path} is at {info.samplerate} Hz; streamdream works from {MIN_RATE} to {MAX_RATE} Hz")
        if info.frames == 0:
            raise AudioFileError(f"{path} holds no audio frames; give a file with sound in it")
        self.path = path
        self.sample_rate = int(info.samplerate)
        self.channels = int(info.channels)
        self.frames = int(info.frames)          # what is there (libsndfile counts what the file holds)
        self.missing = max(0, _promised_frames(path, info) - self.frames)
        self.replaced_nonfinite = 0
        self.peak = 0.0                         # largest |sample| read so far
        self.done = 0                           # frames read so far
        with quiet_native_stderr():
            self._file = sf.SoundFile(str(path))

    def read(self, n: int) -> np.ndarray:
        try:
            with quiet_native_stderr():
                data = self._file.read(n, dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioFileError(f"{self.path} is damaged ({_first_line(exc)}) after "
                                 f"{self.done / self.sample_rate:.1f} s; re-export it") from exc
        block = data.T
        bad = ~np.isfinite(block)
        count = int(bad.sum())
        if count:
            block = block.copy()
            block[bad] = 0.0
            self.replaced_nonfinite += count
        if block.size:
            self.peak = max(self.peak, float(np.abs(block).max()))
        self.done += block.shape[1]
        return block

    def warnings(self) -> list[str]:
        """What the caller should tell the user about the data (after reading it)."""
        said = []
        if self.missing:
            said.append(f"{self.path} is truncated: its header promises {self.missing} more frames "
                        f"({self.missing / self.sample_rate:.2f} s) than it holds; used the "
                        f"{self.frames / self.sample_rate:.2f} s that are there")
        if self.replaced_nonfinite:
            said.append(f"{self.path} held {self.replaced_nonfinite} NaN/Inf samples; replaced with 0")
        if self.peak > 1.0:
            said.append(f"{self.path} peaks at {self.peak:.3g}, {20 * np.log10(self.peak):.0f} dB beyond full scale; "
                        "the limiter brings the output under the ceiling, but lower the input's level")
        return said

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_audio(path: str | os.PathLike) -> LoadedAudio:
    """A whole file in memory (for short inputs: live --input, classify)."""
    with AudioReader(path) as reader:
        audio = reader.read(reader.frames)
        more = reader.read(MAX_RATE)
        while more.shape[1]:  # a compressed file's frame count can be an estimate
            audio = np.concatenate([audio, more], axis=1)
            more = reader.read(MAX_RATE)
    return LoadedAudio(audio, reader.sample_rate, reader.replaced_nonfinite, reader.warnings())


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _promised_frames(path: Path, info) -> int:
    """Frames a WAV header's data chunk promises (0 when unknown or not a WAV)."""
    if info.format not in ("WAV", "WAVEX"):
        return 0
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    at, block_align = 12, 0
    while at + 8 <= len(head):
        chunk, size = head[at:at + 4], int.from_bytes(head[at + 4:at + 8], "little")
        if chunk == b"fmt ":
            block_align = int.from_bytes(head[at + 20:at + 22], "little")
        elif chunk == b"data":
            # 0 and 0xFFFFFFFF mean "not known yet" (a recording still being written)
            return size // block_align if block_align and 0 < size < 0xFFFFFFFF else 0
        at += 8 + size + (size & 1)
    return 0


def check_output_path(path: str | os.PathLike, subtype: str, what: str = "output") -> tuple[Path, str, str]:
    """Validate before any work is done: known extension, known sample format, writable folder."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioFileError(f"{what} {path} must end in .wav or .flac")
    if subtype not in SUBTYPES:
        raise ParameterError(f"unknown sample format {subtype!r}; choose float32, 16 or 24")
    sf_subtype = SUBTYPES[subtype]
    if fmt == "FLAC" and sf_subtype == "FLOAT":
        raise ParameterError("FLAC holds integer samples only; use --format 16 or 24, or write .wav for float32")
    return check_writable(path, what), fmt, sf_subtype


BYTES_PER_SAMPLE = {"FLOAT": 4, "PCM_16": 2, "PCM_24": 3}
WAV_LIMIT = 0xFFFFFFFF - 1024   # a WAV's sizes are 32-bit; leave room for the header


def wav_container(frames: int, channels: int, sf_subtype: str) -> str:
    """"WAV", or "RF64" (the 64-bit WAV every current reader opens) when the data would pass 4 GiB."""
    return "RF64" if frames * channels * BYTES_PER_SAMPLE[sf_subtype] > WAV_LIMIT else "WAV"


@contextlib.contextmanager
def audio_writer(path: str | os.PathLike, sample_rate: int, channels: int, subtype: str = "float32",
                 frames: int = 0) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield write(block) for (channels, n) blocks; the file appears under `path` only when complete.

    `frames`, the length to expect, picks RF64 for a .wav too long for the 32-bit WAV format.
    """
    path, fmt, sf_subtype = check_output_path(path, subtype)
    if fmt == "WAV":
        fmt = wav_container(frames, channels, sf_subtype)
    with atomic_path(path) as tmp, sf.SoundFile(tmp, "w", sample_rate, channels, sf_subtype, format=fmt) as fh:
        yield lambda block: fh.write(np.ascontiguousarray(block.T))

