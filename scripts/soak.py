#!/usr/bin/env python3
"""Installation soak: `streamdream loop` on a JACK dummy server, feedback on, knobs and notes moving the
whole time; fails on growth after warm-up, lost audio or a late window.

    python scripts/soak.py [--minutes 2] [--feedback 0.3] [--warmup 0.33] [--json out.json]

Starts a private JACK server (dummy driver, 48 kHz, period 512), runs `streamdream loop` on it with the
demo clip, --feedback, --evolve, --record (FLAC) and --stats, and sends MIDI to its 'streamdream' port:
CC 1/7/20 (instant), CC 21/22/26 (depth, jitter), CC 24/25 (layer, target) and notes (targets) at random,
~50 messages a second, after first holding every layer the layer knob reaches, with and without a
target, for two hops each (so every Dreamer the run can need is built early; the worker logs each one
as a "new dream objective"). Every 5 s it samples, for EVERY process of the run (the audio process,
the dream worker, multiprocessing's helper): RSS, open file descriptors and threads. A real-time
sleeper per CPU (harness/stallwatch.py) tells machine stalls from the engine's own xruns, as bench_live
does.

Fails (exit 1) when, after the warm-up share of the run, any process's RSS grows more than 2% or its
held descriptors or its threads grow; when a window is late or a worker restarted; when the recording
is not exactly the audio played plus the silence of the cycles the device skipped, or when it drifts
from wall time by a block (10.7 ms) or more. A descriptor is held when it is open, to the same file,
in every sample of a quarter: the audio process opens some for milliseconds each second (the stats
file's temp file, the recording's fsync, /proc reads) and a sample may catch one; a leak stays.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.jackserver import JackServer  # noqa: E402
from harness.knobtraffic import OBJECTIVE, KnobTraffic, instant_and_depth  # noqa: E402
from streamdream.data import DEMO_CLIP, shipped_path  # noqa: E402
from streamdream.dreaming.model import read_model_info  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402
from streamdream.params import Params  # noqa: E402
from harness.stallwatch import StallWatch  # noqa: E402

RSS_GROWTH_LIMIT = 0.02
NEW_OBJECTIVE = "new dream objective"  # the worker's notice for each Dreamer it builds after the first
SAMPLE_EVERY_S = 5.0


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def open_descriptors(pid: int) -> list[str]:
    """'NUMBER TARGET' for each descriptor open in pid (one closed while being read is left out)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(f"{fd} {os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


def sample(pid: int) -> dict:
    """{pid: {name, rss, fds, threads}} for the run's processes (fds: open_descriptors)."""
    out = {}
    for p in descendants(pid):
        try:
            status = dict(line.split(":", 1) for line in open(f"/proc/{p}/status") if ":" in line)
            cmdline = open(f"/proc/{p}/cmdline").read().replace("\0", " ")
            out[p] = {"name": ("worker" if "multiprocessing.spawn" in cmdline and "resource_tracker" not in cmdline
                               else "tracker" if "resource_tracker" in cmdline else "audio"),
                      "rss": int(status["VmRSS"].split()[0]) * 1024, "fds": open_descriptors(p),
                      "threads": int(status["Threads"])}
        except (OSError, KeyError):
            pass
    return out


def held(samples: list[dict]) -> set[str]:
    """The descriptors open, to the same file, in every one of these samples of one process."""
    return set.intersection(*(set(v["fds"]) for v in samples))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--feedback", type=float, default=0.3)
    parser.add_argument("--warmup", type=float, default=0.33, help="share of the run counted as warm-up")
    parser.add_argument("--rate", type=float, default=50.0, help="MIDI messages per second")
    parser.add_argument("--fixed-objective", action="store_true",
                        help="no --evolve, no layer or target knob and no notes: the run's one Dreamer is built "
                             "before the warm-up ends, so a short run can judge growth (the CI run)")
    parser.add_argument("--json", help="also write every sample here")
    parser.add_argument("extra", nargs="*", help="more `streamdream loop` options, after --")
    args = parser.parse_args()

    server = JackServer(f"sdsoak{os.getpid()}", rate=48000, period=512)
    os.environ.update(JACK_DEFAULT_SERVER=server.name, JACK_NO_START_SERVER="1")  # this process's MIDI sender
    work = Path(tempfile.mkdtemp(prefix="soak."))
    stats, rec, errors, log = work / "stats.json", work / "soak.flac", work / "stderr.txt", work / "soak.log"
    seconds = args.minutes * 60
    evolve = [] if args.fixed_objective else ["--evolve", "--evolve-period", "30"]
    cmd = [sys.executable, "-m", "streamdream.cli", "loop", str(shipped_path(DEMO_CLIP)), "--device", "system",
           "--samplerate", "48000", "--duration", str(seconds), "--feedback", str(args.feedback), *evolve,
           "--record", str(rec), "--stats", str(stats), "--log", str(log), "--quiet", *args.extra]
    watch = StallWatch()
    launched = time.monotonic()  # CLOCK_MONOTONIC, the clock of the engine's xrun times (time.perf_counter)
    with open(errors, "w") as err_file:  # a file, not a pipe: an hour of messages would fill a pipe and block
        proc = subprocess.Popen(cmd, env=server.env, stdout=subprocess.DEVNULL, stderr=err_file)
    traffic = None
    samples = []
    try:
        # steps up to 8: twice the default, as far as --evolve walks
        traffic = KnobTraffic(args.rate, instant_and_depth(8) + ([] if args.fixed_objective else OBJECTIVE),
                              notes=not args.fixed_objective)
        traffic.connect(alive=lambda: proc.poll() is None)
        # every objective the knobs reach, each held for two hops (the worker takes the newest settings)
        traffic.start(sweep_layers=0 if args.fixed_objective else len(read_model_info("default").layer_choices),
                      hold_s=2 * (Params.window_s - Params.crossfade_s))
        while proc.poll() is None:
            time.sleep(SAMPLE_EVERY_S)
            try:
                snap = json.loads(stats.read_text())
            except (OSError, ValueError):
                continue
            samples.append({"wall": time.monotonic(), "elapsed_s": snap["elapsed_s"],
                            "seconds_out": snap["seconds_out"], "skipped_s": snap["skipped_s"],
                            "recording_behind_s": snap["recording_behind_s"],
                            "worker_memory": snap["worker_memory"], "procs": sample(proc.pid),
                            "objectives": log.read_text().count(NEW_OBJECTIVE) if log.exists() else 0})
    except RuntimeError as exc:
        raise SystemExit(f"{exc}: {errors.read_text()[-2000:]}")
    finally:
        if traffic is not None:
            traffic.stop()
        if proc.poll() is None:
            proc.terminate()
        server.stop()
        watch.stop()
    err = errors.read_text()
    messages = traffic.sent
    if proc.returncode != 0:
        print(err[-3000:], file=sys.stderr)
        return 1
    last = json.loads(stats.read_text())
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "last": last}, indent=1))
    return report(args, cmd, samples, last, rec, watch, messages, launched)


def report(args, cmd, samples, last, rec, watch, messages, launched) -> int:
    import soundfile as sf

    failures = []
    cpu = cpu_name()
    print(f"machine: {cpu}, {os.cpu_count()} cores, load average at end {os.getloadavg()[0]:.1f}; JACK dummy 48 kHz, "
          f"period 512; {args.minutes:g} min; {messages} MIDI messages; command: {' '.join(cmd[2:])}\n")
    print("| process | RSS after warm-up (max of first quarter) | RSS at end (max of last quarter) | growth | held fds | threads |")
    print("|---|---|---|---|---|---|")
    # after the warm-up and while audio flows: the last stats are written during shut-down (worker
    # finishing its window, recording closing), a moment of the run's end, not of the piece
    warm = [s for s in samples if args.warmup * args.minutes * 60 <= s["seconds_out"] < args.minutes * 60 - 1.0]
    if len(warm) < 4:
        failures.append("too few samples after warm-up")
    else:
        # peak against peak: the worker's RSS rises within a window and falls when it gives freed memory
        # back (at each new objective, memory.give_back_freed_memory), so one sample is any point of that
        quarter = max(1, len(warm) // 4)
        head, tail = warm[:quarter], warm[-quarter:]
        names = {v["name"] for s in warm for v in s["procs"].values()}
        for name in sorted(names):
            def of(s):
                return [v for v in s["procs"].values() if v["name"] == name]
            starts = [v for s in head for v in of(s)]
            ends = [v for s in tail for v in of(s)]
            if not starts or not ends:
                failures.append(f"{name} process missing in some samples (restarted?)")
                continue
            r0, r1 = max(v["rss"] for v in starts), max(v["rss"] for v in ends)
            growth = (r1 - r0) / r0
            fds_start, fds_end = held(starts), held(ends)
            threads = (starts[0]["threads"], max(v["threads"] for v in ends))
            print(f"| {name} | {r0 / 2**20:.0f} MiB | {r1 / 2**20:.0f} MiB | {100 * growth:+.2f}% | "
                  f"{len(fds_start)} -> {len(fds_end)} | {threads[0]} -> {threads[1]} |")
            if growth > RSS_GROWTH_LIMIT:
                failures.append(f"{name} RSS grew {100 * growth:.2f}% after warm-up")
            if len(fds_end) > len(fds_start):
                failures.append(f"{name} held descriptors grew {len(fds_start)} -> {len(fds_end)}; new: "
                                f"{', '.join(sorted(fds_end - fds_start))}")
            if threads[1] > threads[0] + 1:
                failures.append(f"{name} threads grew {threads[0]} -> {threads[1]}")
    if warm:
        heap = [s["worker_memory"] for s in (warm[0], warm[-1])]
        print(f"\nDream worker's heap (its malloc: jemalloc where installed), after warm-up -> end: in use "
              f"{heap[0]['heap_used_bytes'] / 2**20:.0f} -> "
              f"{heap[1]['heap_used_bytes'] / 2**20:.0f} MiB, freed and kept for reuse "
              f"{heap[0]['heap_free_bytes'] / 2**20:.0f} -> {heap[1]['heap_free_bytes'] / 2**20:.0f} MiB")
        print(f"\nDreamers built for new objectives (layer, target or not): {warm[0]['objectives']} by the end of "
              f"the warm-up, {samples[-1]['objectives']} in all")
    xruns = last["xrun_times"]
    unexplained = [t for t in xruns if watch.explains(t) is None]
    recorded = sf.info(str(rec)).frames
    played = round(last["seconds_out"] * 48000)
    skipped = round(last["skipped_s"] * 48000)
    # Both clocks from the stats file itself (the engine's wall time, and the audio it had recorded when it
    # wrote it: played + skipped), over the samples taken while audio flowed: start-up and shut-down (the
    # worker finishing its window, the recording closed, then the last stats written) are not audio time.
    # Each sample reads the audio clock up to a block after its last callback: the median of the first and
    # of the last quarter's samples each.
    flowing = [s for s in samples if 0 < s["seconds_out"] < args.minutes * 60 - 1.0]
    behind = [s["elapsed_s"] - s["seconds_out"] - s["skipped_s"] for s in flowing]
    quarter = max(1, len(behind) // 4)
    drift = (statistics.median(behind[-quarter:]) - statistics.median(behind[:quarter])
             if len(behind) > 1 else float("nan"))
    block_s = 512 / 48000
    print(f"\n| measure | value |\n|---|---|")
    print(f"| windows dreamed / late / failed | {last['windows_dreamed']} / {last['late_windows']} / "
          f"{last['failed_windows']} |")
    print(f"| worker restarts / callback errors | {last['worker_restarts']} / {last['callback_errors']} |")
    print(f"| xrun events / during a machine stall / unexplained | {len(xruns)} / {len(xruns) - len(unexplained)} / "
          f"{len(unexplained)} |")
    if unexplained:
        # Where in the run they fell (start-up or mid-piece). Audio start is read from the first stats
        # sample with audio flowing: its reading time minus the audio it had played, so within a second.
        start = flowing[0]["wall"] - flowing[0]["seconds_out"] - flowing[0]["skipped_s"] if flowing else launched
        print(f"| unexplained xruns, s after launch (audio began about {start - launched:.1f} s after launch) | "
              f"{', '.join(f'{t - launched:.2f}' for t in unexplained)} |")
    print(f"| feedback share asked / at end (after the guard) | {last['feedback']['share']} / "
          f"{last['feedback']['effective']:.3f} |")
    print(f"| recorded frames / played + skipped (silence) frames | {recorded} / {played} + {skipped} |")
    print(f"| recording vs wall time while audio flowed | {1000 * drift:+.1f} ms (positive: recording behind) |")
    # the engine's own figure at the last sample while audio flowed; at shut-down (the last stats) the final
    # callbacks run beside the worker finishing its window and the recording closing
    engine_behind = flowing[-1]["recording_behind_s"] if flowing else float("nan")
    print(f"| the same, as the engine measures it (recording_behind_s), last sample while audio flowed / at "
          f"shut-down | {1000 * engine_behind:+.1f} / {1000 * last['recording_behind_s']:+.1f} ms |")
    if last["late_windows"]:
        failures.append(f"{last['late_windows']} late window(s)")
    if last["worker_restarts"] or last["callback_errors"]:
        failures.append("the worker restarted or the callback raised")
    if recorded != played + skipped:
        failures.append(f"recording has {recorded} frames, {played} were played and {skipped} skipped")
    if not abs(drift) < block_s:
        failures.append(f"the recording drifted {1000 * drift:+.1f} ms from wall time (more than a block)")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
