"""Playing the dream's pitch: several weighted targets, shipped models by name, keys over real JACK MIDI."""
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import music_clip, run_cli
from harness.models import make_audio_model
from streamdream.control.mapping import note_name
from streamdream.dreaming.dreamer import Dreamer
from streamdream.data import DEFAULT_MODEL, shipped_path
from streamdream.dreaming.model import read_model_info
from streamdream.errors import ModelError
from streamdream.params import Params
from test_midi_jack import connect_to_streamdream, read_stats, start

KEYS = [note_name(n) for n in range(21, 109)]   # A0 .. C8, as the pitch model
RATE = 16000


@pytest.fixture(scope="session")
def keyed_model(model_dir):
    return make_audio_model(model_dir / "tiny_keys.onnx", labels=KEYS, seed=5)


def key_scores(dreamer, window):
    with torch.no_grad():
        return dreamer.loaded.module(dreamer.view(torch.from_numpy(window))).mean(0).numpy()


def test_a_chord_target_pushes_each_key_by_its_weight(keyed_model):
    window = music_clip(RATE, 2.0)
    params = Params(model=str(keyed_model), target="C4,E4:0.5,G4", steps=4, octaves=1, jitter_ms=0.0)
    dreamer = Dreamer(params, RATE, 2, window.shape[1])
    weights = dreamer.target_weights(params).numpy()
    chord = [KEYS.index(k) for k in ("C4", "E4", "G4")]
    assert weights[chord].tolist() == [1.0, 0.5, 1.0] and weights.sum() == 2.5
    before, after = key_scores(dreamer, window), key_scores(dreamer, dreamer.dream_window(window, 0))
    assert (after - before) @ weights > 0
    # the same Dreamer plays another chord on the next window: targets are per-window values
    other = params.with_changes(target="A2")
    moved = dreamer.dream_window(window, 1, other)
    assert key_scores(dreamer, moved)[KEYS.index("A2")] > before[KEYS.index("A2")]


def test_render_target_chord_on_the_command_line(keyed_model, stereo_wav, tmp_path):
    out = tmp_path / "chord.wav"
    result = run_cli("render", stereo_wav, out, "--model", keyed_model, "--target", "C4,E4,G4", "--set", "steps=2",
                     "--set", "window_s=1.5", "--set", "crossfade_s=0.5", "--quiet")
    assert result.returncode == 0, result.stderr
    dry, wet = sf.read(stereo_wav)[0], sf.read(out)[0]
    assert wet.shape == dry.shape and np.abs(wet - dry).max() > 1e-4
    bad = run_cli("render", stereo_wav, tmp_path / "x.wav", "--model", keyed_model, "--target", "C4,H9")
    assert bad.returncode == 2 and "unknown target label 'H9'" in bad.stderr and not (tmp_path / "x.wav").exists()


def test_shipped_models_by_name():
    assert read_model_info("default").path == shipped_path(DEFAULT_MODEL)
    assert read_model_info("pitch").path == shipped_path("pitch.onnx")
    with pytest.raises(ModelError, match="no model file 'nosuch' and no shipped model of that name; shipped models: "
                                         ".*default"):
        read_model_info("nosuch")


def test_held_chord_over_jack_midi_becomes_the_targets(jack, keyed_model, tmp_path):
    live, stats = start(jack, keyed_model, tmp_path, "--duration", "90")
    sender = connect_to_streamdream(jack)
    for note, velocity in ((60, 127), (64, 64), (67, 32)):     # C4, E4, G4 held
        sender.send_message([0x90, note, velocity])
    snap = read_stats(stats, lambda s: s["dream"]["target"] == "C4:1,E4:0.504,G4:0.252")
    sender.send_message([0x80, 64, 0])                          # E4 released
    snap = read_stats(stats, lambda s: s["dream"]["target"] == "C4:1,G4:0.252")
    sender.send_message([0x80, 60, 0])
    sender.send_message([0x90, 67, 0])                          # the rest released (velocity-0 note-on)
    snap = read_stats(stats, lambda s: s["dream"]["target"] is None)
    # the worker went on dreaming through the changes
    dreamed = snap["windows_dreamed"]
    read_stats(stats, lambda s: s["windows_dreamed"] > dreamed, timeout=60)
    live.terminate()
    live.wait(timeout=30)


def test_live_worker_prepares_the_key_playing_dreamer_for_keyboard_models():
    from streamdream.stream.worker import dreamer_key, keyboard_params
    params = Params(model="pitch")
    played = keyboard_params(params, KEYS)
    # any chord the performer plays later needs exactly this Dreamer: targets themselves are per window
    assert dreamer_key(played) == dreamer_key(params.with_changes(target="C4:1,E4:0.504"))
    assert keyboard_params(params, ["piano", "brass"]) is None
    assert keyboard_params(params.with_changes(target="C4"), KEYS) is None


@pytest.mark.parametrize("freq, key", [(98.0, "G2"), (261.63, "C4"), (440.0, "A4")])
def test_shipped_pitch_model_names_the_key_of_a_tone_it_never_heard(tmp_path, freq, key):
    """A plain additive tone (seven decaying harmonics), not a soundfont: the shipped model's top key is its pitch."""
    t = np.arange(2 * 48000) / 48000
    tone = sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, 8)) * np.exp(-1.5 * t)
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * tone / np.abs(tone).max()).astype(np.float32), 48000)
    result = run_cli("models", "classify", path, "--model", "pitch", "--json")
    assert result.returncode == 0, result.stderr
    import json
    probs = json.loads(result.stdout)["probabilities"]
    assert len(probs) == 88 and max(probs, key=probs.get) == key and probs[key] > 0.5
    info = read_model_info("pitch")
    assert info.multi_label and info.labels == KEYS
