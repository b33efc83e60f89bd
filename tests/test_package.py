"""What a stranger gets from `pip install streamdream`: a wheel with the model and demo clip inside,
that installs into a fresh environment and dreams without --model; and the dependency pins hold."""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _clean_env() -> dict:
    """No PYTHONPATH: the installed package must be found, not the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STREAMDREAM_MODEL")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy holding only what a source distribution holds, so the checkout gets no build/ litter
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "streamdream", src / "streamdream", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, env=_clean_env(), cwd=out, timeout=600)
    [built] = out.glob("streamdream-*.whl")
    return built


@pytest.mark.subprocess
def test_wheel_holds_the_model_demo_clip_mapping_and_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("streamdream/data/default.onnx", "streamdream/data/demo.flac", "streamdream/control/default_map.toml"):
        assert needed in names
    assert any(re.search(r"\.dist-info/licenses/LICENSE$", n) for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata
    assert not any(n.startswith(("tests/", "scripts/", "models/")) for n in names)


@pytest.mark.subprocess
def test_installed_wheel_renders_with_the_shipped_model(wheel, tmp_path):
    venv = tmp_path / "venv"
    # system site packages give it torch without a download, and pip (the venv's own would take seconds to
    # install); the checkout is not on its path
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python, exe = venv / "bin" / "python", venv / "bin" / "streamdream"
    env = _clean_env()
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   env=env, cwd=tmp_path, timeout=600)
    where = subprocess.run([str(python), "-c", "import streamdream, streamdream.data as d; print(streamdream.__file__); "
                            "print(d.shipped_path(d.DEMO_CLIP))"], check=True, capture_output=True, text=True,
                           env=env, cwd=tmp_path).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and not Path(where[0]).is_relative_to(REPO)
    demo = sf.info(where[1])
    assert Path(where[1]).is_relative_to(venv) and demo.channels == 2 and demo.duration > 10

    rate = 16000
    t = np.arange(3 * rate) / rate
    dry = (0.2 * np.sin(2 * np.pi * 330 * t) * np.exp(-2 * (t % 0.5))).astype(np.float32)
    sf.write(tmp_path / "in.wav", np.stack([dry, dry]).T, rate, subtype="FLOAT")
    proc = subprocess.run([str(exe), "render", "in.wav", "out.wav", "--quiet", "--set", "steps=1", "--set", "octaves=1",
                           "--set", "window_s=2", "--set", "crossfade_s=0.5"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    wet, wet_rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert wet_rate == rate and wet.shape == (dry.size, 2)
    assert np.max(np.abs(wet[:, 0] - dry)) > 1e-4  # the shipped model dreamed something

    # the README's first command: the shipped demo clip through the live engine (null device, no sound card)
    proc = subprocess.run([str(exe), "live", "--demo", "--output-device", "null", "--lockstep", "--duration", "2", "--quiet",
                           "--budget", "0.5", "--record", "rec.wav", "--set", "steps=1", "--set", "octaves=1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rec, rec_rate = sf.read(tmp_path / "rec.wav", dtype="float32", always_2d=True)
    assert rec.shape[1] == 2 and rec.shape[0] >= 2 * rec_rate and np.sqrt(np.mean(rec[rec_rate:] ** 2)) > 0.01  # heard after the budget


def test_onnx2torch_is_pinned_below_its_next_minor_and_the_installed_one_fits():
    [spec] = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("onnx2torch")]
    low, high = re.fullmatch(r"onnx2torch>=(\d+\.\d+),<(\d+\.\d+)", spec).groups()
    installed = tuple(int(x) for x in importlib.metadata.version("onnx2torch").split(".")[:2])
    assert tuple(map(int, low.split("."))) <= installed < tuple(map(int, high.split(".")))
    assert tuple(map(int, high.split("."))) == (installed[0], installed[1] + 1)


def test_no_dependency_that_nothing_imports():
    # every runtime dependency is imported somewhere in the package (scipy was declared and never used)
    source = "\n".join(p.read_text() for p in (REPO / "streamdream").rglob("*.py"))
    import_names = {"python-rtmidi": "rtmidi", "python-osc": "pythonosc"}
    indirect = {"torchvision"}  # onnx2torch imports it; declared so pip takes the release matched to torch
    for dep in PYPROJECT["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0)
        if name in indirect:
            continue
        module = import_names.get(name, name.replace("-", "_"))
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), f"{name} is declared but never imported"
    assert "scipy" not in " ".join(PYPROJECT["project"]["dependencies"])
