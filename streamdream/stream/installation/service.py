"""A piece as a systemd service: starts at boot, restarts on failure."""
from __future__ import annotations

from pathlib import Path

from ...atomic import write_text_atomic
from .piece import load_piece


def service_unit(piece_path: str) -> str:
    """A systemd unit that starts the piece at boot and restarts it if it fails (the watchdog inside restarts
    a dead or frozen engine sooner). SIGTERM finishes the recording; 120 s covers a worker still loading."""
    import shlex
    import sys

    piece = Path(piece_path).resolve()
    load_piece(str(piece))  # refuse a broken piece now, not at the venue's first boot
    command = " ".join(shlex.quote(x) for x in (sys.executable, "-m", "streamdream.cli", "loop", "--config",
                                                   str(piece), "--watchdog", "--quiet"))
    return f"""[Unit]
Description=streamdream installation {piece.stem}
After=sound.target

[Service]
Type=simple
WorkingDirectory={piece.parent}
ExecStart={command}
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=120
LimitRTPRIO=95
LimitMEMLOCK=infinity

[Install]
WantedBy=default.target
"""


def install_service(piece_path: str, folder: str | None = None) -> Path:
    """Write the unit for the current user's systemd (or into `folder`); returns its path."""
    name = f"streamdream-{Path(piece_path).stem}.service"
    target = Path(folder) if folder else Path.home() / ".config" / "systemd" / "user"
    text = service_unit(piece_path)
    target.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(target / name, text)
