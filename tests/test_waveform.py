"""The waveform view: models that take samples, at their own rate and length, with any output layout."""
import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from conftest import music_clip, run_cli
from harness.models import LABELS, WAVE_RATE, WAVE_SAMPLES, make_waveform_model
from streamdream.params import Params
from streamdream.dreaming.dreamer import Dreamer
from streamdream.dreaming.frontend import FrontEnd
from streamdream.dreaming.loop import ObjectiveNet
from streamdream.dreaming.model import read_model_info
from streamdream.dreaming.views import WaveformView, fft_resample
from streamdream.errors import ModelError, ParameterError

RATE = 48000


@pytest.fixture(scope="session")
def wave_model(model_dir):
    return make_waveform_model(model_dir / "wave_rank2.onnx")


@pytest.fixture(scope="session")
def wave_model_rank3(model_dir):
    return make_waveform_model(model_dir / "wave_rank3.onnx", rank=3)


@pytest.fixture(scope="session")
def wave_model_stereo(model_dir):
    return make_waveform_model(model_dir / "wave_stereo.onnx", rank=3, channels=2)


@pytest.fixture(scope="session")
def bare_wave_model(model_dir):
    return make_waveform_model(model_dir / "wave_bare.onnx", annotated=False)


def test_fft_resample_keeps_a_tone_at_its_frequency():
    t48 = np.arange(48000) / 48000
    tone = torch.from_numpy(np.sin(2 * np.pi * 1000 * t48)[None].astype(np.float32))
    down = fft_resample(tone, 16000)
    t16 = np.arange(16000) / 16000
    np.testing.assert_allclose(down[0].numpy(), np.sin(2 * np.pi * 1000 * t16), atol=1e-4)


def test_waveform_view_cuts_model_inputs_and_weights_gradients_equal_power():
    front = FrontEnd(rate_hz=16000, input_samples=1000, overlap=0.5)
    view = WaveformView(front, 16000, "bs", 1)
    wave = torch.randn(2, 4000, requires_grad=True)
    frames = view(wave)
    count = frames.shape[0] // 2
    assert frames.shape[1] == 1000 and count == 8            # 4000 samples, hop 500: every sample fully covered
    np.testing.assert_array_equal(frames[1].detach().numpy(), wave[0, 500:1500].detach().numpy())
    np.testing.assert_array_equal(frames[count].detach().numpy(), wave[1, :1000].detach().numpy())
    # each input's gradient is its window weight; where two overlap, the squares sum to one
    squares = torch.zeros(4000)
    for k in range(count):
        (g,) = torch.autograd.grad(frames[k].sum(), wave, retain_graph=True)
        assert g[1].abs().max() == 0                          # channel 0's inputs touch only channel 0
        squares += g[0].pow(2)
    np.testing.assert_allclose(squares.numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("fixture, layout", [("wave_model", "bs"), ("wave_model_rank3", "bsc"),
                                             ("wave_model_stereo", "bsc")])
def test_waveform_models_dream_at_their_own_rate(request, fixture, layout):
    path = request.getfixturevalue(fixture)
    info = read_model_info(path)
    assert info.view == "waveform" and info.layout == layout and info.front.rate_hz == WAVE_RATE
    window = music_clip(RATE, 1.5)
    # no jitter: a random stride-32 front end has no reason to agree with itself across shifts
    dreamer = Dreamer(Params(model=str(path), steps=3, octaves=2, jitter_ms=0.0), RATE, 2, window.shape[1])
    # 1.5 s at 48 kHz = 24000 samples at 16 kHz = 12 inputs of 4000 with hop 2000 (x2 channels for mono models)
    expected = (12, WAVE_SAMPLES, 2) if info.model_channels == 2 else (24, WAVE_SAMPLES, 1)[:len(layout)]
    assert tuple(dreamer.view_shape) == expected
    net = ObjectiveNet(dreamer.loaded.module, dreamer.objective)

    def objective(w):
        with torch.no_grad():
            return float(net(dreamer.view(torch.from_numpy(w)), dreamer.target_weights(dreamer.params)))

    dreamed = dreamer.dream_window(window, 0)
    assert dreamed.shape == window.shape and np.all(np.isfinite(dreamed))
    assert objective(dreamed) > objective(window)
    # the change is made at the model's rate: nothing above its Nyquist (8 kHz) is added
    change = np.abs(np.fft.rfft(dreamed[0] - window[0]))
    freqs = np.fft.rfftfreq(window.shape[1], 1 / RATE)
    assert change[freqs > 8500].max() < 1e-3 * change[freqs < 7500].max()


def test_target_on_a_frames_by_classes_output_averages_over_frames(wave_model):
    window = music_clip(RATE, 1.0, channels=1)
    dreamer = Dreamer(Params(model=str(wave_model), target="brass:2,voice", steps=4, octaves=1,
                                      jitter_ms=0.0), RATE, 1,
                      window.shape[1])
    weights = dreamer.target_weights(dreamer.params).numpy()
    assert weights.tolist() == [0.0, 2.0, 0.0, 1.0]
    module = dreamer.loaded.module

    def class_means(w):
        with torch.no_grad():
            scores = module(dreamer.view(torch.from_numpy(w)))
        return scores.reshape(-1, len(LABELS)).mean(0).numpy()   # (batch, frames, classes) -> per class

    before, after = class_means(window), class_means(dreamer.dream_window(window, 0))
    assert (after - before) @ weights > 0
    assert after[1] - before[1] > 0


def test_layer_channel_on_another_axis(tmp_path, wave_model):
    proto = onnx.load(str(wave_model))
    # the tensor after the transpose holds (batch, frames, 16 features): its channels are on axis 2
    transposed = next(n.output[0] for n in proto.graph.node if n.op_type == "Transpose")
    out = tmp_path / "axis2.onnx"
    result = run_cli("models", "annotate", wave_model, out, "--view", "waveform", "--layers", transposed,
                     "--channel-axis", "2", "--default-layer", transposed)
    assert result.returncode == 0, result.stderr
    window = music_clip(RATE, 1.0, channels=1)
    dreamer = Dreamer(Params(model=str(out), layer=f"{transposed}@5", steps=3, octaves=1,
                                      jitter_ms=0.0), RATE, 1, window.shape[1])
    assert dreamer.objective.layers == ((transposed, 1.0, 5, 2),)
    dreamed = dreamer.dream_window(window, 0)
    with torch.no_grad():
        before = dreamer.loaded.module(dreamer.view(torch.from_numpy(window)))
        after = dreamer.loaded.module(dreamer.view(torch.from_numpy(dreamed)))
    channel = lambda act: float(act[..., 5].pow(2).mean())  # noqa: E731
    assert channel(after) > channel(before)


def test_model_without_metadata_suggests_annotate(bare_wave_model, stereo_wav, tmp_path):
    info = run_cli("models", "info", bare_wave_model)
    assert info.returncode == 0, info.stderr
    assert f"streamdream models annotate {bare_wave_model} OUT.onnx --view waveform --rate HZ" in info.stdout
    render = run_cli("render", stereo_wav, tmp_path / "out.wav", "--model", bare_wave_model)
    assert render.returncode == 2 and "models annotate" in render.stderr
    assert len(render.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.wav").exists()


def test_annotated_model_renders_and_is_described(bare_wave_model, stereo_wav, tmp_path):
    out = tmp_path / "mine.onnx"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    result = run_cli("models", "annotate", bare_wave_model, out, "--view", "waveform", "--rate", WAVE_RATE,
                     "--labels-file", labels)
    assert result.returncode == 0, result.stderr
    assert "no layer to dream by default: pass --layer or --target" in result.stdout
    info = read_model_info(out)
    assert (info.view, info.front.rate_hz, info.front.input_samples, info.labels) == \
        ("waveform", WAVE_RATE, WAVE_SAMPLES, LABELS)
    described = run_cli("models", "info", out)
    assert "waveform at 16000 Hz, 4000 samples per input" in described.stdout and "axis -1 of scores" in described.stdout
    rendered = tmp_path / "dream.wav"
    result = run_cli("render", stereo_wav, rendered, "--model", out, "--target", "drums", "--set", "window_s=1.5",
                     "--set", "crossfade_s=0.5", "--set", "steps=2", "--quiet")
    assert result.returncode == 0, result.stderr
    dry, _ = sf.read(stereo_wav)
    wet, _ = sf.read(rendered)
    assert wet.shape == dry.shape and np.abs(wet - dry).max() > 1e-4


@pytest.mark.parametrize("args, message", [
    (["--rate", "16000", "--labels", "a,b"], "2 labels given but axis -1 of 'scores' holds 4 classes"),
    (["--rate", "16000", "--class-axis", "5"], "class axis 5 is outside 'scores'"),
    (["--input-samples", "4000"], "no sample rate in its metadata"),
    (["--rate", "16000", "--layers", "nope"], "no tensor named 'nope'"),
    (["--rate", "16000", "--front", "overlap=0.9"], "overlap <= 0.5"),
])
def test_annotate_refuses_what_would_not_load_and_writes_nothing(bare_wave_model, tmp_path, args, message):
    out = tmp_path / "bad.onnx"
    result = run_cli("models", "annotate", bare_wave_model, out, "--view", "waveform", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not out.exists() and not list(tmp_path.glob(".bad.onnx*"))


def test_annotate_keeps_an_existing_output_unless_forced(bare_wave_model, tmp_path):
    out = tmp_path / "exists.onnx"
    out.write_bytes(b"keep me")
    result = run_cli("models", "annotate", bare_wave_model, out, "--view", "waveform", "--rate", "16000")
    assert result.returncode == 2 and "--force" in result.stderr and out.read_bytes() == b"keep me"
    result = run_cli("models", "annotate", bare_wave_model, out, "--view", "waveform", "--rate", "16000", "--force")
    assert result.returncode == 0 and read_model_info(out).view == "waveform"


def test_spectrogram_view_on_a_waveform_model_is_refused(wave_model):
    with pytest.raises(ModelError, match="waveform view"):
        read_model_info(wave_model, view="mel")
    with pytest.raises(ParameterError, match="unknown target label 'tuba'"):
        Dreamer(Params(model=str(wave_model), target="tuba"), RATE, 1, RATE)


@pytest.mark.subprocess
def test_annotated_waveform_model_runs_live(bare_wave_model, stereo_wav, tmp_path):
    """The live engine (null device, every window dreamed) with a model the user annotated."""
    out, rec, stats = tmp_path / "mine.onnx", tmp_path / "rec.wav", tmp_path / "stats.json"
    assert run_cli("models", "annotate", bare_wave_model, out, "--view", "waveform", "--rate", WAVE_RATE,
                   "--labels", ",".join(LABELS)).returncode == 0
    result = run_cli("live", "--device", "null", "--input", stereo_wav, "--no-loop", "--lockstep", "--duration", "4",
                     "--model", out, "--target", "voice", "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--budget", "0.5",
                     "--set", "steps=2", "--set", "backend=eager", "--no-midi", "--quiet", "--record", rec, "--stats", stats)
    assert result.returncode == 0, result.stderr
    import json
    snap = json.loads(stats.read_text())
    assert snap["windows_dreamed"] >= 2 and snap["dream"]["target"] == "voice"
    recorded, _ = sf.read(rec, always_2d=True)
    assert np.all(np.isfinite(recorded)) and np.abs(recorded).max() > 0


def test_classify_a_stereo_frames_by_classes_model(wave_model_stereo, stereo_wav):
    result = run_cli("models", "classify", stereo_wav, "--model", wave_model_stereo, "--json")
    assert result.returncode == 0, result.stderr
    import json
    probs = json.loads(result.stdout)["probabilities"]
    assert set(probs) == set(LABELS) and abs(sum(probs.values()) - 1.0) < 1e-5
