#!/usr/bin/env python3
"""Does a page flood touch the audio? `streamdream loop --web` on a JACK dummy server, twice: once with
one page open (the baseline), once with CLIENTS pages each sending control messages (intensity, mix and
gain moves) at RATE in total. Each run reports xruns, late windows and the audio callback's time,
against the stalls of the machine itself (harness/stallwatch.py).

    python scripts/bench_web.py [--seconds 60] [--clients 50] [--rate 1000] [-- more loop options]

The pages run in this process (websockets on asyncio), on the same CPUs as the piece: on a small
shared machine their own cost is part of what the audio has to live with.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.jackserver import JackServer  # noqa: E402
from harness.stallwatch import StallWatch  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def pages(port: int, clients: int, rate: float, seconds: float, refused: bool = False) -> dict:
    """`clients` pages for `seconds`: each reads every status and sends rate/clients moves a second (with
    `refused`, out of range: the server refuses them and nothing reaches the audio process)."""
    from websockets.asyncio.client import connect

    url, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
    counts = {"sent": 0, "received": 0, "errors": 0}
    stop_at = time.monotonic() + seconds

    async def page(index: int) -> None:
        rng = random.Random(index)
        async with connect(url, origin=origin, max_queue=None) as ws:
            async def read():
                async for message in ws:
                    counts["received"] += 1
                    counts["errors"] += '"error"' in message[:10]
            reader = asyncio.create_task(read())
            if not rate:
                await asyncio.sleep(stop_at - time.monotonic())
            every = clients / rate if rate else seconds
            due = time.monotonic() + rng.random() * every
            while time.monotonic() < stop_at:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due += every
                if rate and time.monotonic() < stop_at:
                    name = rng.choice(("intensity", "mix", "gain_db"))
                    value = {"intensity": rng.uniform(0, 2), "mix": rng.uniform(0, 1), "gain_db": rng.uniform(-12, 0)}
                    if refused:
                        value = {key: v + 100 for key, v in value.items()}
                    await ws.send(json.dumps({name: round(value[name], 3)}))
                    counts["sent"] += 1
            reader.cancel()

    await asyncio.gather(*(page(i) for i in range(clients)))
    return counts


def run(args, clients: int, rate: float, watch: StallWatch, workdir: Path, refused: bool = False):
    server = JackServer(f"sdweb{os.getpid()}", rate=48000, period=args.blocksize)
    stats = workdir / f"stats-{clients}-{rate:g}-{refused}.json"
    port = free_port()
    cmd = [sys.executable, "-m", "streamdream.cli", "loop", args.input, "--device", "system", "--samplerate", "48000",
           "--quiet", "--no-midi", "--web", str(port), "--stats", str(stats), *args.extra]
    proc = subprocess.Popen(cmd, env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (stats.exists() and json.loads(stats.read_text())["windows_dreamed"] >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"loop did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
        before = json.loads(stats.read_text())
        started = time.perf_counter()
        counts = asyncio.run(pages(port, clients, rate, args.seconds, refused))
        time.sleep(1.5)  # the stats file is rewritten once a second
        after = json.loads(stats.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        server.stop()
    xruns = [t for t in after["xrun_times"] if t >= started]
    slow = [(t, d) for t, d in after["slow_callback_times"] if t >= started]
    result = {
        "clients": clients, "rate": rate, "refused": refused, **counts,
        "xruns": sum(after["xruns"].values()) - sum(before["xruns"].values()),
        "xruns_unexplained": sum(1 for t in xruns if watch.explains(t) is None),
        "late": after["late_windows"] - before["late_windows"],
        "dreamed": after["windows_dreamed"] - before["windows_dreamed"],
        "slow": after["slow_callbacks"] - before["slow_callbacks"],
        "slow_in_stall": sum(1 for t, d in slow if any(st.due <= t + d and st.ended >= t for st in watch.stalls)),
        "callbacks": after["callbacks"] - before["callbacks"],
        "fraction": after["callback_fraction_of_block"],
    }
    return result, after, cmd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run's measured part")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000.0, help="control messages a second, all pages together")
    parser.add_argument("--blocksize", type=int, default=512)
    parser.add_argument("--input", default=str(ROOT / "streamdream" / "data" / "demo.flac"))
    parser.add_argument("extra", nargs="*", help="more streamdream loop options, after --")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_web."))
    watch = StallWatch()
    try:
        results = [run(args, 1, 0.0, watch, workdir)[0]]
        flood, _, cmd = run(args, args.clients, args.rate, watch, workdir)
        results.append(flood)
        # the same flood, every move refused by the server: what the server and the pages cost the machine,
        # with nothing reaching the audio process
        results.append(run(args, args.clients, args.rate, watch, workdir, refused=True)[0])
    finally:
        watch.stop()
    cpu = cpu_name()
    print(f"machine: {cpu}, {os.cpu_count()} cores; JACK dummy 48 kHz, period {args.blocksize}; {args.seconds:g} s "
          f"measured per run; command: {' '.join(cmd[2:])}")
    lates = sorted(st.late for st in watch.stalls)
    print(f"machine stalls (all runs, >= {1000 * watch.threshold:g} ms): {len(lates)}, longest "
          f"{1000 * lates[-1] if lates else 0:.1f} ms{'' if watch.realtime else ' (sleepers not real-time: not used)'}\n")
    print("| run | control messages sent (per s) | status messages received per page per s | xruns "
          "(unexplained by a stall) | windows dreamed / late | callbacks over 10% (during a stall) | "
          "callback p99 / p99.9 / max, whole run, of the period |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        name = "one idle page" if r["rate"] == 0 else f"{r['clients']} pages flooding" + (
            ", every move refused by the server" if r["refused"] else "")
        f = r["fraction"]
        print(f"| {name} | {r['sent']} ({r['sent'] / args.seconds:.0f}) | "
              f"{r['received'] / r['clients'] / args.seconds:.1f} | {r['xruns']} ({r['xruns_unexplained']}) | "
              f"{r['dreamed']} / {r['late']} | {r['slow']} of {r['callbacks']} ({r['slow_in_stall']}) | "
              f"{100 * f['p99']:.1f}% / {100 * f['p99.9']:.1f}% / {100 * f['max']:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
