"""The page's picture of the last dreamed window: spectrograms of its input, of the window as dreamed
(input + the dream's change, before mix, intensity and gain) and of the change alone, as one PNG.

The server process reads them from the memory the audio callback and the dream worker already share
(audio/shared.DreamExchange: the input ring and the slot of the newest window), read-only, so the
audio process spends nothing on it. Drawn with numpy and zlib alone: the page needs no matplotlib.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

FFT, HOP = 1024, 512
ROWS = 96                   # frequency rows per panel, log-spaced from LOW_HZ to the top
LOW_HZ = 40.0
COLUMNS = 480               # time columns per panel
RANGE_DB = 70.0             # what the colours span below each panel's loudest cell
GAP = 4                     # pixels between panels

# black -> deep blue -> magenta -> orange -> pale yellow, for quiet -> loud
_STOPS = np.array([[0, 0, 0], [30, 20, 110], [170, 40, 140], [250, 140, 40], [255, 250, 200]], dtype=np.float64)


def spectrogram_rows(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """(ROWS, COLUMNS) level in dB of a mono signal, low frequencies in the last row."""
    frames = 1 + max(0, len(mono) - FFT) // HOP
    index = np.arange(FFT)[None, :] + HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(mono[index] * np.hanning(FFT), axis=1)) ** 2  # (frames, bins)
    freqs = np.fft.rfftfreq(FFT, 1.0 / sample_rate)
    edges = np.geomspace(LOW_HZ, sample_rate / 2, ROWS + 1)
    band = np.clip(np.searchsorted(edges, freqs) - 1, -1, ROWS)
    rows = np.zeros((ROWS, frames))
    for r in range(ROWS):
        hit = band == r
        rows[r] = power[:, hit].mean(axis=1) if hit.any() else power[:, np.argmin(np.abs(freqs - edges[r]))]
    columns = np.linspace(0, frames - 1, COLUMNS).round().astype(int)
    return 10 * np.log10(rows[::-1, columns] + 1e-12)


def _colour(db: np.ndarray) -> np.ndarray:
    x = np.clip((db - db.max() + RANGE_DB) / RANGE_DB, 0, 1) * (len(_STOPS) - 1)
    low = np.minimum(x.astype(int), len(_STOPS) - 2)
    t = (x - low)[..., None]
    return ((1 - t) * _STOPS[low] + t * _STOPS[low + 1]).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a (height, width, 3) uint8 array."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def window_picture(dry: np.ndarray, change: np.ndarray, sample_rate: int) -> bytes:
    """Input, dreamed and change panels, top to bottom, of (channels, frames) arrays."""
    panels = [_colour(spectrogram_rows(x.mean(axis=0), sample_rate)) for x in (dry, dry + change, change)]
    gap = np.full((GAP, COLUMNS, 3), 40, dtype=np.uint8)
    return png(np.concatenate([panels[0], gap, panels[1], gap, panels[2]]))


class WindowReader:
    """Attaches read-only to the engine's shared exchange; `newest()` gives (k, input, change) of the
    newest dreamed window whose input is still in the ring, or None when there is no new one."""

    def __init__(self, spec: dict):
        from multiprocessing import resource_tracker

        from ..audio.shared import DreamExchange, ExchangeSpec

        self.exchange = DreamExchange.attach(ExchangeSpec(**spec["exchange"]))
        # this process only looks: the engine owns the memory and unlinks it (Python's tracker would
        # otherwise unlink it when this process ends)
        resource_tracker.unregister(self.exchange.shm._name, "shared_memory")
        self.hop, self.window = spec["hop"], spec["exchange"]["window"]
        self.shown = -1

    def newest(self):
        ex = self.exchange
        published = ex.slot_window.copy()
        k = int(published.max())
        if k <= self.shown or k < 0:
            return None
        slot = int(np.argmax(published))
        change = ex.slots[slot].copy()
        start = k * self.hop
        if ex.slot_window[slot] != k or ex.in_ring.written - start > ex.in_ring.capacity:
            return None  # overwritten while copied, or its input has left the ring: wait for the next
        dry = ex.in_ring.read(start, self.window).copy()
        self.shown = k
        return k, dry, change

    def close(self) -> None:
        self.exchange.release(unlink=False)
