"""Installation mode: a piece runs for weeks, so nothing may grow while knobs move and windows pass."""
import gc
import threading
import time
from collections import Counter

import numpy as np
import pytest

from conftest import music_clip
from streamdream.control.mapping import load_mapping
from streamdream.control.midi import MidiControl
from streamdream.params import Params
from streamdream.stream.engine import HEARD_HISTORY, VERSION_HISTORY, Engine, FileSource


class HalfDreamer:
    """Dreams instantly (the dream is half the window): these tests are about the engine's bookkeeping over
    thousands of windows, which the real tiny model would take minutes to reach."""

    def dream_window(self, window, k, params=None):
        return window * 0.5


def knob_params(model):
    return Params(model=str(model), steps=2, octaves=1, window_s=1.0, crossfade_s=0.25, backend="eager")


@pytest.mark.slow
def test_thousands_of_knob_moves_and_windows_leave_every_structure_bounded(mel_model):
    rate, block = 8000, 4000  # blocks of 0.5 s: a thousand windows pass quickly
    engine = Engine(knob_params(mel_model), rate, block, budget_s=1.0, source=FileSource(music_clip(rate, 3.0)),
                    dreamer_factory=lambda p: HalfDreamer(), lockstep=True)
    midi = MidiControl(engine, load_mapping(), ["a", "b"], ["/x", "/y"])
    out = np.zeros((block, 2), dtype=np.float32)
    moves = 0

    def play(blocks: int) -> None:
        nonlocal moves
        for _ in range(blocks):
            for _turn in range(3):  # MIDI applies every 20 ms: real knobs move more often than this
                for cc in (1, 20, 21, 22):  # intensity and mix (instant), step size and steps (per window)
                    midi.on_message(([0xB0, cc, moves % 128], 0.0))
                    moves += 1
                if midi.apply() is None:
                    raise AssertionError("every turn moves a per-window knob: a new Params each time")
            engine.wait_for_dreams(block)
            engine.process(None, out, block, None)

    engine.start_worker()
    try:
        play(1600)  # warm-up: past both history lengths
        assert engine.params_version > VERSION_HISTORY and engine.heard_total > HEARD_HISTORY
        gc.collect()
        objects_before = len(gc.get_objects())
        versions_before, heard_before = engine.params_version, engine.heard_total
        play(3000)
        gc.collect()
        objects_after = len(gc.get_objects())
    finally:
        engine.stop_worker()
    assert engine.worker_error is None
    assert engine.params_version - versions_before == 9000 and engine.heard_total - heard_before > 1900
    assert len(engine.heard) == HEARD_HISTORY and len(engine._versions) == VERSION_HISTORY
    # the windows heard last still know the Params they were dreamed with
    assert all(p is not None for _, _, p in list(engine.heard)[-10:])
    # one object kept per move or per window would be 2,000 to 9,000 more objects; allow for caches filling
    assert objects_after - objects_before < 500, objects_after - objects_before


@pytest.mark.subprocess
def test_a_busy_dream_process_never_blocks_the_thread_that_moves_knobs(mel_model):
    """The worker process used to read new Params only between windows; while it waited (or dreamed), a
    pipe full of knob moves blocked set_params, and with it MIDI, for good."""
    engine = Engine(knob_params(mel_model), 16000, 256, budget_s=0.5, worker="process", lockstep=True)
    engine.start_worker()
    done = threading.Event()

    def move_knobs():
        params = engine.params
        for n in range(5000):  # about 100 s of a knob moving; ~300 bytes each, far more than a pipe holds
            engine.set_params(params.with_changes(steps=1 + n % 50), instant=False)
        done.set()

    try:
        threading.Thread(target=move_knobs, daemon=True).start()
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            engine.poll_worker()
            time.sleep(0.01)
        assert done.is_set(), "set_params blocked: the worker process is not reading its pipe"
        engine.poll_worker()
        assert engine.worker_error is None
    finally:
        engine.close()


def test_a_walk_over_layers_and_targets_builds_each_dreamer_once(mel_model):
    """TorchScript never gives back a dropped Dreamer's module types, so a worker that dropped and rebuilt
    Dreamers as --evolve or a knob walked over layers grew for as long as the piece ran. Ten objectives
    (five layers, with and without a target) visited again and again are built ten times in all."""
    rate, block = 8000, 4000
    built = []

    def factory(params):
        built.append((params.layer, params.target is not None))
        return HalfDreamer()

    layers = [f"/stage{i}" for i in range(1, 6)]
    objectives = [(layer, target) for layer in layers for target in (None, "a")]
    engine = Engine(knob_params(mel_model).with_changes(layer=layers[0]), rate, block, budget_s=1.0,
                    source=FileSource(music_clip(rate, 3.0)), dreamer_factory=factory, lockstep=True)
    out = np.zeros((block, 2), dtype=np.float32)
    engine.start_worker()
    try:
        for n in range(300):
            layer, target = objectives[(n * 7) % len(objectives)]  # every objective, in a shuffled order
            engine.set_params(engine.params.with_changes(layer=layer, target=target), instant=False)
            engine.wait_for_dreams(block)
            engine.process(None, out, block, None)
    finally:
        engine.stop_worker()
    assert engine.worker_error is None
    assert engine.stats.windows_dreamed > 15 * len(objectives)  # each objective dreamed again and again
    assert Counter(built) == Counter((layer, target is not None) for layer, target in objectives)


def test_no_layer_and_the_default_layers_own_name_share_one_dreamer(mel_model):
    """A knob or --evolve that names the model's default layer reaches the objective a piece with no
    --layer started on: it must not build (and keep, for good) a second Dreamer for it."""
    from streamdream.dreaming.model import read_model_info

    rate, block = 8000, 4000
    built = []

    def factory(params):
        built.append(params.layer)
        return HalfDreamer()

    default = read_model_info(mel_model).dream_layer
    other = next(layer.name for layer in read_model_info(mel_model).recommended if layer.name != default)
    engine = Engine(knob_params(mel_model).with_changes(layer=None), rate, block, budget_s=1.0,
                    source=FileSource(music_clip(rate, 3.0)), dreamer_factory=factory, lockstep=True)
    out = np.zeros((block, 2), dtype=np.float32)
    engine.start_worker()
    try:
        for n in range(90):  # each spelling held for a few windows, again and again
            engine.set_params(engine.params.with_changes(layer=(None, default, other)[n // 3 % 3]), instant=False)
            engine.wait_for_dreams(block)
            engine.process(None, out, block, None)
    finally:
        engine.stop_worker()
    assert engine.worker_error is None
    assert sorted(built, key=str) == sorted([None, other], key=str)


def _callbacks(seconds: float, clock_ppm: float = 0.0, stalls=(), late=(), flags=(), seed=0):
    """A device's callbacks as (start time, frames, xrun flag), and the time they lost against the wall
    clock. 512-frame blocks at 48 kHz with up to 0.5 ms of jitter, a clock `clock_ppm` slow against the
    wall; `late` callbacks {time: seconds late} (the next ones on time again); xrun `flags` at given
    times; `stalls` {time: seconds}: the server stops that long, then does what JACK's dummy driver does
    (JackTimedDriver::ProcessWait): runs the late cycle, finds it missed its deadline, runs the next cycle
    at once and starts a new timeline one period after that cycle's end (its processing, 0.5 ms here)."""
    rng = np.random.default_rng(seed)
    period = 512 / 48000 * (1 + clock_ppm * 1e-6)
    t, out, lost = 100.0, [], 0.0  # t: when the next callback is due
    end = t + seconds
    stalls, late, flags = dict(stalls), dict(late), sorted(flags)

    def due(table):
        return next((table.pop(w) for w in sorted(table) if w <= t - 100.0), None)

    def flag():
        if flags and flags[0] <= t - 100.0:
            flags.pop(0)
            return True
        return False

    while t < end:
        stall, delay = due(stalls), due(late)
        if stall is not None:
            t += stall
            out.append((t, 512, flag()))              # the late cycle
            t += 0.0002
            out.append((t, 512, flag()))              # the next one at once
            t += 0.0005 + period                      # a new timeline from the end of its processing
            lost += stall + 0.0007 - period           # the wall time no frames were played for
            continue
        out.append((t + (delay or 0.0) + rng.uniform(0, 0.0005), 512, flag()))
        t += period
    return out, lost


def _skipped(callbacks) -> int:
    from streamdream.stream.recorder import SkippedTime
    skipped = SkippedTime(48000)
    return sum(skipped.block(now, frames, flag) for now, frames, flag in callbacks[0])


def test_time_the_device_skipped_is_counted_only_after_an_xrun_and_to_within_a_millisecond():
    # the server stops for 35 ms, then 0.4 s, then 20 ms twice 0.1 s apart; JACK flags each xrun at once,
    # except the last, flagged 0.3 s late
    stalls = {10.0: 0.035, 30.0: 0.4, 45.0: 0.020, 45.1: 0.020}
    run = _callbacks(60, stalls=stalls, flags=(10.0, 30.0, 45.0, 45.4))
    assert abs(_skipped(run) - run[1] * 48000) < 48
    # two hundred 12-30 ms stalls 2 s apart, flagged at once (more xruns than the hour soaks had, 141-167):
    # the recording still keeps wall time to the block, the bound (measured: 37-83 frames, seeds 0-5)
    many = {10.0 + 2.0 * i: 0.012 + 0.018 * (i % 7) / 6 for i in range(200)}
    run = _callbacks(420, stalls=many, flags=tuple(many))
    assert abs(_skipped(run) - run[1] * 48000) < 512
    # the same drops with no flag are not counted (nothing tells them from a clock running slow)
    assert _skipped(_callbacks(60, stalls=stalls)) == 0


def test_a_slow_clock_late_callbacks_and_xruns_that_lost_nothing_add_no_silence():
    # an hour on a sound card 100 ppm slow (0.36 s behind the wall by the end: the card's time, not lost
    # audio), one xrun a minute that lost nothing and a callback 20 ms late every minute: less than one
    # block of silence in all, the "recorded == wall time to the block"
    flags = [60.0 * m + 0.5 for m in range(60)]
    late = {60.0 * m + 0.5: 0.020 for m in range(60)}
    assert _skipped(_callbacks(3600, clock_ppm=100, late=late, flags=flags)) < 512
