"""Every error a user can act on, and the exit code each one ends the command with.

The CLI prints a StreamDreamError on one line (no traceback) and exits with its `exit_code`:

* EXIT_USAGE (2): bad usage or bad input, found before anything started (a wrong option, a
  missing file, a model streamdream refuses, a device that is not there). Nothing was written.
* EXIT_FAILURE (1): something failed after a good start (a device lost mid-run, a dream worker
  that died). What was recorded so far is kept.
* EXIT_INTERRUPTED (130): stopped with Ctrl-C (128 + SIGINT, as shells report it).
* EXIT_TERMINATED (143): stopped by SIGTERM (128 + SIGTERM), e.g. by a service manager.

An OSError that escapes (the system refused something no check could foresee) is also one
line and EXIT_USAGE. Tracebacks are for bugs: anything else. The scripts under scripts/ report bad input
the same way, through `exit_usage`.
"""
import sys
from typing import NoReturn

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM: a service manager stopped it (temp files are cleaned up)


def exit_usage(message: str) -> NoReturn:
    """Bad input or a missing tool, as a script reports it: one line on stderr, then exit 2 (EXIT_USAGE)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


class StreamDreamError(Exception):
    """Root of every user-facing streamdream error."""

    exit_code = EXIT_USAGE


class AudioFileError(StreamDreamError, OSError):
    """An audio file that cannot be read or written."""


class FileWriteError(StreamDreamError, OSError):
    """An output (audio, plot, stats, presets, mapping) that cannot be written where asked."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised like Ctrl-C so every cleanup (temp files) runs the same way."""


class ParameterError(StreamDreamError, ValueError):
    """A parameter outside what streamdream can do."""


class ModelError(StreamDreamError, ValueError):
    """An ONNX model streamdream refuses to run."""


class DeviceError(StreamDreamError, OSError):
    """An audio device that is missing, busy or cannot do what was asked."""


class MidiPortError(StreamDreamError, ValueError):
    """A MIDI port that is not there."""


class RunError(StreamDreamError):
    """A failure after a good start: the run began as asked and then could not go on."""

    exit_code = EXIT_FAILURE
