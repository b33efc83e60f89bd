"""One table of ranges (params.RANGES): Params, the CLI, MIDI mappings and presets accept the same values."""
import random

import pytest

from streamdream.control.mapping import KNOBS, parse_mapping
from streamdream.control.presets import (SAVED_KEYS, apply_preset, load_presets, parse_presets, preset_from_params,
                                         save_preset)
from streamdream.errors import ParameterError
from streamdream.params import RANGES, Params

RANGED = [key for key in SAVED_KEYS if key in RANGES]


def _values(key: str, rng: random.Random) -> list:
    """Both ends of the range and a spread of values inside it."""
    span = RANGES[key]
    if span.integer:
        inside = [rng.randint(int(span.lo), int(span.hi)) for _ in range(20)]
    else:
        inside = [rng.uniform(span.lo, span.hi) for _ in range(20)]
    return [span.lo, span.hi] + inside


def test_every_saved_knob_has_a_range():
    # presets hold these numeric keys; each must be checked against the table, not a private copy
    assert set(RANGED) == {"intensity", "mix", "gain_db", "step_size", "steps", "octaves", "octave_scale", "jitter_ms",
                           "eq_bands", "eq_depth_db", "keep", "hold_others", "sustain_ms", "ceiling_db", "swell_db"}


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
        with pytest.raises(ParameterError, match=f"{span.option} must be"):
            Params().with_changes(**{key: outside})
        with pytest.raises(ParameterError, match="is outside"):
            parse_presets(f'[[preset]]\nname = "x"\n{key} = {outside!r}\n')
        with pytest.raises(ParameterError, match="is outside"):
            parse_mapping(f'[[cc]]\ncc = 1\nparam = "{key}"\nmax = {outside!r}\n')


@pytest.mark.parametrize("key", [k for k in RANGED if KNOBS[k].kind in ("instant", "window")])
def test_a_knob_over_the_whole_range_gives_valid_params_at_every_position(tmp_path, key):
    span = RANGES[key]
    mapping = parse_mapping(f'[[cc]]\ncc = 1\nparam = "{key}"\nmin = {span.lo!r}\nmax = {span.hi!r}\n')
    [cc] = mapping.cc
    values = [cc.value(raw) for raw in range(128)]
    assert (values[0], values[-1]) == (span.lo, span.hi)
    path = tmp_path / "presets.toml"
    for raw, value in enumerate(values):
        save_preset(path, preset_from_params(f"cc{raw}", Params().with_changes(**{key: value})))
    loaded = load_presets(path)
    assert [getattr(apply_preset(Params(), p), key) for p in loaded] == values
