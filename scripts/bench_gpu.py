#!/usr/bin/env python3
"""Does the dream run on this machine's CUDA GPU, correctly and in real time? One command to find out.

    python scripts/bench_gpu.py [--device cuda] [--live-seconds 60] [--json bench_gpu.json]

Needs nothing beyond the README's install and takes a few minutes. In order, it checks that

  1. torch sees the GPU and a dream asked for it (`--torch-device auto` and `cuda`) runs there;
  2. with the GPU hidden (CUDA_VISIBLE_DEVICES=""), `auto` falls back to the CPU and still dreams;
  3. the GPU's dream agrees with the CPU's (the same window, seed and settings): the two changes
     correlate at least 0.9 and their levels differ by at most 1 dB. A gradient loop magnifies a
     last-bit difference from step to step, so the samples are not equal; the dream's shape is;

then times TorchScript against eager on the GPU for one 9-s stereo 48 kHz window of the demo clip
(the defaults toward a target, and the `deep` preset), reports each one's real-time factor and how
many steps per octave would fit in live's budget, and runs `streamdream live` on the null device
for --live-seconds with the dream on the GPU (late and failed windows, worker memory).

It prints one table and writes the figures as JSON. Exit status: 0 all checks passed, 1 a check
failed, 3 CUDA was asked for and torch sees no CUDA device (it never falls back quietly).
`--device cpu` runs the same checks with the CPU in the GPU's place (the agreement check then
compares TorchScript with eager): it shows the script itself works on a machine without a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamdream.atomic import write_text_atomic  # noqa: E402
from streamdream.audio.files import read_audio  # noqa: E402
from streamdream.control.presets import builtin_preset  # noqa: E402
from streamdream.data import DEMO_CLIP, shipped_path  # noqa: E402
from streamdream.dreaming.threads import cpu_name  # noqa: E402
from streamdream.stream.live import LiveOptions  # noqa: E402

RATE, SECONDS = 48000, 9.0
NO_CUDA = 3
AGREEMENT = {"min_correlation": 0.9, "max_level_db": 1.0}

FALLBACK_CHECK = """
import numpy as np, torch
from streamdream.dreaming.dreamer import Dreamer
from streamdream.params import Params
assert not torch.cuda.is_available(), "CUDA_VISIBLE_DEVICES='' still shows a GPU"
d = Dreamer(Params(torch_device="auto", steps=2, octaves=1, model={model!r}), 48000, 2, 48000)
out = d.dream_window(np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32) * 0.1)
assert d.device.type == "cpu" and out is not None and np.isfinite(out).all()
print("cpu")
"""


def machine() -> dict:
    import torch

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "python": platform.python_version()}


def demo_window() -> np.ndarray:
    clip = read_audio(shipped_path(DEMO_CLIP))
    assert clip.sample_rate == RATE and clip.audio.shape[0] == 2, "the demo clip is 48 kHz stereo"
    frames = int(SECONDS * RATE)
    loops = -(-frames // clip.audio.shape[1])  # a shorter clip is looped
    return np.ascontiguousarray(np.tile(clip.audio, (1, loops))[:, :frames], dtype=np.float32)


def timed(dreamer, window: np.ndarray, repeats: int) -> float:
    dreamer.dream_window(window, 0)  # warm-up: TorchScript and cuDNN pick their kernels on the first runs
    dreamer.dream_window(window, 1)
    times = []
    for i in range(repeats):
        began = time.perf_counter()
        dreamer.dream_window(window, 2 + i)  # returns host memory, so the GPU has finished
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def agreement(a: np.ndarray, b: np.ndarray, dry: np.ndarray) -> dict:
    """How alike two dreams of the same window are: correlation and level of their changes."""
    da, db = (a - dry).ravel().astype(np.float64), (b - dry).ravel().astype(np.float64)
    correlation = float(np.dot(da, db) / (np.linalg.norm(da) * np.linalg.norm(db) + 1e-20))
    level_db = float(20 * np.log10((np.linalg.norm(da) + 1e-20) / (np.linalg.norm(db) + 1e-20)))
    ok = correlation >= AGREEMENT["min_correlation"] and abs(level_db) <= AGREEMENT["max_level_db"]
    return {"correlation": round(correlation, 4), "level_difference_db": round(level_db, 3), "ok": ok}


def run_live(device: str, seconds: float, model: str, target: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "streamdream.cli", "live", "--demo", "--device", "null", "--no-midi",
               "--quiet", "--duration", str(seconds), "--stats", str(stats), "--torch-device", device,
               "--model", model, "--target", target]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
        if proc.returncode != 0 or not stats.exists():
            return {"ok": False, "error": (proc.stderr.strip().splitlines() or ["no stats written"])[-1]}
        s = json.loads(stats.read_text())
    result = {key: s[key] for key in ("windows_dreamed", "late_windows", "failed_windows", "worker_restarts",
                                       "real_time_factor")}
    result["worker_rss_mb"] = round(s["worker_memory"]["rss_bytes"] / 2 ** 20, 1)
    result["ok"] = (s["windows_dreamed"] > 0 and s["late_windows"] == 0 and s["failed_windows"] == 0
                    and s["worker_restarts"] == 0)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu to check the script itself")
    parser.add_argument("--model", default="default", help="an .onnx file or a shipped model name")
    parser.add_argument("--target", default="brass", help="the label dreamed toward (default brass)")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per configuration (median)")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="length of the live run (0: none)")
    parser.add_argument("--json", default="bench_gpu.json", help="where the figures go (default bench_gpu.json)")
    args = parser.parse_args()

    import torch

    from streamdream.dreaming.dreamer import Dreamer

    on_gpu = args.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        print(f"bench_gpu: no CUDA device: torch {torch.__version__} ({build}) sees none"
              + (f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else "")
              + "; run this on a machine with an NVIDIA GPU and its driver, or pass --device cpu to check "
                "the script itself", file=sys.stderr)
        return NO_CUDA

    window = demo_window()
    frames = window.shape[1]
    defaults = builtin_preset("vivid").with_changes(model=args.model, target=args.target, seed=1)
    deep = builtin_preset("deep").with_changes(model=args.model, target=args.target, seed=1)
    checks, figures = {}, {"machine": machine(), "device": args.device, "target": args.target,
                           "model": args.model, "agreement_tolerance": AGREEMENT}

    def dreamer(params, backend="auto", device=args.device):
        return Dreamer(params.with_changes(backend=backend, torch_device=device), RATE, 2, frames)

    # 1. The dream runs where it was asked to, and `auto` finds the GPU.
    on_device = dreamer(defaults)
    where = {next(on_device.loaded.module.parameters()).device.type, on_device.device.type}
    auto = dreamer(defaults.with_changes(steps=1, octaves=1), device="auto").device.type
    checks["runs on the device"] = where == {torch.device(args.device).type} and (auto == "cuda") == on_gpu
    figures["device_used"] = {"asked": args.device, "model": sorted(where), "auto": auto}

    # 2. Hidden GPU: `auto` falls back to the CPU and dreams.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    fallback = subprocess.run([sys.executable, "-c", FALLBACK_CHECK.format(model=args.model)], env=env,
                              capture_output=True, text=True, timeout=600)
    checks["falls back to the CPU when the GPU is hidden"] = fallback.returncode == 0 and \
        fallback.stdout.strip() == "cpu"
    if fallback.returncode != 0:
        figures["fallback_error"] = (fallback.stderr.strip().splitlines() or ["?"])[-1]

    # 3. The device's dream agrees with the CPU's (on --device cpu: TorchScript's with eager's).
    reference = dreamer(defaults, backend="eager", device="cpu").dream_window(window, 0)
    other = dreamer(defaults, backend="torchscript" if not on_gpu else "auto").dream_window(window, 0)
    if reference is None or other is None:
        figures["agreement"] = {"ok": False, "error": "a dream went non-finite"}
    else:
        figures["agreement"] = agreement(other, reference, window)
    checks["agrees with the CPU"] = figures["agreement"]["ok"]

    # 4. Speed: TorchScript against eager, the defaults and deep; the steps that fit live's budget.
    budget = LiveOptions().budget_s
    speed = {}
    for name, params in (("defaults", defaults), ("deep", deep)):
        for backend in ("torchscript", "eager"):
            seconds = timed(dreamer(params, backend=backend), window, args.repeats)
            speed[f"{name}/{backend}"] = {"seconds": round(seconds, 3), "real_time_factor": round(seconds / SECONDS, 3),
                                          "steps_per_octave_in_budget": int(params.steps * budget / seconds)}
    figures["speed"], figures["live_budget_s"] = speed, budget
    checks["the defaults fit live's budget"] = min(speed["defaults/torchscript"]["seconds"],
                                                   speed["defaults/eager"]["seconds"]) <= budget

    # 5. live on the null device with the dream on the device.
    if args.live_seconds > 0:
        figures["live"] = run_live(args.device, args.live_seconds, args.model, args.target)
        checks["live: no late, failed or restarted window"] = figures["live"]["ok"]

    figures["checks"] = checks
    write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")
    m = figures["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores; GPU: {m['gpu'] or 'none'}; torch {m['torch']} "
          f"(CUDA {m['torch_cuda'] or 'none'}); device {args.device}; model {args.model}, toward {args.target}\n")
    print("| measure | value |\n|---|---|")
    for key, value in speed.items():
        print(f"| {key}: seconds per 9-s window (real-time factor) | {value['seconds']:.3f} "
              f"({value['real_time_factor']:.3f}) |")
        print(f"| {key}: steps per octave that fit live's {budget:g}-s budget | {value['steps_per_octave_in_budget']} |")
    a = figures["agreement"]
    if "correlation" in a:
        print(f"| agreement with the CPU: correlation of the changes, level difference | {a['correlation']:.4f}, "
              f"{a['level_difference_db']:+.2f} dB |")
    if "live" in figures and "windows_dreamed" in figures["live"]:
        live = figures["live"]
        print(f"| live {args.live_seconds:g} s: windows dreamed, late, failed, restarts | {live['windows_dreamed']}, "
              f"{live['late_windows']}, {live['failed_windows']}, {live['worker_restarts']} |")
        print(f"| live: real-time factor, worker memory | {live['real_time_factor']:.3f}, {live['worker_rss_mb']} MB |")
    print()
    for name, ok in checks.items():
        print(f"{'pass' if ok else 'FAIL'}  {name}")
    print(f"\nfigures: {args.json}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
