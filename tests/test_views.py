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


@pytest.mark.parametrize("rate,frames", [(48000, 48000), (44100, 44100 + 123), (16000, 5000)])
def test_mel_power_and_its_gradient_equal_torch_stft_with_autograd(rate, frames):
    # The mel view cuts its own frames and has its own backward (for speed); both must be torch.stft's.
    view = build_view("mel", FrontEnd(), rate)
    wave = torch.randn(2, frames, dtype=torch.float64).float().requires_grad_(True)
    spec = torch.stft(wave, view.n_fft, view.hop_length, view.win_length, view.window, center=True,
                      pad_mode="constant", return_complex=True)[:, :view.mel_bins]
    reference = spec.abs().pow(2)
    ours = view.power(wave).transpose(1, 2)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5 * float(reference.detach().max()))
    weights = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    (expected,) = torch.autograd.grad((reference * weights).sum(), wave)
    (got,) = torch.autograd.grad((ours * weights).sum(), wave)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


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


def _sine_with_silence(rate: int, seconds: float = 1.0) -> torch.Tensor:
    """A 440 Hz sine in the first half, digital silence in the second: most cells hold nothing."""
    t = torch.arange(int(rate * seconds)) / rate
    wave = 0.5 * torch.sin(2 * torch.pi * 440.0 * t)
    wave[t >= seconds / 2] = 0.0
    return wave[None]


@pytest.mark.parametrize("view", ["mel", "stft"])
def test_top_db_floor_makes_the_view_deaf_to_noise_far_below_the_music(view):
    rate = 16000
    clean = _sine_with_silence(rate)
    # noise 70 dB under the sine: inaudible beside it, but in the empty bands it is all there is
    noise = 0.5 * 10 ** (-70 / 20) * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    plain = build_view(view, FrontEnd(n_mels=32, fmax_hz=7000.0), rate)
    floored = build_view(view, FrontEnd(n_mels=32, fmax_hz=7000.0, top_db=60.0), rate)
    sine_frames = slice(5, 40)  # frames well inside the sine half (10 ms hop)
    moved_plain = (plain(clean + noise) - plain(clean))[..., sine_frames].abs().max()
    moved_floored = (floored(clean + noise) - floored(clean))[..., sine_frames].abs().max()
    assert moved_plain > 0.3            # the fixed 1e-6 offset hears the noise in the empty bands
    assert moved_floored < 0.02 and moved_floored < moved_plain / 20


def test_top_db_floor_sends_no_gradient_to_empty_bands():
    rate = 16000
    freqs = torch.fft.rfftfreq(4800, 1 / rate)
    near_sine = (freqs - 440.0).abs() < 1000.0

    def gradient_share_near_the_sine(top_db):
        wave = _sine_with_silence(rate).requires_grad_(True)
        view = build_view("mel", FrontEnd(n_mels=32, fmax_hz=7000.0, top_db=top_db), rate)
        view(wave)[..., 5:40].sum().backward()  # sine frames only: every band, empty or not, asks for more
        spectrum = torch.fft.rfft(wave.grad[0, 1600:6400]).abs().pow(2)
        return float(spectrum[near_sine].sum() / spectrum.sum())

    assert gradient_share_near_the_sine(0.0) < 0.6      # no floor: half of it is a push into the empty bands
    assert gradient_share_near_the_sine(60.0) > 0.999   # a floored view only asks for more of what is there


def test_front_end_without_top_db_in_its_metadata_still_loads():
    old = FrontEnd().to_dict()
    del old["top_db"]  # metadata written before the floor existed
    assert FrontEnd.from_dict(old).top_db == 0.0
    with pytest.raises(ParameterError, match="top_db"):
        FrontEnd(top_db=-3.0).validate()
