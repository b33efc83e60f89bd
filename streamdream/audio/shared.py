"""The memory the audio callback and the dream worker share (see stream/engine.py and stream/worker.py).

Single producer, single consumer per array, no locks: a slot is unpublished (slot_window = -1)
before it is overwritten and published (slot_window = k) last.
"""
from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from ..memory import resident_zeros
from .ring import AudioRing

# Worker counters, one float64 each, shared with the engine (and its stats).
W_DREAMED, W_FAILED, W_CURRENT, W_STARTED, W_LAST_S, W_SUM_S, W_MAX_S, W_READY = range(8)
W_RSS, W_HEAP_USED, W_HEAP_FREE = range(8, 11)  # the worker's memory after its last window (bytes)
N_COUNTERS = 11


@dataclass
class ExchangeSpec:
    """Names and shapes of the shared buffers, small enough to pickle to a child process."""
    name: str
    channels: int
    ring_capacity: int
    n_slots: int
    window: int


class DreamExchange:
    """Where the audio callback hands input to the dream worker and the worker hands dreams back.

    The input ring (callback writes, worker reads), one slot per window in flight holding
    "weights x (dream - dry)" with its published-window / ok / params-version flags (worker
    writes, callback reads), and the worker's counters. Plain arrays for a thread worker,
    one shared-memory block for a process worker; every page is written before audio starts.
    """

    def __init__(self, channels: int, ring_capacity: int, n_slots: int, window: int, shared: bool,
                 attach: str | None = None):
        self.spec_args = (channels, ring_capacity, n_slots, window)
        layout = [("ring", (channels, ring_capacity), np.float32), ("ring_count", (1,), np.int64),
                  ("slots", (n_slots, channels, window), np.float32), ("slot_window", (n_slots,), np.int64),
                  ("slot_ok", (n_slots,), np.int64), ("slot_version", (n_slots,), np.int64),
                  ("counters", (N_COUNTERS,), np.float64)]
        sizes = [int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in layout]
        self.shm = None
        if shared:
            total = sum(-(-size // 64) * 64 for size in sizes)  # 64-byte aligned pieces
            self.shm = (shared_memory.SharedMemory(name=attach) if attach
                        else shared_memory.SharedMemory(create=True, size=total))
            offset = 0
            for (name, shape, dtype), size in zip(layout, sizes):
                view = np.ndarray(shape, dtype=dtype, buffer=self.shm.buf, offset=offset)
                if attach is None:
                    view.fill(0)  # every page written by the engine now, not first by the callback
                setattr(self, name, view)
                offset += -(-size // 64) * 64
        else:
            for name, shape, dtype in layout:
                setattr(self, name, resident_zeros(shape, dtype))
        if attach is None:
            self.slot_window[:] = -1
            self.counters[W_CURRENT] = -1
        self.in_ring = AudioRing(channels, ring_capacity, self.ring, self.ring_count)

    def spec(self) -> ExchangeSpec:
        return ExchangeSpec(self.shm.name, *self.spec_args)

    @classmethod
    def attach(cls, spec: ExchangeSpec) -> "DreamExchange":
        return cls(spec.channels, spec.ring_capacity, spec.n_slots, spec.window, shared=True, attach=spec.name)

    def release(self, unlink: bool) -> None:
        if self.shm is not None:
            for name in ("ring", "ring_count", "slots", "slot_window", "slot_ok", "slot_version", "counters"):
                setattr(self, name, None)
            self.in_ring = None
            self.shm.close()
            if unlink:
                self.shm.unlink()
