"""A blind listening test on a person's own recording: does the dream beat white noise to their ear?

`make_kit` cuts a few excerpts (one dream window each, 9 s) spread over a recording, dreams each toward
a label with each preset, and pairs every dream with a control: the same excerpt with white noise of the
dream's change energy added instead, brought to the dream's loudness so the louder one cannot win. The two in a pair are
named A and B at random and in a random order of trials; which is the dream is written to a key the
listener does not open until they have answered. `score_kit` counts their answers against the key and
says how likely that count would be if a coin had picked.

The noise control and the recording loader are the ones the research evaluation judges every dream
against (lab/eval_dreams.py imports them from here), so a person hears the control the numbers used.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from .errors import ParameterError

RATE = 48000        # Hz: every excerpt, dream and control in a kit
SECONDS = 9.0       # one excerpt: the dream's window (Params.window_s's default), so it is dreamed whole
KEY = "key.json"
QUESTIONS = "QUESTIONS.md"
DEFAULT_PRESETS = ("vivid", "faithful")
DEFAULT_TARGET = "brass"
LETTERS = ("A", "B")


def check_recording(path: str | os.PathLike, seconds: float = SECONDS) -> None:
    """Refuse, from its header and before anything is written, a recording the test cannot use.

    Parameters
    ----------
    path : str or PathLike
        An audio file libsndfile reads (WAV, FLAC, OGG, AIFF...), mono or stereo.
    seconds : float
        The excerpt's length: the recording must hold at least one.

    Raises
    ------
    StreamDreamError
        One line: the file is missing or unreadable (`AudioFileError`), or shorter than one excerpt
        (`ParameterError`).
    """
    from .audio.files import AudioReader

    with AudioReader(path) as reader:
        if reader.frames < seconds * reader.sample_rate:
            raise ParameterError(f"{path} is shorter than {seconds:g} s; give a longer recording")


def load_recording(path: str | os.PathLike, seconds: float = SECONDS) -> np.ndarray:
    """A recording as stereo float32 at `RATE`, at its own level (it is heard as it was mastered).

    Parameters
    ----------
    path : str or PathLike
        An audio file; mono is copied to both channels, other rates are resampled.
    seconds : float
        The excerpt's length: a recording shorter than one is refused.

    Returns
    -------
    ndarray
        (2, frames) float32 at `RATE` Hz.

    Raises
    ------
    StreamDreamError
        One line, as `check_recording` says.
    """
    import soxr

    from .audio.files import read_audio

    check_recording(path, seconds)
    loaded = read_audio(path)
    audio = loaded.audio if loaded.audio.shape[0] == 2 else np.repeat(loaded.audio[:1], 2, axis=0)
    if loaded.sample_rate != RATE:
        audio = soxr.resample(audio.T, loaded.sample_rate, RATE).T
    return np.ascontiguousarray(audio, dtype=np.float32)


def excerpt_offsets(frames: int, count: int, length: int) -> list[int]:
    """Start frames of `count` excerpts spread evenly over a recording, each centred in its share of it.

    Parameters
    ----------
    frames : int
        The recording's length, at least `length`.
    count : int
        How many excerpts, 1 or more. They overlap when the recording is shorter than `count` excerpts.
    length : int
        One excerpt's length in frames.

    Returns
    -------
    list of int
        Increasing start frames, so the test hears the whole piece and not only its opening.
    """
    room = frames - length
    return [int(round(room * (k + 0.5) / count)) for k in range(count)]


def blind_order(excerpts: int, presets: Sequence[str], rng: np.random.Generator | None = None) -> list[dict]:
    """The trials of a kit, blind: every (excerpt, preset) once, in a random order, the dream at A or B at random.

    Parameters
    ----------
    excerpts : int
        Excerpts, numbered from 1.
    presets : sequence of str
        Preset names.
    rng : numpy Generator, optional
        The randomness; by default a fresh, unseeded one, so no two kits share their order (nor can a seed
        in the kit's settings give it away).

    Returns
    -------
    list of dict
        trial (from 1, in the order heard), excerpt, preset and dream ("A" or "B").
    """
    rng = rng if rng is not None else np.random.default_rng()
    jobs = [(e, name) for e in range(1, excerpts + 1) for name in presets]
    return [{"trial": trial, "excerpt": jobs[job][0], "preset": jobs[job][1], "dream": LETTERS[int(rng.integers(2))]}
            for trial, job in enumerate(rng.permutation(len(jobs)), 1)]


def noise_control(dry: np.ndarray, wet: np.ndarray, seed: int) -> np.ndarray:
    """The control every dream must beat: white noise of the dream's change energy added instead.

    Parameters
    ----------
    dry, wet : ndarray
        (channels, frames): the excerpt and its dream.
    seed : int
        The noise's seed.

    Returns
    -------
    ndarray
        float32 `dry` plus white noise with, channel by channel, the energy of `wet - dry`.
    """
    change = wet - dry
    noise = np.random.default_rng(seed).standard_normal(dry.shape)
    noise *= np.sqrt(np.mean(change ** 2, axis=1, keepdims=True) / np.mean(noise ** 2, axis=1, keepdims=True))
    return (dry + noise).astype(np.float32)


def loudness_matched(audio: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`audio` scaled as a whole to the RMS of `like`, so a pair differs in what it adds, not in level.

    Parameters
    ----------
    audio, like : ndarray
        (channels, frames) signals.

    Returns
    -------
    ndarray
        float32 `audio` times one gain.
    """
    rms = lambda a: np.sqrt(np.mean(np.square(a, dtype=np.float64)))  # noqa: E731
    return (audio * (rms(like) / max(rms(audio), 1e-30))).astype(np.float32)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    sf.write(str(path), np.ascontiguousarray(audio.T), RATE, subtype="FLOAT")


def _questions(target: str, recording: str, trials: list[dict], excerpts: int, seconds: float) -> str:
    rows = "\n".join(f"| {t['trial']} | dry-{t['excerpt']}.wav | trial-{t['trial']}-A.wav, trial-{t['trial']}-B.wav |"
                     for t in trials)
    return f"""# Listening test: does the dream sound like {target} growing out of the music?

Recording: {recording}, {excerpts} excerpts of {seconds:g} s (`dry-1.wav` to `dry-{excerpts}.wav`, as they are).

Each trial is two versions of one excerpt. One is streamdream's dream toward {target}. The other is the same
excerpt with white noise of the same energy added instead, at the same loudness as the dream. Which is
which is in `{KEY}`: do not open it before you have answered every trial.

For each trial, listen to its dry excerpt, then to A and B, as often as you like. Write one line per trial
in a text file (e.g. `answers.txt` here):

    TRIAL  LETTER-THAT-SOUNDS-MORE-LIKE-{target.upper()}  LETTER-THAT-KEEPS-MORE-OF-THE-MUSIC

for example `3 B A`. Lines starting with # are ignored. Then:

    streamdream listen score THIS_FOLDER answers.txt

| trial | listen first | the pair |
|---|---|---|
{rows}
"""


def make_kit(recording: str | os.PathLike, kit: str | os.PathLike, target: str = DEFAULT_TARGET,
             presets: Sequence[str] = DEFAULT_PRESETS, excerpts: int = 4, changes: dict | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Write a blind A/B listening kit: excerpts, each dream paired with its noise control, questions, a key.

    Everything is checked (the folder, the presets, the settings, the model and the target, the recording)
    before anything is written; the kit is built in a hidden folder beside `kit` and renamed into place
    only when complete, so a failure or Ctrl-C leaves nothing behind.

    Each excerpt is one dream window (``window_s``, 9 s unless `changes` says otherwise), dreamed whole.

    Parameters
    ----------
    recording : str or PathLike
        The listener's own recording, at least one excerpt long.
    kit : str or PathLike
        A new folder (never written over); its parent must exist.
    target : str
        The label every dream goes toward, over what a preset says.
    presets : sequence of str
        Built-in presets; one trial per preset per excerpt.
    excerpts : int
        How many excerpts, spread over the recording.
    changes : dict, optional
        `Params` fields over each preset (e.g. ``{"model": "pitch", "seed": 1, "steps": 4}``).
    progress : callable, optional
        Called as ``progress(trials_done, trials)`` after each dream.

    Returns
    -------
    list of dict
        The key's trials, in the order the listener hears them: trial, excerpt, preset, the dream's letter
        and start_s (the excerpt's start in the recording, s).

    Raises
    ------
    StreamDreamError
        One line, before anything is written: the folder exists or its parent does not, an unknown preset,
        a setting out of range, a label the model does not know, a recording too short or unreadable.
    """
    from .control.presets import builtin_preset
    from .dreaming.dreamer import Dreamer
    from .stream.offline import render_array
    from .windows import Schedule

    kit = Path(kit)
    if kit.exists():
        raise ParameterError(f"{kit} already exists; give a new folder (a kit, and any answers in it, is never "
                             "written over)")
    parent = kit.parent if str(kit.parent) else Path(".")
    if not parent.is_dir():
        raise ParameterError(f"folder {parent} does not exist; create it first")
    if excerpts < 1:
        raise ParameterError(f"excerpts must be 1 or more, not {excerpts}")
    if not target:
        raise ParameterError("a kit asks which of a pair sounds more like a label; give one, e.g. --target brass")
    presets = list(dict.fromkeys(presets))
    if not presets:
        raise ParameterError("no preset to dream with; name one or more, e.g. vivid")
    # An excerpt is one window, dreamed whole (no crossfade inside it); the given settings and the target
    # go over the preset.
    settings = {name: builtin_preset(name).with_changes(crossfade_s=0.0).with_changes(**(changes or {}))
                .with_changes(target=target) for name in presets}
    windows = {p.window_s for p in settings.values()}
    if len(windows) > 1:
        raise ParameterError(f"the presets {', '.join(presets)} dream in windows of different lengths; give them "
                             "one with --set window_s=SECONDS")
    seconds = windows.pop()
    length = int(round(seconds * RATE))
    check_recording(recording, seconds)  # from its header: before the model is loaded
    # The folder is made first, so one that cannot be written is said before the long work.
    work = Path(tempfile.mkdtemp(prefix=f".{kit.name}.", suffix=".part", dir=parent))
    try:
        # One dreamer per preset, made now: it refuses a model, layer or label it cannot use before any
        # dream, and the model is loaded once for all of that preset's excerpts.
        dreamers = {name: Dreamer(p, RATE, 2, Schedule.from_seconds(RATE, p.window_s, p.crossfade_s).window)
                    for name, p in settings.items()}
        audio = load_recording(recording, seconds)
        starts = excerpt_offsets(audio.shape[1], excerpts, length)
        trials = blind_order(excerpts, presets)  # presets and excerpts in a random order: neither heard in a run
        for e, start in enumerate(starts, 1):
            _write_wav(work / f"dry-{e}.wav", audio[:, start:start + length])
        for t in trials:
            n, start = t["trial"], starts[t["excerpt"] - 1]
            dry = np.ascontiguousarray(audio[:, start:start + length])
            wet = render_array(dry, RATE, settings[t["preset"]], dreamers[t["preset"]])
            control = loudness_matched(noise_control(dry, wet, seed=n), wet)
            _write_wav(work / f"trial-{n}-A.wav", wet if t["dream"] == "A" else control)
            _write_wav(work / f"trial-{n}-B.wav", control if t["dream"] == "A" else wet)
            t["start_s"] = round(start / RATE, 2)
            if progress:
                progress(n, len(trials))
        (work / KEY).write_text(json.dumps({"recording": str(recording), "target": target, "presets": presets,
                                            "excerpt_s": seconds, "settings": changes or {}, "trials": trials},
                                           indent=1) + "\n")
        (work / QUESTIONS).write_text(_questions(target, Path(recording).name, trials, len(starts), seconds))
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the kit is the person's, with the usual mode
        if kit.exists():  # made while the dreams ran: still never written over
            raise ParameterError(f"{kit} appeared while the kit was made; give a new folder")
        work.rename(kit)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return trials


def chance_of_at_least(k: int, n: int) -> float:
    """How easily chance alone gives a count: P(k or more of n) if each pick were a fair coin.

    Parameters
    ----------
    k, n : int
        Picks of the dream, and trials answered (0 <= k <= n).

    Returns
    -------
    float
        The one-sided binomial tail, sum of C(n, i) / 2**n for i from k to n.
    """
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def read_answers(path: str | os.PathLike, count: int) -> dict[int, tuple[str, str]]:
    """A listener's answers: one ``TRIAL LETTER LETTER`` line per trial, ``#`` starting a comment.

    Parameters
    ----------
    path : str or PathLike
        The answers file.
    count : int
        Trials in the kit.

    Returns
    -------
    dict
        trial -> (the letter that sounds more like the target, the letter that keeps more of the music).

    Raises
    ------
    ParameterError
        One line naming the file and line: unreadable, a malformed line, a trial outside 1..count, or a trial
        answered twice.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}; give the "
                             "answers file") from exc
    answers = {}
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if (len(words) != 3 or not words[0].isdigit() or not 1 <= int(words[0]) <= count
                or any(w.upper() not in LETTERS for w in words[1:])):
            raise ParameterError(f"{path} line {number}: {line.strip()!r}; write TRIAL LETTER LETTER, e.g. '3 B A', "
                                 f"trials 1 to {count}")
        trial = int(words[0])
        if trial in answers:
            raise ParameterError(f"{path} line {number}: trial {trial} is answered twice; keep one line per trial")
        answers[trial] = (words[1].upper(), words[2].upper())
    return answers


@dataclass
class Question:
    """How often the listener picked the dream on one question."""

    question: str
    picked: int                 # trials where the dream was picked
    answered: int               # trials answered
    chance: float               # P(picked or more of answered) by coin
    by_preset: dict = field(default_factory=dict)  # preset -> (picked, answered)


@dataclass
class Score:
    """A kit's answers counted against its key (`score_kit`)."""

    target: str
    recording: str
    trials: int
    answered: int
    questions: list[Question]

    def lines(self) -> list[str]:
        """The score as a person reads it."""
        out = [f"{self.answered} of {self.trials} trials answered; the dream toward {self.target} against white "
               f"noise of the same energy and loudness ({self.recording})"]
        for q in self.questions:
            out.append(f"{q.question}: the dream in {q.picked} of {q.answered} "
                       f"(a coin would do this well with probability {q.chance:.3f})")
            out += [f"  {preset:10s} {k} of {n}" for preset, (k, n) in q.by_preset.items()]
        return out


def read_key(kit: str | os.PathLike) -> dict:
    """The key `make_kit` wrote in `kit` (raises ParameterError, one line, if there is none to read)."""
    kit = Path(kit)
    try:
        key = json.loads((kit / KEY).read_text())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{kit} has no readable {KEY}; give the folder `streamdream listen make` "
                             "wrote") from exc
    trials = key.get("trials") if isinstance(key, dict) else None
    if not (isinstance(trials, list) and "target" in key and "recording" in key
            and all(isinstance(t, dict) and isinstance(t.get("trial"), int) and t.get("dream") in LETTERS
                    and "preset" in t for t in trials)):
        raise ParameterError(f"{kit / KEY} is not a kit's key; give the folder `streamdream listen make` wrote")
    return key


def score_kit(kit: str | os.PathLike, answers: str | os.PathLike) -> Score:
    """Count a listener's answers against a kit's key.

    Parameters
    ----------
    kit : str or PathLike
        The folder `make_kit` wrote.
    answers : str or PathLike
        The listener's answers (see `read_answers`); trials left out are not counted.

    Returns
    -------
    Score
        Per question (sounds more like the target; keeps more of the music): how often the dream was picked,
        in all and per preset, and the chance of doing at least that well by coin.

    Raises
    ------
    ParameterError
        One line: no readable key, a bad answers file, or one that answers no trial.
    """
    key = read_key(kit)
    trials = key["trials"]
    given = read_answers(answers, len(trials))
    if not given:
        raise ParameterError(f"{answers} answers no trial; write one line per trial, e.g. '3 B A'")
    answered = [t for t in trials if t["trial"] in given]
    questions = []
    for text, which in ((f"sounds more like {key['target']}", 0), ("keeps more of the music", 1)):
        picked = [t for t in answered if given[t["trial"]][which] == t["dream"]]
        by_preset = {}
        for preset in dict.fromkeys(t["preset"] for t in answered):
            of = [t for t in answered if t["preset"] == preset]
            by_preset[preset] = (sum(t in picked for t in of), len(of))
        questions.append(Question(text, len(picked), len(answered), chance_of_at_least(len(picked), len(answered)),
                                  by_preset))
    return Score(key["target"], key["recording"], len(trials), len(answered), questions)
