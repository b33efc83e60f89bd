"""How many torch threads each dreaming process uses: the count that measures fastest on this machine.

More threads are not always faster: on a small virtual machine, or beside other busy processes, the
cost of handing every convolution to a second thread can exceed what it wins. So the count is measured
once, on a stand-in for the dream step (the shipped model's shape of convolutions, forward and backward
to the input), and kept in the user's cache keyed by the CPU, its cores, torch's version and the
cores one process may use (fewer when several processes dream at once). `--threads` overrides it; deleting the cache file measures again.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import StreamDreamError

CACHE_NAME = "threads.json"
# A larger count must win by this much to be chosen: timings on a shared machine wander by a few per
# cent, and fewer threads leave more of the machine to the audio process and to other jobs.
MARGIN = 0.10
ROUNDS = 3  # counts take turns, so a slow moment of the machine falls on each of them alike


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamdream" / CACHE_NAME


def cpu_name() -> str:
    """The CPU's model name as Linux gives it (benchmarks name their host with it), else what Python knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "?"


def machine_key(cores: int) -> str:
    import torch

    return f"{cpu_name()} | {os.cpu_count()} cores | torch {torch.__version__} | {cores} for one process"


def fastest(times: dict[int, list[float]]) -> int:
    """The thread count with the lowest median time, preferring fewer unless more win by MARGIN."""
    best = min(times)
    for count in sorted(times):
        if statistics.median(times[count]) < (1 - MARGIN) * statistics.median(times[best]):
            best = count
    return best


def step_stand_in():
    """A function doing one dream step's kind of work: the shipped model's five 3x3 conv stages
    (widths 24-128, max pools between) on a mel view of a 9-s stereo window, forward and backward
    to the input."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, width = [], 1
    for i, out in enumerate((24, 32, 64, 96, 128)):
        layers += ([nn.MaxPool2d(2)] if i else []) + [nn.Conv2d(width, out, 3, padding=1), nn.ReLU()]
        width = out
    net = nn.Sequential(*layers).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    view = torch.randn(2, 1, 128, 450)  # two channels' mel frames: a coarse octave's size

    def step():
        x = view.clone().requires_grad_(True)
        net(x).mean().backward()
    return step


def measure(counts: list[int], rounds: int = ROUNDS) -> dict[int, list[float]]:
    import torch

    step, before = step_stand_in(), torch.get_num_threads()
    times: dict[int, list[float]] = {count: [] for count in counts}
    try:
        for count in counts:  # the first run of each count builds its thread pool and kernels
            torch.set_num_threads(count)
            step()
        for _ in range(rounds):
            for count in counts:
                torch.set_num_threads(count)
                began = time.perf_counter()
                step()
                step()
                times[count].append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(before)
    return times


def best_threads(cores: int) -> int:
    """The fastest torch thread count for one process that may use `cores` cores, measured once and
    kept in the user's cache."""
    cores = max(1, cores)
    if cores == 1:
        return 1
    key, path = machine_key(cores), cache_path()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    entry = cached.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("threads"), int) and 1 <= entry["threads"] <= cores:
        return entry["threads"]
    times = measure(list(range(1, cores + 1)))
    chosen = fastest(times)
    cached[key] = {"threads": chosen,
                   "seconds": {str(count): [round(t, 4) for t in ts] for count, ts in times.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(cached, indent=1) + "\n")
    except (OSError, StreamDreamError):
        pass  # a read-only home measures again next time; the dream itself is unaffected
    return chosen


def threads_per_worker(jobs: int = 1, reserve: int = 0) -> int:
    """Torch threads for each of ``jobs`` processes dreaming at once, with ``reserve`` cores left to
    others (the live audio process), so that together they do not oversubscribe the machine."""
    cores = max(1, ((os.cpu_count() or 1) - reserve) // max(1, jobs))
    return best_threads(cores)


def threads_beside_audio() -> int:
    """Torch threads for live's dream worker: one core stays with the audio process."""
    return threads_per_worker(reserve=1)
