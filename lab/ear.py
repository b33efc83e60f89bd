"""The independent ear: a judge for dreams, never used inside the dream loop.

It is built to differ from the dreaming model (streamdream/data/default.onnx) in everything but
the 18 labels: another soundfont and other voices in training (lab/train_ear.py),
another front end and another architecture.

* Front end: power spectrum with an 85 ms Hann window (FFT 4096 at 48 kHz, hop 20 ms),
  summed into 64 bands spaced evenly in log frequency from 40 Hz to 16 kHz, in dB
  relative to the clip's loudest cell and floored 80 dB below it. So the ear does not
  care about level, and it does not hear anything 80 dB under the music's peak.
  (The dreaming model: 25 ms window, 96 mel bands, log with a fixed 1e-6 offset.)
* Network: a 1-D convolution over time with the 64 bands as channels (each layer sees
  the whole spectrum at once), dilated, then mean and max over time and a linear layer.
  (The dreaming model: a 2-D CNN over a mel image with 3x3 kernels and global mean.)

The trained network is `lab/ear.onnx` (input: the features below, (batch, 64, frames));
the features are computed here in torch, so training and judging share one front end.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr
import torch
from torch import nn

RATE = 48000
N_FFT = 4096
HOP = 960            # 20 ms
BANDS = 64
FMIN_HZ, FMAX_HZ = 40.0, 16000.0
FLOOR_DB = 80.0
EAR_PATH = Path(__file__).resolve().parent / "ear.onnx"


def band_matrix() -> torch.Tensor:
    """(BANDS, N_FFT//2+1) triangles on a log-frequency axis, each at least two FFT bins wide."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    centres = np.geomspace(FMIN_HZ, FMAX_HZ, BANDS + 2)
    bin_hz = RATE / N_FFT
    weights = np.zeros((BANDS, len(freqs)), dtype=np.float64)
    for b in range(BANDS):
        lo, mid, hi = centres[b], centres[b + 1], centres[b + 2]
        lo, hi = min(lo, mid - 2 * bin_hz), max(hi, mid + 2 * bin_hz)  # low bands: wider than the bin spacing
        rise = (freqs - lo) / (mid - lo)
        fall = (hi - freqs) / (hi - mid)
        weights[b] = np.clip(np.minimum(rise, fall), 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return torch.from_numpy(weights.astype(np.float32))


_BANDS = band_matrix()
_WINDOW = torch.hann_window(N_FFT, periodic=True)


def ear_features(wave: torch.Tensor) -> torch.Tensor:
    """(batch, frames) at 48 kHz -> (batch, BANDS, time): dB below each clip's loudest cell, floored at -80."""
    spec = torch.stft(wave, N_FFT, HOP, N_FFT, _WINDOW, center=True, pad_mode="constant", return_complex=True)
    power = torch.matmul(_BANDS, spec.abs().pow(2))
    db = 10.0 * torch.log10(power + 1e-20)
    peak = db.amax(dim=(1, 2), keepdim=True)
    return torch.maximum(db - peak, torch.full_like(db, -FLOOR_DB))


class EarNet(nn.Module):
    """Dilated 1-D convolutions over time, bands as channels; mean and max over time; linear."""

    def __init__(self, n_classes: int, width: int = 64):
        super().__init__()
        self.norm = nn.BatchNorm1d(BANDS)  # per-band standardisation, learned from the training data

        def block(c_in, c_out, dilation):
            return nn.Sequential(nn.Conv1d(c_in, c_out, 5, padding=2 * dilation, dilation=dilation),
                                 nn.BatchNorm1d(c_out), nn.ReLU())

        self.body = nn.Sequential(block(BANDS, width, 1), block(width, width, 2), block(width, width, 4),
                                  block(width, width, 8))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.body(self.norm(feats))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.head(self.dropout(pooled))


class Ear:
    """lab/ear.onnx through ONNX Runtime: audio in, class probabilities out."""

    def __init__(self, path: Path = EAR_PATH):
        import onnxruntime as ort

        if not path.exists():
            raise SystemExit(f"error: {path} missing; train it with: nice -n 10 python lab/train_ear.py")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels = meta["labels"].split(",")

    def probabilities(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """audio (channels, frames) -> (labels,) probabilities, the mean over channels."""
        if rate != RATE:
            audio = soxr.resample(audio.T, rate, RATE).T
        with torch.no_grad():
            feats = ear_features(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).numpy()
        logits = self.session.run(None, {"features": feats})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).mean(axis=0)
