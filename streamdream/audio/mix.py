"""The mixing DSP shared by render and the live engine: what a dreamed window adds, and how it is mixed in.

The dry signal passes untouched: only "dream minus dry" is scaled (and crossfaded, see windows.py),
so at intensity 0 the output is the input exactly.
"""
from __future__ import annotations

import numpy as np


def match_loudness(dry: np.ndarray, dreamed: np.ndarray) -> np.ndarray:
    """Scale a dreamed window to the dry window's RMS: dreams get loud, the performer's level should not."""
    dry_rms = np.sqrt(np.mean(np.square(dry, dtype=np.float64)))
    dream_rms = np.sqrt(np.mean(np.square(dreamed, dtype=np.float64)))
    if dream_rms == 0.0 or dry_rms == 0.0:
        return dreamed
    return (dreamed * (dry_rms / dream_rms)).astype(np.float32)


def window_delta(dry: np.ndarray, dreamed: np.ndarray | None, loudness: bool) -> np.ndarray:
    """What a window contributes: dream minus dry (zeros when the dream failed)."""
    if dreamed is None:
        return np.zeros_like(dry)
    if loudness:
        dreamed = match_loudness(dry, dreamed)
    return dreamed - dry


def mix_output(dry: np.ndarray, delta: np.ndarray, intensity, mix, gain, out: np.ndarray | None = None,
               scratch: np.ndarray | None = None) -> np.ndarray:
    """(dry + (mix * intensity) * delta) * gain. The controls are scalars or per-frame arrays.

    With `out` (and, for per-frame controls, a `scratch` of at least one frame per sample) nothing
    is allocated: the audio callback's way. Both ways do the same operations in the same order,
    so render and live give the same samples.
    """
    if out is None:
        out = np.empty_like(dry)
    if np.ndim(mix) or np.ndim(intensity):
        amount = np.multiply(mix, intensity, out=(scratch[:dry.shape[-1]] if scratch is not None else None))
    else:
        amount = mix * intensity
    for c in range(dry.shape[0]):  # channel by channel: numpy allocates work buffers for broadcasts
        row = out[c]
        np.multiply(amount, delta[c], out=row)
        np.add(dry[c], row, out=row)
        np.multiply(row, gain, out=row)
    return out
