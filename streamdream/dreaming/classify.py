"""What the model hears: label probabilities averaged over a signal's windows."""
from __future__ import annotations

import numpy as np
import soxr
import torch

from ..errors import ParameterError
from ..windows import Schedule
from .model import ModelInfo, convert, read_model_info
from .views import build_view, needed_sample_rate, padded_frames


def classify(audio: np.ndarray, sample_rate: int, model: str | None = None, info: ModelInfo | None = None,
             window_s: float = 9.0) -> dict[str, float]:
    """Mean softmax (sigmoid for multi-label models) over the windows and channels of (channels, frames) audio."""
    info = info or read_model_info(model)
    if not info.labels or info.view is None:
        raise ParameterError(f"{info.path.name} has no labels or view in its metadata; it cannot classify")
    rate = needed_sample_rate(info.view, info.front, sample_rate)
    if rate != sample_rate:
        audio = soxr.resample(audio.T, sample_rate, rate).T.astype(np.float32)
    # A file shorter than a window is classified whole: zero padding would dilute the global pooling.
    window_s = max(0.5, min(window_s, audio.shape[1] / rate))
    schedule = Schedule.from_seconds(rate, window_s, 0.0)
    frames = padded_frames(info.view, schedule.window)
    view = build_view(info.view, info.front, rate, info.image_hw, info.layout, info.model_channels)
    total = audio.shape[1]
    count = schedule.count(total)
    loaded = None
    probs = []
    for k in range(count):
        window = np.zeros((audio.shape[0], frames), dtype=np.float32)
        chunk = audio[:, schedule.start(k):schedule.start(k) + schedule.window]
        window[:, :chunk.shape[1]] = chunk
        if info.stereo_input and window.shape[0] == 1:
            window = np.repeat(window, 2, axis=0)
        with torch.no_grad():
            features = view(torch.from_numpy(window))
            if loaded is None:
                loaded = convert(info, [info.label_output], [1] + list(features.shape[1:]))
            logits = loaded.module(features)
        # Weight each window by how much of it is real signal, so padding does not vote.
        weight = chunk.shape[1] / schedule.window
        scores = logits.movedim(info.class_axis, -1).reshape(-1, logits.shape[info.class_axis])  # any layout
        probs.append(((torch.sigmoid(scores) if info.multi_label else torch.softmax(scores, dim=-1)).mean(dim=0).numpy(),
                      weight))
    total_weight = sum(w for _, w in probs)
    mean = sum(p * w for p, w in probs) / total_weight
    return {label: float(p) for label, p in zip(info.labels, mean)}
