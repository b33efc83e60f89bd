"""One picture of what a dream did: input, output, and their difference as spectrograms."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path, check_writable
from .errors import AudioFileError, ParameterError


def check_plot_path(path: str | os.PathLike, option: str = "--plot") -> Path:
    """`path` for a picture asked for with `option`: a .png, matplotlib there, and a folder that takes it."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AudioFileError(f"{option} {path} must end in .png")
    try:  # checked before the dream starts, not after minutes of work
        import matplotlib  # noqa: F401
    except ImportError:
        raise ParameterError(f"{option} needs matplotlib, an optional extra: pip install 'streamdream[plot]'") from None
    return check_writable(path, option)


class Spectrogram:
    """dB spectrogram of a signal fed in blocks, squeezed to at most `columns` time columns.

    Long files would need a frame matrix of gigabytes; a picture has a thousand pixels across,
    so consecutive frames are averaged (in power) into one column as they arrive.
    """

    def __init__(self, total_frames: int, n_fft: int = 2048, columns: int = 2000):
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.frames = max(1, 1 + (total_frames - n_fft) // self.hop)  # STFT frames the whole signal gives
        self.columns = min(columns, self.frames)
        self.power = np.zeros((n_fft // 2 + 1, self.columns))
        self.counts = np.zeros(self.columns)
        self.window = np.hanning(n_fft)
        self.pending = np.zeros(0)   # mono samples not yet consumed by a frame
        self.done = 0                # STFT frames computed

    def push(self, block: np.ndarray) -> None:
        """block: (channels, n)."""
        if self.done >= self.frames:  # a compressed file's length can be an estimate: ignore the excess
            return
        self.pending = np.concatenate([self.pending, block.mean(axis=0)])
        ready = min(self.frames - self.done, max(0, 1 + (len(self.pending) - self.n_fft) // self.hop))
        if ready <= 0:
            return
        for at in range(0, ready, 512):  # 512 frames at a time keeps the matrix small
            count = min(512, ready - at)
            idx = np.arange(self.n_fft)[None, :] + self.hop * (at + np.arange(count))[:, None]
            spec = np.abs(np.fft.rfft(self.pending[idx] * self.window, axis=1)).T
            column = (self.done + np.arange(count)) * self.columns // self.frames
            np.add.at(self.power.T, column, (spec ** 2).T)
            np.add.at(self.counts, column, 1)
            self.done += count
        self.pending = self.pending[ready * self.hop:]

    def db(self) -> np.ndarray:
        if self.done == 0:  # shorter than one FFT: one zero-padded frame, as numpy would give
            self.pending = np.pad(self.pending, (0, max(0, self.n_fft - len(self.pending))))
            self.push(np.zeros((1, 0)))
        return 10.0 * np.log10(self.power / np.maximum(self.counts, 1) + 1e-18)


def save_comparison_plot(path: str | os.PathLike, s_in: Spectrogram, s_out: Spectrogram, seconds: float,
                         sample_rate: int, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_plot_path(path)
    s_in, s_out = s_in.db(), s_out.db()
    top = max(s_in.max(), s_out.max())
    extent = [0, seconds, 0, sample_rate / 2000.0]
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
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return path
