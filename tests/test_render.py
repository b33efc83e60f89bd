"""`streamdream render` end to end through libsndfile, and every bad input it must refuse cleanly."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import music_clip
from streamdream.audio.limiter import true_peak
from streamdream.dreaming.classify import classify

FAST = ["--set", "steps=2", "--set", "octaves=2", "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "backend=eager", "--quiet"]


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args, check=True):
    """The CLI in this process (importing torch per call would make the suite slow)."""
    import contextlib
    import io

    from streamdream.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    result = Result(code, out.getvalue(), err.getvalue())
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.subprocess
def test_console_script_exit_codes_in_a_real_process(tmp_path, mel_model):
    """One real subprocess: the installed entry point, a one-line error and exit 2."""
    proc = subprocess.run([sys.executable, "-m", "streamdream.cli", "render", tmp_path / "absent.wav",
                           tmp_path / "o.wav", "--model", mel_model], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("streamdream: error: ") and proc.stderr.count("\n") == 1
    usage = subprocess.run([sys.executable, "-m", "streamdream.cli", "render"], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


def render(src, dst, model, *extra, check=True):
    return run("render", src, dst, "--model", model, *FAST, *extra, check=check)


def test_render_keeps_rate_length_channels_and_writes_a_plot(stereo_wav, mel_model, tmp_path):
    out, plot = tmp_path / "out.wav", tmp_path / "p.png"
    render(stereo_wav, out, mel_model, "--plot", plot, "--set", "backend=torchscript")
    dry, rate = sf.read(stereo_wav, always_2d=True)
    wet, wet_rate = sf.read(out, always_2d=True)
    assert wet_rate == rate and wet.shape == dry.shape
    assert sf.info(out).subtype == "FLOAT"
    assert not np.allclose(wet, dry, atol=1e-4)
    assert true_peak(wet.T) <= 10 ** (-1 / 20)
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_says_how_to_get_it_before_dreaming(stereo_wav, mel_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the `plot` extra was not installed
    out = tmp_path / "out.wav"
    result = render(stereo_wav, out, mel_model, "--plot", tmp_path / "p.png", check=False)
    assert result.returncode == 2
    assert result.stderr == "streamdream: error: --plot needs matplotlib, an optional extra: pip install 'streamdream[plot]'\n"
    assert not out.exists()


def test_intensity_zero_is_the_input_sample_for_sample(stereo_wav, mel_model, tmp_path):
    out = tmp_path / "out.wav"
    render(stereo_wav, out, mel_model, "--intensity", "0")
    assert np.array_equal(sf.read(out, dtype="float32")[0], sf.read(stereo_wav, dtype="float32")[0])


@pytest.mark.parametrize("view_args", [["--set", "view=mel"], ["--set", "view=stft"],
                                       ["--set", "view=stft", "--set", "reconstruct=phase"],
                                       ["--set", "view=stft", "--set", "reconstruct=griffinlim"]])
def test_each_spectrogram_view_renders(stereo_wav, mel_model, stft_model, tmp_path, view_args):
    model = stft_model if "view=stft" in view_args else mel_model
    out = tmp_path / "out.wav"
    render(stereo_wav, out, model, *view_args)
    wet = sf.read(out)[0]
    assert np.all(np.isfinite(wet)) and not np.allclose(wet, sf.read(stereo_wav)[0], atol=1e-4)


def test_raw_image_view_with_a_model_without_metadata(stereo_wav, image_model, tmp_path):
    out = tmp_path / "out.wav"
    render(stereo_wav, out, image_model, "--set", "view=raw-image", "--layer", "/features/features.3/Relu_output_0")
    wet, dry = sf.read(out)[0], sf.read(stereo_wav)[0]
    assert wet.shape == dry.shape and np.all(np.isfinite(wet))
    assert not np.allclose(wet, dry, atol=1e-4)  # the image model dreamed something


@pytest.mark.parametrize("fmt,subtype,ext", [("16", "PCM_16", ".wav"), ("24", "PCM_24", ".flac"), ("float32", "FLOAT", ".wav")])
def test_output_formats(stereo_wav, mel_model, tmp_path, fmt, subtype, ext):
    out = tmp_path / f"out{ext}"
    render(stereo_wav, out, mel_model, "--format", fmt)
    assert sf.info(out).subtype == subtype


@pytest.mark.parametrize("rate", [8000, 22050, 96000, 192000])
def test_sample_rates_from_8_to_192_khz_work(mel_model, tmp_path, rate):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, music_clip(rate, 1.0, channels=1).T, rate, subtype="FLOAT")
    render(src, out, mel_model)
    wet, wet_rate = sf.read(out, always_2d=True)
    assert wet_rate == rate and wet.shape == (rate, 1)  # mono stays mono, length kept
    assert np.all(np.isfinite(wet)) and np.abs(wet).max() > 0


def test_short_file_is_padded_not_refused(mel_model, tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, music_clip(16000, 0.05).T, 16000, subtype="FLOAT")
    render(src, out, mel_model)
    wet = sf.read(out)[0]
    assert wet.shape == (800, 2) and np.all(np.isfinite(wet)) and np.abs(wet).max() > 0


def test_nan_and_inf_are_replaced_and_reported(mel_model, tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    x = music_clip(16000, 1.0)
    x[0, 100], x[1, 200], x[0, 300] = np.nan, np.inf, -np.inf
    sf.write(src, x.T, 16000, subtype="FLOAT")
    proc = run("render", src, out, "--model", mel_model, *FAST[:-1])
    assert "3 NaN/Inf samples" in proc.stderr
    assert np.all(np.isfinite(sf.read(out)[0]))


@pytest.mark.parametrize("signal", ["silence", "dc"])
def test_silence_and_dc_render_without_nan(mel_model, tmp_path, signal):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    x = np.zeros((16000, 2)) if signal == "silence" else np.full((16000, 2), 0.25)
    sf.write(src, x, 16000, subtype="FLOAT")
    render(src, out, mel_model)
    assert np.all(np.isfinite(sf.read(out)[0]))


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("these are not samples\n" * 50)
    good = tmp_path / "good.wav"
    sf.write(good, music_clip(16000, 1.0).T, 16000, subtype="PCM_16")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    no_frames = tmp_path / "noframes.wav"
    sf.write(no_frames, np.zeros((0, 2)), 16000)
    quad = tmp_path / "quad.wav"
    sf.write(quad, np.zeros((1600, 4)), 16000)
    return {"missing": (tmp_path / "absent.wav", "does not exist"), "empty": (empty, "not an audio file"),
            "text": (text, "not an audio file"), "truncated": (truncated, "not an audio file|damaged"),
            "no frames": (no_frames, "holds no audio frames"), "4 channels": (quad, "4 channels")}


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "no frames", "4 channels"])
def test_bad_input_files_get_one_line_and_exit_2(mel_model, tmp_path, case):
    src, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.wav"
    proc = render(src, out, mel_model, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert __import__("re").search(message, proc.stderr), proc.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("args,message", [
    (["--set", "steps=0"], "steps must be 1..1000, not 0"),
    (["--intensity", "3"], "--intensity must be 0..2"),
    (["--target", "kazoo"], "unknown target label 'kazoo'"),
    (["--layer", "nope"], "no tensor named 'nope'"),
    (["--set", "reconstruct=phase"], "reconstruct needs the stft view; add --set view=stft"),
    (["--format", "8"], "unknown sample format"),
    (["--torch-device", "cuda"], "no CUDA GPU|"),
    (["--set", "shape=-1"], "shape must be 0..4"),
    (["--preset", "loud"], "unknown preset 'loud'; choose one of vivid, faithful, tint, deep, bloom, tone"),
    (["--preset", "amplify"], "preset 'amplify' is now 'bloom'"),
])
def test_bad_parameters_exit_2_before_writing(stereo_wav, mel_model, tmp_path, args, message):
    if args[0] == "--torch-device":
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU, so --torch-device cuda is valid here")
    out = tmp_path / "out.wav"
    proc = render(stereo_wav, out, mel_model, *args, check=False)
    assert proc.returncode == 2 and message.split("|")[0] in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["not onnx", "missing"])
def test_bad_model_is_refused_before_audio_work(stereo_wav, tmp_path, case):
    model = tmp_path / "m.onnx"
    if case == "not onnx":
        model.write_text("hello")
    out = tmp_path / "out.wav"
    proc = render(stereo_wav, out, model, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


def test_existing_output_survives_a_failed_render(stereo_wav, tmp_path):
    out = tmp_path / "precious.wav"
    out.write_bytes(b"the user's earlier work")
    proc = render(stereo_wav, out, tmp_path / "absent.onnx", check=False)
    assert proc.returncode == 2 and out.read_bytes() == b"the user's earlier work"


def test_output_folder_must_exist(stereo_wav, mel_model, tmp_path):
    proc = render(stereo_wav, tmp_path / "nowhere" / "out.wav", mel_model, check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_target_label_raises_that_class_probability(mel_model):
    """Dreaming toward a label makes the model hear more of it (here: a random tiny model)."""
    import streamdream
    x = music_clip(16000, 3.0)
    before = classify(x, 16000, str(mel_model))["brass"]
    out = streamdream.dream(x, 16000, model=str(mel_model), target="brass", steps=4, octaves=1, window_s=1.5,
                            crossfade_s=0.25, step_size=0.2)
    after = classify(out, 16000, str(mel_model))["brass"]
    assert out.shape == x.shape and after > before


def test_python_api_keeps_1d_shape(mel_model):
    import streamdream
    x = music_clip(16000, 1.0, channels=1)[0]
    settings = dict(model=str(mel_model), steps=1, octaves=1, window_s=1.5, crossfade_s=0.25)
    out = streamdream.dream(x, 16000, **settings)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.array_equal(out, streamdream.dream(x[None], 16000, **settings)[0])  # the same dream, as 1-D
    assert not np.allclose(out, x, atol=1e-4)


def test_python_api_rejects_integer_audio(mel_model):
    import streamdream
    with pytest.raises(streamdream.ParameterError, match="floating point"):
        streamdream.dream(np.zeros(100, dtype=np.int16), 16000, model=str(mel_model))


def test_preset_sets_the_dream_and_given_options_override_it():
    from streamdream.cli import build_parser
    from streamdream.cli.dream import params_from_args
    from streamdream.params import Params
    from streamdream.control.presets import BUILTIN_PRESETS

    def params(*argv):
        return params_from_args(build_parser().parse_args(["render", "in.wav", "out.wav", *argv]))

    assert params() == Params()                      # no preset: the defaults, which are vivid
    assert params("--preset", "vivid") == Params()
    tint = params("--preset", "tint")
    assert (tint.step_size, tint.steps, tint.sustain_ms) == (0.025, 4, 0.0)
    mixed = params("--preset", "tint", "--set", "shape=0.5", "--set", "match_loudness=false", "--set", "jitter_ms=5")
    assert (mixed.step_size, mixed.shape, mixed.match_loudness, mixed.jitter_ms) == (0.025, 0.5, False, 5.0)
    for name, values in BUILTIN_PRESETS.items():     # every preset is a valid set of knobs
        assert params("--preset", name) == Params().with_changes(**values)


def test_python_api_takes_a_preset_by_name_and_parameters_over_it(mel_model):
    import streamdream
    from streamdream.control.presets import BUILTIN_PRESETS
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal((2, 3 * 16000))).astype(np.float32)
    fast = dict(model=str(mel_model), window_s=1.5, crossfade_s=0.25, backend="eager", octaves=1)
    by_name = streamdream.dream(audio, 16000, preset="faithful", **fast)
    spelled_out = streamdream.dream(audio, 16000, **{**BUILTIN_PRESETS["faithful"], **fast})
    assert np.array_equal(by_name, spelled_out) and not np.array_equal(by_name, streamdream.dream(audio, 16000, **fast))
    with pytest.raises(streamdream.ParameterError, match="preset 'toward' is now 'vivid'"):
        streamdream.dream(audio, 16000, preset="toward", **fast)
