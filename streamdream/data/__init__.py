"""Files shipped inside the package: the models (default, pitch) and the demo clip.

They are made by scripts/train_default_model.py, scripts/train_pitch_model.py and
scripts/make_demo_clip.py and documented in models/ (README.md, MODEL_CARD.md); they travel here
so an installed wheel has them. Read them through `shipped_path`, never by a path relative to the
source tree.
"""
from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "default.onnx"
DEMO_CLIP = "demo.flac"

# A zipped install has no real files: as_file extracts to a temporary file kept until exit.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def shipped_path(name: str) -> Path:
    """A file-system path to a shipped file (DEFAULT_MODEL, DEMO_CLIP, "pitch.onnx")."""
    return _extracted.enter_context(resources.as_file(resources.files(__name__) / name))


def shipped_model_names() -> list[str]:
    """Names `--model NAME` accepts for the shipped models ("default", "pitch")."""
    return sorted(item.name[:-len(".onnx")] for item in resources.files(__name__).iterdir()
                  if item.name.endswith(".onnx"))
