import numpy as np
import pytest

from streamdream.audio.limiter import TruePeakLimiter, true_peak

CEILING = 10 ** (-1.0 / 20)


def loud_music(rate, seconds=2.0, gain=4.0, seed=0):
    """Harmonic tones with bursts, far over full scale, like a dream left unchecked."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (i + 1) for i, f in enumerate((110, 440, 3520, 9000)))
    env = 0.3 + (rng.random(t.size // 512 + 1).repeat(512)[:t.size] > 0.7)
    return np.stack([x * env, x * env[::-1]]) * gain / 3


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_true_peak_stays_under_minus_one_dbfs(rate):
    out = TruePeakLimiter(rate, 2).process_all(loud_music(rate))
    assert true_peak(out) <= CEILING


def test_sine_near_nyquist_with_intersample_peaks_is_caught():
    rate = 48000
    t = np.arange(rate) / rate
    # rate/4 with a 45 degree phase: samples miss the waveform's peaks by 3 dB
    x = np.sin(2 * np.pi * rate / 4 * t + np.pi / 4)[None].repeat(2, 0) * 0.95
    assert np.abs(x).max() < CEILING < true_peak(x)
    assert true_peak(TruePeakLimiter(rate, 2).process_all(x)) <= CEILING


def test_signal_below_threshold_passes_bit_for_bit(rng):
    x = (rng.standard_normal((2, 48000)) * 0.1).clip(-0.8, 0.8).astype(np.float32)
    assert np.array_equal(TruePeakLimiter(48000, 2).process_all(x), x)


@pytest.mark.parametrize("sizes", [[1], [64], [65, 128], [8192, 8193], [1, 64, 65, 128, 8192, 8193]])
def test_block_size_does_not_change_a_single_sample(sizes):
    rate = 48000
    x = loud_music(rate, 0.3)
    whole = TruePeakLimiter(rate, 2).process_all(x)
    limiter = TruePeakLimiter(rate, 2)
    feed = np.concatenate([x, np.zeros((2, limiter.latency))], axis=1)
    parts, i, k = [], 0, 0
    while i < feed.shape[1]:
        n = sizes[k % len(sizes)]
        parts.append(limiter.process(feed[:, i:i + n]))
        i, k = i + n, k + 1
    streamed = np.concatenate(parts, axis=1)[:, limiter.latency:]
    assert np.array_equal(streamed, whole)


def test_gain_recovers_after_a_peak():
    rate = 48000
    x = np.full((1, rate), 0.5)
    x[0, 1000] = 4.0
    out = TruePeakLimiter(rate, 1, release_ms=100).process_all(x)
    assert out[0, 1000] < CEILING
    assert np.array_equal(out[0, 1000 + 6000:], x[0, 1000 + 6000:].astype(np.float32))
