"""Installation mode: `streamdream loop`, its piece file, feedback and its guard, evolution, the schedule."""
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import music_clip, run_cli
from streamdream.errors import ParameterError, StreamDreamError
from streamdream.params import Params
from streamdream.stream.feedback import Feedback, FeedbackGuard, rms_db, spectral_shape
from streamdream.stream.installation.evolve import Evolver
from streamdream.stream.installation.material import load_loop, read_playlist
from streamdream.stream.installation.piece import load_piece
from streamdream.stream.installation.schedule import DaySchedule


def cli(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "streamdream.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def tiny_dream(model):
    return ["--model", model, "--set", "backend=eager", "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "steps=2",
            "--set", "octaves=2"]


@pytest.fixture
def two_files(tmp_path):
    rate = 16000
    sf.write(tmp_path / "a.wav", music_clip(rate, 4.0, seed=1).T, rate)
    sf.write(tmp_path / "b.flac", music_clip(rate, 3.0, seed=2).T, rate, subtype="PCM_24")
    return tmp_path / "a.wav", tmp_path / "b.flac"


def test_playlists_expand_relative_to_themselves_and_a_missing_entry_names_its_line(tmp_path, two_files):
    sub = tmp_path / "lists"
    sub.mkdir()
    (sub / "set.m3u").write_text("#EXTM3U\n../a.wav\n\n# a comment\n" + str(two_files[1]) + "\n")
    assert read_playlist([str(sub / "set.m3u"), str(two_files[0])]) == [sub / "../a.wav", two_files[1], two_files[0]]
    (sub / "bad.txt").write_text("../a.wav\nnot-there.wav\n")
    with pytest.raises(StreamDreamError, match=r"bad.txt line 2: .*not-there.wav does not exist"):
        read_playlist([str(sub / "bad.txt")])


def test_the_loop_wraps_without_a_click(two_files):
    rate = 16000
    t = np.arange(int(3.3 * rate)) / rate
    tone = np.stack([np.sin(2 * np.pi * 441.3 * t)] * 2).astype(np.float32) * 0.5  # no whole periods: a cut clicks
    path = two_files[0].parent / "tone.wav"
    sf.write(path, tone.T, rate, subtype="FLOAT")
    looped, got_rate = load_loop([path], None, crossfade_s=0.5)
    assert got_rate == rate and looped.shape == (2, tone.shape[1] - rate // 2)
    twice = np.concatenate([looped, looped], axis=1)
    steps = np.abs(np.diff(twice[0]))
    within = np.abs(np.diff(tone[0])).max()
    assert np.abs(tone[0, 0] - tone[0, -1]) > 3 * within     # played as is, the wrap would click
    assert steps.max() <= within * 1.01                      # crossfaded, no step is bigger than the tone's own


def test_files_of_different_rates_and_channels_join_at_one_rate(tmp_path, two_files):
    mono = music_clip(22050, 2.0, channels=1, seed=3)
    sf.write(tmp_path / "m.wav", mono.T, 22050)
    looped, rate = load_loop([two_files[0], tmp_path / "m.wav"], 16000, crossfade_s=0.25)
    assert rate == 16000 and looped.shape[0] == 2
    assert abs(looped.shape[1] - (6 * 16000 - 4000)) <= 2


def test_guard_pulls_feedback_back_from_noise_and_a_screeching_tone_and_lets_it_return(rng):
    rate = 16000
    source = music_clip(rate, 6.0, seed=4)
    said = []
    fb = Feedback(0.8, 2, 512, rate)
    guard = FeedbackGuard(fb, source, report=said.append)
    assert guard.check(source[:, :2 * rate]) is None and fb.scale == 1.0
    noise = rng.standard_normal((2, 2 * rate)).astype(np.float32) * 0.1
    assert "flatness" in guard.check(noise) and fb.effective == pytest.approx(0.4)
    t = np.arange(2 * rate) / rate
    screech = np.stack([np.sin(2 * np.pi * 2500 * t)] * 2).astype(np.float32) * 0.1
    assert "tonality" in guard.check(screech) and fb.effective == pytest.approx(0.2)
    assert "level" in guard.check(source[:, :2 * rate] * 4.0)
    assert len(said) == 3 and all(text.startswith("feedback pulled back to") for text in said)
    for _ in range(200):
        guard.check(source[:, :2 * rate])
    assert fb.scale == 1.0  # calm again: back to the share asked for


def test_feedback_is_brought_to_the_source_level_before_it_is_mixed_in():
    rate, n = 16000, 400
    fb = Feedback(0.5, 2, n, rate)
    source = np.full((2, n), 0.2, dtype=np.float32)
    for _ in range(400):  # a few time constants of both followers
        block = source.copy()
        fb.mix_into(block, n)
        fb.keep(np.full((2, n), 0.05, dtype=np.float32), n)  # the output came back 12 dB quieter
    assert np.allclose(block, 0.5 * 0.2 + 0.5 * 0.05 * 4.0, rtol=1e-3)  # lifted back to 0.2


@pytest.mark.subprocess
def test_long_feedback_run_stays_bounded_in_level_and_spectrum(mel_model, two_files, tmp_path):
    """The whole loop path, as fast as the dreams allow: feedback 1.0 (all of the input is the output),
    intensity 2. Every 10 s of the recording keeps the source's level and spectral shape within bounds."""
    rec, stats = tmp_path / "long.wav", tmp_path / "stats.json"
    seconds = 240
    out = cli("loop", *two_files, *tiny_dream(mel_model), "--intensity", "2", "--feedback", "1.0", "--device",
              "null", "--lockstep", "--duration", seconds, "--record", rec, "--stats", stats, "--quiet", "--no-midi")
    assert out.returncode == 0, out.stderr
    audio, rate = sf.read(rec, dtype="float32", always_2d=True)
    audio = audio.T
    assert audio.shape[1] == seconds * rate and np.all(np.isfinite(audio))
    source, _ = load_loop(list(two_files), rate)
    src_flat, src_tonal = spectral_shape(source)
    src_db = rms_db(source)
    for start in range(20 * rate, audio.shape[1], 10 * rate):
        part = audio[:, start:start + 10 * rate]
        flat, tonal = spectral_shape(part)
        assert abs(rms_db(part) - src_db) < 6.0
        assert flat < src_flat + FeedbackGuard.MAX_FLATNESS_RISE and tonal < src_tonal + FeedbackGuard.MAX_TONALITY_RISE
    assert not np.array_equal(audio[:, 100 * rate:110 * rate], audio[:, 100 * rate + source.shape[1]:][:, :10 * rate])


def test_evolve_walks_the_same_way_for_one_seed_and_differently_for_another():
    base = Params(steps=4, step_size=0.05)
    layers, labels = ["/a", "/b", "/c"], ["x", "y", "z", "w"]
    one = [Evolver(base, layers, labels, seed=7).params_at(n) for n in range(40)]
    again = [Evolver(base, layers, labels, seed=7).params_at(n) for n in range(40)]
    other = [Evolver(base, layers, labels, seed=8).params_at(n) for n in range(40)]
    assert one == again and one != other
    assert one[0] == base
    assert len({p.layer for p in one}) >= 2 and len({p.steps for p in one}) >= 3
    assert all(p.validate() is p for p in one)


def test_evolve_never_walks_deeper_than_twice_the_pieces_own_steps():
    """A dream costs in proportion to its steps: a piece that fits its budget at the start must keep fitting
    it after a week of walking."""
    base = Params(steps=4, step_size=0.05)
    walks = [Evolver(base, ["/a"], ["x"], seed=seed) for seed in range(5)]
    walk = [evolver.params_at(n) for evolver in walks for n in range(0, 2000, 7)]
    assert max(p.steps for p in walk) == 8 and min(p.steps for p in walk) >= 1


def test_evolve_gives_each_step_the_same_dream_in_any_order_of_asking():
    base = Params(steps=6, step_size=0.05)
    steps = [0, 1, 2, 40, 39, 500, 3, 500, 0, 77]
    asked_in_turn = Evolver(base, ["/a", "/b"], ["x", "y"], seed=3)
    each_fresh = [Evolver(base, ["/a", "/b"], ["x", "y"], seed=3).params_at(n) for n in steps]
    assert [asked_in_turn.params_at(n) for n in steps] == each_fresh
    assert len({(p.steps, p.step_size, p.layer, p.target) for p in each_fresh}) > 4  # the walk moves


@pytest.mark.parametrize("clock,level", [(8 * 3600, 0.0), (9 * 3600 + 5, 0.5), (12 * 3600, 1.0),
                                         (18 * 3600 - 2.5, 0.25), (18 * 3600 + 1, 0.0)])
def test_day_schedule_fades_in_at_start_and_out_at_stop(clock, level):
    assert DaySchedule(9 * 3600, 18 * 3600, fade_s=10).level(clock) == pytest.approx(level)


def test_a_schedule_over_midnight():
    night = DaySchedule(22 * 3600, 2 * 3600, fade_s=0)
    assert night.level(23 * 3600) == 1.0 and night.level(1 * 3600) == 1.0 and night.level(12 * 3600) == 0.0


def test_the_schedule_fades_the_gain_a_knob_or_the_page_set_and_never_overwrites_it(mel_model):
    """The fade is on top of the gain as set: a gain set from MIDI, OSC or the page during opening hours
    stays set (the schedule ticks ten times a second), and one set while closed stays silent until opening."""
    import time as clock
    from streamdream.control.store import set_control
    from streamdream.stream.engine import Engine, FileSource

    engine = Engine(Params(model=str(mel_model), window_s=1.5, crossfade_s=0.25, gain_db=-3.0), 16000, 256,
                    budget_s=0.5, source=FileSource(music_clip(16000, 2.0)))
    schedule = DaySchedule(9 * 3600, 18 * 3600, fade_s=10)
    said = []

    def tick_at(seconds_of_day):
        schedule.tick(engine, 0.0, said.append, now=clock.gmtime(seconds_of_day))

    def gain_db():
        return 20 * np.log10(max(engine.controls.target[2], 1e-12))

    tick_at(12 * 3600)
    assert gain_db() == pytest.approx(-3.0)  # open: the piece's own gain
    set_control(engine, "gain_db", -12.0, [], [])  # a knob or the page, mid-afternoon
    tick_at(12 * 3600 + 1)
    assert gain_db() == pytest.approx(-12.0)  # kept, not put back to the piece's -3 dB
    tick_at(18 * 3600 - 5)
    assert gain_db() == pytest.approx(-12.0 + 20 * np.log10(0.5))  # fading out from what was set
    tick_at(20 * 3600)
    assert engine.controls.target[2] == 0.0 and said[-1].endswith("silent")
    set_control(engine, "gain_db", 0.0, [], [])  # moved while closed: still silent
    assert engine.controls.target[2] == 0.0
    tick_at(9 * 3600 + 5)
    assert gain_db() == pytest.approx(20 * np.log10(0.5))  # and opening fades in to it


@pytest.mark.subprocess
def test_a_piece_file_holds_everything_and_the_command_line_wins(mel_model, two_files, tmp_path):
    piece = tmp_path / "piece.toml"
    piece.write_text(f"""
[piece]
files = ["a.wav", "b.flac"]
feedback = 0.3
record = "night.flac"
duration = 20
device = "null"
stats = "stats.json"

[dream]
model = "{mel_model}"
backend = "eager"
window_s = 1.5
crossfade_s = 0.25
steps = 2
octaves = 2

[schedule]
start = "00:00"
stop = "00:00"
fade_s = 0
""")
    loaded = load_piece(str(piece))
    assert loaded.files == (str(tmp_path / "a.wav"), str(tmp_path / "b.flac")) and loaded.feedback == 0.3
    out = cli("loop", f"--config={piece}", "--duration", "12", "--quiet", "--no-midi", "--lockstep")
    assert out.returncode == 0, out.stderr
    recorded = sf.info(str(tmp_path / "night.flac"))
    assert recorded.duration == pytest.approx(12.0) and recorded.subtype == "PCM_24"
    import json
    snap = json.loads((tmp_path / "stats.json").read_text())
    assert snap["feedback"]["share"] == 0.3 and snap["late_windows"] == 0


@pytest.mark.parametrize("text,message", [
    ("[piece]\nfeedbak = 0.3\n", "unknown key(s) ['feedbak'] in [piece]"),
    ("[piece]\nfeedback = 3\n", "feedback must be 0..1"),
    ("[dream]\nsteps = 0\n", "[dream]: steps must be 1..1000, not 0"),
    ("[dream]\nstepz = 2\n", "[dream]: unknown parameter 'stepz'"),
    ("[schedule]\nstart = \"25:00\"\nstop = \"18:00\"\n", "start must be a time of day"),
    ("[lights]\n", "unknown section(s) ['lights']"),
    ("feedback = \n", "not valid TOML"),
])
def test_a_bad_piece_file_is_one_line_and_exit_2(tmp_path, text, message):
    piece = tmp_path / "piece.toml"
    piece.write_text(text)
    with pytest.raises(ParameterError) as info:
        load_piece(str(piece))
    assert message in str(info.value)
    out = run_cli("loop", "--config", piece)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr


def test_loop_refuses_a_missing_file_and_a_bad_feedback_before_starting(tmp_path, two_files):
    out = run_cli("loop", tmp_path / "nope.wav", "--device", "null")
    assert out.returncode == 2 and "nope.wav does not exist" in out.stderr and out.stderr.count("\n") == 1
    out = run_cli("loop", two_files[0], "--feedback", "1.5", "--device", "null")
    assert out.returncode == 2 and "feedback must be 0..1" in out.stderr


@pytest.mark.subprocess
def test_the_service_unit_passes_systemd_analyze_verify(tmp_path, two_files):
    piece = tmp_path / "gallery.toml"
    piece.write_text(f'[piece]\nfiles = ["{two_files[0].name}"]\nfeedback = 0.3\nrecord = "night.flac"\n')
    out = cli("service", "install", piece, "--folder", tmp_path / "units", timeout=120)
    assert out.returncode == 0, out.stderr
    unit = tmp_path / "units" / "streamdream-gallery.service"
    text = unit.read_text()
    assert f"loop --config {piece} --watchdog" in text and "Restart=on-failure" in text
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr


def test_a_service_for_a_broken_piece_is_refused(tmp_path):
    piece = tmp_path / "bad.toml"
    piece.write_text("[piece]\nfeedback = 7\n")
    out = run_cli("service", "unit", piece)
    assert out.returncode == 2 and "feedback must be 0..1" in out.stderr and out.stdout == ""


def _loop_args(*argv):
    from streamdream.cli import build_parser
    from streamdream.cli.loop import piece_from_args
    return piece_from_args(build_parser().parse_args(["loop", *map(str, argv)]))


def test_the_piece_and_the_command_line_merge_once_and_the_command_line_wins(tmp_path, two_files):
    piece = tmp_path / "piece.toml"
    piece.write_text(f'[piece]\nfiles = ["{two_files[0].name}"]\nfeedback = 0.3\nevolve_seed = 7\nduration = 20\n'
                     f'record = "night.flac"\n\n[dream]\nsteps = 4\nintensity = 1.2\ntorch_device = "cpu"\n')
    for config in (["--config", piece], [f"--config={piece}"], ["--conf", piece], [f"--conf={piece}"]):
        merged, params, run = _loop_args(*config, "--feedback", "0", "--set", "steps=2", "--duration", "5")
        assert merged.files == (str(two_files[0]),) and merged.record == str(tmp_path / "night.flac")
        assert (merged.feedback, merged.duration, merged.evolve_seed) == (0.0, 5.0, 7)  # given 0 still wins
        assert (params.steps, params.intensity, params.torch_device) == (2, 1.2, "cpu")
        assert run.name == "streamdream" and run.budget_s is None  # not given, not in the piece: defaults
    merged, params, _ = _loop_args("--config", piece, "--preset", "faithful", "--intensity", "0.5", two_files[1])
    assert merged.files == (str(two_files[1]),) and merged.feedback == 0.3
    assert (params.ceiling_db, params.steps, params.intensity) == (0.0, 4, 0.5)  # preset < piece < command line


def test_merging_leaves_the_piece_as_it_was_read(tmp_path, two_files):
    piece = tmp_path / "piece.toml"
    piece.write_text(f'[piece]\nfiles = ["{two_files[0].name}"]\nfeedback = 0.3\n')
    read = load_piece(str(piece))
    merged = read.with_options({"feedback": 0.5, "files": [str(two_files[1])]})
    assert (read.feedback, read.files) == (0.3, (str(two_files[0]),))
    assert (merged.feedback, merged.files) == (0.5, (str(two_files[1]),))


@pytest.mark.parametrize("text,message", [
    ("[piece]\nseed = 3\n", "[piece] seed is now called evolve_seed"),
    ("[dream]\ndevice = \"cpu\"\n", "[dream] device is now called torch_device"),
    ("[piece]\nduration = \"20\"\n", "duration must be a positive, finite number of seconds"),
    ("[piece]\nevolve = 1\n", "evolve must be true or false"),
])
def test_renamed_and_mistyped_piece_keys_say_what_to_write(tmp_path, text, message):
    piece = tmp_path / "piece.toml"
    piece.write_text(text)
    with pytest.raises(ParameterError, match=re.escape(message)):
        load_piece(str(piece))
