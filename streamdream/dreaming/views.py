"""Views: how a (channels, frames) waveform becomes a CNN's input.

Every view is a differentiable torch function of the waveform, so DeepDream's
gradient lands on the samples themselves and the dreamed output is always valid
audio: there is no phase to guess and nothing to reconstruct. (The STFT
"reconstruct" baselines in `dreamer.py` are the exception on purpose.)

Front-end parameters are in physical units (milliseconds, hertz) so one model
runs at 44.1, 48 or 96 kHz: only the sample counts change with the rate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError
from ..windows import Schedule
from .frontend import (RAW_IMAGE_FRAMES, RAW_IMAGE_FRAMES_PER_PLANE, RAW_IMAGE_HEIGHT, RAW_IMAGE_WIDTH,  # noqa: F401
                       VIEW_NAMES, FrontEnd, fft_size, frame_geometry, needed_sample_rate, padded_frames, stft_bins)


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


@torch.library.custom_op("streamdream::frame_power", mutates_args=())
def frame_power(frames: torch.Tensor, n_fft: int, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """|rfft(frames, n_fft)|^2 of the first `bins` bins, (..., win) -> (..., bins), with a cheap gradient;
    the second output is the spectrum itself, kept for the gradient.

    An op of its own for its backward: autograd's gradient of a one-sided rfft zero-fills a full
    complex spectrum and runs a complex FFT of it (half of a whole dream step at 48 kHz), where
    the same gradient is one inverse real FFT (`_frame_power_backward`). Callable from TorchScript.
    """
    spec = torch.fft.rfft(frames, n=n_fft)[..., :bins]
    return spec.real.square() + spec.imag.square(), spec


@frame_power.register_fake
def _frame_power_shape(frames: torch.Tensor, n_fft: int, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = frames.shape[:-1] + (bins,)
    return frames.new_empty(shape), frames.new_empty(shape, dtype=frames.dtype.to_complex())


def _frame_power_keep(ctx, inputs, output) -> None:
    frames, n_fft, bins = inputs
    ctx.save_for_backward(output[1])
    ctx.n_fft, ctx.win = n_fft, frames.shape[-1]


def _frame_power_backward(ctx, grad: torch.Tensor, _grad_spec: torch.Tensor):
    """d/d frame[n] of sum_k grad_k |X_k|^2 is 2 sum_k grad_k Re(X_k e^(2 pi i k n / N)): with the edge
    bins (0 and N/2) counted twice, that is N * irfft(grad * X)[n] (irfft pads the bins left out)."""
    (spec,) = ctx.saved_tensors
    n_fft = ctx.n_fft
    edges = torch.ones(spec.shape[-1], device=spec.device)
    edges[0] = 2.0
    if spec.shape[-1] > n_fft // 2:
        edges[n_fft // 2] = 2.0
    weighted = spec * (grad * (edges * n_fft))
    return torch.fft.irfft(weighted, n=n_fft)[..., :ctx.win], None, None


frame_power.register_autograd(_frame_power_backward, setup_context=_frame_power_keep)


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
        # torch.stft(center=True) centres the window in its n_fft frame and frame t on sample t * hop:
        # the mel path cuts the same frames itself (see power), starting this far before sample 0.
        self.frame_lead = n_fft // 2 - (n_fft - win) // 2
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
        # top-dB floor as a ratio of the frame's loudest bin: power for mel, magnitude for stft
        self.floor_ratio = 10.0 ** (-front.top_db / (10.0 if kind == "mel" else 20.0)) if front.top_db > 0 else 0.0
        self.mean = float(front.mean)
        self.std = float(front.std)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.use_mel:
            feat = torch.matmul(self.filterbank, self.power(wave).transpose(1, 2))
        else:
            spec = torch.stft(wave, self.n_fft, self.hop_length, self.win_length, self.window,
                              center=True, pad_mode="constant", return_complex=True)  # (C, F, T)
            feat = spec[:, :self.bins].abs()
        if self.floor_ratio > 0.0:
            # Cells below the floor get no gradient, so the dream is not drawn to where the music is silent.
            feat = torch.maximum(feat, feat.amax(dim=1, keepdim=True) * self.floor_ratio)
        feat = torch.log(feat + self.log_offset)
        return ((feat - self.mean) / self.std).unsqueeze(1)

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """(C, samples) -> (C, frames, mel_bins): torch.stft's power spectrum (center=True, zero padding),
        computed as re^2 + im^2 (no square root whose gradient would then be squared away)."""
        frames = 1 + wave.shape[-1] // self.hop_length
        tail = max(0, (frames - 1) * self.hop_length + self.win_length - self.frame_lead - wave.shape[-1])
        cut = F.pad(wave, [self.frame_lead, tail]).unfold(-1, self.win_length, self.hop_length)[:, :frames]
        return torch.ops.streamdream.frame_power(cut * self.window, self.n_fft, self.mel_bins)[0]


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

    The waveform given here is already padded to whole images (see `padded_frames`).
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


def fft_resample(wave: torch.Tensor, frames: int) -> torch.Tensor:
    """(channels, n) -> (channels, frames), band-limited through the spectrum; differentiable, so a
    gradient taken at the model's rate lands on the samples at the operating rate."""
    n = wave.shape[-1]
    if frames == n:
        return wave
    spec = torch.fft.rfft(wave)
    bins = frames // 2 + 1
    if spec.shape[-1] >= bins:
        spec = spec[..., :bins]
    else:
        spec = F.pad(spec, [0, bins - spec.shape[-1]])
    return torch.fft.irfft(spec, n=frames) * (float(frames) / float(n))


class WaveformView(nn.Module):
    """The waveform itself, at the model's rate, cut into the model's input length with overlap.

    Windows follow the engine's own geometry (`Schedule`: hop = length - overlap, equal-power
    sin/cos fades), applied to the gradient only: the model sees the plain samples, and where
    two windows overlap their gradients are put back with the same weights the engine uses to
    crossfade dreamed windows. A mono model dreams each audio channel as its own batch of
    windows; a stereo model (two audio channels in its input) takes both channels together.
    """

    def __init__(self, front: FrontEnd, sample_rate: int, layout: str, model_channels: int):
        super().__init__()
        self.rate = int(front.rate_hz) or sample_rate
        self.ratio = float(self.rate) / float(sample_rate)
        self.length = int(front.input_samples)
        schedule = Schedule(self.length, int(round(front.overlap * self.length)))
        self.hop = schedule.hop
        self.register_buffer("first_weights", torch.from_numpy(schedule.weights(0)))
        self.register_buffer("weights", torch.from_numpy(schedule.weights(1)))
        self.layout = layout
        self.stereo = model_channels == 2

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        at_rate = fft_resample(wave, int(round(wave.shape[-1] * self.ratio)))
        count = max(1, -(-(at_rate.shape[-1]) // self.hop))  # windows so every sample gets its full weight
        padded = F.pad(at_rate, [0, (count - 1) * self.hop + self.length - at_rate.shape[-1]])
        frames = padded.unfold(-1, self.length, self.hop)  # (channels, count, length)
        weights = self.weights.expand(count, self.length).clone()
        weights[0] = self.first_weights
        # value unchanged, gradient scaled by the window weights
        frames = frames.detach() + (frames - frames.detach()) * weights
        if self.stereo:
            frames = frames.permute(1, 2, 0)                    # (count, length, 2)
            return frames.transpose(1, 2) if self.layout == "bcs" else frames
        frames = frames.reshape(-1, self.length)                # channels become batch
        if self.layout == "bsc":
            return frames.unsqueeze(-1)
        if self.layout == "bcs":
            return frames.unsqueeze(1)
        return frames


def build_view(view: str, front: FrontEnd, sample_rate: int, image_hw: tuple[int, int] | None = None,
               layout: str = "bs", model_channels: int = 1) -> nn.Module:
    if view == "mel":
        return SpectrogramView(front, sample_rate, "mel")
    if view == "stft":
        return SpectrogramView(front, sample_rate, "stft")
    if view == "raw-image":
        return RawImageView(front, image_hw)
    if view == "waveform":
        return WaveformView(front, sample_rate, layout, model_channels)
    raise ParameterError(f"unknown view {view!r}; choose one of {', '.join(VIEW_NAMES)}")
