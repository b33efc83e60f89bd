"""Catch the machine itself stalling: one top-priority sleeper per CPU that notes when it wakes late.

On a shared VM the hypervisor sometimes stops a virtual CPU for 10-30 ms. JACK then reports an
xrun that no client caused (seen with `perf sched timehist`: CPU 0 "idle" for 21 ms while a
woken audio thread waited 20 ms for it). A SCHED_FIFO thread pinned to each CPU and woken every
millisecond cannot be held up by any ordinary program, ours included, so when it wakes
milliseconds late the CPU was not running at all. Tests use the record to tell an xrun the
engine caused from one the machine caused; scripts/bench_live.py reports both.

    python harness/stallwatch.py CPU THRESHOLD_S   # prints "cpu due late" per stall until killed
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

TICK_S = 0.001


@dataclass
class Stall:
    cpu: int
    due: float    # time.monotonic() the sleeper should have woken
    late: float   # seconds after that it did wake

    @property
    def ended(self) -> float:
        return self.due + self.late


def watch(cpu: int, threshold: float) -> None:
    """The sleeper (runs in its own process, so no other Python thread can hold its GIL)."""
    import gc
    gc.disable()
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(80))
        print(f"realtime {cpu}", flush=True)
    except PermissionError:
        print(f"normal {cpu}", flush=True)  # its stalls excuse nothing (see explains)
    due = time.monotonic()
    while True:
        due += TICK_S
        time.sleep(max(0.0, due - time.monotonic()))
        late = time.monotonic() - due
        if late > threshold:
            print(f"{cpu} {due:.6f} {late:.6f}", flush=True)
            due = time.monotonic()


class StallWatch:
    """Start one watcher per CPU; `stalls` fills in as they happen; `stop()` ends them."""

    def __init__(self, threshold: float = 0.003):
        self.threshold = threshold
        self.stalls: list[Stall] = []
        self.realtime = True
        self._procs = []
        self._readers = []
        for cpu in sorted(os.sched_getaffinity(0)):
            proc = subprocess.Popen([sys.executable, __file__, str(cpu), str(threshold)], stdout=subprocess.PIPE,
                                    text=True)
            self._procs.append(proc)
            first = proc.stdout.readline().split()
            self.realtime &= bool(first) and first[0] == "realtime"
            reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, proc) -> None:
        for line in proc.stdout:
            cpu, due, late = line.split()
            self.stalls.append(Stall(int(cpu), float(due), float(late)))

    def explains(self, when: float, before: float = 0.1, after: float = 0.005) -> Stall | None:
        """A stall that ended in the `before` seconds up to `when` (an xrun is flagged on the next
        callback after the cycle it spoiled), or None. Only a real-time watcher's word counts: a
        normal-priority one can be held up by the very program under test."""
        if not self.realtime:
            return None
        for stall in self.stalls:
            if when - before <= stall.ended <= when + after:
                return stall
        return None

    def stop(self) -> None:
        time.sleep(0.05)  # let a stall that just ended be printed
        for proc in self._procs:
            proc.terminate()
        for proc, reader in zip(self._procs, self._readers):
            proc.wait(timeout=10)
            reader.join(timeout=10)


if __name__ == "__main__":
    watch(int(sys.argv[1]), float(sys.argv[2]))
