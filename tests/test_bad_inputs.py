"""Broken, odd and hostile inputs: each gets one line that says what to do, the right exit code, and
leaves nothing behind (no temp file, no half-written output, the user's files untouched).

One line per case in CASES: what to make, the command, the exit code, a fragment of the message.
Commands name files by placeholder: {tmp} the case's folder, {clip} a good 1-s stereo WAV, {model}
the tiny test model, {layer} its default layer, {ro} a read-only folder, {full} a folder on a full
filesystem, plus what the maker made.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
import soundfile as sf

from conftest import music_clip
from test_render import run

RATE = 16000
FAST = ["--set", "steps=1", "--set", "octaves=1", "--set", "window_s=1.5", "--set", "crossfade_s=0.25", "--set", "backend=eager"]
LIVE = ["live", "--device", "null", "--no-midi", "--quiet", "--model", "{model}"]


# --- input makers: each writes into the case folder and returns the names it adds to the placeholders

def nothing(tmp: Path, model: str) -> dict:
    return {}


def folder(name: str):
    def make(tmp: Path, model: str) -> dict:
        (tmp / name).mkdir()
        return {}
    return make


def text_file(name: str, content: bytes):
    def make(tmp: Path, model: str) -> dict:
        (tmp / name).write_bytes(content)
        return {}
    return make


def wav(name: str, audio: np.ndarray, subtype: str = "FLOAT"):
    def make(tmp: Path, model: str) -> dict:
        sf.write(tmp / name, audio.T, RATE, subtype=subtype)
        return {}
    return make


def truncated_wav(tmp: Path, model: str) -> dict:
    sf.write(tmp / "in.wav", music_clip(RATE, 1.0).T, RATE, subtype="FLOAT")
    data = (tmp / "in.wav").read_bytes()
    (tmp / "in.wav").write_bytes(data[:len(data) * 3 // 4])  # header still promises every frame
    return {}


def link_to_clip(tmp: Path, model: str) -> dict:
    (tmp / "alias.wav").symlink_to(tmp / "clip.wav")
    return {}


def edited_model(edit: Callable):
    """The tiny model with its ONNX changed by `edit(proto)`, saved as {tmp}/bad.onnx."""
    def make(tmp: Path, model: str) -> dict:
        proto = onnx.load(model)
        edit(proto)
        onnx.save(proto, str(tmp / "bad.onnx"))
        return {}
    return make


def nan_weights(proto) -> None:
    """First conv weight NaN: ONNX Runtime and torch then agree perfectly, on NaN."""
    conv = next(node for node in proto.graph.node if node.op_type == "Conv")
    weight = next(init for init in proto.graph.initializer if init.name == conv.input[1])
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[0] = np.nan
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))


def string_in_front_end(proto) -> None:
    for prop in proto.metadata_props:
        if prop.key == "streamdream.frontend":
            prop.value = json.dumps({**json.loads(prop.value), "hop_ms": "10"})


def no_labels(proto) -> None:
    for prop in proto.metadata_props:
        if prop.key == "streamdream.labels":
            prop.value = "[]"


HUGE = (music_clip(RATE, 2.0).astype(np.float64) * 5e38).astype(np.float32)  # peaks near 2e38: finite, absurd
WITH_NAN = music_clip(RATE, 1.0)
WITH_NAN[0, 100], WITH_NAN[1, 200] = np.nan, np.inf


@dataclass
class Case:
    name: str
    make: Callable
    command: list
    code: int
    message: str
    creates: tuple = ()      # files the command is meant to leave (a warning case still renders)
    limit_bytes: int = 0     # run in a subprocess whose files may not grow past this (a full disk)


CASES = [
    # render: where the output goes
    Case("output is a folder", folder("out.wav"), ["render", "{clip}", "{tmp}/out.wav", "--model", "{model}"], 2,
         "is a folder; give a file name"),
    Case("output name too long", nothing, ["render", "{clip}", "{tmp}/" + "x" * 300 + ".wav", "--model", "{model}"],
         2, "longer than this filesystem's 255-byte limit"),
    Case("output is the input", nothing, ["render", "{clip}", "{clip}", "--model", "{model}"], 2,
         "is the input file itself"),
    Case("output is the input through a link", link_to_clip, ["render", "{clip}", "{tmp}/alias.wav", "--model", "{model}"],
         2, "is the input file itself"),
    Case("output folder read-only", nothing, ["render", "{clip}", "{ro}/out.wav", "--model", "{model}"], 2,
         "Read-only file system; choose a folder you can write to"),
    Case("plot folder read-only", nothing, ["render", "{clip}", "{tmp}/out.wav", "--plot", "{ro}/p.png", "--model", "{model}"],
         2, "Read-only file system"),
    Case("plot is a folder", folder("p.png"), ["render", "{clip}", "{tmp}/out.wav", "--plot", "{tmp}/p.png", "--model", "{model}"],
         2, "--plot {tmp}/p.png is a folder"),
    Case("disk full writing the output", nothing, ["render", "{clip}", "{tmp}/out.wav", "--model", "{model}", *FAST], 2,
         "cannot write {tmp}/out.wav: the system refused the write", limit_bytes=20_000),
    Case("disk full writing the plot", wav("short.wav", music_clip(RATE, 0.1)),
         ["render", "{tmp}/short.wav", "{tmp}/out.wav", "--plot", "{tmp}/p.png", "--model", "{model}", *FAST], 2,
         "cannot write {tmp}/p.png: File too large", limit_bytes=20_000),
    # render: options that reach into the model
    Case("target index past the labels", nothing, ["render", "{clip}", "{tmp}/o.wav", "--model", "{model}", "--target", "4"],
         2, "unknown target label '4'; this model knows: piano, brass, drums, voice"),
    Case("target index far past", nothing, ["render", "{clip}", "{tmp}/o.wav", "--model", "{model}", "--target", "999"],
         2, "unknown target label '999'"),
    Case("layer channel past its width", nothing, ["render", "{clip}", "{tmp}/o.wav", "--model", "{model}", "--layer", "{layer}@999"],
         2, "has 12 channels; pick a channel from 0 to 11"),
    Case("heard on a model without labels", edited_model(no_labels),
         ["render", "{clip}", "{tmp}/o.wav", "--model", "{tmp}/bad.onnx", "--layer", "heard"],
         2, "names none; name a layer instead (streamdream models info"),
    Case("negative seed", nothing, ["render", "{clip}", "{tmp}/o.wav", "--model", "{model}", "--seed", "-1"], 2,
         "--seed must be 0..4294967295"),
    Case("model outputs NaN", edited_model(nan_weights), ["render", "{clip}", "{tmp}/o.wav", "--model", "{tmp}/bad.onnx"],
         2, "outputs NaN or Inf"),
    Case("front-end metadata holds a string", edited_model(string_in_front_end),
         ["render", "{clip}", "{tmp}/o.wav", "--model", "{tmp}/bad.onnx"], 2, "front-end parameter hop_ms must be a number"),
    # render: input data
    Case("random bytes named .mp3", text_file("in.mp3", bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))),
         ["render", "{tmp}/in.mp3", "{tmp}/o.wav", "--model", "{model}"], 2, "is not an audio file libsndfile can read"),
    Case("truncated WAV is reported", truncated_wav, ["render", "{tmp}/in.wav", "{tmp}/o.wav", "--model", "{model}", *FAST],
         0, "is truncated: its header promises 4003 more frames (0.25 s) than it holds; used the 0.75 s", creates=("o.wav",)),
    Case("huge samples are reported", wav("in.wav", HUGE), ["render", "{tmp}/in.wav", "{tmp}/o.wav", "--model", "{model}", *FAST],
         0, "dB beyond full scale", creates=("o.wav",)),
    # models classify
    Case("classify --top -1", nothing, ["models", "classify", "{clip}", "--model", "{model}", "--top", "-1"], 2,
         "--top must be 1 or more"),
    Case("classify reports NaN/Inf", wav("in.wav", WITH_NAN), ["models", "classify", "{tmp}/in.wav", "--model", "{model}"], 0,
         "held 2 NaN/Inf samples; replaced with 0"),
    # live: options and files, all refused before the model loads
    Case("live --samplerate -1", nothing, [*LIVE, "--samplerate", "-1"], 2, "--samplerate -1 is outside 8000-192000 Hz"),
    Case("live --duration nan", nothing, [*LIVE, "--duration", "nan"], 2, "--duration must be a positive, finite"),
    Case("live --duration inf", nothing, [*LIVE, "--duration", "inf"], 2, "--duration must be a positive, finite"),
    Case("live --threads -1", nothing, [*LIVE, "--threads", "-1"], 2, "--threads must be 1 or more"),
    Case("live --record into a folder", folder("rec.wav"), [*LIVE, "--record", "{tmp}/rec.wav"], 2,
         "--record {tmp}/rec.wav is a folder"),
    Case("live --stats in a read-only folder", nothing, [*LIVE, "--stats", "{ro}/s.json"], 2, "Read-only file system"),
    Case("live --input with NaN/Inf is reported", wav("in.wav", WITH_NAN),
         [*LIVE, "--input", "{tmp}/in.wav", "--duration", "1", "--lockstep", *FAST], 0, "held 2 NaN/Inf samples; replaced with 0"),
    Case("live --stats on a full disk mid-run", wav("in.wav", music_clip(RATE, 1.0)),
         [*LIVE, "--input", "{tmp}/in.wav", "--duration", "2", "--lockstep", "--stats", "{full}/s.json", *FAST], 0,
         "cannot write {full}/s.json: No space left on device; free some space or write elsewhere; will keep trying"),
    Case("live --midi-map binary", text_file("m.toml", b"\xff\xfe\x00\x81" * 10), [*LIVE, "--midi-map", "{tmp}/m.toml"], 2,
         "MIDI mapping {tmp}/m.toml is not a text file"),
    Case("live --midi-map a folder", folder("m.toml"), [*LIVE, "--midi-map", "{tmp}/m.toml"], 2,
         "MIDI mapping {tmp}/m.toml is a folder"),
    Case("live --midi-map section not a table", text_file("m.toml", b"notes = 3\n"), [*LIVE, "--midi-map", "{tmp}/m.toml"],
         2, "notes must be a [notes] table, not int"),
    Case("live --midi-map boolean note", text_file("m.toml", b"[notes]\nfirst_note = true\n"),
         [*LIVE, "--midi-map", "{tmp}/m.toml"], 2, "first_note must be 0..127"),
    Case("live --presets binary", text_file("p.toml", b"\x00\xff" * 10), [*LIVE, "--presets", "{tmp}/p.toml"], 2,
         "presets file {tmp}/p.toml is not a text file"),
    Case("live --presets a folder", folder("p.toml"), [*LIVE, "--presets", "{tmp}/p.toml"], 2,
         "presets file {tmp}/p.toml is a folder"),
    Case("live --presets list of strings", text_file("p.toml", b'preset = ["calm", "wild"]\n'),
         [*LIVE, "--presets", "{tmp}/p.toml"], 2, "presets must be [[preset]] tables"),
]


@pytest.fixture(scope="module")
def read_only_dir(tmp_path_factory):
    """A folder nobody may write to: a read-only mount as root (root ignores permission bits), else mode 555."""
    path = tmp_path_factory.mktemp("readonly")
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], check=True)
        yield path
        subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    """A folder on a filesystem with no space left: a small tmpfs filled up (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("a full filesystem needs a tmpfs mount, which needs root")
    path = tmp_path_factory.mktemp("full")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
    try:
        with open(path / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass
    yield path
    subprocess.run(["umount", str(path)], check=True)


def run_limited(args: list[str], limit: int):
    """The CLI in a process whose files may not grow past `limit` bytes: the kernel refuses the write."""
    # matplotlib (and fontconfig, through fc-list) build their font caches the first time they are
    # imported on a machine and complain on stderr when that write fails; built here, with no limit,
    # they are what a user who has plotted before has, and stderr holds only streamdream's own line.
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True, capture_output=True)

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-m", "streamdream.cli", *args], capture_output=True, text=True,
                          preexec_fn=limit_files)


def listing(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too) with its contents' size and mtime."""
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in folder.rglob("*")}


def _marked(case: Case):
    """A case run in a child process (a full disk), or one that plays (`live ... --duration`, exit 0: its
    dream worker is a process of its own), is left out of the fast loop."""
    plays = case.command[0] == "live" and case.code == 0
    return pytest.param(case, marks=pytest.mark.subprocess) if case.limit_bytes or plays else case


@pytest.mark.parametrize("case", [_marked(c) for c in CASES], ids=[c.name for c in CASES])
def test_bad_input(case, mel_model, read_only_dir, request, tmp_path):
    sf.write(tmp_path / "clip.wav", music_clip(RATE, 1.0).T, RATE, subtype="FLOAT")
    names = {"tmp": str(tmp_path), "clip": str(tmp_path / "clip.wav"), "model": str(mel_model),
             "ro": str(read_only_dir), "layer": "/stage2/stage2.1/Relu_output_0"}
    if "{full}" in " ".join(case.command):
        names["full"] = str(request.getfixturevalue("full_dir"))
    names.update(case.make(tmp_path, str(mel_model)))
    before = listing(tmp_path)
    args = [part.format(**names) for part in case.command]
    if case.limit_bytes:
        result = run_limited(args, case.limit_bytes)
    else:
        result = run(*args, check=False)
    message = case.message.format(**names)
    assert result.returncode == case.code, result.stderr
    assert "Traceback" not in result.stderr
    if case.code:
        assert result.stderr.startswith("streamdream: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    after = listing(tmp_path)
    left = set(after) - set(before) - {Path(c) for c in case.creates}
    assert not left, f"left behind: {left}"
    assert {p: after[p] for p in before} == before  # nothing the user had was touched
    assert not list(Path(read_only_dir).iterdir())
    if "full" in names:
        assert [p.name for p in Path(names["full"]).iterdir()] == ["filler"]


def test_the_layer_name_in_the_table_is_the_models(mel_model):
    """CASES names the tiny model's second stage by its tensor name: keep it true."""
    from streamdream.dreaming.model import read_model_info
    assert read_model_info(mel_model).default_layer == "/stage2/stage2.1/Relu_output_0"


def test_huge_samples_are_limited_not_silenced(mel_model, tmp_path):
    """Near float32's largest value nothing can be dreamed (the view overflows): the window plays dry,
    the limiter brings it to the ceiling, and the result follows the input instead of being silence."""
    sf.write(tmp_path / "in.wav", HUGE.T, RATE, subtype="FLOAT")
    run("render", tmp_path / "in.wav", tmp_path / "o.wav", "--model", mel_model, *FAST)
    out = sf.read(tmp_path / "o.wav", dtype="float32", always_2d=True)[0].T
    assert np.all(np.isfinite(out)) and np.abs(out).max() <= 10 ** (-1 / 20)
    loud = out[:, RATE // 2:]  # after the limiter's attack has settled
    assert np.sqrt(np.mean(loud ** 2)) > 0.1  # not silence
    # it still follows the music: strongly correlated with the input
    assert np.corrcoef(loud.ravel(), HUGE[:, RATE // 2:].ravel())[0, 1] > 0.5


def test_render_over_its_input_with_overwrite(mel_model, tmp_path):
    """--overwrite lets the dream replace the input, safely: the input is read whole before the rename."""
    src = tmp_path / "song.wav"
    clip = music_clip(RATE, 2.0)
    sf.write(src, clip.T, RATE, subtype="FLOAT")
    run("render", src, src, "--model", mel_model, *FAST, "--overwrite")
    out = sf.read(src, dtype="float32", always_2d=True)[0].T
    assert out.shape == clip.shape and not np.array_equal(out, clip)
    assert [p.name for p in tmp_path.iterdir()] == ["song.wav"]


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_render_leaves_no_temp_file(mel_model, tmp_path, sig):
    src, out = tmp_path / "long.wav", tmp_path / "out.wav"
    sf.write(src, music_clip(RATE, 120.0).T, RATE, subtype="FLOAT")
    proc = subprocess.Popen([sys.executable, "-m", "streamdream.cli", "render", str(src), str(out),
                             "--model", str(mel_model), *FAST, "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.wav.*.part.wav")):  # the render has started writing
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig
    assert proc.stderr.read() == "streamdream: stopped\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]
