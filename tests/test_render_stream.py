"""`render` streams: the output equals the whole-array render it replaced, to the bit, whatever the length."""
import numpy as np
import pytest
import soundfile as sf

from conftest import music_clip
from streamdream.audio.limiter import TruePeakLimiter
from streamdream.audio.mix import mix_output, window_delta
from streamdream.dreaming.dreamer import Dreamer
from streamdream.params import Params
from streamdream.windows import Schedule
from test_render import run

RATE = 16000
SETTINGS = dict(steps=2, octaves=2, window_s=1.5, crossfade_s=0.25, backend="eager", gain_db=12.0)
FLAGS = ["--set", "steps=2", "--set", "octaves=2", "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "backend=eager",
         "--gain", "12", "--quiet"]


def whole_array_render(audio, params, model):
    """What render computed before it streamed: every window's delta summed into one whole-length array,
    the instant controls on the whole signal, and the limiter run over all of it in one call."""
    schedule = Schedule.from_seconds(RATE, params.window_s, params.crossfade_s)
    dreamer = Dreamer(params, RATE, audio.shape[0], schedule.window)
    total = audio.shape[1]
    n = schedule.count(total)
    padded = np.zeros((audio.shape[0], schedule.start(n - 1) + schedule.window), dtype=np.float32)
    padded[:, :total] = audio
    delta = np.zeros_like(padded)
    for k in range(n):
        start = schedule.start(k)
        dry = padded[:, start:start + schedule.window]
        delta[:, start:start + schedule.window] += schedule.weights(k) * window_delta(
            dry, dreamer.dream_window(dry, k, params), params.match_loudness)
    out = mix_output(audio, delta[:, :total], np.float32(params.intensity), np.float32(params.mix),
                     np.float32(10.0 ** (params.gain_db / 20.0)))
    limiter = TruePeakLimiter(RATE, audio.shape[0], params.limit_db)
    limited = limiter.process(np.concatenate([out, np.zeros((audio.shape[0], limiter.latency))], axis=1))
    return limited[:, limiter.latency:]


# hop is 1.25 s = 20000 frames: shorter than a window, exactly two hops, and odd lengths around them
@pytest.mark.parametrize("frames,channels", [(800, 2), (20000, 2), (40000, 1), (40001, 2), (70123, 2)])
def test_streamed_render_equals_the_whole_array_render(mel_model, tmp_path, frames, channels):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    audio = music_clip(RATE, frames / RATE + 0.01, channels=channels)[:, :frames]
    sf.write(src, audio.T, RATE, subtype="FLOAT")
    run("render", src, out, "--model", mel_model, *FLAGS)
    expected = whole_array_render(audio, Params(model=str(mel_model), **SETTINGS), mel_model)
    got = sf.read(out, dtype="float32", always_2d=True)[0].T
    assert got.shape == audio.shape
    assert not np.array_equal(got, audio)  # dreamed and limited, not passed through
    assert np.array_equal(got, expected)


def test_limiter_process_all_in_blocks_equals_one_call():
    x = 3.0 * music_clip(48000, 2.0)  # loud: the limiter works throughout
    one = TruePeakLimiter(48000, 2)
    whole = one.process(np.concatenate([x, np.zeros((2, one.latency))], axis=1))[:, one.latency:]
    for block in (1000, 4097, 65536, 10 ** 6):
        assert np.array_equal(TruePeakLimiter(48000, 2).process_all(x, block=block), whole)


def test_plot_spectrogram_fed_in_blocks():
    """--plot's spectrogram is built as the audio streams: any block sizes give the same picture, short
    signals get one column per STFT frame (checked against a direct STFT), long ones at most 2000 columns."""
    from streamdream.plot import Spectrogram
    x = music_clip(RATE, 3.0)
    whole = Spectrogram(x.shape[1])
    whole.push(x)
    pieces = Spectrogram(x.shape[1])
    for at in range(0, x.shape[1], 777):
        pieces.push(x[:, at:at + 777])
    assert np.allclose(whole.db(), pieces.db())
    mono, n_fft, hop = x.mean(axis=0), 2048, 512
    frames = 1 + (x.shape[1] - n_fft) // hop
    direct = np.array([np.abs(np.fft.rfft(mono[i * hop:i * hop + n_fft] * np.hanning(n_fft))) for i in range(frames)]).T
    assert whole.db().shape == direct.shape
    assert np.allclose(whole.db(), 20 * np.log10(direct + 1e-9), atol=1e-3)
    long = Spectrogram(RATE * 3600)  # an hour: squeezed to the picture's width, not a frame matrix
    assert long.power.shape == (n_fft // 2 + 1, 2000)


def test_a_wav_too_long_for_32_bits_is_written_as_rf64(tmp_path):
    """Four hours of 48 kHz float stereo pass the WAV format's 4 GiB: such a .wav is written as RF64 (checked here on
    the size rule and on a real RF64 file through libsndfile, without writing 4 GiB)."""
    from streamdream.audio.files import audio_writer, wav_container
    four_gib_of_frames = (2 ** 32) // 8  # float32 stereo: 8 bytes a frame
    assert wav_container(four_gib_of_frames - 1000, 2, "FLOAT") == "WAV"
    assert wav_container(four_gib_of_frames, 2, "FLOAT") == "RF64"
    assert wav_container(4 * 3600 * 48000, 2, "FLOAT") == "RF64"   # four hours at 48 kHz
    assert wav_container(4 * 3600 * 48000, 2, "PCM_16") == "WAV"
    clip = music_clip(RATE, 0.5)
    with audio_writer(tmp_path / "long.wav", RATE, 2, "float32", frames=four_gib_of_frames) as write:
        write(clip)
    assert sf.info(tmp_path / "long.wav").format == "RF64"
    assert np.array_equal(sf.read(tmp_path / "long.wav", dtype="float32", always_2d=True)[0].T, clip)
