"""lab/eval_chord.py: note names to MIDI numbers, and its count of the frames where a whole chord is heard."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from eval_chord import LOWEST_MIDI, heard, midi_number  # noqa: E402


def test_note_names_are_midi_numbers_with_middle_c_60():
    assert [midi_number(n) for n in ("A0", "C4", "C#4", "E4", "G4", "A4", "C8")] == [21, 60, 61, 64, 67, 69, 108]


def test_a_chord_is_heard_only_in_frames_where_every_note_reaches_the_threshold():
    post = np.zeros((4, 88))
    chord = [60, 64, 67]
    rows = [n - LOWEST_MIDI for n in chord]
    post[0, rows] = 0.9                  # all three: heard
    post[1, rows[:2]] = 0.9              # two of three: not heard
    post[2, rows] = [0.3, 0.5, 0.29]     # one just under the threshold: not heard
    post[3, rows] = 0.3                  # all at the threshold: heard
    share, mean = heard(post, chord, 0.3)
    assert share == 0.5
    assert mean == np.mean(post[:, rows])
