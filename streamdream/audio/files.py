"""Audio files through libsndfile: read with validation, write atomically."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioFileError, ParameterError

MIN_RATE, MAX_RATE = 8000, 192000
SUBTYPES = {"float": "FLOAT", "float32": "FLOAT", "16": "PCM_16", "pcm16": "PCM_16", "24": "PCM_24", "pcm24": "PCM_24"}
FORMATS = {".wav": "WAV", ".flac": "FLAC"}


@dataclass
class LoadedAudio:
    audio: np.ndarray      # (channels, frames) float32
    sample_rate: int
    replaced_nonfinite: int  # NaN/Inf samples set to 0


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


def read_audio(path: str | os.PathLike) -> LoadedAudio:
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"input file {path} does not exist; check the path")
    if path.is_dir():
        raise AudioFileError(f"input {path} is a directory; give an audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioFileError(f"{path} is not an audio file libsndfile can read (WAV, FLAC, OGG, AIFF...): "
                             f"{str(exc).splitlines()[0]}") from exc
    if info.channels > 2:
        raise AudioFileError(f"{path} has {info.channels} channels; streamdream takes mono or stereo, "
                             "mix it down first (e.g. sox in.wav -c 2 out.wav)")
    if not (MIN_RATE <= info.samplerate <= MAX_RATE):
        raise AudioFileError(f"{path} is at {info.samplerate} Hz; streamdream works from {MIN_RATE} to {MAX_RATE} Hz")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(f"{path} is damaged or truncated ({str(exc).splitlines()[0]}); re-export it") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{path} holds no audio frames; give a file with sound in it")
    audio, replaced = valid_audio(data.T, rate)
    return LoadedAudio(audio, int(rate), replaced)


def check_output_path(path: str | os.PathLike, subtype: str) -> tuple[Path, str, str]:
    """Validate before any work is done: known extension, known sample format, writable folder."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioFileError(f"output {path} must end in .wav or .flac")
    if subtype not in SUBTYPES:
        raise ParameterError(f"unknown sample format {subtype!r}; choose float32, 16 or 24")
    sf_subtype = SUBTYPES[subtype]
    if fmt == "FLAC" and sf_subtype == "FLOAT":
        raise ParameterError("FLAC holds integer samples only; use --format 16 or 24, or write .wav for float32")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioFileError(f"output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise AudioFileError(f"output folder {folder} is not writable")
    return path, fmt, sf_subtype


def write_audio_atomic(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "float32") -> Path:
    """Write (channels, frames) audio to a temp file beside `path`, then rename: never a half-written file."""
    path, fmt, sf_subtype = check_output_path(path, subtype)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, np.ascontiguousarray(audio.T), sample_rate, subtype=sf_subtype, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
