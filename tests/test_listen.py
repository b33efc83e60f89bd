"""`streamdream listen make | score`: a blind A/B kit from a person's recording, and the count of their answers.

Run in this process through `streamdream.cli.main`, with the tiny test model, one step, one octave and 2-s
windows (an excerpt is one window): the kit's workings, not the dream's quality.
"""
import json
import math

import numpy as np
import pytest
import soundfile as sf

from streamdream import cli
from streamdream.errors import ParameterError
from streamdream.listen import blind_order, load_recording, make_kit

KIT_RATE = 48000  # every file in a kit, whatever the recording's rate
WINDOW_S = 2.0
EXCERPTS = 3
PRESETS = ("vivid", "faithful")


def fast(model, window_s=WINDOW_S):
    return ["--model", str(model), "--set", "steps=1", "--set", "octaves=1", "--set", f"window_s={window_s:g}"]


def recording_at(path, seconds, rate, channels=2, seed=0):
    """A held A-minor chord with a little vibrato and a seeded hiss: no two stretches of it are alike."""
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t * (1 + 0.002 * np.sin(2 * np.pi * 5 * t))) / (k + 1)
               for k, f in enumerate((220.0, 261.63, 329.63, 440.0)))
    audio = 0.2 * tone / np.abs(tone).max() + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    sf.write(str(path), np.stack([audio, 0.8 * audio][:channels], axis=1).astype(np.float32), rate, subtype="FLOAT")
    return path


def read(path):
    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert rate == KIT_RATE
    return audio.T


def rms(a):
    return np.sqrt(np.mean(np.square(a)))


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err
    return err


@pytest.fixture(scope="module")
def kit(mel_model, tmp_path_factory):
    """One kit: three excerpts of a 7-s recording at the kit's rate, dreamed with two presets (six trials)."""
    folder = tmp_path_factory.mktemp("listen")
    recording = recording_at(folder / "mine.wav", 7.0, KIT_RATE)
    assert cli.main(["listen", "make", str(recording), str(folder / "kit"), "--excerpts", str(EXCERPTS),
                     "--preset", PRESETS[0], "--preset", PRESETS[1], *fast(mel_model)]) == 0
    return folder / "kit", recording


def test_kit_pairs_each_dream_with_a_same_energy_noise_control_at_its_loudness(kit, mel_model, tmp_path):
    folder, _ = kit
    key = json.loads((folder / "key.json").read_text())
    assert sorted(p.name for p in folder.parent.iterdir()) == ["kit", "mine.wav"]  # no half-built folder left
    # each preset's last dream, made after its dreamer dreamed other excerpts, is made again below
    last = {t["preset"]: t["trial"] for t in key["trials"]}
    re_rendered = set()
    for trial in key["trials"]:
        n = trial["trial"]
        control_letter = {"A": "B", "B": "A"}[trial["dream"]]
        dry = read(folder / f"dry-{trial['excerpt']}.wav")
        dream = read(folder / f"trial-{n}-{trial['dream']}.wav")
        control = read(folder / f"trial-{n}-{control_letter}.wav")
        assert dry.shape == dream.shape == control.shape == (2, int(WINDOW_S * KIT_RATE))
        change = dream - dry
        assert np.sum(change ** 2) > 1e-6 * np.sum(dry ** 2)  # a dream, not the excerpt again
        if last[trial["preset"]] == n:
            # The key points at the real dream: the same render through `streamdream render` gives the same samples.
            re_rendered.add(trial["preset"])
            again = tmp_path / f"again-{n}.wav"
            assert cli.main(["render", str(folder / f"dry-{trial['excerpt']}.wav"), str(again), "--seed", "1",
                             "--set", "crossfade_s=0", "--quiet", "--target", "brass", "--preset", trial["preset"],
                             *fast(mel_model)]) == 0
            np.testing.assert_allclose(dream, read(again), atol=1e-6)
        # Same loudness, so the louder of the pair cannot win.
        assert abs(20 * np.log10(rms(control) / rms(dream))) < 0.01
        # The control is the excerpt plus white noise of the dream's change energy, per channel, scaled as a whole.
        for c in range(2):
            gain = control[c] @ dry[c] / (dry[c] @ dry[c])
            noise = control[c] / gain - dry[c]
            assert abs(np.sum(noise ** 2) / np.sum(change[c] ** 2) - 1) < 0.05
            assert abs(np.corrcoef(noise[1:], noise[:-1])[0, 1]) < 0.02  # white: no sample predicts the next
    assert re_rendered == set(PRESETS)


def test_excerpts_are_cut_from_the_whole_recording_each_centred_in_its_share(kit):
    folder, recording = kit
    music = read(recording)
    length = int(WINDOW_S * KIT_RATE)
    key = json.loads((folder / "key.json").read_text())
    said = {t["excerpt"]: t["start_s"] for t in key["trials"]}
    starts = []
    for e in range(1, EXCERPTS + 1):
        dry = read(folder / f"dry-{e}.wav")
        near = int(said[e] * KIT_RATE)  # the key's start, to 10 ms: the excerpt is found within that
        found = [s for s in range(max(0, near - 500), near + 500) if np.array_equal(music[:, s:s + length], dry)]
        assert len(found) == 1, e
        starts.append(found[0])
    # Three shares of the room an excerpt can start in, each excerpt in the middle of its own.
    room = music.shape[1] - length
    for k, start in enumerate(starts):
        assert abs(start - room * (2 * k + 1) / (2 * EXCERPTS)) <= 1
    # Every (excerpt, preset) once.
    assert sorted((t["excerpt"], t["preset"]) for t in key["trials"]) == sorted(
        (e, p) for e in range(1, EXCERPTS + 1) for p in PRESETS)


def test_a_recording_at_another_rate_or_in_mono_comes_in_as_stereo_at_the_kit_rate(tmp_path):
    path = recording_at(tmp_path / "mono.wav", 3.0, 44100, channels=1)
    audio = load_recording(path, seconds=WINDOW_S)
    assert audio.dtype == np.float32 and audio.shape[0] == 2
    assert abs(audio.shape[1] - 3.0 * KIT_RATE) <= 1
    np.testing.assert_array_equal(audio[0], audio[1])
    original = sf.read(str(path), dtype="float64")[0]
    assert abs(20 * np.log10(rms(audio[0]) / rms(original))) < 0.05  # at its own level
    with pytest.raises(ParameterError, match="shorter than 9 s"):
        load_recording(path)


def test_the_order_and_the_letters_are_random_and_no_two_kits_share_them(kit, mel_model, tmp_path):
    folder, recording = kit
    orders = [blind_order(EXCERPTS, PRESETS) for _ in range(300)]
    for order in orders[:20]:
        assert [t["trial"] for t in order] == list(range(1, 7))
        assert sorted((t["excerpt"], t["preset"]) for t in order) == sorted(
            (e, p) for e in range(1, EXCERPTS + 1) for p in PRESETS)
    letters = [t["dream"] for order in orders for t in order]
    assert set(letters) == {"A", "B"}
    assert 800 < letters.count("A") < 1000  # 1800 fair coins: 900 +- 21 (one sd)
    firsts = [(order[0]["excerpt"], order[0]["preset"]) for order in orders]
    assert all(20 < firsts.count(job) < 80 for job in set(firsts)) and len(set(firsts)) == 6  # 50 each, sd 6.5
    # Made again from the same recording and settings, a kit has its own order and letters (the same
    # 6-trial key by chance: 1 in 6! x 2^6 = 46080).
    assert cli.main(["listen", "make", str(recording), str(tmp_path / "again"), "--excerpts", str(EXCERPTS),
                     "--preset", ",".join(PRESETS), *fast(mel_model)]) == 0
    first = json.loads((folder / "key.json").read_text())["trials"]
    second = json.loads((tmp_path / "again" / "key.json").read_text())["trials"]
    assert [(t["excerpt"], t["preset"], t["dream"]) for t in first] != \
        [(t["excerpt"], t["preset"], t["dream"]) for t in second]
    # The questions name every pair and none of the answers.
    questions = (folder / "QUESTIONS.md").read_text()
    for t in first:
        assert f"trial-{t['trial']}-A.wav, trial-{t['trial']}-B.wav" in questions
    assert not any(p in questions for p in PRESETS) and "streamdream listen score" in questions


def test_score_counts_the_picks_against_the_key_and_says_how_likely_chance_is(kit, tmp_path, capsys):
    folder, _ = kit
    trials = json.loads((folder / "key.json").read_text())["trials"]
    other = {"A": "B", "B": "A"}
    # Trials 1-5 answered (6 left out): the dream sounds more like brass in 1, 2 and 3, the control in 4 and 5;
    # the dream keeps more of the music in all five. Lower case and comments are fine.
    lines = ["# my answers", ""]
    for t in trials[:5]:
        more_like = t["dream"] if t["trial"] <= 3 else other[t["dream"]]
        lines.append(f"{t['trial']} {more_like} {t['dream'].lower()}  # heard twice")
    answers = tmp_path / "answers.txt"
    answers.write_text("\n".join(lines) + "\n")
    assert cli.main(["listen", "score", str(folder), str(answers)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("5 of 6 trials answered")
    # P(3 or more of 5 by coin) = (10 + 5 + 1) / 32 = 0.5; P(5 of 5) = 1/32 = 0.03125
    brass = out.index("sounds more like brass: the dream in 3 of 5 (a coin would do this well with probability 0.500)")
    music = out.index("keeps more of the music: the dream in 5 of 5 (a coin would do this well with probability 0.031)")
    # Per preset, under each question: how many of that preset's answered trials picked the dream.
    for at, picked in ((brass, lambda t: t["trial"] <= 3), (music, lambda t: True)):
        for preset in PRESETS:
            of = [t for t in trials[:5] if t["preset"] == preset]
            if of:
                row = next(line for line in out[at + 1:at + 3] if line.split()[0] == preset)
                assert row.split()[1:] == [str(sum(map(picked, of))), "of", str(len(of))]


def test_chance_is_the_binomial_tail():
    from streamdream.listen import chance_of_at_least

    assert chance_of_at_least(0, 7) == 1.0
    assert chance_of_at_least(7, 7) == 1 / 128
    assert math.isclose(chance_of_at_least(8, 10), (45 + 10 + 1) / 1024)


def test_bad_input_is_one_line_exit_2_and_writes_nothing(mel_model, tmp_path, capsys):
    recording = recording_at(tmp_path / "mine.wav", 5.0, 44100)
    kit = tmp_path / "kit"

    def refused(*argv, words=()):
        before = sorted(p.name for p in tmp_path.iterdir())
        assert cli.main(list(map(str, argv))) == 2, argv
        one_line_error(capsys, *words)
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no hidden folder left

    refused("listen", "make", recording, kit, words=["shorter than 9 s"])  # the default window
    refused("listen", "make", tmp_path / "nothing.wav", kit, *fast(mel_model), words=["nothing.wav"])
    refused("listen", "make", recording, kit, "--target", "kazoo", *fast(mel_model), words=["kazoo"])
    refused("listen", "make", recording, kit, "--preset", "toward", *fast(mel_model), words=["toward", "vivid"])
    refused("listen", "make", recording, kit, "--set", "target=none", *fast(mel_model), words=["--target"])
    refused("listen", "make", recording, kit, "--excerpts", "0", *fast(mel_model), words=["excerpts"])
    refused("listen", "make", recording, kit, "--set", "steps=0", *fast(mel_model), words=["steps"])
    refused("listen", "make", recording, kit, "--set", "loudness=3", *fast(mel_model), words=["loudness"])
    refused("listen", "make", recording, tmp_path / "nowhere" / "kit", *fast(mel_model), words=["nowhere"])
    kit.mkdir()
    (kit / "answers.txt").write_text("1 A A\n")
    refused("listen", "make", recording, kit, *fast(mel_model), words=["already exists"])
    assert [p.name for p in kit.iterdir()] == ["answers.txt"]  # a person's answers are never written over
    assert (kit / "answers.txt").read_text() == "1 A A\n"

    refused("listen", "score", kit, kit / "answers.txt", words=["key.json"])  # no key
    (kit / "key.json").write_text("{\"trials\": 3}")
    refused("listen", "score", kit, kit / "answers.txt", words=["key.json"])  # not a key
    (kit / "key.json").write_text(json.dumps({"target": "brass", "recording": "x", "trials": [
        {"trial": 1, "excerpt": 1, "preset": "vivid", "dream": "A"}]}))
    refused("listen", "score", kit, kit / "missing.txt", words=["missing.txt"])
    for bad in ("1 A\n", "2 A B\n", "1 A C\n", "one A B\n", "1 A B\n1 B A\n", "# nothing yet\n"):
        (kit / "answers.txt").write_text(bad)
        refused("listen", "score", kit, kit / "answers.txt", words=["answers.txt"])


def test_a_kit_stopped_halfway_leaves_nothing(mel_model, tmp_path):
    recording = recording_at(tmp_path / "mine.wav", 5.0, KIT_RATE)

    def stop(done, total):
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM (raised the same way) after the first dream

    with pytest.raises(KeyboardInterrupt):
        make_kit(recording, tmp_path / "kit", presets=["vivid"], excerpts=2, progress=stop,
                 changes={"model": str(mel_model), "steps": 1, "octaves": 1, "window_s": WINDOW_S})
    assert [p.name for p in tmp_path.iterdir()] == ["mine.wav"]


def test_make_help_fits_one_screen_one_line_per_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["listen", "make", "--help"])
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 110
    options = [line for line in lines if line.lstrip().startswith("--")]
    assert len(options) == 6  # --target --preset --excerpts --seed --model --set, each on one line
    following = [lines[lines.index(o) + 1] for o in options[:-1]]
    assert all(line.lstrip().startswith("--") for line in following)
