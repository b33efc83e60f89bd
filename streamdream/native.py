"""Native libraries (libsndfile's decoders, libjack, alsa-lib) print to the process's stderr themselves."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr():
    """Send what C code writes to fd 2 to /dev/null for a moment: the one-line error we raise says it
    (a random-bytes .mp3 gave four lines from mpg123; a MIDI probe without a server, libjack's)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
