"""The piece's material: audio files and playlists, joined and made seamless to loop."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...audio.files import read_audio
from ...errors import StreamDreamError
from ..engine import CHANNELS


PLAYLIST_SUFFIXES = (".m3u", ".m3u8", ".txt")
WRAP_CROSSFADE_S = 2.0        # the loop's end fades into its start over this long (equal power)


def read_playlist(items: list[str]) -> list[Path]:
    """Audio files, with .m3u/.txt playlists expanded (one path a line, '#' comments, relative to the list)."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() not in PLAYLIST_SUFFIXES:
            files.append(path)
            continue
        if not path.is_file():
            raise StreamDreamError(f"playlist {path} does not exist; check the path")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entry = Path(line) if Path(line).is_absolute() else path.parent / line
            if not entry.is_file():
                raise StreamDreamError(f"playlist {path} line {number}: {entry} does not exist; fix or remove the line")
            files.append(entry)
    if not files:
        raise StreamDreamError("nothing to play: give audio files or a playlist with at least one file")
    return files


def load_loop(files: list[Path], sample_rate: int | None, crossfade_s: float = WRAP_CROSSFADE_S
              ) -> tuple[np.ndarray, int]:
    """The files back to back (stereo, one rate), shortened by the crossfade so that playing it over and
    over is seamless: its first `crossfade` frames are the end fading out over the start fading in."""
    import soxr

    parts, rate = [], sample_rate
    for path in files:
        loaded = read_audio(path)
        rate = rate or loaded.sample_rate
        audio = loaded.audio
        if loaded.sample_rate != rate:
            audio = soxr.resample(audio.T, loaded.sample_rate, rate).T.astype(np.float32)
        if audio.shape[0] == 1:
            audio = np.repeat(audio, CHANNELS, axis=0)
        parts.append(audio)
    audio = np.concatenate(parts, axis=1)
    c = min(int(round(crossfade_s * rate)), audio.shape[1] // 4)
    if c == 0:
        return audio, rate
    phase = (np.arange(c) + 0.5) / c * (np.pi / 2)
    looped = audio[:, :-c].copy()
    looped[:, :c] = audio[:, :c] * np.sin(phase) + audio[:, -c:] * np.cos(phase)
    return looped.astype(np.float32), rate
