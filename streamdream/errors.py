"""Errors a user can act on. The CLI prints them on one line and exits 2."""


class StreamDreamError(Exception):
    """Root of every user-facing streamdream error."""


class AudioFileError(StreamDreamError, OSError):
    """An audio file that cannot be read or written."""


class ParameterError(StreamDreamError, ValueError):
    """A parameter outside what streamdream can do."""


class ModelError(StreamDreamError, ValueError):
    """An ONNX model streamdream refuses to run."""
