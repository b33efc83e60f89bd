#!/usr/bin/env python3
"""Write `streamdream/data/demo.flac` (shipped as package data): an original ~20 s stereo arrangement (drums, bass, chords, arpeggio, melody).

The song is written note by note below, saved as a MIDI file with the same small writer the
training script uses, rendered by fluidsynth with FluidR3_GM at 48 kHz, normalised to a
-3 dBFS peak and stored as 16-bit FLAC. Needs the Debian packages fluidsynth and fluid-soundfont-gm.

    python scripts/make_demo_clip.py [--out streamdream/data/demo.flac]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_model import SOUNDFONT, note, control, write_midi  # noqa: E402
from streamdream.errors import exit_usage  # noqa: E402

RATE = 48000
BPM = 120
BEAT = 60.0 / BPM
BAR = 4 * BEAT
BARS = 9  # 8 bars at 120 bpm and a final chord: 18 s (longer would not fit in 2 MB of FLAC)
LENGTH_S = (BARS - 1) * BAR + 2.5 * BEAT + 0.3

# A minor: Am - F - C - G, twice, then Am. Each chord as (root for the bass, chord tones).
PROGRESSION = [(45, [57, 60, 64]), (41, [57, 60, 65]), (48, [55, 60, 64]), (43, [55, 59, 62])] * 2 + [(45, [57, 60, 64])]

# The tune, bars 3-8: (start in beats from the start of bar 3, length in beats, MIDI pitch).
MELODY = [
    (0, 1.5, 76), (1.5, 0.5, 74), (2, 1, 72), (3, 1, 71),
    (4, 1, 72), (5, 0.5, 69), (5.5, 0.5, 72), (6, 2, 77),
    (8, 1.5, 79), (9.5, 0.5, 77), (10, 1, 76), (11, 1, 72),
    (12, 1, 74), (13, 1, 71), (14, 2, 67),
    (16, 0.5, 69), (16.5, 0.5, 71), (17, 1, 72), (18, 1, 76), (19, 1, 81),
    (20, 1.5, 77), (21.5, 0.5, 76), (22, 2, 72),
]

# Channels: (MIDI channel, GM program, pan 0=left..127=right, reverb send)
BASS = (0, 33, 64, 20)       # electric bass (finger), centre
KEYS = (1, 4, 34, 60)        # electric piano chords, left
STRINGS = (2, 48, 90, 80)    # string ensemble pad, right
PLUCK = (3, 25, 100, 50)     # steel guitar arpeggio, right
LEAD = (4, 73, 50, 70)       # flute melody, slightly left
DRUMS = 9


def arrangement() -> list:
    events = []
    for ch, program, pan, reverb in (BASS, KEYS, STRINGS, PLUCK, LEAD):
        events.append((0.0, bytes([0xC0 | ch, program])))
        control(events, ch, 0.0, 10, pan)       # stereo position
        control(events, ch, 0.0, 91, reverb)    # reverb send
        control(events, ch, 0.0, 7, 100)
    control(events, DRUMS, 0.0, 91, 40)
    control(events, DRUMS, 0.0, 7, 110)

    for bar, (root, chord) in enumerate(PROGRESSION):
        t = bar * BAR
        last = bar == BARS - 1
        # Bass: root on 1, octave and fifth pickups; the last bar is one long note.
        if last:
            note(events, BASS[0], t, 3 * BEAT, root - 12, 100)
        else:
            for beat, length, step, vel in ((0, 1.5, 0, 105), (1.5, 0.5, 0, 80), (2, 1, 12, 95), (3, 0.5, 7, 85),
                                            (3.5, 0.5, 12, 80)):
                note(events, BASS[0], t + beat * BEAT, length * BEAT * 0.9, root - 12 + step, vel)
        # Keys: chords on beats 1 and 3 (off-beat stabs from bar 5).
        for beat in ((0,) if last else (0, 2) if bar < 4 else (0, 1.5, 2.5)):
            for p in chord:
                note(events, KEYS[0], t + beat * BEAT, (3 if last else 1.2) * BEAT, p, 70)
        # Strings pad from bar 3, whole bars.
        if bar >= 2:
            for p in chord:
                note(events, STRINGS[0], t, BAR * (0.75 if last else 0.98), p - 12, 55)
        # Guitar: eighth-note arpeggio up the chord, bars 2-8.
        if 1 <= bar < BARS - 1:
            pattern = [chord[0], chord[1], chord[2], chord[0] + 12, chord[2], chord[1], chord[0] + 12, chord[2]]
            for i, p in enumerate(pattern):
                note(events, PLUCK[0], t + i * BEAT / 2, BEAT / 2, p, 60 + 10 * (i % 2 == 0))
        # Drums: kick on 1 and 3 (plus a push), snare on 2 and 4, closed hats in eighths.
        if last:
            note(events, DRUMS, t, 0.5, 36, 110)
            note(events, DRUMS, t, 0.5, 49, 100)  # crash
            continue
        for i in range(8):
            note(events, DRUMS, t + i * BEAT / 2, 0.1, 42, 75 if i % 2 == 0 else 55)
        for beat in (0, 2, 2.5):
            note(events, DRUMS, t + beat * BEAT, 0.1, 36, 110)
        for beat in (1, 3):
            note(events, DRUMS, t + beat * BEAT, 0.1, 38, 100)
        if bar in (0, 4):
            note(events, DRUMS, t, 0.5, 49, 95)
        if bar == 7:  # tom fill into the last bar
            for i, p in enumerate((50, 48, 47, 45)):
                note(events, DRUMS, t + (3 + i / 4) * BEAT, 0.1, p, 90 + 5 * i)

    start = 2 * BAR
    for beat, length, pitch in MELODY:
        note(events, LEAD[0], start + beat * BEAT, length * BEAT * 0.95, pitch, 90)
    control(events, 0, LENGTH_S, 121, 0)  # keep the render going while the last chord rings
    return events


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "streamdream" / "data" / "demo.flac")
    args = parser.parse_args()
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        exit_usage("needs fluidsynth and the FluidR3 soundfont; install with: "
                   "sudo apt-get install fluidsynth fluid-soundfont-gm")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "demo.mid", Path(tmp) / "demo.wav"
        write_midi(mid, arrangement())
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(RATE), "-R", "1", "-C", "0",
                        "-O", "float", "-T", "wav", "-F", str(wav), str(SOUNDFONT), str(mid)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    assert rate == RATE and audio.shape[1] == 2
    audio = audio[: int(LENGTH_S * RATE)]
    # Short fade-out so the clip ends in silence, then peak at -3 dBFS.
    fade = int(0.3 * RATE)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    audio *= 10 ** (-3 / 20) / np.abs(audio).max()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Chorus off and maximum FLAC compression keep the file under 2 MB.
    sf.write(str(args.out), audio, RATE, subtype="PCM_16", format="FLAC", compression_level=1.0)
    print(f"wrote {args.out}: {len(audio) / RATE:.1f} s stereo {RATE} Hz, peak "
          f"{20 * np.log10(np.abs(audio).max()):.1f} dBFS, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
