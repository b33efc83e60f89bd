"""The web page's end in the audio process: starts the page's server in a process of its own and talks
to it over a socket pair, the way the display process is fed.

The server (streamdream/web/server.py) holds the HTTP and WebSocket connections, the security checks
and the pages; whatever they cost, they cost it in another process, so a page flood cannot make the
audio callback wait for the GIL. Here, one thread (`streamdream-web`) sends a status line 20 times a
second (written without ever waiting: a status the server cannot take yet is dropped, the next one
replaces it) and applies the control changes the server forwards, at most 50 batches a second, through
the same path as OSC (control/store.set_control), logging each with its source.
"""
from __future__ import annotations

import collections
import ipaddress
import json
import logging
import math
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

from ..errors import ParameterError, StreamDreamError
from ..stream.display import _ignore_interrupts  # Ctrl-C stops the run, which closes the link

STATUS_EVERY_S = 0.05    # status lines a second: 20, so meters move smoothly on the page
FULL_EVERY_S = 1.0       # the heavier parts (the whole --stats snapshot, the disk) are refreshed once a second
LOG_LINES = 12           # the log's last lines shown on the page
MIN_TOKEN_CHARS = 16
TOKEN_ENV = "STREAMDREAM_WEB_TOKEN"  # a token handed from loop --watchdog to the engines it starts


def parse_listen(text, where: str = "--web") -> tuple[str, int]:
    """'[HOST:]PORT' (an IPv6 host in brackets) -> (host, port); the host defaults to loopback."""
    text = str(text)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        raise ParameterError(f"{where} takes [HOST:]PORT with HOST an IP address, e.g. 8765 or "
                             f"0.0.0.0:8765, not {text!r}") from None
    if not 1024 <= number <= 65535:
        raise ParameterError(f"{where}: the port must be 1024..65535, not {number}")
    return host, number


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def check_token(token, where: str) -> None:
    if token is not None and (not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or not token.isprintable()
                              or any(c in token for c in " ;,&=%")):
        raise ParameterError(f"{where}: the token must be at least {MIN_TOKEN_CHARS} printable characters, "
                             "without spaces or ;,&=% (or leave it out: one is generated)")


def page_url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def print_token(console, url: str, token: str) -> None:
    """A generated token, printed once, to the console only (never the log)."""
    try:
        console.print(f"web page token (printed once; keep it): {url}?token={token}",
                      markup=False, highlight=False, soft_wrap=True)
    except (OSError, ValueError):
        pass


def hand_down_token(listen: str, console) -> None:
    """loop --watchdog: a token made once for every engine it starts (a restart keeps the staff's page
    working), passed in the environment, which only this user can read, never on a command line."""
    host, port = parse_listen(listen)
    if is_loopback(host) or handed_down_token():
        return
    os.environ[TOKEN_ENV] = secrets.token_urlsafe(24)
    print_token(console, page_url(host, port), os.environ[TOKEN_ENV])


def handed_down_token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def check_web_extra() -> None:
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn")):
        raise StreamDreamError("--web needs the web extra: pip install 'streamdream[web]'")


class LogTail(logging.Handler):
    """The log's last lines, for the page."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def emit(self, record) -> None:
        self.lines.append(self.format(record))


class WebLink:
    """Start the server on `host:port` and feed it. The port is bound here, before the run starts, so a
    busy one is a one-line error; the server process inherits the listening socket."""

    def __init__(self, session, host: str, port: int, token: str | None):
        check_web_extra()
        self.session, self.say = session, session.say
        self.log = logging.getLogger("streamdream")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family, backlog=128)
        except OSError as exc:
            raise StreamDreamError(f"cannot serve the web page on {host}:{port} ({exc.strerror}); "
                                   "choose another --web port") from exc
        self.port = listener.getsockname()[1]
        self.url = page_url(host, self.port)
        self.token = token if token is not None or is_loopback(host) else secrets.token_urlsafe(24)
        self.generated = token is None and self.token is not None
        engine = session.engine
        from ..control.presets import load_presets, preset_names
        from ..dreaming.model import read_model_info
        from ..params import RANGES
        try:
            info = read_model_info(engine.params.model, engine.params.view)
            self.file_presets = load_presets(session.opts.presets) if session.opts.presets else []
        except BaseException:
            listener.close()
            raise
        self.labels, self.layers = info.labels, info.layer_choices
        choices = {"presets": preset_names(self.file_presets), "targets": ["none"] + list(self.labels),
                   "feedback": engine.feedback is not None,
                   "ranges": {name: [RANGES[name].lo, RANGES[name].hi] for name in ("intensity", "mix", "gain_db")}}
        shared = None
        if engine.exchange.shm is not None:  # a process worker: the picture is read from the shared memory
            from dataclasses import asdict
            shared = {"exchange": asdict(engine.exchange.spec()), "hop": engine.schedule.hop,
                      "sample_rate": engine.sample_rate}
        self.pending = json.dumps({"config": {"token": self.token, "host": host, "port": self.port,
                                              "choices": choices, "shared": shared}}).encode() + b"\n"
        self.sock, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamdream.web.server", str(listener.fileno()), str(theirs.fileno())],
                pass_fds=(listener.fileno(), theirs.fileno()), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_ignore_interrupts)
        except BaseException:
            self.sock.close()
            raise
        finally:
            listener.close()  # the server holds it now: the port is free again when the server ends
            theirs.close()
        self.sock.setblocking(False)
        self.preset: str | None = None  # the last preset chosen on the page
        self.tail = LogTail()
        self.log.addHandler(self.tail)
        self.full: dict = {}
        self.full_at = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamdream-web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def announce(self, console) -> None:
        """Where the page is. A generated token is printed here once, to the console only (not the log)."""
        self.say(f"web page: {self.url}" + ("" if self.token else " (this machine only)"))
        if self.generated:
            print_token(console, self.url, self.token)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.log.removeHandler(self.tail)
        self.sock.close()  # the server reads the end of the link and stops
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # ---- the thread
    def _run(self) -> None:
        received = b""
        failed = False
        next_status = time.monotonic()
        while not self._stop.is_set():
            wait = max(0.0, next_status - time.monotonic())
            try:
                readable, _, _ = select.select([self.sock], [], [], wait)
                if readable:
                    data = self.sock.recv(1 << 16)
                    if not data:
                        self.say.warn("the web page's server stopped; the audio plays on")
                        return
                    received += data
                    *lines, received = received.split(b"\n")
                    for line in lines:
                        self._on_line(line)
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_EVERY_S
                    if self._flush():
                        self.pending += json.dumps({"status": self.status()}).encode() + b"\n"
                        self._flush()
            except OSError:
                return  # the link was closed: the run is ending
            except Exception as exc:  # a bug here must never end the show (said once, not twice a second)
                if not failed:
                    self.say.warn(f"web page: {type(exc).__name__}: {exc}")
                failed = True
                self._stop.wait(0.5)

    def _flush(self) -> bool:
        """Write what the socket takes now; True when nothing is left pending."""
        try:
            while self.pending:
                self.pending = self.pending[self.sock.send(self.pending):]
        except BlockingIOError:
            pass  # a new status is queued only once this is gone: at most one line waits
        return not self.pending

    def _on_line(self, line: bytes) -> None:
        message = json.loads(line)
        if "log" in message:
            self.say.warn(str(message["log"]))
        if "set" in message:
            self.apply(message["set"])

    def apply(self, changes: dict) -> None:
        chosen = apply_changes(self.session.engine, changes, self.labels, self.layers, self.file_presets, self.say)
        self.preset = chosen or self.preset

    # ---- what the page shows
    def status(self) -> dict:
        session, engine = self.session, self.session.engine
        now = time.perf_counter()
        if now - self.full_at >= FULL_EVERY_S:
            self.full_at = now
            self.full = self._full_view()
        s = engine.stats
        c = engine.controls
        p = engine.params
        return {**self.full,
                "state": state(session), "elapsed_s": round(now - session.started, 1),
                "input_peak": s.input_peak, "output_peak": s.output_peak,
                "windows_dreamed": s.windows_dreamed, "late_windows": s.late_windows,
                "failed_windows": s.failed_windows, "callback_errors": s.callback_errors,
                "worker_restarts": engine.worker.restarts, "xruns": sum(s.flags.values()),
                "slow_callbacks": s.slow_events,
                "controls": {"intensity": float(c.target[0]), "mix": float(c.target[1]),
                             "gain_db": round(20 * math.log10(max(float(c.gain), 1e-6)), 2),  # as set, before the fade
                             "target": p.target or "none", "freeze": bool(p.freeze), "preset": self.preset},
                "log": list(self.tail.lines)}

    def _full_view(self) -> dict:
        session = self.session
        snap = session.snapshot()
        view = {"real_time_factor": snap["real_time_factor"], "latency_s": snap["latency_s"],
                "callback_p999": snap["callback_fraction_of_block"].get("p99.9"),
                "dream_last_s": snap["dream_seconds_per_window"]["last"], "feedback": snap.get("feedback")}
        recorder = session.recorder
        if recorder is not None:
            view["recording"] = recording_view(recorder, session.rate)
        guard = next((t.guard for t in session.ticks if getattr(t, "guard", None) is not None), None)
        if guard is not None and view["feedback"] is not None:
            view["feedback"] = {**view["feedback"], "pullbacks": guard.pullbacks}
        schedule = day_schedule(session)
        if schedule is not None:
            view["schedule"] = {"start": _clock(schedule.start), "stop": _clock(schedule.stop),
                                "open": schedule.playing is not False}
        return view


def apply_changes(engine, changes: dict, labels: list[str], layers: list[str], file_presets: list[dict], say,
                  source: str = "web") -> str | None:
    """Each change through the one control path (control/store.set_control, as OSC; a preset by name as
    MIDI's program change), each logged with its source, a refused one too (and the rest still applied).
    "panic" is "dry now": the mix to 0 at the next block. Returns the preset switched to, if any."""
    from ..control.presets import switch_preset
    from ..control.store import set_control

    chosen = None
    for name, value in changes.items():
        try:
            if name == "panic":
                set_control(engine, "mix", 0.0, labels, layers)
                say.warn(f"{source}: dry now (mix 0)")
                continue
            if name == "preset":
                engine.set_params(switch_preset(engine.params, str(value), file_presets), instant=True)
                chosen = str(value)
            else:
                set_control(engine, name, value, labels, layers)
            say.log.info(f"{source}: {name} = {value}")
        except StreamDreamError as exc:
            say.warn(f"{source}: {exc}")
    return chosen


def recording_view(recorder, rate: int) -> dict:
    """Seconds written, the file's size so far, and how long the disk lasts at the rate it fills."""
    seconds = recorder.frames_written / rate
    try:
        size = os.stat(recorder.tmp).st_size
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(recorder.tmp))).free
    except OSError:
        size, free = None, None
    left = free / (size / seconds) if size and free is not None and seconds > 1 else None
    return {"seconds": round(seconds, 1), "bytes": size, "disk_left_s": left, "error": recorder.error}


def state(session) -> str:
    """What the piece is doing, in a few words: dreaming, dry (and why), restarting, scheduled off."""
    engine = session.engine
    if session.failure:
        return "stopped: " + session.failure
    if session.restarting is not None or session.next_restart_at is not None:
        return "restarting the dream worker (dry meanwhile)"
    schedule = day_schedule(session)
    if schedule is not None and schedule.playing is False:
        return "scheduled off (outside playing hours)"
    for name, value in (("mix", engine.controls.target[1]), ("intensity", engine.controls.target[0])):
        if value == 0.0:
            return f"dry: {name} at 0"
    if engine.stats.windows_dreamed == 0:
        return "dry: the first dream is on its way"
    return "dreaming"


def day_schedule(session):
    """The piece's opening hours among the session's ticks, or None."""
    from ..stream.installation.schedule import DaySchedule

    return next((tick for tick in session.ticks if isinstance(tick, DaySchedule)), None)


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
