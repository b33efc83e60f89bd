"""The one way streamdream writes a file the user asked for: never half-written, never a stray temp file.

Every output (rendered audio, the --plot picture, --stats JSON, presets, MIDI maps, recordings)
is written to a hidden temp file in the target's own folder (so the final rename stays on one
filesystem and is atomic), flushed to disk, and renamed over the target only when complete.
If anything fails on the way (disk full, a bug, Ctrl-C, SIGTERM from a service manager) the temp
file is removed and an existing file under the target name is left as it was.

SIGTERM normally ends Python without running any cleanup; `raise_on_sigterm` turns it into an
exception (a KeyboardInterrupt, like Ctrl-C) so the same `finally` blocks run for both.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from .errors import FileWriteError, StreamDreamError, Terminated


_UMASK = os.umask(0o022)  # read once, at import (reading it means setting it)
os.umask(_UMASK)


def _raise_terminated(signum, frame):
    raise Terminated()


def raise_on_sigterm():
    """From now on SIGTERM raises `Terminated` in the main thread. Returns the handler it replaced
    (None when called from another thread, where signals cannot be handled and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def temp_beside(path: str | os.PathLike) -> Path:
    """Create an empty hidden temp file next to `path`: `.NAME.XXXX.part.EXT` (EXT kept for tools that look)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        # the name is shortened so a target name near the filesystem's limit still gets a temp file
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:120]}.", suffix=".part" + path.suffix[:20], dir=folder)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:  # mkstemp makes it private (0600); the file the user gets has the usual mode, or the old file's
        os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(tmp)


def discard_temps_of(*paths: str | os.PathLike) -> int:
    """Remove temp files `temp_beside` made for any of `paths` and a killed process left behind; how many
    there were. Each folder is listed once, however many of the paths are in it: a batch of thousands of
    outputs in one folder checks them all in one pass, not one listing per output."""
    wanted: dict[Path, list[tuple[str, str]]] = {}
    for path in map(Path, paths):
        folder = path.parent if str(path.parent) else Path(".")
        # temp_beside's name: prefix, mkstemp's random part, suffix
        wanted.setdefault(folder, []).append((f".{path.name[:120]}.", ".part" + path.suffix[:20]))
    count = 0
    for folder, names in wanted.items():
        try:
            entries = os.listdir(folder)
        except OSError:  # no folder (yet), or one that cannot be read: nothing of ours to remove there
            continue
        for entry in entries:
            if not entry.startswith(".") or ".part" not in entry:
                continue  # only the few temp-looking names are compared with every path
            if any(entry.startswith(prefix) and entry.endswith(suffix) and len(entry) >= len(prefix) + len(suffix)
                   for prefix, suffix in names):
                discard(folder / entry)
                count += 1
    return count


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Flush a finished temp file to disk and rename it onto `path` (the folder entry flushed too)."""
    path = Path(path)
    try:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise write_error(path, exc) from exc
    return path


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Before any work: `path` can be written (its folder exists and takes a file of that name).

    Tried for real (a temp file made and removed): permissions, read-only mounts and name
    limits all answer, and root's permission bypass does not hide a read-only filesystem.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileWriteError(f"{what} folder {folder} does not exist; create it first")
    limit = os.pathconf(folder, "PC_NAME_MAX")
    if len(os.fsencode(path.name)) > limit:
        raise FileWriteError(f"{what} name {path.name[:40]}... is longer than this filesystem's "
                             f"{limit}-byte limit; choose a shorter name")
    if path.is_dir():
        raise FileWriteError(f"{what} {path} is a folder; give a file name inside it")
    discard(temp_beside(path))
    return path


def discard(tmp: str | os.PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path to write; on a clean exit it becomes `path`, on any exception it is removed.

    An OSError raised inside (disk full, ...) comes out as one FileWriteError naming `path`.
    """
    path = Path(path)
    tmp = temp_beside(path)
    try:
        try:
            yield tmp
        except StreamDreamError:  # already one line (a nested write that failed says which file)
            raise
        except OSError as exc:
            raise write_error(path, exc) from exc
        except RuntimeError as exc:  # libsndfile says only "System error." when the kernel refuses a write
            if "System error" in str(exc):
                raise FileWriteError(f"cannot write {path}: the system refused the write (disk full, or a file "
                                     "size limit?); free some space or write elsewhere") from exc
            raise
        publish(tmp, path)
    finally:
        discard(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_error(path: Path, exc: OSError) -> FileWriteError:
    """One line for a write that failed, with what to do about the common causes."""
    reason = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free some space or write elsewhere",
            errno.EDQUOT: "free some space or write elsewhere",
            errno.EFBIG: "free some space or write elsewhere",
            errno.EACCES: "choose a folder you can write to",
            errno.EROFS: "choose a folder you can write to",
            errno.ENAMETOOLONG: "choose a shorter name",
            errno.EISDIR: "give a file name, not a folder"}.get(exc.errno, "check the path and the disk")
    return FileWriteError(f"cannot write {path}: {reason}; {hint}")
