"""scripts/listening_test.py: a blind A/B kit from a recording, and the count of a person's answers."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from streamdream import cli

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "listening_test.py"
FAST = ["--", "--steps", "1", "--octaves", "1"]  # the kit's workings, not the dream's quality


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def chord(path: Path, seconds: float = 12.0, rate: int = 44100) -> None:
    """A held A-minor chord with a little vibrato, stereo, at 44.1 kHz (the kit resamples to 48 kHz)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t * (1 + 0.002 * np.sin(2 * np.pi * 5 * t))) / (k + 1)
               for k, f in enumerate((220.0, 261.63, 329.63, 440.0)))
    audio = 0.2 * tone / np.abs(tone).max()
    sf.write(str(path), np.stack([audio, 0.8 * audio], axis=1).astype(np.float32), rate)


def test_kit_pairs_each_dream_with_a_same_energy_noise_control_at_its_loudness(tmp_path):
    recording = tmp_path / "mine.wav"
    chord(recording)
    kit = tmp_path / "kit"
    made = run("make", recording, kit, "--excerpts", "1", "--presets", "toward,faithful", *FAST)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kit", "mine.wav"]  # no half-built folder left
    key = json.loads((kit / "key.json").read_text())
    assert sorted(t["preset"] for t in key["trials"]) == ["faithful", "toward"]
    dry = sf.read(str(kit / "dry-1.wav"), dtype="float64", always_2d=True)[0].T
    for trial in key["trials"]:
        n = trial["trial"]
        assert trial["dream"] in ("A", "B")
        control_letter = "B" if trial["dream"] == "A" else "A"
        dream = sf.read(str(kit / f"trial-{n}-{trial['dream']}.wav"), dtype="float64", always_2d=True)[0].T
        control = sf.read(str(kit / f"trial-{n}-{control_letter}.wav"), dtype="float64", always_2d=True)[0].T
        # The key points at the real dream: the same render, made again here, gives the same samples.
        again = tmp_path / f"again-{n}.wav"
        assert cli.main(["render", str(kit / "dry-1.wav"), str(again), "--seed", "1", "--crossfade", "0", "--quiet",
                         "--target", "brass", "--preset", trial["preset"], *FAST[1:]]) == 0
        np.testing.assert_allclose(dream, sf.read(str(again), dtype="float64", always_2d=True)[0].T, atol=1e-6)
        # Same loudness, so the louder of the pair cannot win.
        rms = lambda a: np.sqrt(np.mean(a ** 2))  # noqa: E731
        assert abs(20 * np.log10(rms(control) / rms(dream))) < 0.01
        # The control is the excerpt plus white noise of the dream's change energy, per channel, scaled as a whole.
        for c in range(2):
            gain = control[c] @ dry[c] / (dry[c] @ dry[c])
            noise = control[c] / gain - dry[c]
            change = dream[c] - dry[c]
            assert abs(np.sum(noise ** 2) / np.sum(change ** 2) - 1) < 0.05
            assert abs(np.corrcoef(noise[1:], noise[:-1])[0, 1]) < 0.02  # white: no sample predicts the next


def test_score_counts_the_picks_against_the_key_and_says_how_likely_chance_is(tmp_path):
    recording = tmp_path / "mine.wav"
    chord(recording)
    kit = tmp_path / "kit"
    assert run("make", recording, kit, "--excerpts", "1", "--presets", "toward,faithful", *FAST).returncode == 0
    trials = {t["trial"]: t for t in json.loads((kit / "key.json").read_text())["trials"]}
    other = {"A": "B", "B": "A"}
    answers = tmp_path / "answers.txt"
    # trial 1: the dream on both questions; trial 2: the noise control sounds more like the target
    answers.write_text(f"# mine\n1 {trials[1]['dream']} {trials[1]['dream'].lower()}\n"
                       f"2 {other[trials[2]['dream']]} {trials[2]['dream']}\n")
    scored = run("score", kit, answers)
    assert scored.returncode == 0, scored.stderr
    lines = scored.stdout.splitlines()
    # one dream of two: P(at least 1 of 2 by coin) = 3/4; two of two: 1/4
    assert any(l.startswith("sounds more like brass: the dream in 1 of 2") and "0.750" in l for l in lines)
    assert any(l.startswith("keeps more of the music: the dream in 2 of 2") and "0.250" in l for l in lines)


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    short = tmp_path / "short.wav"
    chord(short, seconds=5.0)
    kit = tmp_path / "kit"
    made = run("make", short, kit, *FAST)
    assert made.returncode == 2 and "shorter than 9 s" in made.stderr
    assert not kit.exists()
    unknown = run("make", tmp_path / "nothing.wav", kit)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    recording = tmp_path / "mine.wav"
    chord(recording)
    wrong_label = run("make", recording, kit, "--excerpts", "1", "--target", "kazoo", *FAST)
    assert wrong_label.returncode == 2 and "kazoo" in wrong_label.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.wav", "short.wav"]  # the half-made kit is gone
    kit.mkdir()
    (kit / "answers.txt").write_text("1 A A\n")
    taken = run("make", recording, kit, "--excerpts", "1", *FAST)
    assert taken.returncode == 2 and "already exists" in taken.stderr
    assert [p.name for p in kit.iterdir()] == ["answers.txt"]  # a person's answers are never written over
    (kit / "key.json").write_text(json.dumps({"target": "brass", "recording": "x", "trials": [
        {"trial": 1, "excerpt": 1, "preset": "toward", "dream": "A"}]}))
    for bad in ("1 A\n", "2 A B\n", "1 A C\n", "1 A B\n1 B A\n"):
        (kit / "answers.txt").write_text(bad)
        scored = run("score", kit, kit / "answers.txt")
        assert scored.returncode == 2, bad
        assert len(scored.stderr.strip().splitlines()) == 1 and "answers.txt line" in scored.stderr
