"""The watchdog: a parent process that restarts a dead or frozen engine."""
from __future__ import annotations

from pathlib import Path


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
