#!/usr/bin/env python3
"""Live engine soak on a JACK dummy device: callback timing, xruns, late windows, memory.

    python scripts/bench_live.py [--minutes 10] [--blocksize 512] [--knobs 50] [--display]

Starts a private JACK server (dummy driver, 48 kHz, period = blocksize), runs
`streamdream live` on it with default dream settings, the demo clip looped as
input (so the worker dreams all the time), and reads the engine's --stats JSON.
A real-time sleeper on each CPU (harness/stallwatch.py) notes when the machine itself
stopped running; xruns and slow callbacks are reported in total and with those
moments left out. --knobs N sends N MIDI messages a second (harness/knobtraffic.py) and --display turns
the rich live display on, so the engine is measured as users run it. Prints a markdown table for
docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.jackserver import JackServer  # noqa: E402
from harness.knobtraffic import KnobTraffic, instant_and_depth  # noqa: E402
from harness.stallwatch import StallWatch  # noqa: E402
from harness.terminal import Terminal  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402
from streamdream.params import Params  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--blocksize", type=int, default=512)
    parser.add_argument("--input", default=str(ROOT / "streamdream" / "data" / "demo.flac"))
    parser.add_argument("--realtime", action="store_true",
                        help="run jackd with real-time scheduling (as a live rig would), not --no-realtime")
    parser.add_argument("--knobs", type=float, default=0.0, metavar="PER_SECOND",
                        help="MIDI messages a second moving knobs and playing notes, as a performer does "
                             "(0: none, and the engine runs with --no-midi)")
    parser.add_argument("--display", action="store_true",
                        help="the rich live display on, drawn into a pseudo-terminal (default: --quiet)")
    parser.add_argument("extra", nargs="*", help="more streamdream live options, after --")
    args = parser.parse_args()

    server = JackServer(f"sdbench{os.getpid()}", rate=48000, period=args.blocksize, realtime=args.realtime)
    workdir = Path(tempfile.mkdtemp(prefix="bench_live."))
    stats = workdir / "stats.json"
    seconds = args.minutes * 60
    cmd = [sys.executable, "-m", "streamdream.cli", "live", "--device", "system", "--samplerate", "48000",
           "--blocksize", str(args.blocksize), "--input", args.input, "--duration", str(seconds),
           "--stats", str(stats), *([] if args.display else ["--quiet"]), *([] if args.knobs else ["--no-midi"]),
           *args.extra]
    os.environ.update(JACK_DEFAULT_SERVER=server.name, JACK_NO_START_SERVER="1")  # this process's MIDI sender
    watch = StallWatch()
    terminal = Terminal() if args.display else None
    out = (terminal.child_fd if terminal else subprocess.PIPE)
    proc = subprocess.Popen(cmd, env=server.env, stdout=out, stderr=out)
    if terminal:
        terminal.start_reading()
    first = None
    traffic = None
    try:
        if args.knobs:
            traffic = KnobTraffic(args.knobs, instant_and_depth(Params().steps))  # live's budget fits the default
            traffic.connect(alive=lambda: proc.poll() is None)
            traffic.start()
        while proc.poll() is None:
            time.sleep(1.0)
            if first is None and stats.exists():
                snap = json.loads(stats.read_text())
                if snap["windows_dreamed"] >= 1:
                    first = snap  # memory after the model is loaded and the first window dreamed
        err = terminal.text() if terminal else proc.communicate()[1].decode(errors="replace")
    finally:
        if traffic is not None:
            traffic.stop()
        server.stop()
        watch.stop()
    if proc.returncode != 0:
        print(err[-3000:], file=sys.stderr)
        return 1
    last = json.loads(stats.read_text())
    frac = last["callback_fraction_of_block"]
    cpu = cpu_name()
    print(f"machine: {cpu}, {os.cpu_count()} cores; JACK dummy 48 kHz, period {args.blocksize}, "
          f"{'real-time' if args.realtime else 'no-realtime'}; "
          f"{seconds / 60:g} min; command: {' '.join(cmd[2:])}")
    print(f"MIDI: {traffic.sent if traffic else 0} messages sent, {last['midi']['messages'] if last.get('midi') else 0} "
          f"received; display: {f'on, {terminal.bytes_read} bytes drawn' if terminal else 'off (--quiet)'}\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    for key in ("p50", "p99", "p99.9", "max"):
        target = "<= 10%" if key == "p99.9" else ""
        print(f"| callback duration {key} (fraction of the {args.blocksize}-frame period) | {100 * frac[key]:.2f}% | {target} |")
    print(f"| xruns (PortAudio status flags) | {sum(last['xruns'].values())} {last['xruns']} | 0 |")
    xruns = last["xrun_times"]
    unexplained = [t for t in xruns if watch.explains(t) is None]
    print(f"| xrun events / during a machine stall / unexplained | {len(xruns)} / {len(xruns) - len(unexplained)} / "
          f"{len(unexplained)} | unexplained 0 |")
    slow = last["slow_callback_times"]
    stalled = [1 for t, d in slow if any(st.due <= t + d and st.ended >= t for st in watch.stalls)]
    n = last["callbacks"]
    own = last["slow_callbacks"] - len(stalled)
    print(f"| callbacks over 10% of the period / overlapping a machine stall | {last['slow_callbacks']} of {n} / "
          f"{len(stalled)} | |")
    print(f"| p99.9 <= 10% with stall-overlapping callbacks left out | {'yes' if own <= 0.001 * (n - len(stalled)) else 'no'} "
          f"({own} of {n - len(stalled)} over 10%) | yes |")
    lates = sorted(st.late for st in watch.stalls)
    print(f"| machine stalls seen by the real-time sleepers (>= {1000 * watch.threshold:g} ms) | {len(lates)}, longest "
          f"{1000 * lates[-1] if lates else 0:.1f} ms{'' if watch.realtime else ' (not real-time: not used)'} | |")
    print(f"| windows dreamed / late / failed | {last['windows_dreamed']} / {last['late_windows']} / "
          f"{last['failed_windows']} | late 0 |")
    d = last["dream_seconds_per_window"]
    print(f"| dream seconds per window (mean / max) | {d['mean']:.2f} / {d['max']:.2f} | < budget |")
    print(f"| latency | {last['latency_s']:.3f} s | |")
    growth = 100 * (last["rss_bytes"] - first["rss_bytes"]) / first["rss_bytes"] if first else float("nan")
    print(f"| RSS after first window / at end | {first['rss_bytes'] / 2**20:.0f} MiB / {last['rss_bytes'] / 2**20:.0f} MiB "
          f"({growth:+.2f}%) | < 2% growth |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
