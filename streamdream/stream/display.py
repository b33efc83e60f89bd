"""The live status display, drawn by a process of its own.

rich spends about 2 ms of pure Python on each redraw. Inside the audio process that is time the
audio callback waits for the GIL: with the display drawn there, callback p99.9 went from 7% to 39%
of the period (docs/BENCHMARKS.md). So the audio process only writes a small JSON line a few times
a second into a pipe (`DisplayPipe`, never blocking), and `python -m streamdream.stream.display`
reads it and draws. Messages travel the same pipe so that they print above the status, not
through it. When the drawing process is gone (terminal closed, killed), the engine plays on and
its messages go back to its own console.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

STATUS_EVERY_S = 0.25    # the status is redrawn 4 times a second
MAX_PENDING = 1 << 20    # bytes held back while the drawer is behind (a paused terminal); beyond: dropped


def status_view(snap: dict, dreaming: tuple[int, float] | None) -> dict:
    """What the display shows, cut out of a --stats snapshot (which is far larger: histories, lists).
    `dreaming` is (window index, seconds it has been dreaming) or None."""
    return {"input_peak": snap["input_peak"], "output_peak": snap["output_peak"],
            "latency_s": snap["latency_s"], "latency_frames": snap["latency_frames"],
            "dream_seconds": snap["dream_seconds_per_window"], "real_time_factor": snap["real_time_factor"],
            "windows_dreamed": snap["windows_dreamed"], "late_windows": snap["late_windows"],
            "failed_windows": snap["failed_windows"], "warmup_windows": snap["warmup_windows"],
            "xruns": snap["xruns"], "controls": snap["controls"], "dreaming": dreaming}


def _meter(level: float) -> str:
    db = 20 * math.log10(max(level, 1e-6))
    filled = int(max(0, min(30, (db + 60) / 2)))
    return "#" * filled + "." * (30 - filled) + f" {db:6.1f} dBFS"


def status_table(view: dict):
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_row("input", _meter(view["input_peak"]))
    table.add_row("output", _meter(view["output_peak"]))
    table.add_row("latency", f"{view['latency_s']:.3f} s ({view['latency_frames']} frames)")
    d = view["dream_seconds"]
    if view["dreaming"] is not None:
        window, for_s = view["dreaming"]
        progress = min(1.0, for_s / max(1e-3, d["mean"] or 1.0))
        table.add_row("dreaming", f"window {window}  [{'=' * int(progress * 20):<20}]")
    if d["last"] is not None:
        table.add_row("dream time", f"{d['last']:.2f} s/window (mean {d['mean']:.2f}), real-time factor "
                                    f"{view['real_time_factor']:.2f}")
    table.add_row("windows", f"{view['windows_dreamed']} dreamed, {view['late_windows']} late, "
                             f"{view['failed_windows']} failed, {view['warmup_windows']} warm-up")
    table.add_row("xruns", ", ".join(f"{k} {v}" for k, v in view["xruns"].items() if v) or "none")
    c = view["controls"]
    table.add_row("controls", f"intensity {c['intensity']:.2f}  mix {c['mix']:.2f}  gain "
                              f"{20 * math.log10(max(c['gain'], 1e-6)):+.1f} dB")
    return table


class DisplayPipe:
    """The audio process's end: starts the drawing process on the console's own terminal and feeds it.
    Writes never block the caller: while the drawer is behind, status lines are skipped (the next one
    replaces them) and messages wait in `pending`, written as the pipe takes them. Messages come from
    several threads (main, MIDI, OSC), so one lock keeps their lines whole."""

    def __init__(self, console):
        terminal = console.file.fileno()  # io.UnsupportedOperation (an OSError) for a console in memory
        read_end, self.fd = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "streamdream.stream.display"],
                                         stdin=read_end, stdout=terminal, stderr=subprocess.DEVNULL,
                                         preexec_fn=_ignore_interrupts)
        except BaseException:
            os.close(self.fd)
            raise
        finally:
            os.close(read_end)
        os.set_blocking(self.fd, False)
        self.pending = b""
        self.alive = True
        self.last_status = 0.0
        self.lock = threading.Lock()

    def due(self) -> bool:
        return time.monotonic() - self.last_status >= STATUS_EVERY_S

    def status(self, view: dict) -> None:
        self.last_status = time.monotonic()
        with self.lock:
            if self.alive and self._flush():  # a status the drawer cannot take yet is stale by the next one
                self._send({"status": view})

    def say(self, markup: str) -> bool:
        """False when there is no drawer to print it: the caller prints it itself."""
        with self.lock:
            if self.alive:
                self._send({"say": markup})
            return self.alive

    def _send(self, message: dict) -> None:
        """Queue one line and write what the pipe takes (the caller holds the lock)."""
        self.pending += json.dumps(message).encode() + b"\n"
        if not self._flush() and len(self.pending) > MAX_PENDING:
            # the drawer has been stuck for long: drop all but the rest of a line the pipe already has a part
            # of (messages are in the log file too)
            self.pending = self.pending[:self.pending.index(b"\n") + 1]

    def _flush(self) -> bool:
        """Write what the pipe takes now; True when nothing is left pending."""
        try:
            while self.pending:
                self.pending = self.pending[os.write(self.fd, self.pending):]
        except BlockingIOError:
            pass
        except OSError:  # BrokenPipeError: the drawer is gone
            self.alive, self.pending = False, b""
        return not self.pending

    def close(self, last_view: dict, timeout: float = 5.0) -> None:
        """Hand over the last status, and give the drawer `timeout` seconds to print it and end.
        A terminal paused for good (Ctrl-S) keeps the drawer waiting: then it is killed."""
        deadline = time.monotonic() + timeout
        with self.lock:
            if self.alive:
                self._send({"status": last_view})
                while not self._flush() and time.monotonic() < deadline:
                    time.sleep(0.01)
            self.alive = False  # from here on, messages are printed by the engine itself
            os.close(self.fd)  # the drawer reads to the end of the pipe, draws the last status and ends
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole foreground group; the engine stops on it and closes the pipe, and the
    drawer ends on that, after its last status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main() -> int:
    import argparse

    from rich.console import Console
    from rich.live import Live

    argparse.ArgumentParser(description="draw streamdream's live status read from stdin (JSON lines)").parse_args()
    console = Console()
    live = None
    try:
        for line in sys.stdin:
            message = json.loads(line)
            if "say" in message:
                _print(live.console if live else console, message["say"])
            elif live is None:
                live = Live(status_table(message["status"]), console=console, auto_refresh=False, transient=False)
                live.start(refresh=True)
            else:
                live.update(status_table(message["status"]), refresh=True)
    except (OSError, ValueError, KeyboardInterrupt):  # the terminal went away (or a broken pipe): nothing to do
        return 1
    finally:
        if live is not None:
            try:
                live.stop()
            except (OSError, ValueError):
                pass
    return 0


def _print(console, markup: str) -> None:
    """A message whose own text looks like markup (a path with [brackets]) is printed as it is."""
    from rich.errors import MarkupError

    try:
        console.print(markup, soft_wrap=True)
    except MarkupError:
        console.print(markup, markup=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
