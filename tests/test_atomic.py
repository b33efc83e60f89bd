"""The one file-writing helper: a file appears whole or not at all, and its temp file never stays."""
import os
import resource
import signal
import subprocess
import sys

import pytest

from streamdream.atomic import atomic_path, check_writable, discard_temps_of, temp_beside, write_text_atomic
from streamdream.errors import FileWriteError


def test_a_write_lands_whole_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "presets.toml"
    write_text_atomic(target, "[[preset]]\nname = \"calm\"\n")
    assert target.read_text() == "[[preset]]\nname = \"calm\"\n"
    assert [p.name for p in tmp_path.iterdir()] == ["presets.toml"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    target.chmod(0o640)
    write_text_atomic(target, "again")
    assert target.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode


def test_a_failure_midway_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"the user's earlier work")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            assert tmp.parent == tmp_path and tmp.name.startswith(".out.wav.") and tmp.name.endswith(".part.wav")
            1 / 0
    assert target.read_bytes() == b"the user's earlier work"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_a_write_the_kernel_refuses_is_one_error_and_leaves_nothing(tmp_path):
    """A real failing write: this process may not grow a file past 1000 bytes (EFBIG, as a full disk gives ENOSPC)."""
    target = tmp_path / "stats.json"
    target.write_text("{}")
    code = ("from streamdream.atomic import write_text_atomic\n"
            "from streamdream.errors import FileWriteError\n"
            "try:\n"
            f"    write_text_atomic({str(target)!r}, 'x' * 5000)\n"
            "except FileWriteError as exc:\n"
            "    print(exc)\n")

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit_files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"cannot write {target}: File too large; free some space or write elsewhere\n"
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_check_writable_tries_for_real(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileWriteError, match="is a folder"):
        check_writable(tmp_path / "taken")
    with pytest.raises(FileWriteError, match="does not exist"):
        check_writable(tmp_path / "nowhere" / "x.wav")
    with pytest.raises(FileWriteError, match="longer than this filesystem's 255-byte limit"):
        check_writable(tmp_path / ("n" * 256 + ".wav"))
    assert check_writable(tmp_path / ("n" * 200 + ".wav")) == tmp_path / ("n" * 200 + ".wav")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_discard_temps_of_removes_the_temp_files_of_the_paths_given_and_nothing_else(tmp_path):
    outputs = [tmp_path / "a.wav", tmp_path / "b.flac", tmp_path / "sub" / "a.wav"]
    (tmp_path / "sub").mkdir()
    stale = [temp_beside(out) for out in outputs] + [temp_beside(outputs[0])]  # a second attempt's too
    kept = [temp_beside(tmp_path / "c.wav"),            # another output's temp file
            tmp_path / ".a.wav.notes",                  # a hidden file that is not a temp file
            tmp_path / ".a.wav.x.part.flac"]            # a's name, but not the suffix a's temp files get
    for path in kept[1:] + outputs:
        path.write_bytes(b"")
    assert discard_temps_of(*outputs, tmp_path / "missing" / "d.wav") == 4
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept + outputs)
