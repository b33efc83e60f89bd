"""streamdream: DeepDream for audio, offline and live.

Arrays in, arrays out, in the style of pedalboard::

    import streamdream
    out = streamdream.dream(audio, 48000, preset="faithful", target="brass")
"""
from __future__ import annotations

import logging

import numpy as np

from .params import Params
from .errors import AudioFileError, ModelError, ParameterError, StreamDreamError

# What streamdream logs reaches the handlers a program sets up (a piece's log file, the web page's tail);
# messages for the user are printed by the commands themselves. Without a handler of its own, Python's
# last-resort handler would print every warning a second time on stderr.
logging.getLogger("streamdream").addHandler(logging.NullHandler())

__all__ = ["dream", "load_model", "classify", "Params", "StreamDreamError", "AudioFileError", "ModelError",
           "ParameterError"]


def dream(audio: np.ndarray, sample_rate: int, preset: str = "vivid", **params) -> np.ndarray:
    """Dream a whole signal with the same windowing as the live engine.

    Parameters
    ----------
    audio : ndarray
        (channels, frames) or (frames,) floating point, mono or stereo.
    sample_rate : int
        8000 to 192000 Hz.
    preset : str
        A built-in preset by name (vivid, faithful, tint, deep, bloom, tone); `params` override it.
    **params
        Any parameter `streamdream params` lists (model, layer, target, steps, step_size, intensity, mix,
        gain_db, window_s, ...), by the same name.

    Returns
    -------
    ndarray
        float32, same shape as `audio` (a 1-D input gives a 1-D output).
    """
    from .audio.files import valid_audio
    from .control.presets import builtin_preset
    from .stream.offline import render_array

    settings = builtin_preset(preset).with_changes(**params)
    flat = np.ndim(audio) == 1
    clean, _ = valid_audio(audio, sample_rate)
    out = render_array(clean, int(sample_rate), settings)
    return out[0] if flat else out


def load_model(path: str | None = None, view: str | None = None):
    """Read an ONNX model's metadata and check it (see `streamdream.dreaming.model.read_model_info`)."""
    from .dreaming.model import read_model_info

    return read_model_info(path, view)


def classify(audio: np.ndarray, sample_rate: int, model: str | None = None) -> dict[str, float]:
    """Label probabilities the model hears, averaged over the signal's 9-s windows."""
    from .audio.files import valid_audio
    from .dreaming.classify import classify as classify_audio

    clean, _ = valid_audio(audio, sample_rate)
    return classify_audio(clean, int(sample_rate), model)
