"""Views: how a (channels, frames) waveform becomes a CNN's input.

Every view is a differentiable torch function of the waveform, so DeepDream's
gradient lands on the samples themselves and the dreamed output is always valid
audio: there is no phase to guess and nothing to reconstruct. (The STFT
"reconstruct" baselines in `reconstruct.py` are the exception on purpose.)

Front-end parameters are in physical units (milliseconds, hertz) so one model
runs at 44.1, 48 or 96 kHz: only the sample counts change with the rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError

VIEW_NAMES = ("mel", "stft", "raw-image")

# The MATH299W layout: three 103,000-frame stereo segments (206,000 interleaved
# L/R values each) become the three 412x500 colour planes of one image.
RAW_IMAGE_HEIGHT = 412
RAW_IMAGE_WIDTH = 500
RAW_IMAGE_FRAMES_PER_PLANE = RAW_IMAGE_HEIGHT * RAW_IMAGE_WIDTH // 2
RAW_IMAGE_FRAMES = 3 * RAW_IMAGE_FRAMES_PER_PLANE


@dataclass
class FrontEnd:
    """View parameters, stored as JSON in the model's ONNX metadata."""

    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 96
    fmin_hz: float = 30.0
    fmax_hz: float = 16000.0
    log_offset: float = 1e-6
    mean: float = 0.0  # normalisation applied after the log: (x - mean) / std
    std: float = 1.0
    # raw-image only: pixel = (sample * image_scale - image_mean[c]) / image_std[c]
    image_scale: float = 1.0
    image_mean: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    image_std: list = field(default_factory=lambda: [1.0, 1.0, 1.0])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrontEnd":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ParameterError(f"unknown front-end parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def validate(self) -> None:
        if not (1.0 <= self.window_ms <= 500.0 and 0.5 <= self.hop_ms <= self.window_ms):
            raise ParameterError("front end needs 1 <= window_ms <= 500 and 0.5 <= hop_ms <= window_ms")
        if not (0.0 <= self.fmin_hz < self.fmax_hz):
            raise ParameterError("front end needs 0 <= fmin_hz < fmax_hz")
        if self.n_mels < 8 or self.log_offset <= 0 or self.std <= 0:
            raise ParameterError("front end needs n_mels >= 8, log_offset > 0 and std > 0")


def fft_size(window_samples: int) -> int:
    return 1 << max(4, math.ceil(math.log2(window_samples)))


def frame_geometry(front: FrontEnd, sample_rate: int, kind: str = "mel") -> tuple[int, int, int]:
    """(n_fft, win_length, hop_length) in samples at this rate.

    The stft view uses n_fft = window length, so its bins sit 1000 / window_ms Hz apart
    at every rate and a model sees the same bins at 44.1, 48 or 96 kHz.
    """
    win = max(16, round(front.window_ms * sample_rate / 1000.0))
    hop = max(1, round(front.hop_ms * sample_rate / 1000.0))
    return (win if kind == "stft" else fft_size(win)), win, hop


def stft_bins(front: FrontEnd) -> int:
    """Linear-frequency bins the stft view keeps: 0 Hz up to fmax_hz."""
    return int(front.fmax_hz * front.window_ms / 1000.0) + 1


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, area-normalised, shape (n_mels, n_fft//2+1)."""
    def hz_to_mel(f):
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    fmax = min(fmax, sample_rate / 2.0)
    bins_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(fmin, dtype=torch.float64)),
                                     hz_to_mel(torch.tensor(fmax, dtype=torch.float64)),
                                     n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (upper - lower))  # equal area, so no band dominates by width
    return weights.to(torch.float32)


def needed_sample_rate(view: str, front: FrontEnd, sample_rate: int) -> int:
    """The rate the view runs at: the file's own, unless the mel bands reach past Nyquist."""
    if view in ("mel", "stft") and front.fmax_hz > sample_rate / 2.0:
        # Resample up just enough that every mel band the model was trained on exists.
        for rate in (16000, 22050, 32000, 44100, 48000, 96000):
            if rate / 2.0 >= front.fmax_hz and rate >= sample_rate:
                return rate
    return sample_rate


class SpectrogramView(nn.Module):
    """Waveform (channels, frames) -> normalised log-mel or log-|STFT|, (channels, 1, bins, time).

    Channels become the batch, so stereo is dreamed as a batch of two.
    """

    def __init__(self, front: FrontEnd, sample_rate: int, kind: str = "mel"):
        super().__init__()
        n_fft, win, hop = frame_geometry(front, sample_rate, kind)
        self.n_fft, self.win_length, self.hop_length = n_fft, win, hop
        self.bins = stft_bins(front)
        self.register_buffer("window", torch.hann_window(win, periodic=True))
        if kind == "mel":
            fb = mel_filterbank(n_fft, sample_rate, front.n_mels, front.fmin_hz, front.fmax_hz)
            # bins above the top mel band carry no weight: leave them out of the matmul
            self.mel_bins = int(torch.nonzero(fb.sum(dim=0)).max()) + 1
            fb = fb[:, :self.mel_bins].contiguous()
        else:
            fb = torch.zeros(0, 0)
            self.mel_bins = 0
        self.register_buffer("filterbank", fb)
        self.use_mel = kind == "mel"
        self.log_offset = float(front.log_offset)
        self.mean = float(front.mean)
        self.std = float(front.std)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop_length, self.win_length, self.window,
                          center=True, pad_mode="constant", return_complex=True)  # (C, F, T)
        if self.use_mel:
            # power as re^2 + im^2: no square root whose gradient would then be squared away
            power = torch.view_as_real(spec[:, :self.mel_bins]).pow(2).sum(-1)
            feat = torch.matmul(self.filterbank, power)
        else:
            feat = spec[:, :self.bins].abs()
        feat = torch.log(feat + self.log_offset)
        return ((feat - self.mean) / self.std).unsqueeze(1)


def waveform_to_raw_images(wave: torch.Tensor, height: int = 412, width: int = 500) -> torch.Tensor:
    """(2, frames) stereo -> (n_images, 3, 412, 500); frames must be a multiple of 309,000.

    Interleave L/R, then cut into consecutive 206,000-value planes, three per image.
    (Sizes are default arguments, not the module constants, so TorchScript can compile this.)
    """
    interleaved = wave.transpose(0, 1).reshape(-1)
    return interleaved.reshape(-1, 3, height, width)


def raw_images_to_waveform(images: torch.Tensor) -> torch.Tensor:
    """Exact inverse of `waveform_to_raw_images`."""
    return images.reshape(-1, 2).transpose(0, 1)


class RawImageView(nn.Module):
    """Stereo samples laid out as RGB images (the MATH299W method), resized to the CNN's input size.

    The waveform given here is already padded to whole images (see `pad_for_view`).
    """

    def __init__(self, front: FrontEnd, input_hw: tuple[int, int] | None):
        super().__init__()
        self.scale = float(front.image_scale)
        self.register_buffer("mean", torch.tensor(front.image_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(front.image_std, dtype=torch.float32).view(1, 3, 1, 1))
        self.resize = input_hw is not None
        self.height = input_hw[0] if input_hw is not None else RAW_IMAGE_HEIGHT
        self.width = input_hw[1] if input_hw is not None else RAW_IMAGE_WIDTH

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        images = waveform_to_raw_images(wave)
        images = (images * self.scale - self.mean) / self.std
        if self.resize:
            images = F.interpolate(images, size=[self.height, self.width], mode="bilinear", align_corners=False)
        return images


def pad_for_view(view: str, frames: int) -> int:
    """How many frames the view needs the window padded to."""
    if view == "raw-image":
        return -(-frames // RAW_IMAGE_FRAMES) * RAW_IMAGE_FRAMES
    return frames


def build_view(view: str, front: FrontEnd, sample_rate: int, image_hw: tuple[int, int] | None = None) -> nn.Module:
    if view == "mel":
        return SpectrogramView(front, sample_rate, "mel")
    if view == "stft":
        return SpectrogramView(front, sample_rate, "stft")
    if view == "raw-image":
        return RawImageView(front, image_hw)
    raise ParameterError(f"unknown view {view!r}; choose one of {', '.join(VIEW_NAMES)}")
