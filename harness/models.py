"""Tiny random-weight ONNX models exported from torch, so the tests need no trained model."""
from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from streamdream.dreaming.model import write_metadata
from streamdream.dreaming.views import FrontEnd, stft_bins

LABELS = ["piano", "brass", "drums", "voice"]


class TinyAudioCNN(nn.Module):
    """Three conv stages and a classifier over (batch, 1, bins, time); any time length."""

    def __init__(self, zero_biases: bool = True, classes: int = len(LABELS)):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(nn.Conv2d(12, 12, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(12, classes)
        if zero_biases:  # equal (12,) zero biases: torch.onnx.export dedups them through Identity nodes
            for stage in (self.stage1, self.stage2, self.stage3):
                nn.init.zeros_(stage[0].bias)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.head(x.mean(dim=(2, 3)))


class TinyImageCNN(nn.Module):
    """An 'image model from a zoo': fixed 3x64x64 input, no streamdream metadata."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def _export(module: nn.Module, example: torch.Tensor, path: Path, dynamic: bool) -> onnx.ModelProto:
    torch.manual_seed(0)
    module.eval()
    axes = {"input": {0: "batch", 3: "time"}, "logits": {0: "batch"}} if dynamic else None
    torch.onnx.export(module, (example,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    return onnx.load(str(path))


def relu_outputs(proto) -> list[str]:
    return [node.output[0] for node in proto.graph.node if node.op_type == "Relu"]


def make_audio_model(path: Path, front: FrontEnd | None = None, view: str = "mel", seed: int = 0,
                     labels: list[str] = LABELS) -> Path:
    torch.manual_seed(seed)
    front = front or FrontEnd(n_mels=32, fmax_hz=8000.0)
    bins = front.n_mels if view == "mel" else stft_bins(front)
    proto = _export(TinyAudioCNN(classes=len(labels)), torch.randn(1, 1, bins, 50), path, dynamic=True)
    relus = relu_outputs(proto)
    layers = [{"name": name, "description": f"stage {i + 1}"} for i, name in enumerate(relus)]
    write_metadata(proto, view, front, labels, layers, default_layer=relus[1])
    onnx.save(proto, str(path))
    return path


def make_image_model(path: Path) -> Path:
    torch.manual_seed(1)
    _export(TinyImageCNN(), torch.randn(1, 3, 64, 64), path, dynamic=False)
    return path


WAVE_RATE = 16000
WAVE_SAMPLES = 4000   # 0.25 s per model input


class TinyWaveformNet(nn.Module):
    """A waveform classifier as people export them: (batch, samples) or (batch, samples, channels) at
    16 kHz in, a strided conv front end (a learned filterbank) inside the graph, (batch, frames, classes) out."""

    def __init__(self, rank: int = 2, channels: int = 1):
        super().__init__()
        self.rank = rank
        self.front = nn.Conv1d(channels, 16, 64, stride=32)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv1d(16, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(16, len(LABELS))

    def forward(self, x):
        x = x.unsqueeze(1) if self.rank == 2 else x.transpose(1, 2)   # (batch, channels, samples)
        features = self.body(self.front(x))                            # (batch, 16, frames)
        return self.head(features.transpose(1, 2))                     # (batch, frames, classes)


def make_waveform_model(path: Path, rank: int = 2, channels: int = 1, annotated: bool = True,
                        seed: int = 2) -> Path:
    """A waveform model; `annotated=False` leaves it as a user's own export, without streamdream metadata."""
    torch.manual_seed(seed)
    shape = (1, WAVE_SAMPLES) if rank == 2 else (1, WAVE_SAMPLES, channels)
    net = TinyWaveformNet(rank, channels).eval()
    torch.onnx.export(net, (torch.randn(shape),), str(path), input_names=["audio"], output_names=["scores"],
                      dynamic_axes={"audio": {0: "batch"}, "scores": {0: "batch"}}, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    if annotated:
        relus = relu_outputs(proto)
        front = FrontEnd(rate_hz=WAVE_RATE, input_samples=WAVE_SAMPLES)
        write_metadata(proto, "waveform", front, LABELS, [{"name": name} for name in relus],
                       default_layer=relus[-1], class_axis=2)
        onnx.save(proto, str(path))
    return path
