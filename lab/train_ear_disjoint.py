#!/usr/bin/env python3
"""Train the disjoint ear (`lab/ear_disjoint.onnx`): a judge that shares no source with the dreaming model.

The dreaming model (streamdream/data, scripts/train_default_model.py) learned its instruments from
FluidR3 and its voice from espeak-ng. The first ear (lab/train_ear.py) changed the soundfont and the
espeak voices, but not the kind of source. This one changes every source it can:

* instruments from three General-MIDI soundfonts, none of them FluidR3 and none of them MuseScore
  General (the soundfont lab/eval_dreams.py renders its arrangements with): TimGM6mb (sampled),
  csound's sf_GMbank (sampled, another set) and OPL3 (FM synthesis); the drum kits each one has;
* a humanized performance: every note's onset moved by up to +-25 ms and its velocity by up to +-20,
  an expression (CC 11) swell or fade across the phrase, and vibrato (CC 1) on a third of them;
* rooms rendered into the clips, unlike the dreaming model's broadband decaying noise: a few early
  reflections and a late tail split into four bands, each with its own decay (the highs die first);
  and a quarter of the instrument clips band-limited to 6.5-8 kHz, as the voices are;
* voice from festival, not espeak-ng: two diphone voices cut from recordings of real speakers
  (kal, ked) and an HTS voice trained on one (slt), each shifted by a random factor in speaking rate and
  in pitch-and-formants (resampling), so three speakers become many;
* the same front end and network as the first ear (lab/ear.py) and its training loop (lab/train_ear.py),
  on top of the dreaming model's augmentation (EQ, band limits, level, noise, mixing of two classes).

    nice -n 10 python3 lab/train_ear_disjoint.py --threads 1     # the committed run (about 11 min here)
    nice -n 10 python3 lab/train_ear_disjoint.py --train-per-class 6 --test-per-class 3 --epochs 1 --out /tmp/ear2
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from scipy.signal import fftconvolve, sosfilt, butter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))
import train_default_model as data  # noqa: E402
import train_ear  # noqa: E402
from ear import Ear, ear_features  # noqa: E402
from streamdream.errors import exit_usage  # noqa: E402

RATE = data.SAMPLE_RATE
SOUNDFONTS = {Path("/usr/share/sounds/sf2/TimGM6mb.sf2"): "timgm6mb-soundfont",
              Path("/usr/share/sounds/sf2/sf_GMbank.sf2"): "csound-soundfont",
              Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"): "opl3-soundfont"}
# Kept out on purpose: FluidR3 (the dreaming model's) and MuseScore General (the eval's arrangements).
FESTIVAL_VOICES = {"voice_kal_diphone": "festvox-kallpc16k", "voice_ked_diphone": "festvox-kdlpc16k",
                   "voice_cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
# English-like words for festival (its letter-to-sound rules read nonsense as English).
WORDS = ("the a of and to in is it you that he was for on are with as his they be at one have this from or had by "
         "hot word but what some we can out other were all there when up use your how said an each she which do "
         "their time if will way about many then them write would like so these her long make thing see him two "
         "has look more day could go come did number sound no most people my over know water than call first who "
         "may down side been now find any new work part take get place made live where after back little only "
         "round man year came show every good me give our under name very through just form sentence great think "
         "say help low line differ turn cause much mean before move right boy old too same tell does set three "
         "want air well also play small end put home read hand port large spell add even land here must big high "
         "such follow act why ask men change went light kind off need house picture try us again animal point "
         "mother world near build self earth father head stand own page should country found answer school grow "
         "study still learn plant cover food sun four between state keep eye never last let thought city tree "
         "cross farm hard start might story saw far sea draw left late run while press close night real life few "
         "north open seem together next white children begin got walk example ease paper group always music "
         "those both mark often letter until mile river car feet care second enough plain girl usual young ready "
         "above ever red list though feel talk bird soon body dog family direct pose leave song measure door").split()


def check_tools() -> None:
    missing = [pkg for path, pkg in SOUNDFONTS.items() if not path.exists()]
    missing += [pkg for tool, pkg in (("fluidsynth", "fluidsynth"), ("text2wave", "festival")) if shutil.which(tool) is None]
    voices_dir = Path("/usr/share/festival/voices")
    for voice, pkg in FESTIVAL_VOICES.items():
        name = voice.removeprefix("voice_")
        if not any(voices_dir.glob(f"*/{name}")):
            missing.append(pkg)
    if missing:
        exit_usage(f"missing {', '.join(missing)}; install with: sudo apt-get install {' '.join(missing)}")


# ----------------------------------------------------------------------------------------------
# Instruments: humanized phrases through three soundfonts


def drum_kits(soundfont: Path, workdir: Path) -> list[int]:
    """The bank-128 presets among the dreaming model's DRUM_KITS that sound in this soundfont (a missing
    kit renders silence in fluidsynth), found by rendering one groove per kit."""
    events, slot = [], 1.0
    for i, kit in enumerate(data.DRUM_KITS):
        events.append((i * slot, bytes([0xC9, kit])))
        for k, pitch in enumerate((36, 38, 42, 36)):
            data.note(events, 9, i * slot + 0.1 + 0.15 * k, 0.1, pitch, 110)
    data.control(events, 0, len(data.DRUM_KITS) * slot + 0.5, 121, 0)
    mid = workdir / f"kits_{soundfont.stem}.mid"
    data.write_midi(mid, events)
    audio = data.render_midi(mid, mid.with_suffix(".wav"), soundfont)
    audio = np.pad(audio, (0, max(0, int(len(data.DRUM_KITS) * slot * RATE) - len(audio))))
    level = [float(np.sqrt(np.mean(audio[int(i * slot * RATE):int((i + 1) * slot * RATE)] ** 2)))
             for i in range(len(data.DRUM_KITS))]
    kits = [kit for kit, rms in zip(data.DRUM_KITS, level) if rms > 1e-4]
    return kits or [0]


@contextmanager
def humanized(rng):
    """data.note with each onset moved by up to +-25 ms and each velocity by up to +-20, while active."""
    plain = data.note

    def note(events, ch, t, dur, pitch, vel):
        shift = float(rng.uniform(-0.025, 0.025))
        v = int(np.clip(vel + rng.integers(-20, 21), 1, 127))
        plain(events, ch, max(0.0, t + shift), max(0.03, dur * float(rng.uniform(0.85, 1.1))), pitch, v)

    data.note = note
    try:
        yield
    finally:
        data.note = plain


def human_class_midi(rng, label: int, n_slots: int, path: Path, kits: list[int]) -> None:
    """n_slots humanized phrases of one class, one per SLOT_S seconds (data.class_midi, performed)."""
    events = []
    for slot in range(n_slots):
        t0 = slot * data.SLOT_S
        if label == data.DRUMS:
            ch = 9
            events.append((t0, bytes([0xC0 | ch, int(rng.choice(kits))])))
        else:
            ch = [c for c in range(16) if c != 9][slot % 15]
            events.append((t0, bytes([0xC0 | ch, 8 * label + int(rng.integers(8))])))
        data.control(events, ch, t0, 7, rng.integers(70, 128))
        data.control(events, ch, t0, 91, 0)  # reverb and chorus off: the rooms are rendered below
        data.control(events, ch, t0, 93, 0 if rng.random() < 0.7 else rng.integers(10, 100))
        # expression: a swell, a fade or flat across the phrase
        a, b = (int(v) for v in rng.integers(50, 128, 2))
        for k in range(9):
            data.control(events, ch, t0 + k * data.CLIP_S / 8, 11, a + (b - a) * k // 8)
        data.control(events, ch, t0, 1, int(rng.integers(30, 100)) if rng.random() < 0.33 else 0)  # vibrato
        with humanized(rng):
            if label == data.DRUMS:
                data.drum_phrase(rng, events, t0)
            else:
                data.melodic_phrase(rng, events, ch, t0, label)
        data.control(events, ch, t0 + data.CLIP_S, 123, 0)
        data.control(events, ch, t0 + data.CLIP_S, 1, 0)
    data.control(events, 0, n_slots * data.SLOT_S, 121, 0)
    data.write_midi(path, events)


def room_ir(rng) -> np.ndarray:
    """A synthetic room: direct sound, 3-8 early reflections (2-40 ms) and a late tail in four bands whose
    decay times fall with frequency (RT60 0.2-1.8 s under 500 Hz, down to 35-70% of it above 4 kHz)."""
    rt_low = float(rng.uniform(0.2, 1.8))
    length = int(min(1.2 * rt_low, 1.5) * RATE)
    ir = np.zeros(length)
    ir[0] = 1.0
    for _ in range(int(rng.integers(3, 9))):
        ir[int(rng.uniform(0.002, 0.04) * RATE)] += float(rng.uniform(-0.6, 0.6))
    t = np.arange(length) / RATE
    onset = int(rng.uniform(0.01, 0.03) * RATE)
    tail = np.zeros(length)
    edges = [(None, 500), (500, 1500), (1500, 4000), (4000, None)]
    for k, (lo, hi) in enumerate(edges):
        rt = rt_low * (1.0 - k * float(rng.uniform(0.1, 0.22)))
        if lo is None:
            sos = butter(4, hi, "lowpass", fs=RATE, output="sos")
        elif hi is None:
            sos = butter(4, lo, "highpass", fs=RATE, output="sos")
        else:
            sos = butter(4, [lo, hi], "bandpass", fs=RATE, output="sos")
        tail += sosfilt(sos, rng.standard_normal(length)) * np.exp(-6.9 * t / rt)
    tail[:onset] = 0.0
    tail *= float(rng.uniform(0.3, 1.2)) * np.sqrt(np.sum(ir ** 2)) / max(np.sqrt(np.sum(tail ** 2)), 1e-12)
    return ir + tail


def in_a_room(rng, clip: np.ndarray, p: float = 0.6) -> np.ndarray:
    if rng.random() >= p:
        return clip
    return fftconvolve(clip, room_ir(rng))[:len(clip)]


def band_limited(rng, clip: np.ndarray, p: float) -> np.ndarray:
    if rng.random() >= p:
        return clip
    return sosfilt(butter(8, float(rng.uniform(6500, 8000)), "lowpass", fs=RATE, output="sos"), clip)


# ----------------------------------------------------------------------------------------------
# Voice: festival's recorded-speaker voices


def festival_clip(rng, workdir: Path, tag: str) -> np.ndarray:
    """CLIP_S seconds of festival speech: a random voice, text, speaking rate and pitch-and-formant shift."""
    voice = list(FESTIVAL_VOICES)[int(rng.integers(len(FESTIVAL_VOICES)))]
    text = " ".join(rng.choice(WORDS, int(rng.integers(6, 16)))) + str(rng.choice([".", "?", "!", ","]))
    wav = workdir / f"{tag}.wav"
    stretch = float(rng.uniform(0.75, 1.4))
    subprocess.run(["text2wave", "-eval", f"({voice})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})",
                    "-o", str(wav)], input=text.encode(), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    audio = audio.mean(axis=1)
    # Played back faster or slower: pitch and formants move together, as from a smaller or larger speaker.
    shift = float(np.exp(rng.uniform(np.log(0.86), np.log(1.18))))
    audio = soxr.resample(audio, rate * shift, RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * (np.abs(audio).max() + 1e-9))
    if len(loud):
        audio = audio[loud[0]:]
    clip = int(data.CLIP_S * RATE)
    return np.tile(audio, -(-clip // max(len(audio), 1)))[:clip]


def generate(seed: int, per_class: int, workdir: Path, tag: str, kits: dict) -> tuple[np.ndarray, np.ndarray]:
    """per_class clips of every label, the instrument clips shared evenly between the soundfonts."""
    jobs, chunk = [], 100
    for label in range(len(data.LABELS)):
        if label == data.VOICE:
            continue
        for soundfont, share in zip(SOUNDFONTS, np.array_split(np.arange(per_class), len(SOUNDFONTS))):
            for start in range(int(share[0]), int(share[-1]) + 1, chunk) if len(share) else ():
                n = min(chunk, int(share[-1]) + 1 - start)
                # Written here, one at a time: humanized() swaps a module function, not safe across threads.
                rng = np.random.default_rng([seed, label, start, 77])
                mid = workdir / f"{tag}_{label}_{start}.mid"
                human_class_midi(rng, label, n, mid, kits[soundfont])
                jobs.append((label, n, mid, soundfont, rng))

    def run(job):
        label, n, mid, soundfont, rng = job
        cut = data.cut_slots(data.render_midi(mid, mid.with_suffix(".wav"), soundfont), n)
        return label, [band_limited(rng, in_a_room(rng, c), 0.25) for c in cut]

    def run_voice(i):
        rng = np.random.default_rng([seed, data.VOICE, i, 77])
        return in_a_room(rng, festival_clip(rng, workdir, f"{tag}_voice_{i}"), 0.5)

    clips, labels = [], []
    with ThreadPoolExecutor(2) as pool:  # two renders at once: the machine has two cores
        for label, cut in pool.map(run, jobs):
            clips += [data.to_int16(c) for c in cut]
            labels += [label] * len(cut)
        for clip in pool.map(run_voice, range(per_class)):
            clips.append(data.to_int16(clip))
            labels.append(data.VOICE)
    return np.stack(clips), np.array(labels, dtype=np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=8642)
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--passes", type=int, default=2, help="augmented views of each training clip")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--data-cache", type=Path, default=None, help="optional .npz to keep rendered clips in")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a machine busy with other work)")
    args = parser.parse_args()
    check_tools()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:7.1f} s] {message}", flush=True)

    if args.data_cache and args.data_cache.exists():
        cached = np.load(args.data_cache)
        x_train, y_train, x_test, y_test = (cached[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        kits = json.loads(str(cached["kits"]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            kits = {sf2: drum_kits(sf2, Path(tmp)) for sf2 in SOUNDFONTS}
            log("drum kits that sound: " + "; ".join(f"{p.name} {k}" for p, k in kits.items()))
            x_train, y_train = generate(args.seed, args.train_per_class, Path(tmp), "train", kits)
            x_test, y_test = generate(args.seed + 1_000_003, args.test_per_class, Path(tmp), "test", kits)
        kits = {p.name: k for p, k in kits.items()}
        if args.data_cache:
            np.savez(args.data_cache, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     kits=json.dumps(kits))
    silent = int((np.abs(x_train).max(axis=1) == 0).sum())
    log(f"{len(x_train)} training and {len(x_test)} held-out clips ({silent} silent)")

    net = train_ear.train(args, x_train, y_train, log)
    logits = data.predict(net, ear_features, x_test)
    accuracy = float((logits.argmax(1) == y_test).mean())
    top3 = float(np.mean([y in np.argsort(row)[-3:] for row, y in zip(logits, y_test)]))
    per_class = {data.LABELS[i]: float((logits[y_test == i].argmax(1) == i).mean()) for i in range(len(data.LABELS))}
    log(f"held-out (same three soundfonts and festival voices, new phrases) top-1 {accuracy:.3f}, top-3 {top3:.3f}")

    path = args.out / "ear_disjoint.onnx"
    train_ear.export(net, path, accuracy)
    ear = Ear(path)
    probe = x_test[:4].astype(np.float32) / 32768.0
    with torch.no_grad():
        ref = torch.softmax(net(ear_features(torch.from_numpy(probe))), 1).mean(0).numpy()
    assert np.allclose(ear.probabilities(probe, RATE), ref, atol=1e-4)
    report = {"command": " ".join(["python3", "lab/train_ear_disjoint.py"] + sys.argv[1:]), "seed": args.seed,
              "soundfonts": [p.name for p in SOUNDFONTS], "drum_kits": kits, "voices": list(FESTIVAL_VOICES),
              "train_clips": int(len(y_train)), "test_clips": int(len(y_test)), "epochs": args.epochs,
              "test_top1": accuracy, "test_top3": top3, "per_class_top1": per_class,
              "onnx_bytes": path.stat().st_size, "total_seconds": round(time.time() - started)}
    (args.out / "ear_disjoint_report.json").write_text(json.dumps(report, indent=1))
    log(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
