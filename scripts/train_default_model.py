#!/usr/bin/env python3
"""Train streamdream's default music CNN from scratch and export it to `streamdream/data/default.onnx`.

Everything is generated here, seeded: MIDI phrases written in code and rendered
with fluidsynth + FluidR3_GM (16 GM program families and the GM drum kits), and
nonsense-syllable speech from espeak-ng for "voice". Clips are augmented to look
like microphone recordings (gain, EQ tilt, band limits, noise, synthetic reverb,
two-class mixtures with soft labels), turned into features by streamdream's own
`SpectrogramView` at 48 kHz (so the engine computes exactly the input we trained
on), and fed to a compact five-stage 2-D CNN with global pooling. The net is trained
adversarially (--adversarial-rms): on each batch the features are first moved, within
a small L2 ball, to where it is most wrong. Such a robust net's input gradient points at
features of its classes that another ear hears too, where a plain net's points at tiny
patterns only it responds to (lab/DREAMS.md has the measurement); --adversarial-rms 0
trains the plain net.

Needs the Debian packages fluidsynth, fluid-soundfont-gm and espeak-ng (and csound-soundfont for
`--soundfont /usr/share/sounds/sf2/sf_GMbank.sf2`); installs nothing.

    nice -n 10 python scripts/train_default_model.py            # the committed run
    nice -n 10 python scripts/train_default_model.py --train-per-class 8 --test-per-class 4 --epochs 1 --out /tmp/smoke --model-out /tmp/smoke/default.onnx
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from streamdream.dreaming.views import FrontEnd, SpectrogramView  # noqa: E402
from streamdream.dreaming import model as sd_model  # noqa: E402
from streamdream.errors import exit_usage  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402

SAMPLE_RATE = 48000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
LABELS = ["piano", "chromatic-percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
          "pipe", "synth-lead", "synth-pad", "synth-effects", "ethnic", "percussive", "sound-effects", "drums",
          "voice"]
DRUMS, VOICE = LABELS.index("drums"), LABELS.index("voice")

# Each rendered phrase lives in a SLOT_S slot: notes in the first CLIP_S seconds,
# the rest lets releases and reverb die away before the next phrase starts.
SLOT_S = 4.0
CLIP_S = 3.0
CROP_S = 2.0  # training crop; the pooled CNN takes any length, so test clips use all CLIP_S

# Plausible MIDI pitch range per GM family (low, high); programs within a family vary a lot,
# so these are deliberately generous.
PITCH_RANGE = [(28, 100), (55, 100), (36, 90), (40, 84), (28, 55), (36, 96), (40, 84), (40, 82), (45, 84),
               (60, 96), (45, 90), (40, 84), (40, 84), (48, 84), (45, 84), (40, 80)]
DRUM_KITS = [0, 8, 16, 24, 25, 32, 40, 48]  # FluidR3 bank-128 presets: standard, room, power, ... orchestra
# Voices for "voice": the languages change the phonology of the nonsense syllables, the variants the timbre.
# f5, m3 and whisper are kept out of training for the out-of-distribution sanity check.
VOICE_LANGS = ["en", "en-us", "de", "fr", "es", "it", "nl", "pl", "sv", "fi", "pt", "cs"]
VOICE_VARIANTS = ["", "m1", "m2", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3",
                  "croak", "Alex", "Andrea", "belinda", "david", "edward", "iven", "john", "linda", "max", "paul",
                  "Annie", "steph", "grandma", "quincy", "zac"]
HELD_OUT_VOICES = ["en-us+f5", "en+m3", "en+whisper"]


# ----------------------------------------------------------------------------------------------
# Tools


# Other General MIDI soundfonts Debian ships, for --soundfont. TimGM6mb and MuseScore General are not
# here on purpose: the independent ear trains on the first, lab/eval_dreams.py renders its music with the second.
SOUNDFONT_PACKAGES = {SOUNDFONT: "fluid-soundfont-gm", Path("/usr/share/sounds/sf2/sf_GMbank.sf2"): "csound-soundfont"}


def check_tools(soundfonts: tuple[Path, ...] = (SOUNDFONT,)) -> None:
    for path in soundfonts:
        if not path.exists() and path not in SOUNDFONT_PACKAGES:
            exit_usage(f"soundfont {path} not found; give the path of an existing .sf2 or .sf3 file")
    missing = [pkg for tool, pkg in (("fluidsynth", "fluidsynth"), ("espeak-ng", "espeak-ng"))
               if shutil.which(tool) is None]
    missing += [SOUNDFONT_PACKAGES[path] for path in soundfonts if not path.exists()]
    if missing:
        exit_usage(f"missing {', '.join(missing)}; install with: sudo apt-get install {' '.join(missing)}")


# ----------------------------------------------------------------------------------------------
# A minimal Standard MIDI File writer (format 0, one track)

TICKS_PER_BEAT = 480
TEMPO_US = 500000  # 120 bpm, so one second is 960 ticks; musical tempo lives in the note times


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, events: list[tuple[float, bytes]]) -> None:
    """events: (seconds, raw channel-message bytes). Sorted stably, so note-offs given first at a tie stay first."""
    ticks_per_s = TICKS_PER_BEAT * 1e6 / TEMPO_US
    track = bytearray(b"\x00\xFF\x51\x03" + TEMPO_US.to_bytes(3, "big"))
    last = 0
    for seconds, message in sorted(events, key=lambda e: e[0]):
        tick = max(last, int(round(seconds * ticks_per_s)))
        track += _varlen(tick - last) + message
        last = tick
    track += b"\x00\xFF\x2F\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def note(events, ch, t, dur, pitch, vel):
    events.append((t + dur, bytes([0x80 | ch, pitch, 0])))
    events.append((t, bytes([0x90 | ch, pitch, vel])))


def control(events, ch, t, cc, value):
    events.append((t, bytes([0xB0 | ch, cc, int(value)])))


# ----------------------------------------------------------------------------------------------
# Random musical phrases

SCALES = [[0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 7, 9], [0, 3, 5, 7, 10], [0, 2, 3, 5, 7, 9, 10],
          list(range(12))]
CHORDS = [[0, 4, 7], [0, 3, 7], [0, 4, 7, 11], [0, 3, 7, 10], [0, 4, 7, 10], [0, 5, 7], [0, 7, 12]]


def melodic_phrase(rng, events, ch, t0, family):
    """One phrase of CLIP_S seconds: single notes, a run, chords, an arpeggio or a melody."""
    low, high = PITCH_RANGE[family]
    scale = SCALES[rng.integers(len(SCALES))]
    root = int(rng.integers(low, max(low + 1, high - 12)))
    step = float(rng.uniform(0.07, 0.5))           # seconds per note: tempo and subdivision in one
    legato = float(rng.uniform(0.3, 1.1))          # note length as a fraction of the step
    base_vel = int(rng.integers(40, 120))
    kind = rng.choice(["single", "run", "chords", "arpeggio", "melody"], p=[0.15, 0.2, 0.2, 0.2, 0.25])

    def pitch_of(degree):
        octave, index = divmod(degree, len(scale))
        return int(np.clip(root + 12 * octave + scale[index], low, high))

    def vel():
        return int(np.clip(base_vel + rng.integers(-15, 16), 1, 127))

    t, end = t0 + float(rng.uniform(0, 0.15)), t0 + CLIP_S - 0.05
    if kind == "single":  # a few long notes (pads, organs and bowed strings live here)
        while t < end - 0.2:
            dur = min(float(rng.uniform(0.4, 3.0)), end - t)
            note(events, ch, t, dur, pitch_of(int(rng.integers(0, 10))), vel())
            t += dur + float(rng.uniform(0, 0.3))
    elif kind == "chords":
        while t < end - 0.2:
            dur = min(float(rng.uniform(0.25, 1.5)), end - t)
            chord = CHORDS[rng.integers(len(CHORDS))]
            bass = int(np.clip(root + rng.integers(-5, 8), low, high - 7))
            for interval in chord[: int(rng.integers(2, len(chord) + 1))]:
                note(events, ch, t, dur * legato if legato < 1 else dur, int(min(bass + interval, high)), vel())
            t += dur
    else:  # run, arpeggio or melody: one note per step
        degree = int(rng.integers(0, 7))
        chord = CHORDS[rng.integers(len(CHORDS))]
        direction = 1 if rng.random() < 0.5 else -1
        i = 0
        while t < end - 0.05:
            if kind == "run":
                p = pitch_of(degree + direction * i)
            elif kind == "arpeggio":
                octave, k = divmod(i, len(chord))
                p = int(np.clip(root + chord[k] + 12 * (octave % 2), low, high))
            else:
                degree += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
                degree = int(np.clip(degree, -7, 14))
                p = pitch_of(degree)
            dur = step * (rng.choice([1, 1, 1, 2]) if kind == "melody" else 1)
            note(events, ch, t, min(dur * legato, end - t), p, vel())
            t += dur
            i += 1


def drum_phrase(rng, events, t0):
    """A groove on channel 10 (index 9): kick, snare, hats, with random toms, cymbals and fills."""
    ch = 9
    step = float(rng.uniform(0.09, 0.2))  # sixteenth-note length
    kick, snare = int(rng.choice([35, 36])), int(rng.choice([38, 40, 37, 39]))
    hat = int(rng.choice([42, 44, 46, 51, 53, 70, 69]))
    extras = [41, 43, 45, 47, 48, 50, 49, 57, 52, 55, 54, 56, 60, 61, 62, 63, 64, 75, 76, 77]
    kick_pat = rng.random(16) < np.array([0.9, 0, 0.2, 0.1, 0, 0.1, 0.3, 0, 0.7, 0, 0.3, 0.1, 0, 0.2, 0.3, 0.1])
    snare_pat = rng.random(16) < np.array([0, 0, 0, 0, 0.9, 0, 0, 0.1, 0, 0.1, 0, 0, 0.9, 0, 0.1, 0.2])
    hat_every = int(rng.choice([1, 2, 2, 4]))
    sparse = rng.random() < 0.2  # sometimes only a few hits, like a drum solo or an intro
    base_vel = int(rng.integers(50, 120))
    i, t = 0, t0 + float(rng.uniform(0, 0.1))
    while t < t0 + CLIP_S - 0.05:
        def hit(p, scale=1.0):
            v = int(np.clip(base_vel * scale + rng.integers(-20, 21), 1, 127))
            note(events, ch, t, 0.1, p, v)
        k = i % 16
        if sparse:
            if rng.random() < 0.3:
                hit(int(rng.choice([kick, snare] + extras)))
        else:
            if kick_pat[k]:
                hit(kick)
            if snare_pat[k]:
                hit(snare)
            if k % hat_every == 0:
                hit(hat, 0.7)
            if rng.random() < 0.06:
                hit(int(rng.choice(extras)))
        t += step
        i += 1


def class_midi(rng, label: int, n_slots: int, path: Path) -> None:
    """n_slots phrases of one class, one per SLOT_S seconds."""
    events = []
    for slot in range(n_slots):
        t0 = slot * SLOT_S
        if label == DRUMS:
            ch = 9
            events.append((t0, bytes([0xC0 | ch, int(rng.choice(DRUM_KITS))])))
        else:
            # A fresh channel each slot, so a program change never retunes a note still releasing.
            ch = [c for c in range(16) if c != 9][slot % 15]
            events.append((t0, bytes([0xC0 | ch, 8 * label + int(rng.integers(8))])))
        control(events, ch, t0, 7, rng.integers(70, 128))                       # channel volume
        control(events, ch, t0, 11, 127)                                          # expression
        control(events, ch, t0, 91, 0 if rng.random() < 0.4 else rng.integers(10, 128))  # reverb send
        control(events, ch, t0, 93, 0 if rng.random() < 0.6 else rng.integers(10, 128))   # chorus send
        if label == DRUMS:
            drum_phrase(rng, events, t0)
        else:
            melodic_phrase(rng, events, ch, t0, label)
        control(events, ch, t0 + CLIP_S, 123, 0)  # all notes off (releases still ring)
    control(events, 0, n_slots * SLOT_S, 121, 0)  # a last event so the render covers the final slot
    write_midi(path, events)


def render_midi(mid: Path, wav: Path, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """fluidsynth to float WAV (no clipping), returned as (frames,) mid = (L + R) / 2."""
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-R", "1", "-C", "1",
           "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(mid)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    wav.unlink()
    return audio.mean(axis=1)


def cut_slots(audio: np.ndarray, n_slots: int) -> list[np.ndarray]:
    slot, clip = int(SLOT_S * SAMPLE_RATE), int(CLIP_S * SAMPLE_RATE)
    audio = np.pad(audio, (0, max(0, n_slots * slot - len(audio))))
    return [audio[i * slot: i * slot + clip] for i in range(n_slots)]


# ----------------------------------------------------------------------------------------------
# Voice

ONSETS = ["b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "ch", "f", "h", "j", "w", "br", "st",
          "pl", "tr", ""]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ee", "oo", "ei"]
CODAS = ["", "", "", "n", "m", "s", "t", "l", "r", "k"]


def nonsense_text(rng) -> str:
    words = []
    for _ in range(int(rng.integers(4, 12))):
        syllables = int(rng.integers(1, 4))
        words.append("".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)))
    text = " ".join(words)
    return text + rng.choice([".", "?", "!", ","])


def speak(text: str, voice: str, pitch: int, speed: int, wav: Path) -> np.ndarray:
    """espeak-ng (22.05 kHz mono) resampled to 48 kHz."""
    cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), text]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    return soxr.resample(audio.mean(axis=1), rate, SAMPLE_RATE).astype(np.float32)


def voice_clip(rng, voice: str, wav: Path) -> np.ndarray:
    """CLIP_S seconds of speech: leading silence trimmed, repeated if the utterance is short."""
    audio = speak(nonsense_text(rng), voice, int(rng.integers(10, 90)), int(rng.integers(90, 260)), wav)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * (np.abs(audio).max() + 1e-9))
    if len(loud):
        audio = audio[loud[0]:]
    clip = int(CLIP_S * SAMPLE_RATE)
    reps = -(-clip // max(len(audio), 1))
    return np.tile(audio, reps)[:clip]


def random_voice(rng, langs=VOICE_LANGS, variants=VOICE_VARIANTS) -> str:
    variant = variants[rng.integers(len(variants))]
    lang = langs[rng.integers(len(langs))]
    return f"{lang}+{variant}" if variant else lang


# ----------------------------------------------------------------------------------------------
# Dataset generation


def to_int16(clip: np.ndarray) -> np.ndarray:
    """Peak-normalise to -1 dBFS and quantise; level is randomised later by augmentation."""
    peak = float(np.abs(clip).max())
    if peak < 1e-6:
        return np.zeros(len(clip), np.int16)
    return np.round(clip / peak * 0.89 * 32767).astype(np.int16)


def generate_split(seed: int, per_class: int, workdir: Path, tag: str, soundfonts: tuple[Path, ...] = (SOUNDFONT,),
                   voice_langs=VOICE_LANGS, voice_variants=VOICE_VARIANTS) -> tuple[np.ndarray, np.ndarray]:
    """per_class clips of every label, as (N, CLIP_S*rate) int16 and (N,) labels.

    The instrument clips are shared evenly between the soundfonts. They and the espeak-ng
    voices are parameters so the independent ear (lab/train_ear.py) can be trained on
    other instruments and other voices.
    """
    jobs = []
    chunk = 100  # slots per MIDI file: long renders amortise fluidsynth's soundfont load
    for label in range(len(LABELS)):
        if label == VOICE:
            continue
        # Slots are numbered across the soundfonts, so every MIDI file has its own seed; with one
        # soundfont this is the single run of files the committed model was trained on.
        for soundfont, share in zip(soundfonts, np.array_split(np.arange(per_class), len(soundfonts))):
            for start in range(int(share[0]), int(share[-1]) + 1, chunk) if len(share) else ():
                n = min(chunk, int(share[-1]) + 1 - start)
                rng = np.random.default_rng([seed, label, start])
                mid = workdir / f"{tag}_{label}_{start}.mid"
                class_midi(rng, label, n, mid)
                jobs.append((label, n, mid, soundfont))

    def run(job):
        label, n, mid, soundfont = job
        return label, cut_slots(render_midi(mid, mid.with_suffix(".wav"), soundfont), n)

    def run_voice(i):
        rng = np.random.default_rng([seed, VOICE, i])
        return voice_clip(rng, random_voice(rng, voice_langs, voice_variants), workdir / f"{tag}_voice_{i}.wav")

    clips, labels = [], []
    with ThreadPoolExecutor(2) as pool:  # at most two renders at once: the machine has two cores
        for label, cut in pool.map(run, jobs):
            clips += [to_int16(c) for c in cut]
            labels += [label] * len(cut)
        for clip in pool.map(run_voice, range(per_class)):
            clips.append(to_int16(clip))
            labels.append(VOICE)
    return np.stack(clips), np.array(labels, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Augmentation: make clean synth renders look like microphone recordings


_BANKS: dict = {}


def _banks(frames: int, n_fft: int, ir_len: int, gen: torch.Generator):
    """Precomputed noise clips and room-response spectra, drawn from during training (saves FFTs per batch)."""
    key = (frames, n_fft)
    if key not in _BANKS:
        white = torch.randn(128, frames, generator=gen)
        # Pink-ish: white noise shaped by 1/sqrt(f) (-3 dB per octave).
        shape = torch.fft.rfftfreq(frames, 1 / SAMPLE_RATE).clamp(min=20).rsqrt()
        pink = torch.fft.irfft(torch.fft.rfft(torch.randn(128, frames, generator=gen)) * shape, n=frames)
        noise = torch.cat([white, pink])
        noise = noise / noise.pow(2).mean(dim=1, keepdim=True).sqrt()
        # Synthetic rooms: exponentially decaying noise with RT60 from 0.15 to 1.5 s.
        rt60 = 0.15 + 1.35 * torch.rand(128, generator=gen)
        t = torch.arange(ir_len) / SAMPLE_RATE
        ir = torch.randn(128, ir_len, generator=gen) * torch.exp(-6.9 * t[None, :] / rt60[:, None])
        ir = ir / ir.norm(dim=1, keepdim=True)
        _BANKS[key] = (noise, torch.fft.rfft(ir, n=n_fft))
    return _BANKS[key]


def augment(wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """wave (B, frames) float in [-1, 1] -> EQ'd, band-limited, reverberant, noisy, at a random level."""
    batch, frames = wave.shape

    def u(lo, hi, n=batch):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    ir_len = SAMPLE_RATE // 2
    n_fft = frames + ir_len
    noise_bank, room_bank = _banks(frames, n_fft, ir_len, gen)
    spec = torch.fft.rfft(wave, n=n_fft)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE).clamp(min=1.0)
    octaves = torch.log2(freqs / 1000.0)[None, :]

    # EQ tilt of up to +-4 dB per octave around 1 kHz, clamped so extremes stay sane.
    tilt = u(-4, 4) * (torch.rand(batch, generator=gen) < 0.7)
    gain_db = (tilt[:, None] * octaves).clamp(-24, 24)
    # Band limits like cheap microphones, phone speakers and lossy codecs (so bandwidth alone
    # cannot give a class away: espeak's voice stops at 11 kHz, FluidR3 goes higher).
    lowpass = torch.where(torch.rand(batch, generator=gen) < 0.35, u(3500, 16000), torch.full((batch,), 1e6))
    highpass = torch.where(torch.rand(batch, generator=gen) < 0.25, u(60, 400), torch.full((batch,), 1.0))
    gain_db = gain_db - 12 * torch.log2(1 + (freqs[None, :] / lowpass[:, None]) ** 2).clamp(max=8)  # ~12 dB/oct
    gain_db = gain_db - 12 * torch.log2(1 + (highpass[:, None] / freqs[None, :]) ** 2).clamp(max=8)
    response = 10 ** (gain_db / 20)

    # Room: a random synthetic impulse response, mixed wet/dry, for 40% of clips.
    wet = u(0.1, 0.7) * (torch.rand(batch, generator=gen) < 0.4)
    rooms = room_bank[torch.randint(len(room_bank), (batch,), generator=gen)]
    room = (1 - wet)[:, None] + wet[:, None] * rooms * 3.0
    out = torch.fft.irfft(spec * response * room, n=n_fft)[:, :frames]

    # Random level: peak between -40 and 0 dBFS.
    peak = out.abs().amax(dim=1).clamp(min=1e-6)
    out = out / peak[:, None] * (10 ** (u(-40, 0) / 20))[:, None]

    # Noise: white or pink, 5-45 dB below the signal for half the clips, and always a faint floor
    # (real recordings are never digital silence).
    rms = out.pow(2).mean(dim=1).sqrt()
    noise = noise_bank[torch.randint(len(noise_bank), (batch,), generator=gen)]
    noise = torch.roll(noise, int(torch.randint(frames, (1,), generator=gen)), dims=1)
    snr_db = torch.where(torch.rand(batch, generator=gen) < 0.5, u(5, 45), torch.full((batch,), 80.0))
    level = torch.maximum(rms * 10 ** (-snr_db / 20), torch.full((batch,), 10 ** (-85 / 20)))
    return out + noise * level[:, None]


def mix_pairs(wave, target, gen, p=0.3):
    """Mix a fraction of clips with another clip of a different class; soft labels by mixing weight."""
    batch = wave.shape[0]
    partner = torch.randperm(batch, generator=gen)
    mixed = (torch.rand(batch, generator=gen) < p) & (target.argmax(1) != target[partner].argmax(1))
    lam = 0.55 + 0.35 * torch.rand(batch, generator=gen)  # the main clip stays dominant
    lam = torch.where(mixed, lam, torch.ones(batch))
    wave = lam[:, None] * wave + (1 - lam[:, None]) * wave[partner]
    target = lam[:, None] * target + (1 - lam[:, None]) * target[partner]
    return wave, target


# ----------------------------------------------------------------------------------------------
# The network


class Stage(nn.Module):
    """[2x2 max pool ->] conv 3x3 -> batch norm -> ReLU, or with downsample "stride" a 3x3 conv of stride 2
    in place of pool and conv (no max-pool indices to keep, a quarter of the conv's work). The child
    names make the ONNX tensor names readable: stage 3's activation is /stage3/relu/Relu_output_0."""

    def __init__(self, c_in, c_out, pool, downsample="max"):
        super().__init__()
        strided = pool and downsample == "stride"
        self.pool = nn.MaxPool2d(2) if pool and not strided else nn.Identity()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2 if strided else 1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(self.pool(x))))


class MusicCNN(nn.Module):
    """Five conv stages on (B, 1, 96 mels, T); pooling halves mel and time between stages, then a global
    average over both axes, so any clip length from ~20 frames up works and the cost is linear in T."""

    WIDTHS = (24, 32, 64, 96, 128)
    DOWNSAMPLE = ("max", "stride")  # between stages: 2x2 max pool (the shipped model), or strided convs

    def __init__(self, n_classes=len(LABELS), downsample="max"):
        super().__init__()
        c_in = 1
        for i, width in enumerate(self.WIDTHS):
            self.add_module(f"stage{i + 1}", Stage(c_in, width, pool=i > 0, downsample=downsample))
            c_in = width
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(c_in, n_classes)

    def stages(self):
        return [getattr(self, f"stage{i + 1}") for i in range(len(self.WIDTHS))]

    def forward(self, x):
        for stage in self.stages():
            x = stage(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(self.dropout(x))


def fold_batchnorm(net: MusicCNN) -> MusicCNN:
    """A copy with each BatchNorm folded into its conv (eval statistics), so the ONNX graph is Conv -> Relu."""
    net = copy.deepcopy(net).eval()
    for stage in net.stages():
        stage.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(stage.conv, stage.bn)
        stage.bn = nn.Identity()
    return net


def macs_per_second(net: nn.Module, seconds: float = 10.0) -> int:
    """Multiply-accumulates of every Conv2d and Linear for one channel of `seconds` audio, via forward hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    frames = int(seconds * 1000 / 10) + 1
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, 96, frames))
    for h in handles:
        h.remove()
    return int(total / seconds)


# ----------------------------------------------------------------------------------------------
# Training and evaluation


def features(view, int16_batch: np.ndarray) -> torch.Tensor:
    return view(torch.from_numpy(int16_batch.astype(np.float32) / 32768.0))


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on soft labels (from mixing) with 0.1 label smoothing."""
    smooth = 0.9 * target + 0.1 / target.shape[1]
    return -(smooth * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def adversarial_features(net, feats, target, rms, steps, gen):
    """The features moved, inside an L2 ball, to where the net is most wrong (PGD from a random start).

    The ball's radius is `rms` normalised log-mel units per cell (one unit is the front end's std, ~18 dB),
    times the square root of the cell count. A net trained on these has input gradients that point at
    features of its classes, not at tiny patterns only it responds to (Madry et al. 2018; Santurkar et
    al. 2019 on robust classifiers as generators), which is what a dream follows.
    """
    radius = rms * feats[0].numel() ** 0.5

    def norm(x):  # per example, shaped to scale the example
        return x.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (x.dim() - 1))

    start = torch.randn(feats.shape, generator=gen)  # a random point inside the ball
    delta = start / norm(start) * radius * torch.rand(len(feats), generator=gen).view(norm(start).shape)
    step = 2.5 * radius / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = soft_cross_entropy(net(feats + delta), target)
        grad, = torch.autograd.grad(loss, delta)
        delta = delta.detach() + step * grad / norm(grad)
        delta = delta * (radius / norm(delta)).clamp(max=1.0)  # back onto the ball
    return (feats + delta).detach()


def train(args, x_train, y_train, front, log):
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    view = SpectrogramView(front, SAMPLE_RATE, "mel")
    net = MusicCNN(downsample=args.downsample)
    steps_per_epoch = max(1, len(x_train) // args.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15)
    crop, clip = int(CROP_S * SAMPLE_RATE), x_train.shape[1]
    n_classes = len(LABELS)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=gen).numpy()
        t0, total_loss, correct = time.time(), 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch:(step + 1) * args.batch]
            starts = torch.randint(0, clip - crop + 1, (len(idx),), generator=gen).numpy()
            wave = np.stack([x_train[i, s:s + crop] for i, s in zip(idx, starts)]).astype(np.float32) / 32768.0
            wave = torch.from_numpy(wave)
            target = F.one_hot(torch.from_numpy(y_train[idx]), n_classes).float()
            wave, target = mix_pairs(wave, target, gen)
            with torch.no_grad():
                feats = view(augment(wave, gen))
            if args.adversarial_rms > 0:
                # the radius ramps up over the first epochs, so the net first learns the classes at all
                ramp = min(1.0, (epoch * steps_per_epoch + step + 1) / (steps_per_epoch * args.adversarial_ramp))
                feats = adversarial_features(net, feats, target, args.adversarial_rms * ramp,
                                             args.adversarial_steps, gen)
            logits = net(feats)
            loss = soft_cross_entropy(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item()
            correct += int((logits.argmax(1) == target.argmax(1)).sum())
        log(f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / steps_per_epoch:.3f}, "
            f"train top-1 (augmented) {correct / (steps_per_epoch * args.batch):.3f}, {time.time() - t0:.0f} s")
    return net.eval()


def predict(net, view, x_int16, batch=32) -> np.ndarray:
    """Logits for clean full-length clips (the test set is not augmented)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x_int16), batch):
            out.append(net(features(view, x_int16[i:i + batch])).numpy())
    return np.concatenate(out)


def plot_confusion(conf: np.ndarray, path: Path, accuracy: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = conf / conf.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(10, 9), dpi=100)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=60, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            if conf[i, j]:
                ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"held-out test set: top-1 {accuracy:.1%} (counts)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Export and checks


def export_onnx(net: MusicCNN, front: FrontEnd, path: Path, log) -> tuple[list[dict], str]:
    import onnx

    net = fold_batchnorm(net)
    dummy = torch.zeros(1, 1, front.n_mels, 301)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(net, (dummy,), str(tmp), input_names=["input"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"input": {0: "batch", 3: "time"}, "logits": {0: "batch"}},
                      do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(tmp))
    tmp.unlink()
    relus = [node.output[0] for node in proto.graph.node if node.op_type == "Relu"]
    assert len(relus) == len(MusicCNN.WIDTHS), relus
    descriptions = [
        "stage 1 (24 ch, full mel resolution): fine spectral texture, hiss, partial-level ripples and clicks",
        "stage 2 (32 ch, 1/2 resolution): onsets, short harmonic stacks and noise bands",
        "stage 3 (64 ch, 1/4 resolution): timbral motifs, pitched strokes and attack/decay shapes",
        "stage 4 (96 ch, 1/8 resolution): instrument-like textures spanning several notes",
        "stage 5 (128 ch, 1/16 resolution): whole-phrase patterns tied to the 18 instrument classes",
    ]
    layers = [{"name": name, "description": text} for name, text in zip(relus, descriptions)]
    layers.append({"name": "logits", "description": "class scores: pushes the sound towards one instrument "
                                                    "family (use with a target label)"})
    # Without --layer or --target, push the labels the model hears, each by its probability: amplifying a
    # layer (stage 3 before 2026-12-06) made the music less itself to the independent ear (lab/DREAMS.md).
    default_layer = sd_model.HEARD
    sd_model.write_metadata(proto, "mel", front, LABELS, layers, default_layer)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    log(f"wrote {path} ({path.stat().st_size} bytes); layers {relus}; default {default_layer}")
    return layers, default_layer


def check_onnx(path: Path, log) -> tuple[torch.nn.Module, float]:
    """ONNX Runtime loads it at several lengths, onnx2torch converts it, and both agree within 1e-4."""
    import onnx
    import onnxruntime as ort
    from onnx2torch import convert

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    proto = onnx.load(str(path))
    sd_model.inline_initializer_identities(proto)
    module = convert(proto).eval()
    worst = 0.0
    rng = np.random.default_rng(0)
    for batch, frames in ((1, 20), (2, 301), (2, 901), (1, 3001)):
        probe = rng.standard_normal((batch, 1, 96, frames)).astype(np.float32)
        ref = session.run(["logits"], {"input": probe})[0]
        assert ref.shape == (batch, len(LABELS))
        with torch.no_grad():
            got = module(torch.from_numpy(probe)).numpy()
        worst = max(worst, float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-12)))
    log(f"onnxruntime and onnx2torch agree within {worst:.2e} (relative) for 20..3001 frames")
    assert worst <= 1e-4
    return module, worst


def time_input_gradient(module: torch.nn.Module, front: FrontEnd, runs: int = 15) -> float:
    """Median ms of forward + backward w.r.t. a 9-s stereo 48 kHz waveform, through SpectrogramView."""
    torch.set_num_threads(2)
    view = SpectrogramView(front, SAMPLE_RATE, "mel")
    for p in module.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(runs + 2):
        wave = (0.1 * torch.randn(2, 9 * SAMPLE_RATE, generator=gen)).requires_grad_(True)
        t0 = time.perf_counter()
        logits = module(view(wave))
        logits[:, 0].sum().backward()
        if i >= 2:  # two warm-up runs
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def time_downsample_kinds() -> None:
    """Step time of the architectures, untrained (speed does not depend on the weights), side by side."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench_dream import matmul_peak  # scripts/, this script's own folder

    torch.set_num_threads(2)
    peak = matmul_peak()
    front = FrontEnd(top_db=60.0, mean=-9.0, std=4.0)
    cpu = cpu_name()
    print(f"{cpu}, {os.cpu_count()} cores, 2 torch threads; sgemm peak {peak / 1e9:.1f} GFLOP/s")
    for kind in MusicCNN.DOWNSAMPLE * 2:  # each twice, alternating: the first timing in a process runs slow
        net = fold_batchnorm(MusicCNN(downsample=kind))
        for param in net.parameters():  # as the dream runs it: gradients for the input only
            param.requires_grad_(False)
        view = SpectrogramView(front, SAMPLE_RATE, "mel")
        wave = (0.1 * torch.randn(2, 9 * SAMPLE_RATE)).requires_grad_(True)
        with FlopCounterMode(display=False) as counter:
            net(view(wave))[:, 0].sum().backward()
        ms = time_input_gradient(net, front)
        flops = counter.get_total_flops()
        print(f"downsample {kind}: forward+backward {ms:.1f} ms, {flops / 1e9:.2f} GFLOP, "
              f"{100 * flops / (ms / 1000) / peak:.1f}% of peak")


def sanity_sounds(seed: int, workdir: Path) -> dict[str, np.ndarray]:
    """Sounds from outside the training distribution: plain oscillators, noise and unseen espeak voices."""
    t = np.arange(int(CLIP_S * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    sounds = {
        "sine 440 Hz": np.sin(2 * np.pi * 440 * t),
        "square 220 Hz": np.sign(np.sin(2 * np.pi * 220 * t)),
        "sawtooth 110 Hz": 2 * ((110 * t) % 1.0) - 1,
        "white noise": rng.standard_normal(len(t)),
        "silence (digital zero)": np.zeros(len(t)),
    }
    for voice in HELD_OUT_VOICES:
        sounds[f"espeak-ng {voice} (voice unseen in training)"] = voice_clip(rng, voice, workdir / "sanity.wav")
    return {name: to_int16(x.astype(np.float32)) for name, x in sounds.items()}


# ----------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--adversarial-rms", type=float, default=0.04,
                        help="train on adversarial features: L2 radius per cell, in normalised log-mel units "
                             "(0 = plain training)")
    parser.add_argument("--adversarial-steps", type=int, default=1, help="PGD steps per batch")
    parser.add_argument("--adversarial-ramp", type=float, default=2.0, help="epochs over which the radius grows")
    parser.add_argument("--top-db", type=float, default=60.0,
                        help="the front end's log floor under each frame's peak, dB (0 = none)")
    parser.add_argument("--out", type=Path, default=REPO / "models",
                        help="directory for the training report and confusion.png")
    parser.add_argument("--model-out", type=Path, default=REPO / "streamdream" / "data" / "default.onnx",
                        help="where the ONNX model goes (default: the shipped model, package data)")
    parser.add_argument("--soundfont", type=Path, action="append", metavar="SF2",
                        help="render the instruments with this soundfont; repeat to share the clips between several "
                             f"(default: {SOUNDFONT})")
    parser.add_argument("--data-cache", type=Path, default=None,
                        help="optional .npz: rendered clips are saved here and reused on the next run")
    parser.add_argument("--benchmark", type=Path, default=None, metavar="ONNX",
                        help="only check an exported model (ORT vs onnx2torch) and time its input gradient")
    parser.add_argument("--downsample", choices=MusicCNN.DOWNSAMPLE, default="max",
                        help="how stages halve the resolution: max pool (shipped) or strided convolutions")
    parser.add_argument("--time-downsample", action="store_true",
                        help="only time an untrained network of each --downsample kind: forward + backward to a "
                             "9-s stereo 48 kHz waveform, FLOPs, and this CPU's sgemm peak, in one process")
    args = parser.parse_args()
    if args.time_downsample:
        time_downsample_kinds()
        return
    if args.benchmark:
        module, _ = check_onnx(args.benchmark, print)
        front = sd_model.read_model_info(args.benchmark).front
        print(f"forward+backward (input gradient, 9 s stereo 48 kHz, 2 threads): "
              f"median {time_input_gradient(module, front):.0f} ms of 15 runs")
        return
    soundfonts = tuple(args.soundfont or [SOUNDFONT])
    check_tools(soundfonts)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:7.1f} s] {message}", flush=True)

    # 1. Data: train and test use different seeds, so phrases, programs and voices differ.
    if args.data_cache and args.data_cache.exists():
        data = np.load(args.data_cache)
        x_train, y_train, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
        log(f"loaded cached clips from {args.data_cache}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            x_train, y_train = generate_split(args.seed, args.train_per_class, Path(tmp), "train", soundfonts)
            log(f"rendered {len(x_train)} training clips")
            x_test, y_test = generate_split(args.seed + 1_000_003, args.test_per_class, Path(tmp), "test", soundfonts)
            log(f"rendered {len(x_test)} test clips")
        if args.data_cache:
            np.savez(args.data_cache, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data_seconds = time.time() - started

    # 2. Normalisation: mean/std of the log-mel of augmented training crops (what the net will see).
    gen = torch.Generator().manual_seed(args.seed)
    raw_view = SpectrogramView(FrontEnd(top_db=args.top_db), SAMPLE_RATE, "mel")
    pick = torch.randperm(len(x_train), generator=gen)[:256].numpy()
    with torch.no_grad():
        sample = raw_view(augment(torch.from_numpy(x_train[pick].astype(np.float32) / 32768.0), gen))
    front = FrontEnd(top_db=args.top_db, mean=round(float(sample.mean()), 4), std=round(float(sample.std()), 4))
    log(f"front end: {front.to_dict()}")

    # 3. Train.
    net = train(args, x_train, y_train, front, log)
    train_seconds = time.time() - started - data_seconds

    # 4. Export and check the file the engine will load.
    onnx_path = args.model_out
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    layers, default_layer = export_onnx(net, front, onnx_path, log)
    module, parity = check_onnx(onnx_path, log)

    # 5. Evaluate the exported model (through onnx2torch, as the engine runs it) on the held-out set.
    view = SpectrogramView(front, SAMPLE_RATE, "mel")
    logits = predict(module, view, x_test)
    pred = logits.argmax(1)
    accuracy = float((pred == y_test).mean())
    conf = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(conf, (y_test, pred), 1)
    per_class = {LABELS[i]: float(conf[i, i] / max(conf[i].sum(), 1)) for i in range(len(LABELS))}
    log(f"held-out top-1 {accuracy:.3f} on {len(y_test)} clips")
    for name, acc in per_class.items():
        log(f"  {name:22s} {acc:.3f}")
    plot_confusion(conf, args.out / "confusion.png", accuracy)

    with tempfile.TemporaryDirectory() as tmp:
        sounds = sanity_sounds(args.seed, Path(tmp))
    sanity = {}
    for name, clip in sounds.items():
        probs = torch.softmax(torch.from_numpy(predict(module, view, clip[None])[0]), 0).numpy()
        top = np.argsort(probs)[::-1][:3]
        sanity[name] = [[LABELS[i], round(float(probs[i]), 3)] for i in top]
        log(f"sanity: {name}: {sanity[name]}")

    fwd_bwd_ms = time_input_gradient(module, front)
    macs = macs_per_second(fold_batchnorm(net))
    log(f"forward+backward (input gradient, 9 s stereo 48 kHz): median {fwd_bwd_ms:.0f} ms; "
        f"{macs / 1e6:.1f} M MACs per second of audio per channel")

    report = {
        "command": " ".join(["python", "scripts/train_default_model.py"] + sys.argv[1:]),
        "seed": args.seed, "train_clips": int(len(y_train)), "test_clips": int(len(y_test)),
        "soundfonts": [path.name for path in soundfonts],
        "epochs": args.epochs, "downsample": args.downsample, "adversarial": {"rms": args.adversarial_rms, "steps": args.adversarial_steps,
                                               "ramp_epochs": args.adversarial_ramp},
        "front_end": front.to_dict(), "labels": LABELS,
        "layers": layers, "default_layer": default_layer,
        "test_top1": accuracy, "per_class_top1": per_class, "confusion": conf.tolist(),
        "onnx_bytes": onnx_path.stat().st_size, "parity_relative": parity,
        "macs_per_second_per_channel": macs, "fwd_bwd_9s_stereo_ms_median": fwd_bwd_ms,
        "sanity": sanity, "data_seconds": round(data_seconds), "train_seconds": round(train_seconds),
        "total_seconds": round(time.time() - started),
    }
    (args.out / "train_report.json").write_text(json.dumps(report, indent=1))
    log(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
