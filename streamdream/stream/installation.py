"""`streamdream loop`: installation mode. A piece (files or a playlist) looped for days, dreamed,
optionally fed back into itself, slowly evolving, on a daily schedule; everything in one TOML file.

The pieces here are the main thread's: they never run in the audio callback. Each "tick" object is
called about ten times a second by run_live's loop with the engine and the audio time so far.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..audio.files import read_audio
from ..errors import ParameterError, StreamDreamError
from ..params import Params
from .engine import CHANNELS

PLAYLIST_SUFFIXES = (".m3u", ".m3u8", ".txt")
WRAP_CROSSFADE_S = 2.0        # the loop's end fades into its start over this long (equal power)


# ---- the material

def read_playlist(items: list[str]) -> list[Path]:
    """Audio files, with .m3u/.txt playlists expanded (one path a line, '#' comments, relative to the list)."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() not in PLAYLIST_SUFFIXES:
            files.append(path)
            continue
        if not path.is_file():
            raise StreamDreamError(f"playlist {path} does not exist; check the path")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entry = Path(line) if Path(line).is_absolute() else path.parent / line
            if not entry.is_file():
                raise StreamDreamError(f"playlist {path} line {number}: {entry} does not exist; fix or remove the line")
            files.append(entry)
    if not files:
        raise StreamDreamError("nothing to play: give audio files or a playlist with at least one file")
    return files


def load_loop(files: list[Path], sample_rate: int | None, crossfade_s: float = WRAP_CROSSFADE_S
              ) -> tuple[np.ndarray, int]:
    """The files back to back (stereo, one rate), shortened by the crossfade so that playing it over and
    over is seamless: its first `crossfade` frames are the end fading out over the start fading in."""
    import soxr

    parts, rate = [], sample_rate
    for path in files:
        loaded = read_audio(path)
        rate = rate or loaded.sample_rate
        audio = loaded.audio
        if loaded.sample_rate != rate:
            audio = soxr.resample(audio.T, loaded.sample_rate, rate).T.astype(np.float32)
        if audio.shape[0] == 1:
            audio = np.repeat(audio, CHANNELS, axis=0)
        parts.append(audio)
    audio = np.concatenate(parts, axis=1)
    c = min(int(round(crossfade_s * rate)), audio.shape[1] // 4)
    if c == 0:
        return audio, rate
    phase = (np.arange(c) + 0.5) / c * (np.pi / 2)
    looped = audio[:, :-c].copy()
    looped[:, :c] = audio[:, :c] * np.sin(phase) + audio[:, -c:] * np.cos(phase)
    return looped.astype(np.float32), rate


# ---- evolving over days

@dataclass
class Evolver:
    """Every `period_s` of audio the dream moves one step: a new layer or target now and then, depth
    (steps, step size) in a slow random walk. The walk is a function of (seed, step) only, so a piece
    run twice with one seed evolves the same way. Steps walk up to twice the piece's own (a dream's cost
    grows with its steps, so a piece whose windows fit the budget at the start keeps fitting it)."""
    base: Params
    layers: list[str]
    labels: list[str]
    seed: int = 0
    period_s: float = 120.0
    step: int = -1

    def params_at(self, step: int) -> Params:
        params = self.base
        rng = np.random.default_rng([self.seed, 0])
        steps, size = float(params.steps), float(params.step_size)
        most_steps = 2 * params.steps
        layer, target = params.layer, params.target
        for n in range(step):
            steps = float(np.clip(steps * math.exp(rng.normal(0, 0.25)), 1, most_steps))
            size = float(np.clip(size * math.exp(rng.normal(0, 0.25)), 0.005, 0.3))
            if self.layers and rng.random() < 0.25:
                layer = self.layers[rng.integers(len(self.layers))]
            if self.labels and rng.random() < 0.15:
                target = None if rng.random() < 0.3 else self.labels[rng.integers(len(self.labels))]
        return params.with_changes(steps=int(round(steps)), step_size=size, layer=layer, target=target)

    def tick(self, engine, seconds: float, say) -> None:
        step = int(seconds // self.period_s)
        if step == self.step:
            return
        self.step = step
        if step == 0:
            return
        p = self.params_at(step)
        say(f"evolve step {step}: layer {p.layer or 'default'}, target {p.target or 'none'}, "
            f"steps {p.steps}, step size {p.step_size:.3f}")
        current = engine.params  # keep what a performer set by hand for the instant controls
        engine.set_params(p.with_changes(intensity=current.intensity, mix=current.mix, gain_db=current.gain_db),
                          instant=False)


# ---- the day schedule

def parse_clock(text: str, where: str) -> int:
    try:
        hours, minutes = (int(x) for x in str(text).split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise ParameterError(f"{where} must be a time of day like \"09:30\", not {text!r}") from None
    return hours * 3600 + minutes * 60


@dataclass
class DaySchedule:
    """Plays between `start` and `stop` (seconds after midnight, local time; stop < start spans midnight),
    fading in and out over `fade_s`; silent (the dream keeps running) outside those hours."""
    start: int
    stop: int
    fade_s: float = 10.0

    def level(self, seconds_of_day: float) -> float:
        day = 86400.0
        since_start = (seconds_of_day - self.start) % day
        open_for = (self.stop - self.start) % day or day
        if since_start >= open_for:
            return 0.0
        to_stop = open_for - since_start
        edge = min(since_start, to_stop)
        return 1.0 if self.fade_s <= 0 else float(min(1.0, edge / self.fade_s))

    def tick(self, engine, seconds: float, say, now=None) -> None:
        import time as _time
        t = _time.localtime() if now is None else now
        level = self.level(t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec)
        gain_db = engine.params.gain_db + (20 * math.log10(level) if level > 1e-3 else -120.0)
        engine.controls.set(gain_db=gain_db)
        opened = level > 0.0
        if opened != getattr(self, "_open", None):
            self._open = opened
            say("schedule: " + ("playing (fading in)" if opened else "outside playing hours: silent"))


# ---- the piece file

@dataclass
class Piece:
    """Everything a piece needs; `streamdream loop --config piece.toml` reads it (command-line options win)."""
    files: list[str] = field(default_factory=list)
    feedback: float = 0.0
    evolve: bool = False
    evolve_period_s: float = 120.0
    seed: int = 0
    record: str | None = None
    record_input: str | None = None
    record_format: str | None = None
    device: str = "auto"
    samplerate: int | None = None
    blocksize: int = 0
    budget_s: float | None = None
    duration: float | None = None
    log: str | None = None
    stats: str | None = None
    osc_port: int | None = None
    dream: dict = field(default_factory=dict)
    schedule: DaySchedule | None = None


PIECE_KEYS = {f.name for f in fields(Piece)} - {"dream", "schedule", "files"}


def load_piece(path: str) -> Piece:
    """Read and check a piece TOML; every mistake is one line naming the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"piece file {p} does not exist; check the path")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{p}: not valid TOML ({exc})") from None
    piece_table = data.pop("piece", {})
    dream = data.pop("dream", {})
    sched = data.pop("schedule", None)
    if data:
        raise ParameterError(f"{p}: unknown section(s) {sorted(data)}; known: [piece], [dream], [schedule]")
    unknown = set(piece_table) - PIECE_KEYS - {"files"}
    if unknown:
        raise ParameterError(f"{p}: unknown key(s) {sorted(unknown)} in [piece]; known: {sorted(PIECE_KEYS | {'files'})}")
    piece = Piece(**piece_table, dream=dream)
    files = piece_table.get("files", [])
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ParameterError(f"{p}: [piece] files must be a list of paths")
    piece.files = [str(Path(f) if Path(f).is_absolute() else p.parent / f) for f in files]
    for key in ("record", "record_input", "log", "stats"):
        value = getattr(piece, key)
        if value is not None and not Path(value).is_absolute():
            setattr(piece, key, str(p.parent / value))
    try:
        Params(**dream).validate()
    except TypeError:
        known = sorted(f.name for f in fields(Params))
        raise ParameterError(f"{p}: unknown key(s) in [dream]; known: {', '.join(known)}") from None
    except ParameterError as exc:
        raise ParameterError(f"{p} [dream]: {exc}") from None
    if sched is not None:
        extra = set(sched) - {"start", "stop", "fade_s"}
        if extra or "start" not in sched or "stop" not in sched:
            raise ParameterError(f"{p}: [schedule] takes start = \"HH:MM\", stop = \"HH:MM\" and fade_s")
        piece.schedule = DaySchedule(parse_clock(sched["start"], f"{p} [schedule] start"),
                                     parse_clock(sched["stop"], f"{p} [schedule] stop"), float(sched.get("fade_s", 10.0)))
    check_piece(piece, str(p))
    return piece


def check_piece(piece: Piece, where: str = "loop") -> None:
    if not isinstance(piece.feedback, (int, float)) or not 0.0 <= piece.feedback <= 1.0:
        raise ParameterError(f"{where}: feedback must be 0..1 (the share of the output fed back)")
    if piece.evolve_period_s <= 0:
        raise ParameterError(f"{where}: evolve_period_s must be above 0")
    if piece.osc_port is not None and not 1024 <= piece.osc_port <= 65535:
        raise ParameterError(f"{where}: osc_port must be 1024..65535")


# ---- running it

def setup_log(path: str | None) -> None:
    """A rotating log file (10 x 5 MB) beside the screen, so a week's messages survive and never fill the disk."""
    import logging
    from logging.handlers import RotatingFileHandler

    log = logging.getLogger("streamdream")
    log.setLevel(logging.INFO)
    if path is None or any(getattr(h, "baseFilename", None) == str(Path(path).resolve()) for h in log.handlers):
        return
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ParameterError(f"log folder {folder} does not exist; create it first")
    handler = RotatingFileHandler(path, maxBytes=5 * 2**20, backupCount=10)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)


def run_loop(piece: Piece, params: Params, opts, console, ticks=()) -> dict:
    """Installation mode on run_live: the looped material as the source, feedback, evolution, schedule."""
    from ..dreaming.model import read_model_info
    from .live import run_live

    check_piece(piece)
    setup_log(piece.log)
    # the loop is made once at the rate the device will run (the null device: the material's own rate)
    audio, rate = load_loop(read_playlist(piece.files), opts.samplerate or (None if opts.output_device == "null" else 48000))
    ticks = list(ticks)
    if piece.evolve:
        info = read_model_info(params.model, params.view)
        ticks.append(Evolver(params, info.layer_choices, info.labels, piece.seed,
                             piece.evolve_period_s))
    if piece.schedule is not None:
        ticks.append(piece.schedule)
    if piece.feedback > 0:
        ticks.append(GuardTick(audio, rate))
    return run_live(params, opts, console, source_audio=(audio, rate), ticks=ticks,
                    feedback=piece.feedback if piece.feedback > 0 else None)


class GuardTick:
    """Runs the feedback guard once per second of audio (it needs the engine's Feedback, made later)."""

    def __init__(self, source: np.ndarray, rate: int):
        self.source = source[:, :min(source.shape[1], 60 * rate)]  # the first minute is enough to know its shape
        self.guard = None
        self.next_check = 1.0

    def tick(self, engine, seconds: float, say) -> None:
        if self.guard is None:
            from .feedback import FeedbackGuard
            self.guard = FeedbackGuard(engine.feedback, self.source, report=say.warn if hasattr(say, "warn") else say)
        if seconds >= self.next_check:
            self.next_check = seconds + 1.0
            self.guard.check()


# ---- the watchdog: a parent process that restarts a dead or frozen engine

HEARTBEAT_S = 20.0        # the engine writes its --stats file every second; this long without one is a freeze
STARTUP_GRACE_S = 300.0   # loading the model may take minutes on a small machine
RESTART_BACKOFF_S = (2.0, 5.0, 15.0, 60.0)
DEVICE_RETRY_S = 3.0      # an engine that could not start playing (device away) is tried again this often


def numbered(path: str, n: int) -> str:
    """night.flac -> night-2.flac for the engine's n-th start (a restart never overwrites a recording)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{n}{p.suffix}")) if n > 1 else path


def run_watchdog(argv: list[str], stats_path: str | None, records: dict[str, str | None], say) -> int:
    """Run `streamdream <argv>` as a child and restart it when it dies or its heartbeat (the stats file)
    stops. Stop signals are passed on; exit 0 (done) is final, and so is exit 2 (bad input) before the
    piece ever played. A lost audio device ends the engine: it is started again every few seconds
    (each attempt logged) until the device is back."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    if stats_path is None:
        stats_path = os.path.join(tempfile.mkdtemp(prefix="streamdream-watchdog."), "stats.json")
        argv = [*argv, "--stats", stats_path]
    stopping = []
    child = None

    def forward(sig, _frame):
        stopping.append(sig)
        if child is not None and child.poll() is None:
            child.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    start, played, crashes = 0, False, 0
    while True:
        start += 1
        try:
            os.unlink(stats_path)  # the heartbeat is this engine's, not a file left by an earlier one
        except OSError:
            pass
        args = list(argv)
        for option, path in records.items():  # {"--record": path}: on the command line or from the piece file
            if path and start > 1:
                args += [option, numbered(path, start)]  # the last one given wins
        child = subprocess.Popen([sys.executable, "-m", "streamdream.cli", *args], preexec_fn=_die_with_parent)
        began, this_played = time.monotonic(), False
        while child.poll() is None:
            time.sleep(1.0)
            if stopping:
                continue
            try:
                silent = time.time() - os.path.getmtime(stats_path)  # written every second while playing
            except OSError:  # not yet: the engine is loading
                silent = None
            if silent is None and time.monotonic() - began > STARTUP_GRACE_S:
                say.warn(f"watchdog: the engine did not start playing within {STARTUP_GRACE_S:.0f} s; killing it")
                child.kill()
            this_played = this_played or silent is not None
            if silent is not None and silent > HEARTBEAT_S:
                say.warn(f"watchdog: no heartbeat from the engine for {silent:.0f} s; killing it")
                child.kill()
        code = child.wait()
        played = played or this_played
        if stopping or code == 0 or (code == 2 and not played):
            return code
        if this_played:  # it played, then died: back off, afresh after a long good run
            crashes = 1 if time.monotonic() - began > 600 else crashes + 1
            wait = RESTART_BACKOFF_S[min(crashes - 1, len(RESTART_BACKOFF_S) - 1)]
        else:  # could not start playing (the device is still away): try again soon
            wait = DEVICE_RETRY_S
        say.warn(f"watchdog: the engine ended (exit {code}); restarting it in {wait:g} s (start {start + 1})")
        time.sleep(wait)
        if stopping:
            return 0


def _die_with_parent() -> None:
    """The engine stops (cleanly, SIGTERM) if its watchdog is killed, instead of playing on unsupervised."""
    import ctypes
    import signal
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---- running it as a service

def service_unit(piece_path: str) -> str:
    """A systemd unit that starts the piece at boot and restarts it if it fails (the watchdog inside restarts
    a dead or frozen engine sooner). SIGTERM finishes the recording; 120 s covers a worker still loading."""
    import shlex
    import sys

    piece = Path(piece_path).resolve()
    load_piece(str(piece))  # refuse a broken piece now, not at the venue's first boot
    command = " ".join(shlex.quote(x) for x in (sys.executable, "-m", "streamdream.cli", "loop", "--config",
                                                   str(piece), "--watchdog", "--quiet"))
    return f"""[Unit]
Description=streamdream installation {piece.stem}
After=sound.target

[Service]
Type=simple
WorkingDirectory={piece.parent}
ExecStart={command}
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=120
LimitRTPRIO=95
LimitMEMLOCK=infinity

[Install]
WantedBy=default.target
"""


def install_service(piece_path: str, folder: str | None = None) -> Path:
    """Write the unit for the current user's systemd (or into `folder`); returns its path."""
    import os
    import tempfile

    name = f"streamdream-{Path(piece_path).stem}.service"
    target = Path(folder) if folder else Path.home() / ".config" / "systemd" / "user"
    text = service_unit(piece_path)
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, target / name)
    return target / name
