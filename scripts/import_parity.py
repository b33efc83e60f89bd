#!/usr/bin/env python3
"""Import parity for exported-graph shapes: streamdream's torch conversion vs ONNX Runtime, per fixture.

Builds each tf2onnx-like fixture of harness/tf2onnx_like.py, describes it with `models annotate`'s
code path (view waveform, 16 kHz; the pitch model at 22.05 kHz with its onset output chosen),
converts it the way a dream does (onnx2torch plus streamdream's own converters) and compares every
output with ONNX Runtime on seeded noise and on pure tones, at batch sizes 1, 4 and 12 (a 9-s window
at 16 kHz is 71 inputs of 4000 samples with half overlap; 12 keeps this quick). Prints a markdown table: the worst error relative to the
output's largest magnitude, and the worst absolute error.

    python scripts/import_parity.py
"""
from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from streamdream.dreaming.model import annotate, check_annotation, with_outputs  # noqa: E402
from harness.tf2onnx_like import FIXTURES, PITCH_OUTPUTS, PITCH_RATE, RATE, pitch_waveform  # noqa: E402

# name -> (builder, model rate, annotate's keyword arguments)
CASES = {name: (build, RATE, {}) for name, build in FIXTURES.items()}
CASES["pitch-waveform"] = (pitch_waveform, PITCH_RATE, {"class_axis": 2, "multi_label": True,
                                                        "output": PITCH_OUTPUTS[1][0]})


def main():
    rng = np.random.default_rng(0)
    print("| fixture | opset | operators | outputs compared | worst relative error | worst absolute error |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, rate, options) in CASES.items():
            proto, layers = build()
            bare = Path(tmp) / f"{name}.onnx"
            onnx.save(proto, str(bare))
            info = annotate(bare, Path(tmp) / f"{name}.sd.onnx", "waveform", {"rate_hz": rate}, None, layers,
                            **options)
            loaded = check_annotation(info)
            outputs = loaded.outputs
            session = ort.InferenceSession(with_outputs(info.proto, outputs).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            samples = info.front.input_samples
            t = np.arange(samples) / rate
            shape = [samples] + ([1] if info.layout == "bsc" else [])
            worst_rel = worst_abs = 0.0
            for batch in (1, 4, 12):
                noise = 0.3 * rng.standard_normal([batch] + shape)
                tone = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 2000, (batch, 1)) * t).reshape([batch] + shape)
                for probe in (noise.astype(np.float32), tone.astype(np.float32)):
                    expected = session.run(outputs, {info.input_name: probe})
                    with torch.no_grad():
                        got = loaded.module(torch.from_numpy(probe))
                    got = got if isinstance(got, (tuple, list)) else [got]
                    for ref, ours in zip(expected, got):
                        err = float(np.abs(ref - ours.numpy()).max())
                        worst_abs = max(worst_abs, err)
                        worst_rel = max(worst_rel, err / max(float(np.abs(ref).max()), 1e-12))
            ops = Counter(node.op_type for node in proto.graph.node)
            opset = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
            listed = ", ".join(f"{op}" + (f" x{n}" if n > 1 else "") for op, n in sorted(ops.items()))
            print(f"| {name} | {opset} | {listed} | {len(outputs)} | {worst_rel:.1e} | {worst_abs:.1e} |")


if __name__ == "__main__":
    main()
