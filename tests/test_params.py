"""One table of parameters (params.RANGES): Params, --set, the piece TOML, `streamdream params`, MIDI, OSC and
presets all take every parameter from it, with the same ranges."""
import json
import random
from dataclasses import fields

import pytest

from streamdream.cli import main
from streamdream.cli.dream import parse_sets
from streamdream.control.mapping import KNOBS, parse_mapping
from streamdream.control.presets import (SAVED_KEYS, apply_preset, load_presets, parse_presets, preset_from_params,
                                         presets_text, save_preset)
from streamdream.errors import ParameterError
from streamdream.params import RANGES, Params, named

RANGED = [key for key in SAVED_KEYS if RANGES[key].numeric]


def _values(key: str, rng: random.Random) -> list:
    """Both ends of the range and a spread of values inside it."""
    span = RANGES[key]
    if span.integer:
        inside = [rng.randint(int(span.lo), int(span.hi)) for _ in range(20)]
    else:
        inside = [rng.uniform(span.lo, span.hi) for _ in range(20)]
    return [span.lo, span.hi] + inside


def _example(key: str):
    """A valid value other than the default, as TOML and --set write it."""
    spec = RANGES[key]
    if spec.kind == "bool":
        return (not spec.default), str(not spec.default).lower()
    if spec.choices:
        value = next(c for c in spec.choices if c != spec.default)
        return value, value
    if spec.kind == "text":
        return {"model": "default", "torch_device": "cpu"}.get(key, "brass"), \
            {"model": "default", "torch_device": "cpu"}.get(key, "brass")
    value = spec.hi if spec.default != spec.hi else spec.lo
    return value, repr(value)


def test_params_has_one_field_per_table_entry_with_its_default():
    assert [f.name for f in fields(Params)] == list(RANGES)
    assert all(getattr(Params(), name) == spec.default for name, spec in RANGES.items())


@pytest.mark.parametrize("key", list(RANGES))
def test_every_parameter_is_reachable_by_set_and_toml_and_listed(key, tmp_path, capsys):
    if key == "crossfade_s":  # its top is half of the window: check it against a longer window
        base = {"window_s": 30.0}
    elif key == "reconstruct":
        base = {"view": "stft"}
    else:
        base = {}
    value, text = _example(key)
    assert parse_sets([f"{key}={text}"]) == {key: value}
    assert getattr(Params().with_changes(**base, **{key: value}), key) == value
    piece = tmp_path / "piece.toml"
    toml_value = json.dumps(value) if not isinstance(value, bool) else text
    piece.write_text("[dream]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items())
                     + f"{key} = {toml_value}\n")
    from streamdream.stream.installation.piece import load_piece
    assert load_piece(str(piece)).dream[key] == value
    assert main(["params", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[key]["default"] == RANGES[key].default and listed[key]["help"] == RANGES[key].help


@pytest.mark.parametrize("key", [k for k, spec in RANGES.items() if spec.heard != "start"])
def test_every_parameter_heard_while_running_is_a_knob_and_a_preset_key(key):
    assert key in KNOBS and key in SAVED_KEYS
    assert KNOBS[key].kind == ("instant" if RANGES[key].heard == "block" else "window")


def test_a_bad_set_is_one_line_naming_the_key(capsys):
    for args, message in ((["--set", "stepz=2"], "unknown parameter 'stepz'"),
                          (["--set", "steps=0"], "steps must be 1..1000"),
                          (["--set", "steps=2.5"], "steps must be a whole number"),
                          (["--set", "freeze=maybe"], "freeze must be true or false"),
                          (["--set", "view=sideways"], "view must be one of mel, stft, raw-image, waveform"),
                          (["--set", "steps"], "write KEY=VALUE")):
        assert main(["render", "in.wav", "out.wav", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_front_options_win_over_set_and_set_over_the_preset():
    from streamdream.cli import build_parser
    from streamdream.cli.dream import params_from_args
    args = build_parser().parse_args(["render", "a.wav", "b.wav", "--preset", "faithful", "--set", "steps=3",
                                      "--set", "intensity=0.5", "--intensity", "1.5"])
    params = params_from_args(args)
    assert (params.steps, params.intensity, params.ceiling_db) == (3, 1.5, 0.0)


@pytest.mark.parametrize("key", RANGED)
def test_preset_saved_from_any_valid_state_loads_back(tmp_path, key):
    rng = random.Random(key)
    path = tmp_path / "presets.toml"
    saved = []
    for i, value in enumerate(_values(key, rng)):
        params = Params().with_changes(**{key: value})
        save_preset(path, preset_from_params(f"p{i}", params))
        saved.append(params)
    loaded = load_presets(path)  # the whole file loads: one bad entry would make all of it unloadable
    assert [p["name"] for p in loaded] == [f"p{i}" for i in range(len(saved))]
    for params, preset in zip(saved, loaded):
        assert apply_preset(Params(), preset) == params


def test_many_steps_preset_loads_back(tmp_path):
    # the reported case: steps = 100 is a valid Params value, so a preset holding it must load
    path = tmp_path / "presets.toml"
    save_preset(path, preset_from_params("deep", Params(steps=100, layer="/a", target="brass", freeze=True)))
    [preset] = load_presets(path)
    assert apply_preset(Params(), preset) == Params(steps=100, layer="/a", target="brass", freeze=True)


@pytest.mark.parametrize("key", RANGED)
def test_just_outside_the_range_is_refused_everywhere(key):
    span = RANGES[key]
    step = 1 if span.integer else 1e-3 * (span.hi - span.lo)
    for outside in (span.lo - step, span.hi + step):
        with pytest.raises(ParameterError, match=f"{named(key)} must be"):
            Params().with_changes(**{key: outside})
        with pytest.raises(ParameterError, match=f"{key} must be"):
            parse_presets(f'[[preset]]\nname = "x"\n{key} = {outside!r}\n')
        with pytest.raises(ParameterError, match="is outside"):
            parse_mapping(f'[[cc]]\ncc = 1\nparam = "{key}"\nmax = {outside!r}\n')


@pytest.mark.parametrize("key", [k for k in RANGED if KNOBS[k].kind in ("instant", "window")])
def test_a_knob_over_the_whole_range_gives_valid_params_at_every_position(key):
    span = RANGES[key]
    mapping = parse_mapping(f'[[cc]]\ncc = 1\nparam = "{key}"\nmin = {span.lo!r}\nmax = {span.hi!r}\n')
    [cc] = mapping.cc
    values = [cc.value(raw) for raw in range(128)]
    assert (values[0], values[-1]) == (span.lo, span.hi)
    # each position saved as a preset, in a presets file's text (writing it is save_preset's test)
    text = presets_text([preset_from_params(f"cc{raw}", Params().with_changes(**{key: value}))
                         for raw, value in enumerate(values)])
    loaded = parse_presets(text)
    assert [getattr(apply_preset(Params(), p), key) for p in loaded] == values
