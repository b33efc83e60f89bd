"""Waveform models shaped like tf2onnx exports, built node by node with onnx.helper.

tf2onnx writes NHWC graphs: Keras' channels-last tensors wrapped in Transposes around every
conv, 'SAME' padding as explicit Pad nodes, framing as Slice/Concat, leaky ReLUs as Where,
tensor names ending in ':0', dynamic batch dimensions named 'unk__N', and opset imports that
include ai.onnx.ml. Each builder returns (ModelProto, recommended layer names); the weights are
seeded random (what is tested is the import, not what a model knows).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SAMPLES = 4000      # per model input, at RATE
RATE = 16000
CLASSES = 4


class Graph:
    """A tiny builder: named initializers and nodes in order, tf2onnx-style names."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def const(self, name, value, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, name, shape, scale=None):
        scale = scale or 1.0 / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else shape[0])
        return self.const(name, self.rng.standard_normal(shape) * scale)

    def node(self, op, inputs, name, **attrs):
        out = f"{name}:0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def model(self, input_shape, output, output_rank, opset=13, extra_opsets=()):
        graph = helper.make_graph(
            self.nodes, "tf2onnx", [helper.make_tensor_value_info("audio:0", TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["unk__0"] + [None] * (output_rank - 1))],
            initializer=self.inits)
        opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="tf2onnx", ir_version=8)
        onnx.checker.check_model(proto)
        return proto


def leaky(g: Graph, x, name):
    """tf2onnx's LeakyRelu for some Keras versions: Where(x > 0, x, 0.2 x)."""
    positive = g.node("Greater", [x, g.const(f"{name}/zero", 0.0)], f"{name}/Greater")
    scaled = g.node("Mul", [x, g.const(f"{name}/alpha", 0.2)], f"{name}/mul")
    return g.node("Where", [positive, x, scaled], f"{name}/Where")


def nhwc_transposes(seed=0):
    """(batch, samples, 1) -> NHWC (batch, 1, samples, 1) -> Transpose to NCHW -> 1xK conv -> back to NHWC
    -> (batch, frames, classes)."""
    g = Graph(seed)
    x = g.node("Reshape", ["audio:0", g.const("shape_nhwc", [-1, 1, SAMPLES, 1], np.int64)], "model/reshape/Reshape")
    x = g.node("Transpose", [x], "model/conv/Conv2D__6", perm=[0, 3, 1, 2])
    x = g.node("Conv", [x, g.weight("model/conv/kernel", [16, 1, 1, 64]), g.weight("model/conv/bias", [16], 0.1)],
               "model/conv/Conv2D", strides=[1, 32], kernel_shape=[1, 64])
    relu = g.node("Relu", [x], "model/conv/Relu")
    x = g.node("Transpose", [relu], "model/conv/Relu__8", perm=[0, 2, 3, 1])          # (batch, 1, frames, 16)
    x = g.node("Squeeze", [x, g.const("squeeze_axes", [1], np.int64)], "model/squeeze/Squeeze")
    x = g.node("MatMul", [x, g.weight("model/dense/kernel", [16, CLASSES])], "model/dense/MatMul")
    out = g.node("Add", [x, g.weight("model/dense/bias", [CLASSES], 0.1)], "model/dense/BiasAdd")
    return g.model(["unk__0", SAMPLES, 1], out, 3), [relu]


def explicit_pad(seed=1):
    """'SAME' padding written out as a Pad node before a VALID conv; Where-based leaky ReLU; (batch, classes)."""
    g = Graph(seed)
    x = g.node("Transpose", ["audio:0"], "model/conv1d/Conv1D__5", perm=[0, 2, 1])     # (batch, 1, samples)
    x = g.node("Pad", [x, g.const("model/conv1d/pads", [0, 0, 31, 0, 0, 32], np.int64)], "model/conv1d/Pad",
               mode="constant")
    x = g.node("Conv", [x, g.weight("model/conv1d/kernel", [12, 1, 64]), g.weight("model/conv1d/bias", [12], 0.1)],
               "model/conv1d/Conv1D", strides=[16], kernel_shape=[64])
    act = leaky(g, x, "model/leaky")
    x = g.node("ReduceMean", [act], "model/pool/Mean", axes=[2], keepdims=0)
    out = g.node("Gemm", [x, g.weight("model/dense/kernel", [12, CLASSES]), g.weight("model/dense/bias", [CLASSES], 0.1)],
                 "model/dense/BiasAdd")
    return g.model(["unk__0", SAMPLES, 1], out, 2), [act]


def slice_framing(seed=2, win=512, hop=256):
    """tf.signal.frame as Slice/Unsqueeze/Concat on a (batch, samples) input; a frame-wise dense stack."""
    g = Graph(seed)
    frames = []
    for i in range((SAMPLES - win) // hop + 1):
        s = g.node("Slice", ["audio:0", g.const(f"starts_{i}", [i * hop], np.int64), g.const(f"ends_{i}", [i * hop + win], np.int64),
                             g.const(f"axes_{i}", [1], np.int64)], f"model/frame/strided_slice_{i}")
        frames.append(g.node("Unsqueeze", [s, g.const(f"unsq_{i}", [1], np.int64)], f"model/frame/ExpandDims_{i}"))
    x = g.node("Concat", frames, "model/frame/concat", axis=1)                          # (batch, frames, win)
    x = g.node("MatMul", [x, g.weight("model/proj/kernel", [win, 24])], "model/proj/MatMul")
    relu = g.node("Relu", [x], "model/proj/Relu")
    out = g.node("MatMul", [relu, g.weight("model/head/kernel", [24, CLASSES])], "model/head/MatMul")
    return g.model(["unk__0", SAMPLES], out, 3), [relu]


def conv_front_end(seed=3, taps=256, stride=128, bins=32):
    """An STFT as a convolution inside the graph (Hann-windowed cos/sin kernels), power, log, then a 2-D conv
    over (bins, frames), as exported Keras spectrogram layers look."""
    g = Graph(seed)
    n = np.arange(taps)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / taps)
    k = np.arange(1, bins + 1)[:, None] * 2  # every second bin of the first 64
    kernels = np.concatenate([np.cos(2 * np.pi * k * n / taps) * window, -np.sin(2 * np.pi * k * n / taps) * window])
    x = g.node("Transpose", ["audio:0"], "model/stft/transpose", perm=[0, 2, 1])
    x = g.node("Conv", [x, g.const("model/stft/kernels", kernels[:, None, :])], "model/stft/conv1d", strides=[stride])
    re = g.node("Slice", [x, g.const("re_s", [0], np.int64), g.const("re_e", [bins], np.int64), g.const("ax", [1], np.int64)],
                "model/stft/real")
    im = g.node("Slice", [x, g.const("im_s", [bins], np.int64), g.const("im_e", [2 * bins], np.int64), "ax"],
                "model/stft/imag")
    power = g.node("Add", [g.node("Mul", [re, re], "model/stft/re2"), g.node("Mul", [im, im], "model/stft/im2")],
                   "model/stft/power")
    logp = g.node("Log", [g.node("Add", [power, g.const("eps", 1e-6)], "model/stft/add_eps")], "model/stft/log")
    x = g.node("Unsqueeze", [logp, g.const("unsq", [1], np.int64)], "model/expand")  # (batch, 1, bins, frames)
    x = g.node("Conv", [x, g.weight("model/conv2d/kernel", [8, 1, 3, 3]), g.weight("model/conv2d/bias", [8], 0.1)],
               "model/conv2d/Conv2D", pads=[1, 1, 1, 1])
    relu = g.node("Relu", [x], "model/conv2d/Relu")
    x = g.node("ReduceMax", [relu], "model/pool/Max", axes=[2, 3], keepdims=0)
    out = g.node("Gemm", [x, g.weight("model/dense/kernel", [8, CLASSES])], "model/dense/MatMul")
    return g.model(["unk__0", SAMPLES, 1], out, 2), [relu]


def opset15_with_ml_import(seed=4):
    """Opset 15 and an ai.onnx.ml import (as tf2onnx writes them), with GlobalMaxPool (not in onnx2torch) and
    a Softmax head."""
    g = Graph(seed)
    x = g.node("Transpose", ["audio:0"], "model/transpose", perm=[0, 2, 1])
    x = g.node("Conv", [x, g.weight("model/conv/kernel", [16, 1, 48]), g.weight("model/conv/bias", [16], 0.1)],
               "model/conv/Conv1D", strides=[24])
    relu = g.node("Relu", [x], "model/conv/Relu")
    x = g.node("GlobalMaxPool", [relu], "model/global_max_pooling1d/Max")
    x = g.node("Flatten", [x], "model/flatten")
    x = g.node("Gemm", [x, g.weight("model/dense/kernel", [16, CLASSES])], "model/dense/MatMul")
    out = g.node("Softmax", [x], "model/dense/Softmax", axis=-1)
    return g.model(["unk__0", SAMPLES, 1], out, 2, opset=15, extra_opsets=[("ai.onnx.ml", 2)]), [relu]


def dft_spectrum(seed=5):
    """Opset 17 DFT (not in onnx2torch) for the spectrum of each 500-sample frame, as a torch or TF STFT
    export at opset 17 writes it."""
    g = Graph(seed)
    x = g.node("Reshape", ["audio:0", g.const("frames_shape", [0, 8, 500, 1], np.int64)], "model/frames")
    spec = g.node("DFT", [x], "model/stft/DFT", axis=2, onesided=1)                   # (batch, 8, 251, 2)
    power = g.node("ReduceSumSquare", [spec], "model/stft/power", axes=[3], keepdims=0)
    logp = g.node("Log", [g.node("Add", [power, g.const("eps", 1e-6)], "model/stft/add_eps")], "model/stft/log")
    x = g.node("MatMul", [logp, g.weight("model/proj/kernel", [251, 16], 0.05)], "model/proj/MatMul")
    relu = g.node("Relu", [x], "model/proj/Relu")
    out = g.node("MatMul", [relu, g.weight("model/head/kernel", [16, CLASSES])], "model/head/MatMul")
    return g.model(["unk__0", SAMPLES, 1], out, 3, opset=17), [relu]


FIXTURES = {"nhwc-transposes": nhwc_transposes, "explicit-pad": explicit_pad, "slice-framing": slice_framing,
            "conv-front-end": conv_front_end, "opset15-ai.onnx.ml": opset15_with_ml_import,
            "dft-spectrum": dft_spectrum}
