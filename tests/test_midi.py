"""MIDI mapping, presets, learn and the ccstore logic, fed scripted messages (the JACK tests use real ports)."""
import numpy as np
import pytest

from streamdream.control.learn import learn_mapping, write_mapping
from streamdream.control.mapping import load_mapping, parse_mapping
from streamdream.control.midi import MidiControl
from streamdream.params import Params
from streamdream.control.presets import load_presets, parse_presets, save_preset
from streamdream.errors import ParameterError
from streamdream.control.store import Controls
from streamdream.stream.engine import Engine

LABELS = ["piano", "brass", "drums", "voice"]
LAYERS = ["/a", "/b", "/c"]


@pytest.fixture
def engine(mel_model):
    return Engine(Params(model=str(mel_model), window_s=1.5, crossfade_s=0.25), 16000, 256, budget_s=0.5)


@pytest.fixture
def control(engine, tmp_path):
    presets = [{"name": "soft", "intensity": 0.3, "target": "drums", "steps": 7}]
    return MidiControl(engine, load_mapping(), LABELS, LAYERS, presets, str(tmp_path / "presets.toml"))


def send(control, *messages):
    for m in messages:
        control.on_message((list(m), 0.0))


def test_default_mapping_mod_wheel_is_intensity_and_volume_is_gain(control, engine):
    send(control, [0xB0, 1, 127], [0xB3, 7, 0])
    assert engine.controls.target[0] == pytest.approx(2.0)
    assert engine.controls.target[2] == pytest.approx(10 ** (-24 / 20))


def test_per_window_knobs_wait_for_apply_then_reach_the_worker(control, engine):
    before = engine.params
    send(control, [0xB0, 22, 127], [0xB0, 23, 0], [0xB0, 24, 127], [0xB0, 25, 0], [0xB0, 21, 127])
    assert engine.params is before and before.steps != 16  # untouched until the main loop applies
    params = control.apply()
    assert params is engine.params
    assert (params.steps, params.octaves, params.layer, params.target) == (16, 1, "/c", None)
    assert params.step_size == pytest.approx(0.3)
    assert control.apply() is None  # nothing new


def test_default_mapping_sets_how_much_of_the_music_a_target_keeps(control, engine):
    # CC 28 hold 0..3, CC 29 keep 0..1, CC 30 sustain 0..512 ms (default_map.toml, the README's table)
    send(control, [0xB0, 28, 127], [0xB0, 29, 0], [0xB0, 30, 127])
    params = control.apply()
    assert (params.hold_others, params.keep, params.sustain_ms) == (pytest.approx(3.0), 0.0, pytest.approx(512.0))
    send(control, [0xB0, 28, 0], [0xB0, 31, 0])
    params = control.apply()
    assert params.hold_others == 0.0 and params.ceiling_db == -24.0  # CC 31: the dream's ceiling, -24..24 dB


def test_notes_choose_the_target_and_velocity_sets_depth(control, engine):
    send(control, [0x90, 48 + 1, 127])  # C#3 -> second label
    params = control.apply()
    assert params.target == "brass" and params.step_size == pytest.approx(0.2)
    send(control, [0x90, 48, 1])
    assert control.apply().step_size == pytest.approx(0.01) and engine.params.target == "piano"
    send(control, [0x80, 48, 0], [0x90, 48, 0])  # note-off and velocity-0 note-on change nothing
    assert control.apply() is None


def test_sustain_pedal_holds_freeze(control, engine):
    send(control, [0xB0, 64, 127])
    assert control.apply().freeze is True
    send(control, [0xB0, 64, 0])
    assert control.apply().freeze is False


def test_program_change_loads_a_preset_including_instant_values(control, engine):
    send(control, [0xC0, 0])
    params = control.apply()
    assert (params.target, params.steps) == ("drums", 7)
    assert engine.controls.target[0] == pytest.approx(0.3)
    send(control, [0xC0, 9])  # no such preset: ignored
    assert control.apply() is None


def test_clock_sensing_sysex_and_unknown_ccs_are_ignored(control, engine):
    before = (engine.controls.target.copy(), engine.params)
    send(control, [0xF8], [0xFE], [0xF0, 1, 2, 0xF7], [0xB0, 99, 5], [0xE0, 0, 64])
    assert control.ignored == 5
    assert np.array_equal(engine.controls.target, before[0]) and control.apply() is None


def test_save_preset_from_the_current_state(control, engine, tmp_path):
    mapping = parse_mapping('[[cc]]\ncc = 30\nparam = "save_preset"\n')
    control.by_cc = mapping.lookup()
    engine.controls.set(intensity=1.5)
    send(control, [0xB0, 30, 127])
    control.apply()
    saved = load_presets(tmp_path / "presets.toml")
    assert saved[-1]["name"] == "snapshot-1" and saved[-1]["intensity"] == pytest.approx(1.5)
    assert control.saved == [len(saved) - 1]


@pytest.mark.parametrize("text,message", [
    ("[[cc]\ncc = 1", "line 1"),
    ('[[cc]]\ncc = 1\nparam = "volume"\n', "line 1: unknown param 'volume'"),
    ('# c\n\n[[cc]]\ncc = 1\nparam = "mix"\n\n[[cc]]\ncc = 200\nparam = "mix"\n', "line 7: cc must be"),
    ('[[cc]]\ncc = 1\nparam = "intensity"\nmax = 5.0\n', "max = 5 is outside intensity's range 0..2"),
    ('[[cc]]\ncc = 1\nparam = "step_size"\nmin = 0.0\ncurve = "exp"\n', "exp curve needs"),
    ('[[cc]]\ncc = 1\nparam = "mix"\n[[cc]]\ncc = 1\nparam = "intensity"\n', "line 4: cc 1 on channel any is already mapped"),
    ('[[cc]]\ncc = 1\nchannel = 17\nparam = "mix"\n', "channel must be 1..16"),
    ("[pedals]\nx = 1\n", "unknown section"),
    ('[notes]\nfirst_note = 300\n', "first_note must be 0..127"),
])
def test_bad_mappings_name_the_line_and_the_problem(text, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_mapping(text, "map.toml")


@pytest.mark.parametrize("text,message", [
    ('[[preset]]\nname = "a"\nintensity = 9.0\n', "line 1: intensity must be 0..2, not 9"),
    ('[[preset]]\nname = "a"\n\n[[preset]]\nvolume = 1\n', "line 4: every preset needs a name"),
    ('[[preset]]\nname = "a"\nwarp = 1\n', "unknown key 'warp'"),
    ('[[preset]\n', "not valid TOML"),
])
def test_bad_presets_name_the_line_and_the_problem(text, message):
    with pytest.raises(ParameterError, match=message):
        parse_presets(text, "presets.toml")


def test_preset_save_load_round_trip_and_replace_by_name(tmp_path):
    path = tmp_path / "p.toml"
    save_preset(path, {"name": "a", "intensity": 0.5, "layer": "/x", "freeze": True})
    save_preset(path, {"name": "b", "steps": 3})
    assert save_preset(path, {"name": "a", "intensity": 0.7}) == 1  # replaced, moved last
    presets = load_presets(path)
    assert [p["name"] for p in presets] == ["b", "a"] and presets[1]["intensity"] == 0.7


def test_learn_asks_each_parameter_and_writes_a_mapping_that_loads(tmp_path):
    # scripted knob moves: CC 64 (the sustain pedal) and a repeat are refused and asked again
    moves = iter([(1, 10), (1, 64), (1, 10), (1, 11), None, (2, 12)])
    said = []
    mapping = learn_mapping(["intensity", "mix", "gain_db", "freeze"], lambda p: next(moves), said.append)
    assert [(m.param, m.channel, m.cc) for m in mapping.cc] == [("intensity", 1, 10), ("mix", 1, 11), ("freeze", 2, 12)]
    assert any("sustain" in s for s in said) and any("already controls intensity" in s for s in said)
    path = write_mapping(tmp_path / "m.toml", mapping)
    again = load_mapping(path)
    assert again.cc == mapping.cc and again.cc[0].hi == 2.0 and again.cc[2].curve == "toggle"
    with pytest.raises(ParameterError, match="exists"):
        write_mapping(path, mapping)


def test_instant_controls_glide_within_20_ms_and_settle_exactly():
    rate, block = 48000, 512
    controls = Controls(Params(intensity=0.0), rate, block)
    assert controls.block(block)[0] == np.float32(0.0)
    controls.set(intensity=2.0)
    ramp = np.concatenate([np.array(controls.block(block)[0]) for _ in range(2)])
    assert 0 < ramp[0] < ramp[-1]
    assert ramp[int(0.020 * rate)] >= 0.95 * 2.0  # within 20 ms the knob has (almost) arrived
    for _ in range(20):
        value = controls.block(block)[0]
    assert value == np.float32(2.0) and np.ndim(value) == 0  # settled: the exact value, no ramp


KEY_LABELS = [f"{n}{o}" for o in range(0, 9) for n in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")]


def test_a_keyboard_model_plays_chords_as_weighted_targets(engine, tmp_path):
    control = MidiControl(engine, load_mapping(), KEY_LABELS, LAYERS)
    send(control, [0x90, 60, 127], [0x90, 64, 64], [0x91, 67, 32])   # C4, E4, G4 (any channel)
    assert control.apply().target == "C4:1,E4:0.504,G4:0.252"
    assert engine.params.step_size == Params().step_size             # velocity weights keys, not depth
    send(control, [0x80, 64, 0])                                      # E4 released
    assert control.apply().target == "C4:1,G4:0.252"
    send(control, [0x90, 60, 0], [0x80, 67, 10])                      # velocity-0 note-on is a release too
    assert control.apply().target is None
    send(control, [0x90, 5, 100])                                      # F-1: not a key of this model
    assert control.apply() is None and control.ignored == 1
