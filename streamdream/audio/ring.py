"""A preallocated single-producer/single-consumer ring of (channels, frames) float32 audio.

Positions are absolute frame counts (Python ints, which never wrap). The producer
writes the data first and advances `written` last; a reader only touches frames
below `written`, so neither side needs a lock. Nothing allocates after __init__.
"""
from __future__ import annotations

import numpy as np

from ..memory import resident_zeros


class AudioRing:
    """`data` and `counter` may be given (views of shared memory) so another process can read the ring."""

    def __init__(self, channels: int, capacity: int, data: np.ndarray | None = None,
                 counter: np.ndarray | None = None):
        self.channels = channels
        self.capacity = int(capacity)
        self.data = data if data is not None else resident_zeros((channels, self.capacity), np.float32)
        # absolute frame count, advanced by the producer only; an aligned int64 store is atomic
        self._count = counter if counter is not None else np.zeros(1, dtype=np.int64)

    @property
    def written(self) -> int:
        return int(self._count[0])

    @written.setter
    def written(self, value: int) -> None:
        self._count[0] = value

    def write(self, block: np.ndarray) -> None:
        """Append (channels, n) frames; n may exceed nothing but the capacity."""
        n = block.shape[1]
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.data[:, start:start + first] = block[:, :first]
        if first < n:
            self.data[:, :n - first] = block[:, first:]
        self.written += n

    def write_zeros(self, n: int) -> None:
        """Append n frames of silence (n up to the capacity), without making a block of zeros."""
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.data[:, start:start + first] = 0.0
        if first < n:
            self.data[:, :n - first] = 0.0
        self.written += n

    def read_into(self, position: int, out: np.ndarray) -> None:
        """Copy frames [position, position + n) into `out` (channels, n); frames before 0 read as silence.

        The caller guarantees the frames are written and not yet overwritten.
        """
        n = out.shape[1]
        if position < 0:
            lead = min(n, -position)
            out[:, :lead] = 0.0
            if lead == n:
                return
            out = out[:, lead:]
            position, n = 0, n - lead
        start = position % self.capacity
        first = min(n, self.capacity - start)
        out[:, :first] = self.data[:, start:start + first]
        if first < n:
            out[:, first:] = self.data[:, :n - first]

    def read(self, position: int, n: int) -> np.ndarray:
        """Allocating read, for non-real-time threads."""
        out = np.empty((self.channels, n), dtype=np.float32)
        self.read_into(position, out)
        return out
