"""One picture of what a dream did: input, output, and their difference as spectrograms."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import AudioFileError, ParameterError


def check_plot_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AudioFileError(f"--plot {path} must end in .png")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioFileError(f"plot folder {folder} does not exist; create it first")
    try:  # checked before the dream starts, not after minutes of work
        import matplotlib  # noqa: F401
    except ImportError:
        raise ParameterError("--plot needs matplotlib, an optional extra: pip install 'streamdream[plot]'") from None
    return path


def _db_spectrogram(audio: np.ndarray, sample_rate: int, n_fft: int = 2048) -> np.ndarray:
    mono = audio.mean(axis=0)
    hop = n_fft // 4
    frames = max(1, 1 + (len(mono) - n_fft) // hop)
    padded = np.pad(mono, (0, max(0, n_fft - len(mono))))
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(padded[idx] * np.hanning(n_fft), axis=1)).T
    return 20.0 * np.log10(spec + 1e-9)


def save_comparison_plot(path: str | os.PathLike, dry: np.ndarray, wet: np.ndarray, sample_rate: int,
                         title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_plot_path(path)
    s_in, s_out = _db_spectrogram(dry, sample_rate), _db_spectrogram(wet, sample_rate)
    top = max(s_in.max(), s_out.max())
    extent = [0, dry.shape[1] / sample_rate, 0, sample_rate / 2000.0]
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True, constrained_layout=True)
    for ax, data, name in ((axes[0], s_in, "input"), (axes[1], s_out, "output (dreamed)")):
        im = ax.imshow(data, origin="lower", aspect="auto", extent=extent, vmin=top - 90, vmax=top, cmap="magma")
        ax.set_title(name)
        ax.set_ylabel("kHz")
        fig.colorbar(im, ax=ax, label="dB")
    diff = s_out - s_in
    im = axes[2].imshow(diff, origin="lower", aspect="auto", extent=extent, vmin=-24, vmax=24, cmap="coolwarm")
    axes[2].set_title("difference: output minus input (red = the dream added energy)")
    axes[2].set_ylabel("kHz")
    axes[2].set_xlabel("seconds")
    fig.colorbar(im, ax=axes[2], label="dB")
    if title:
        fig.suptitle(title)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
