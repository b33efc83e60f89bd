"""lab/eval_dreams.py: its choice of recordings, its count of the moments a change is heard over the music, the
change's level, and its answer to a recording it cannot use."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ear import Ear  # noqa: E402
from eval_dreams import RATE, every_fourth_recording, judge, where_the_change_lands  # noqa: E402


def test_recordings_are_every_fourth_of_those_a_minute_or_longer_in_name_order(tmp_path):
    rate = 8000
    lengths = {"a": 61, "b": 30, "c": 60, "d": 75, "e": 90, "f": 59, "g": 64, "h": 120, "i": 62, "j": 10}
    for name, seconds in lengths.items():
        sf.write(str(tmp_path / f"{name}.flac"), np.zeros(seconds * rate, dtype=np.float32), rate)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "sub.flac").mkdir()  # a folder with an audio name is not a recording
    # a minute or longer, in name order: a c d e g h i -> the first and the fifth
    assert [p.stem for p in every_fourth_recording(tmp_path)] == ["a", "g"]


def test_louder_moments_count_the_frames_where_the_change_outweighs_the_music():
    t = np.arange(int(2.0 * RATE)) / RATE
    music = np.sin(2 * np.pi * 440 * t) * (t < 1.0)          # a tone for one second, then near-silence
    music += 1e-2 * np.sin(2 * np.pi * 220 * t) * (t >= 1.0)  # 40 dB down: still within 60 dB of the loudest
    change = 0.1 * np.sin(2 * np.pi * 660 * t)                # steady, 20 dB under the tone, 20 dB over the rest
    _, _, moments = where_the_change_lands(music.astype(np.float32), change.astype(np.float32))
    assert 0.4 < moments < 0.6  # the second half, give or take the frames that straddle the step
    _, _, none = where_the_change_lands(music.astype(np.float32), (0.01 * change).astype(np.float32))
    assert none < 0.05  # 20 dB under even the quiet second: heard over the music nowhere
    silence = np.zeros(int(1.0 * RATE))
    steady = 0.1 * np.sin(2 * np.pi * 660 * np.arange(len(silence)) / RATE)
    _, _, after_silence = where_the_change_lands(np.concatenate([silence, music]).astype(np.float32),
                                                 np.concatenate([steady, change]).astype(np.float32))
    assert 0.4 < after_silence < 0.6  # a second of digital silence first is not music the change is heard over


def test_a_recording_it_cannot_use_is_one_line_and_exit_2_before_anything_is_written(tmp_path):
    script = Path(__file__).resolve().parent.parent / "eval_dreams.py"
    good = tmp_path / "long.flac"
    sf.write(str(good), np.zeros(10 * 8000, dtype=np.float32), 8000)
    short = tmp_path / "short.flac"
    sf.write(str(short), np.zeros(8 * 8000, dtype=np.float32), 8000)
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    missing = tmp_path / "gone.wav"
    cases = [([str(good), str(bad)], said) for bad, said in
             ((short, "shorter than 9 s"), (text, "not an audio file"), (missing, "does not exist"))]
    cases.append(([str(good), "--targets", "brass,kazoo"], "unknown target 'kazoo'"))
    cases.append(([str(good), "--ear", str(missing)], "no such file"))
    for args, said in cases:
        kept = tmp_path / "kept"
        run = subprocess.run([sys.executable, str(script), "--files", *args, "--keep", str(kept)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert said in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not kept.exists()  # checked before the first excerpt was cut or the first dream rendered


def test_the_change_is_reported_as_its_level_against_the_music():
    t = np.arange(2 * RATE) / RATE
    dry = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(dry.shape)
    change = noise * (0.5 / np.sqrt(2)) / np.sqrt(np.mean(noise ** 2)) * 0.1  # 20 dB under the tones' RMS
    figures = judge(Ear(), dry, (dry + change).astype(np.float32), target=0, seed=0)
    assert abs(figures["change_db"] + 20.0) < 0.05
    louder = judge(Ear(), dry, dry * 1.5, target=0, seed=0)  # the change is half the music: 6.02 dB under it
    assert abs(louder["change_db"] + 6.02) < 0.05
