import numpy as np
import pytest
import torch

from streamdream.dreaming.views import (RAW_IMAGE_FRAMES, FrontEnd, build_view, needed_sample_rate, padded_frames,
                                     raw_images_to_waveform, waveform_to_raw_images)
from streamdream.errors import ParameterError


@pytest.mark.parametrize("rate", [16000, 44100, 48000, 96000])
def test_mel_view_shape_scales_with_rate_in_physical_units(rate):
    front = FrontEnd(n_mels=40, fmax_hz=7000.0)
    wave = torch.randn(2, rate * 2)  # two seconds of stereo
    out = build_view("mel", front, rate)(wave)
    # 10 ms hop: 201 frames for two seconds at any rate; stereo is a batch of two
    assert out.shape == (2, 1, 40, 201)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_stft_view_keeps_the_same_bins_at_every_rate(rate):
    front = FrontEnd(window_ms=25.0, fmax_hz=16000.0)
    out = build_view("stft", front, rate)(torch.randn(1, rate))
    # bins 40 Hz apart (1 / 25 ms) from 0 to 16 kHz, whatever the rate
    assert out.shape == (1, 1, 401, 101)


@pytest.mark.parametrize("view", ["mel", "stft", "raw-image"])
def test_gradient_reaches_every_part_of_the_waveform(view):
    front = FrontEnd(n_mels=32, fmax_hz=7000.0)
    frames = padded_frames(view, 16000)
    wave = (0.1 * torch.randn(2, frames)).requires_grad_(True)
    module = build_view(view, front, 16000, (64, 64) if view == "raw-image" else None)
    module(wave).pow(2).mean().backward()
    grad = wave.grad
    assert torch.isfinite(grad).all()
    # both channels and both halves of the signal receive gradient
    for c in range(2):
        for half in (slice(0, frames // 2), slice(frames // 2, frames)):
            assert grad[c, half].abs().sum() > 0


def test_raw_image_layout_matches_the_math299w_recipe():
    frames = RAW_IMAGE_FRAMES
    left = torch.arange(frames, dtype=torch.float64)
    right = -left
    images = waveform_to_raw_images(torch.stack([left, right]))
    assert images.shape == (1, 3, 412, 500)
    # plane c holds frames [c * 103000, (c + 1) * 103000) as interleaved L, R values, row-major
    assert images[0, 1, 0, 0] == 103000 and images[0, 1, 0, 1] == -103000
    assert images[0, 2, 411, 498] == 3 * 103000 - 1 and images[0, 0, 0, 2] == 1


def test_raw_image_round_trip_is_bit_exact(rng):
    frames = 2 * RAW_IMAGE_FRAMES  # a longer window tiles consecutive images
    wave = torch.from_numpy(rng.standard_normal((2, frames)).astype(np.float32))
    images = waveform_to_raw_images(wave)
    assert images.shape == (2, 3, 412, 500)
    back = raw_images_to_waveform(images)
    assert torch.equal(back, wave)


def test_mel_resamples_only_when_bands_pass_nyquist():
    front = FrontEnd(fmax_hz=16000.0)
    assert needed_sample_rate("mel", front, 48000) == 48000
    assert needed_sample_rate("mel", front, 8000) == 32000
    assert needed_sample_rate("stft", front, 8000) == 32000
    assert needed_sample_rate("raw-image", front, 8000) == 8000


def test_unknown_view_is_refused():
    with pytest.raises(ParameterError, match="unknown view 'cqt'"):
        build_view("cqt", FrontEnd(), 48000)
