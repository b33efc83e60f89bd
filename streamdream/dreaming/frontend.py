"""View geometry in physical units: what a model's metadata says, with no torch needed.

Kept apart from `views.py` so processes that only read metadata (the live engine's audio
process) do not import torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict

from ..errors import ParameterError
from ..params import VIEWS as VIEW_NAMES  # the views' one home is the parameters table

# How a waveform model lays out its input: b = batch, s = samples, c = audio channels.
WAVEFORM_LAYOUTS = ("bs", "bsc", "bcs")

# The MATH299W layout: three 103,000-frame stereo segments (206,000 interleaved
# L/R values each) become the three 412x500 colour planes of one image.
RAW_IMAGE_HEIGHT = 412
RAW_IMAGE_WIDTH = 500
RAW_IMAGE_FRAMES_PER_PLANE = RAW_IMAGE_HEIGHT * RAW_IMAGE_WIDTH // 2
RAW_IMAGE_FRAMES = 3 * RAW_IMAGE_FRAMES_PER_PLANE


@dataclass
class FrontEnd:
    """View parameters, stored as JSON in the model's ONNX metadata."""

    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 96
    fmin_hz: float = 30.0
    fmax_hz: float = 16000.0
    log_offset: float = 1e-6
    # Log floor relative to each frame's loudest band, dB (0 = none, only log_offset). With a
    # floor the view cannot see, so the dream cannot fill, what lies that far under the music.
    top_db: float = 0.0
    mean: float = 0.0  # normalisation applied after the log: (x - mean) / std
    std: float = 1.0
    # raw-image only: pixel = (sample * image_scale - image_mean[c]) / image_std[c]
    image_scale: float = 1.0
    image_mean: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    image_std: list = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # waveform only: the model's own sample rate and input length; windows are cut from the
    # resampled waveform with this overlap (a fraction of the input, at most 0.5)
    rate_hz: int = 0
    input_samples: int = 0
    overlap: float = 0.5
    layout: str = ""          # one of WAVEFORM_LAYOUTS; "" = read it from the input's shape

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrontEnd":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ParameterError(f"unknown front-end parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        for name, value in data.items():
            default = cls.__dataclass_fields__[name].default
            numbers = value if isinstance(value, list) else [value]
            # a string or a bool where a number belongs would fail later, deep in the view, as a traceback
            if isinstance(default, (int, float)) or name in ("image_mean", "image_std"):
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                    raise ParameterError(f"front-end parameter {name} must be a number, not {value!r}")
        return cls(**data)

    def validate(self) -> None:
        if not (1.0 <= self.window_ms <= 500.0 and 0.5 <= self.hop_ms <= self.window_ms):
            raise ParameterError("front end needs 1 <= window_ms <= 500 and 0.5 <= hop_ms <= window_ms")
        if not (0.0 <= self.fmin_hz < self.fmax_hz):
            raise ParameterError("front end needs 0 <= fmin_hz < fmax_hz")
        if self.n_mels < 8 or self.log_offset <= 0 or self.std <= 0:
            raise ParameterError("front end needs n_mels >= 8, log_offset > 0 and std > 0")
        if not 0.0 <= self.top_db <= 200.0:
            raise ParameterError("front end needs 0 <= top_db <= 200 (0 = no floor)")
        if not (0 <= self.rate_hz <= 384000 and 0 <= self.input_samples and 0.0 <= self.overlap <= 0.5):
            raise ParameterError("front end needs 0 <= rate_hz <= 384000, input_samples >= 0 and 0 <= overlap <= 0.5")
        if self.layout not in ("",) + WAVEFORM_LAYOUTS:
            raise ParameterError(f"front end layout {self.layout!r} is not one of {', '.join(WAVEFORM_LAYOUTS)}")


def fft_size(window_samples: int) -> int:
    return 1 << max(4, math.ceil(math.log2(window_samples)))


def frame_geometry(front: FrontEnd, sample_rate: int, kind: str = "mel") -> tuple[int, int, int]:
    """(n_fft, win_length, hop_length) in samples at this rate.

    The stft view uses n_fft = window length, so its bins sit 1000 / window_ms Hz apart
    at every rate and a model sees the same bins at 44.1, 48 or 96 kHz.
    """
    win = max(16, round(front.window_ms * sample_rate / 1000.0))
    hop = max(1, round(front.hop_ms * sample_rate / 1000.0))
    return (win if kind == "stft" else fft_size(win)), win, hop


def stft_bins(front: FrontEnd) -> int:
    """Linear-frequency bins the stft view keeps: 0 Hz up to fmax_hz."""
    return int(front.fmax_hz * front.window_ms / 1000.0) + 1


def needed_sample_rate(view: str, front: FrontEnd, sample_rate: int) -> int:
    """The rate the view runs at: the file's own, unless the mel bands reach past Nyquist."""
    if view in ("mel", "stft") and front.fmax_hz > sample_rate / 2.0:
        # Resample up just enough that every mel band the model was trained on exists.
        for rate in (16000, 22050, 32000, 44100, 48000, 96000):
            if rate / 2.0 >= front.fmax_hz and rate >= sample_rate:
                return rate
    return sample_rate


def padded_frames(view: str, frames: int) -> int:
    """The length (frames) a window of `frames` is padded to for the view: whole images for raw-image."""
    if view == "raw-image":
        return -(-frames // RAW_IMAGE_FRAMES) * RAW_IMAGE_FRAMES
    return frames
