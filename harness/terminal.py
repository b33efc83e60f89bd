"""A pseudo-terminal for a child process's output, for tests and benchmarks of the live display."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import termios
import threading


class Terminal:
    """A pseudo-terminal for the engine's stdout and stderr, so rich draws its live display as on a real
    one (120 x 40); a thread reads it, as a terminal would, and keeps the last 64 kB."""

    def __init__(self):
        self.fd, self.child_fd = pty.openpty()
        fcntl.ioctl(self.child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.bytes_read, self.tail = 0, b""

    def start_reading(self) -> None:
        os.close(self.child_fd)  # the engine holds it now; reading ends when the engine does

        def read():
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.bytes_read += len(chunk)
                self.tail = (self.tail + chunk)[-65536:]
        self._thread = threading.Thread(target=read, daemon=True)
        self._thread.start()

    def text(self) -> str:
        self._thread.join(timeout=10)
        return self.tail.decode(errors="replace")

    def plain_text(self) -> str:
        """text() without colours and cursor moves."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.text())
