"""How streamdream's processes ask Linux for memory, so the kernel does not stall them or the audio.

keep_freed_memory and no_huge_pages are process-wide and Linux/glibc-specific; elsewhere they
quietly do nothing. The live dream worker allocates with jemalloc where it is installed
(jemalloc_for_spawned); the rest asks whichever allocator the process has.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import resource
import sys

import numpy as np

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_PR_SET_THP_DISABLE = 41
_heap_kept = False


@functools.cache  # find_library runs ldconfig: once per process, not once per window (heap_bytes)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def resident_zeros(shape, dtype=np.float64) -> np.ndarray:
    """Zeros with every page already in memory, for buffers the audio callback will use.

    np.zeros leaves a large array's pages to be supplied on first touch, and when that touch is the
    audio callback's, it waits for the kernel: a page fault per block for the first ~35 s of a live
    run (one callback took 8.7 ms), ~120 at once (2.9 ms) when the limiter's loud path first ran.
    """
    out = np.empty(shape, dtype=dtype)
    out.fill(0)
    return out


def keep_freed_memory() -> None:
    """Let glibc reuse freed tensor memory instead of handing it back to the kernel.

    A dream step allocates and frees the same multi-megabyte tensors every time. By default glibc
    serves each from a fresh mmap and unmaps it on free, so every step zero-fills new pages:
    measured on a 9-s window (default model, one thread), 170,000 page faults and 0.36 s of kernel
    time per window, 1.9 s per window in all; with the thresholds raised, no faults and 1.35 s.
    On a kernel without preemption those faults also hold up whatever else wanted that CPU.
    """
    global _heap_kept
    libc = _libc()
    if _heap_kept or libc is None or not hasattr(libc, "mallopt"):
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest allowed value on 64-bit
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    _heap_kept = True


# jemalloc told to keep freed pages, as keep_freed_memory tells glibc, so a window reuses them without
# faults; and to serve big tensors from its ordinary arenas (by default those of 8 MiB and more get an
# arena of their own: RSS 966 against 953 MiB, the same speed within noise)
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0"
_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL


@contextlib.contextmanager
def jemalloc_for_spawned():
    """Processes started inside this block allocate with jemalloc (Debian: libjemalloc2), where installed.

    Why: with glibc's malloc, the dream worker's heap kept growing window after window with nothing more
    in use. A window allocates ~800 tensors of dozens of sizes (1-19 MiB, a set per octave), and glibc
    leaves holes that the next window's sizes fit only in part, so the heap grows around them: measured
    in one process (default model, one thread, the same window 16 times over), 12-25 MiB steps at
    windows 1, 3, 8 and 13, +52 MiB over 40 windows with the knobs moving, then flat; a 2-minute soak
    failed on +2.5% RSS. jemalloc keeps each size class in its own runs: over 30 windows RSS moved
    +1 MiB and stayed about 200 MiB under glibc's; a window took about 5% longer at the defaults and 10%
    less with the knobs moving, within this host's drift (docs/BENCHMARKS.md, "The dream worker's
    allocator").

    The environment is set for the spawn and put back after it, so the audio process and whatever else it
    starts keep their own; the audio callback never reads the environment. A user's own LD_PRELOAD or
    MALLOC_CONF is left as it is.
    """
    library = ctypes.util.find_library("jemalloc") if sys.platform.startswith("linux") else None
    wanted = {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF} if library else {}
    changed = {name: value for name, value in wanted.items() if not os.environ.get(name)}
    if "LD_PRELOAD" not in changed:
        changed = {}  # the user preloads something of their own: leave the allocator to them
    for name, value in changed.items():
        os.environ[name] = value
    try:
        yield
    finally:
        for name in changed:
            os.environ.pop(name, None)


@functools.cache  # a process's malloc is fixed when it starts
def _jemalloc():
    """This process's jemalloc control function (mallctl), or None when malloc is glibc's."""
    try:
        mallctl = getattr(ctypes.CDLL(None), "mallctl", None)
    except OSError:
        return None
    if mallctl is not None:  # int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
        mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        mallctl.restype = ctypes.c_int
    return mallctl


def allocator() -> str:
    """Which malloc this process runs on: "jemalloc" or "system"."""
    return "jemalloc" if _jemalloc() is not None else "system"


def _jemalloc_size(mallctl, name: bytes) -> int:
    value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
    if mallctl(name, ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
        return 0
    return int(value.value)


def give_back_freed_memory() -> None:
    """Hand the pages of freed heap memory back to the kernel (glibc malloc_trim).

    keep_freed_memory keeps freed tensors' memory for the next step, which is right while one objective
    dreams window after window: the same blocks come back every step. When the objective changes, the
    new one's tensors fit the kept blocks only in part, the heap grows around them, and the worker's RSS
    climbed in steps over an hour (+4.4%) with the memory in use flat (scripts/soak.py). Trimmed at each
    change, the pages of blocks nobody reuses go back; the next window faults in what it needs again
    (measured: ~80,000 page faults, 0.13 s of kernel time, once per change; the trim itself 10-20 ms).
    Under jemalloc the same is a purge of every arena's freed pages.
    """
    mallctl = _jemalloc()
    if mallctl is not None:
        mallctl(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, 0)
        return
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_bytes() -> tuple[int, int]:
    """(bytes malloc has handed out and not had back, bytes freed but kept for reuse), from glibc's
    mallinfo2 (glibc 2.33+) or jemalloc's statistics (resident less allocated); (0, 0) where neither is
    available. The second is what keep_freed_memory keeps: it shows whether a process's growth is memory
    in use or memory held for reuse."""
    mallctl = _jemalloc()
    if mallctl is not None:
        epoch = ctypes.c_uint64(1)  # jemalloc's statistics are as of the last epoch: start a new one
        mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        allocated = _jemalloc_size(mallctl, b"stats.allocated")
        return allocated, max(0, _jemalloc_size(mallctl, b"stats.resident") - allocated)
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return 0, 0
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd), int(info.fordblks)


def rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def no_huge_pages() -> None:
    """Keep the kernel from merging this process's pages (and its children's) into huge pages.

    numpy asks for huge pages on big arrays; the kernel thread that merges them then ran for
    7.8 ms without yielding the CPU (seen with `perf sched timehist` during a live run), delaying
    a real-time thread on that CPU. The audio engine gains nothing from huge pages.
    """
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
