#!/usr/bin/env python3
"""Dream speed on one 9-s stereo 48 kHz window: each torch thread count, TorchScript vs eager, per step,
FLOPs, ORT lower bound.

    python scripts/bench_dream.py [--model M] [--repeats 3] [--preset NAME] [--target LABEL] [--layer L]

Every thread count from 1 to the machine's cores is timed, and the rows say which count `render`
and `live` use (dreaming/threads.py: the fastest measured; live leaves one core to the audio).
Prints a markdown table for docs/BENCHMARKS.md. Everything is measured in this run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamdream.control.presets import builtin_preset  # noqa: E402
from streamdream.dreaming.dreamer import Dreamer  # noqa: E402
from streamdream.dreaming.loop import ObjectiveNet  # noqa: E402
from streamdream.dreaming.model import default_model_path, model_path as resolve_model  # noqa: E402
from streamdream.dreaming.threads import cpu_name, threads_beside_audio, threads_per_worker  # noqa: E402

RATE, SECONDS = 48000, 9.0


def test_window(seed: int = 0) -> np.ndarray:
    """Nine seconds of a stereo chord progression with noise, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * SECONDS)) / RATE
    x = np.zeros((2, t.size))
    for i, f in enumerate((110, 220, 277, 330, 440, 660)):
        x[i % 2] += 0.08 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * (0.3 + i * 0.1) * t))
    return (x + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Achieved fp32 GEMM FLOP/s on this machine: the practical peak the dream step is compared to."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    seconds = median_time(lambda: torch.mm(a, b), repeats)
    return 2 * n ** 3 / seconds


def step_cost(dreamer: Dreamer, window: np.ndarray, repeats: int) -> tuple[float, float]:
    """(seconds, FLOPs) of one forward+backward from waveform to the objective, full resolution."""
    from torch.utils.flop_counter import FlopCounterMode

    net = ObjectiveNet(dreamer.loaded.module, dreamer.objective)
    x = torch.from_numpy(window)

    def one_step():
        xr = x.clone().requires_grad_(True)
        # (FlopCounterMode cannot follow autograd.grad)
        net(dreamer.view(xr), dreamer.target_weights(dreamer.params)).backward()

    one_step()
    counter = FlopCounterMode(display=False)
    with counter:
        one_step()
    return median_time(one_step, repeats), float(counter.get_total_flops())


def ort_forward(model_path: Path, dreamer: Dreamer, window: np.ndarray, repeats: int) -> float:
    import onnxruntime as ort

    with torch.no_grad():
        features = dreamer.view(torch.from_numpy(window)).numpy()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: features})
    return median_time(lambda: session.run(None, {name: features}), repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_model_path()), help="an .onnx file or a shipped model name")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="vivid", help="the dream settings measured (default: vivid, the defaults)")
    parser.add_argument("--target", default=None, help="a label to dream toward (keep acts only with one)")
    parser.add_argument("--layer", default=None, help="render's --layer (default: the model's default layer)")
    parser.add_argument("--steps", type=int, default=None, help="render's --set steps (default: the preset's)")
    parser.add_argument("--hold-others", type=float, default=None,
                        help="render's --set hold_others (default: the preset's)")
    args = parser.parse_args()
    counts = list(range(1, (os.cpu_count() or 1) + 1))
    used = {"render": threads_per_worker(), "live": threads_beside_audio()}
    torch.set_num_threads(used["render"])
    window = test_window()
    defaults = builtin_preset(args.preset).with_changes(model=args.model, target=args.target,
                                                     layer=args.layer)
    if args.steps is not None:
        defaults = defaults.with_changes(steps=args.steps)
    if args.hold_others is not None:
        defaults = defaults.with_changes(hold_others=args.hold_others)
    frames = window.shape[1]

    dreamers = {backend: Dreamer(defaults.with_changes(backend=backend), RATE, 2, frames)
                for backend in ("torchscript", "eager")}
    for dreamer in dreamers.values():
        dreamer.dream_window(window, 0)  # warm-up: TorchScript optimises during its first runs
        dreamer.dream_window(window, 1)
    # The configurations take turns, one window each, so that this host's drift (a quarter between
    # minutes, docs/BENCHMARKS.md) lands on all alike.
    configs = [(backend, count) for count in counts for backend in dreamers]
    times = {config: [] for config in configs}
    for _ in range(args.repeats):
        for backend, count in configs:
            torch.set_num_threads(count)
            began = time.perf_counter()
            dreamers[backend].dream_window(window, 2)
            times[backend, count].append(time.perf_counter() - began)
    torch.set_num_threads(used["render"])
    by_config = {config: statistics.median(seconds) for config, seconds in times.items()}
    results = {backend: by_config[backend, used["render"]] for backend in dreamers}
    dreamer = dreamers["eager"]
    step_seconds, step_flops = step_cost(dreamer, window, max(5, args.repeats))
    peak = matmul_peak()
    ort_seconds = ort_forward(resolve_model(args.model), dreamer, window, max(5, args.repeats))
    steps_total = defaults.steps * defaults.octaves

    cpu = cpu_name()
    print(f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}; the step, peak and ORT rows "
          f"with {used['render']} thread(s), render's")
    print(f"model: {args.model}; --preset {args.preset}{f' --target {args.target}' if args.target else ''}"
          f"{f' --layer {args.layer}' if args.layer else ''}: "
          f"{defaults.octaves} octaves x {defaults.steps} steps (scale {defaults.octave_scale}), step "
          f"{defaults.step_size:g}, keep {defaults.keep:g}, hold {defaults.hold_others:g}, "
          f"eq bands {defaults.eq_bands:g}; "
          f"one 9-s stereo 48 kHz window, median of {args.repeats}\n")
    print("| measure | value |")
    print("|---|---|")
    for (backend, count), seconds in by_config.items():
        users = " and ".join(f"`{command}`'s" for command, n in used.items() if n == count)
        print(f"| {backend}, {count} torch thread{'s' if count > 1 else ''}{f' ({users})' if users else ''}: "
              f"seconds per window (real-time factor) | {seconds:.3f} ({seconds / SECONDS:.3f}) |")
    print(f"| TorchScript speed-up over eager, render's threads | {results['eager'] / results['torchscript']:.2f}x |")
    print(f"| forward+backward step, full resolution (eager) | {step_seconds * 1000:.1f} ms |")
    print(f"| FLOPs per full-resolution step | {step_flops / 1e9:.2f} GFLOP |")
    print(f"| fp32 matmul peak measured (2048^3 sgemm) | {peak / 1e9:.1f} GFLOP/s |")
    print(f"| step efficiency (FLOPs / step time / peak) | {100 * step_flops / step_seconds / peak:.1f}% |")
    print(f"| ONNX Runtime forward only (lower bound of the forward half) | {ort_seconds * 1000:.1f} ms |")
    print(f"| steps per window (coarse octaves cost less) | {steps_total} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
