"""Waveform models shaped like tf2onnx exports, built node by node with onnx.helper.

tf2onnx writes NHWC graphs: Keras' channels-last tensors wrapped in Transposes around every
conv, 'SAME' padding as explicit Pad nodes, framing as Slice/Concat, leaky ReLUs as Where,
tensor names ending in ':0', dynamic batch dimensions named 'unk__N', and opset imports that
include ai.onnx.ml. Each builder returns (ModelProto, recommended layer names); the weights are
seeded random (what is tested is the import, not what a model knows).

Beyond tf2onnx's shapes, what torch.onnx (TorchScript and dynamo exporters) and keras2onnx-era graphs
emit for audio models: Pad in every mode on any axis, Where, ReduceMax/Min (axes as an input from
opset 18), Log, Sqrt, Neg, Slice with negative steps, Resize, LayerNormalization, Einsum, Gelu (the
opset-20 operator and the Erf form), GRU and LSTM; and `pitch_waveform`, the shape of a released
22.05-kHz note transcriber: a constant-Q-like front end in the graph after a reflect Pad on the samples
axis, and three outputs whose order is not their names' (see PITCH_OUTPUTS). The torch-* fixtures are
real torch.onnx exports (TorchScript exporter) of small modules.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SAMPLES = 4000      # per model input, at RATE
RATE = 16000
CLASSES = 4

PITCH_RATE = 22050
PITCH_SAMPLES = 4096   # per model input, at PITCH_RATE (the released model takes 2 s; small here)
PITCH_HOP = 256
PITCH_FRAMES = PITCH_SAMPLES // PITCH_HOP + 1
# graph outputs in graph order: (name, classes). Named as tf2onnx names a Keras dict's outputs (sorted keys:
# contour, note, onset -> Identity, Identity_1, Identity_2) while the graph lists note, onset, contour.
PITCH_OUTPUTS = [("Identity_1:0", 88), ("Identity_2:0", 88), ("Identity:0", 264)]
NOTE_NAMES = [f"{'C C# D D# E F F# G G# A A# B'.split()[(k + 9) % 12]}{(k + 9) // 12}" for k in range(88)]  # A0..C8


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

    def model(self, input_shape, output, output_rank, opset=13, extra_opsets=(), outputs=None):
        """`outputs`: several graph outputs as (tensor, declared shape), instead of `output` of `output_rank`."""
        outputs = outputs or [(output, ["unk__0"] + [None] * (output_rank - 1))]
        graph = helper.make_graph(
            self.nodes, "tf2onnx", [helper.make_tensor_value_info("audio:0", TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs],
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


def conv_frames(g: Graph, channels=8, taps=64, stride=32, name="model/conv"):
    """(batch, SAMPLES, 1) -> Transpose -> strided Conv1D -> (batch, channels, frames)."""
    x = g.node("Transpose", ["audio:0"], f"{name}/transpose", perm=[0, 2, 1])
    return g.node("Conv", [x, g.weight(f"{name}/kernel", [channels, 1, taps]), g.weight(f"{name}/bias", [channels], 0.1)],
                  f"{name}/Conv1D", strides=[stride])


def pad_modes(seed=6):
    """Pad in each mode on the time axis of (batch, channels, frames) and of (batch, frames, channels) (a
    non-trailing axis: torch's own reflect cannot), with a crop (negative pad) and opset-19 wrap and axes."""
    g = Graph(seed)
    x = conv_frames(g)                                                                  # (batch, 8, 124)
    relu = g.node("Relu", [x], "model/conv/Relu")
    x = g.node("Pad", [relu, g.const("pads_edge", [0, 0, 3, 0, 0, -2], np.int64)], "model/pad_edge/Pad", mode="edge")
    x = g.node("Transpose", [x], "model/to_nwc", perm=[0, 2, 1])                         # (batch, 125, 8)
    x = g.node("Pad", [x, g.const("pads_reflect", [0, 4, 0, 0, 4, 0], np.int64)], "model/pad_reflect/MirrorPad",
               mode="reflect")                                                          # (batch, 133, 8)
    x = g.node("Pad", [x, g.const("pads_wrap", [5, 1], np.int64), "", g.const("wrap_axes", [-2], np.int64)],
               "model/pad_wrap/Pad", mode="wrap")                                       # (batch, 139, 8)
    x = g.node("Pad", [x, g.const("pads_const", [0, 0, 2, 0, 1, 0], np.int64), g.const("pad_value", -1.0)],
               "model/pad_const/Pad", mode="constant")                                  # (batch, 140, 10)
    out = g.node("MatMul", [x, g.weight("model/dense/kernel", [10, CLASSES])], "model/dense/MatMul")
    return g.model(["unk__0", SAMPLES, 1], out, 3, opset=19), [relu]


def where_neg_reduce(seed=7):
    """Opset 18: a leaky ReLU as Where(x > 0, x, -0.1 * Neg(x)), ReduceMax and ReduceMin over time with their axes
    as an input (new in opset 18), concatenated into a dense head."""
    g = Graph(seed)
    x = conv_frames(g)
    positive = g.node("Greater", [x, g.const("zero", 0.0)], "model/leaky/Greater")
    scaled = g.node("Mul", [g.node("Neg", [x], "model/leaky/Neg"), g.const("minus_alpha", -0.1)], "model/leaky/mul")
    act = g.node("Where", [positive, x, scaled], "model/leaky/Where")
    time = g.const("time_axis", [2], np.int64)
    top = g.node("ReduceMax", [act, time], "model/pool/Max", keepdims=0)
    low = g.node("ReduceMin", [act, time], "model/pool/Min", keepdims=0)
    x = g.node("Concat", [top, low], "model/pool/concat", axis=1)                       # (batch, 16)
    out = g.node("Gemm", [x, g.weight("model/dense/kernel", [16, CLASSES]), g.weight("model/dense/bias", [CLASSES], 0.1)],
                 "model/dense/BiasAdd")
    return g.model(["unk__0", SAMPLES, 1], out, 2, opset=18), [act]


def reversed_log_magnitude(seed=8, bins=48):
    """Frames reversed in time with Slice step -1 (tf.reverse), a DFT as MatMuls, magnitude by Sqrt, Log, and the
    bins flipped again by a negative-step Slice with an end past the start (as exporters write -INT_MAX)."""
    g = Graph(seed)
    x = g.node("Reshape", ["audio:0", g.const("frames_shape", [0, 8, 500], np.int64)], "model/frames")
    x = g.node("Slice", [x, g.const("rev_s", [-1], np.int64), g.const("rev_e", [-(2 ** 63 - 1)], np.int64),
                         g.const("rev_ax", [2], np.int64), g.const("rev_step", [-1], np.int64)], "model/ReverseV2")
    n = np.arange(500)[:, None]
    k = np.arange(1, bins + 1)[None, :] * 4
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(500) / 500))[:, None]
    re = g.node("MatMul", [x, g.const("model/dft/cos", np.cos(2 * np.pi * k * n / 500) * window)], "model/dft/real")
    im = g.node("MatMul", [x, g.const("model/dft/sin", -np.sin(2 * np.pi * k * n / 500) * window)], "model/dft/imag")
    power = g.node("Add", [g.node("Mul", [re, re], "model/dft/re2"), g.node("Mul", [im, im], "model/dft/im2")],
                   "model/dft/power")
    mag = g.node("Sqrt", [g.node("Add", [power, g.const("eps", 1e-4)], "model/dft/add_eps")], "model/dft/Sqrt")
    logm = g.node("Log", [g.node("Add", [mag, g.const("eps2", 1e-3)], "model/log/add")], "model/log/Log")
    x = g.node("Slice", [logm, g.const("flip_s", [bins - 2], np.int64), g.const("flip_e", [-bins - 10], np.int64),
                         g.const("flip_ax", [-1], np.int64), g.const("flip_step", [-2], np.int64)], "model/flip")
    x = g.node("MatMul", [x, g.weight("model/proj/kernel", [bins // 2, 16], 0.1)], "model/proj/MatMul")
    relu = g.node("Relu", [x], "model/proj/Relu")
    out = g.node("MatMul", [relu, g.weight("model/head/kernel", [16, CLASSES])], "model/head/MatMul")
    return g.model(["unk__0", SAMPLES, 1], out, 3), [relu]


def resize_layer_norm(seed=9):
    """Opset 17: frames upsampled x2 by Resize (linear, half_pixel, as torch.onnx writes F.interpolate), then
    LayerNormalization over the features, as a transformer-ish head has it."""
    g = Graph(seed)
    x = conv_frames(g)
    relu = g.node("Relu", [x], "model/conv/Relu")
    x = g.node("Unsqueeze", [relu, g.const("unsq", [2], np.int64)], "model/expand")       # (batch, 8, 1, 124)
    x = g.node("Resize", [x, "", g.const("scales", [1.0, 1.0, 1.0, 2.0])], "model/upsample/Resize", mode="linear",
               coordinate_transformation_mode="half_pixel")                              # (batch, 8, 1, 248)
    x = g.node("Squeeze", [x, "unsq"], "model/squeeze")
    x = g.node("Transpose", [x], "model/to_nwc", perm=[0, 2, 1])                          # (batch, 248, 8)
    norm = g.node("LayerNormalization", [x, g.weight("model/ln/gamma", [8], 1.0), g.weight("model/ln/beta", [8], 0.1)],
                  "model/ln/LayerNorm", axis=-1, epsilon=1e-5)
    out = g.node("MatMul", [norm, g.weight("model/dense/kernel", [8, CLASSES])], "model/dense/MatMul")
    return g.model(["unk__0", SAMPLES, 1], out, 3, opset=17), [relu, norm]


def einsum_gelu(seed=10):
    """Opset 20: Einsum projections with the Gelu operator (opset 20) in one branch and Gelu written out with Erf
    (what exporters emit below opset 20) in the other."""
    g = Graph(seed)
    x = g.node("Reshape", ["audio:0", g.const("frames_shape", [0, 8, 500], np.int64)], "model/frames")
    a = g.node("Einsum", [x, g.weight("model/proj_a/kernel", [500, 16])], "model/proj_a/einsum", equation="bfs,sk->bfk")
    b = g.node("Einsum", [x, g.weight("model/proj_b/kernel", [500, 16])], "model/proj_b/einsum", equation="bfs,sk->bfk")
    gelu = g.node("Gelu", [a], "model/proj_a/Gelu")
    erf = g.node("Erf", [g.node("Div", [b, g.const("sqrt2", np.sqrt(2.0))], "model/proj_b/div")], "model/proj_b/Erf")
    half = g.node("Mul", [b, g.const("half", 0.5)], "model/proj_b/mul_half")
    gelu_erf = g.node("Mul", [half, g.node("Add", [erf, g.const("one", 1.0)], "model/proj_b/add_one")],
                      "model/proj_b/gelu")
    x = g.node("Concat", [gelu, gelu_erf], "model/concat", axis=-1)                      # (batch, 8, 32)
    out = g.node("Einsum", [x, g.weight("model/head/kernel", [32, CLASSES])], "model/head/einsum",
                 equation="bfk,kc->bfc")
    return g.model(["unk__0", SAMPLES, 1], out, 3, opset=20), [gelu]


def recurrent(seed=12, hidden=6):
    """Opset 14: a bidirectional LSTM over the frames (sequence-major, as torch.onnx writes nn.LSTM) and a GRU over
    its output, backwards, with the ONNX default linear_before_reset=0 (Keras' reset_after=False; torch's GRU is
    linear_before_reset=1) and an initial state computed in the graph. The LSTM's final state Y_h, the second
    output of a node with three, is a recommended layer. (Layout 1, batch-major, ONNX Runtime cannot run.)"""
    g = Graph(seed)
    x = conv_frames(g, channels=8, taps=256, stride=128)                                 # (batch, 8, 30)
    relu = g.node("Relu", [x], "model/conv/Relu")
    x = g.node("Transpose", [relu], "model/to_sequence", perm=[2, 0, 1])                  # (30, batch, 8)
    lstm_y, lstm_h = "model/lstm/LSTM:0", "model/lstm/LSTM:1"
    g.nodes.append(helper.make_node(
        "LSTM", [x, g.weight("model/lstm/W", [2, 4 * hidden, 8]), g.weight("model/lstm/R", [2, 4 * hidden, hidden]),
                 g.weight("model/lstm/B", [2, 8 * hidden], 0.1)], [lstm_y, lstm_h, "model/lstm/LSTM:2"],
        name="model/lstm/LSTM", hidden_size=hidden, direction="bidirectional"))           # (30, 2, batch, 6)
    x = g.node("Transpose", [lstm_y], "model/dirs_last", perm=[0, 2, 1, 3])               # (30, batch, 2, 6)
    x = g.node("Reshape", [x, g.const("merge_dirs", [0, 0, 2 * hidden], np.int64)], "model/merge")
    mean = g.node("ReduceMean", [x], "model/gru/h0_mean", axes=[0], keepdims=1)             # (1, batch, 12)
    h0 = g.node("Tanh", [g.node("MatMul", [mean, g.weight("model/gru/h0_kernel", [2 * hidden, hidden])],
                                "model/gru/h0_matmul")], "model/gru/h0")
    gru_y = "model/gru/GRU:0"
    g.nodes.append(helper.make_node(
        "GRU", [x, g.weight("model/gru/W", [1, 3 * hidden, 2 * hidden]), g.weight("model/gru/R", [1, 3 * hidden, hidden]),
                g.weight("model/gru/B", [1, 6 * hidden], 0.1), "", h0],
        [gru_y], name="model/gru/GRU", hidden_size=hidden, direction="reverse"))         # (30, 1, batch, 6)
    x = g.node("Squeeze", [gru_y, g.const("dir_axis", [1], np.int64)], "model/gru/squeeze")
    x = g.node("Transpose", [x], "model/gru/to_batch", perm=[1, 0, 2])                    # (batch, 30, 6)
    out = g.node("MatMul", [x, g.weight("model/dense/kernel", [hidden, CLASSES])], "model/dense/MatMul")
    return g.model(["unk__0", SAMPLES, 1], out, 3, opset=14), [lstm_h, gru_y]


def pitch_waveform(seed=11, bins=48):
    """A released note transcriber's shape (tf2onnx, opset 15): input (batch, 4096, 1) at 22.05 kHz, a reflect Pad
    on the samples axis (axis 1 of a rank-3 tensor: torch's own reflect cannot), a constant-Q-like front end in the
    graph (log-spaced Hann-windowed cos/sin kernels, Sqrt, Log), and three outputs: note (batch, frames, 88), onset
    (batch, frames, 88), contour (batch, frames, 264), listed in that order but named Identity_1, Identity_2 and
    Identity."""
    g = Graph(seed)
    half = PITCH_HOP // 2 * 2
    x = g.node("Pad", ["audio:0", g.const("cqt/pads", [0, half, 0, 0, half, 0], np.int64)], "model/cqt/MirrorPad",
               mode="reflect")                                                          # (batch, 4096 + 512, 1)
    x = g.node("Transpose", [x], "model/cqt/transpose", perm=[0, 2, 1])
    taps = 2 * half
    n = np.arange(taps)
    freqs = 55.0 * 2.0 ** (np.arange(bins) / 8)                                            # 8 bins per octave from A1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / taps)
    phase = 2 * np.pi * freqs[:, None] * n / PITCH_RATE
    kernels = np.concatenate([np.cos(phase) * window, -np.sin(phase) * window]) / taps
    x = g.node("Conv", [x, g.const("model/cqt/kernels", kernels[:, None, :])], "model/cqt/conv1d",
               strides=[PITCH_HOP])                                                     # (batch, 2 bins, 17)
    re = g.node("Slice", [x, g.const("re_s", [0], np.int64), g.const("re_e", [bins], np.int64),
                          g.const("ax1", [1], np.int64)], "model/cqt/real")
    im = g.node("Slice", [x, g.const("im_s", [bins], np.int64), g.const("im_e", [2 * bins], np.int64), "ax1"],
                "model/cqt/imag")
    power = g.node("Add", [g.node("Mul", [re, re], "model/cqt/re2"), g.node("Mul", [im, im], "model/cqt/im2")],
                   "model/cqt/power")
    mag = g.node("Sqrt", [g.node("Add", [power, g.const("eps", 1e-8)], "model/cqt/add_eps")], "model/cqt/Sqrt")
    logm = g.node("Log", [g.node("Add", [mag, g.const("eps2", 1e-4)], "model/cqt/add_eps2")], "model/cqt/Log")
    x = g.node("Transpose", [logm], "model/cqt/to_frames", perm=[0, 2, 1])               # (batch, 17, bins)
    x = g.node("MatMul", [x, g.weight("model/contour/kernel", [bins, 264], 0.05)], "model/contour/MatMul")
    x = g.node("Add", [x, g.weight("model/contour/bias", [264], 0.1)], "model/contour/BiasAdd")
    contour_act = g.node("Relu", [x], "model/contour/Relu")
    contour = g.node("Sigmoid", [x], "model/contour/Sigmoid")
    x = g.node("MatMul", [contour_act, g.weight("model/note/kernel", [264, 88], 0.1)], "model/note/MatMul")
    note_act = g.node("Relu", [x], "model/note/Relu")
    note = g.node("Sigmoid", [x], "model/note/Sigmoid")
    x = g.node("MatMul", [note_act, g.weight("model/onset/kernel", [88, 88], 0.2)], "model/onset/MatMul")
    onset = g.node("Sigmoid", [x], "model/onset/Sigmoid")
    names = [name for name, _ in PITCH_OUTPUTS]
    for tensor, name in zip((note, onset, contour), names):
        g.nodes.append(helper.make_node("Identity", [tensor], [name], name=name.split(":")[0]))
    outputs = [(name, ["unk__0", "unk__1", classes]) for name, classes in PITCH_OUTPUTS]
    return g.model(["unk__0", PITCH_SAMPLES, 1], None, 0, opset=15, outputs=outputs), [contour_act, note_act]


def torch_exported(module, opset):
    """`module` on a (batch, SAMPLES) waveform, exported by torch.onnx's TorchScript exporter (dynamo=False: the
    dynamo exporter needs onnxscript) with a dynamic batch, as a user's `torch.onnx.export` call writes it."""
    import io
    import warnings

    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, SAMPLES),), buffer, input_names=["audio"],
                          output_names=["scores"], dynamic_axes={"audio": {0: "batch"}, "scores": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _outputs_of(proto, op_type):
    return [node.output[0] for node in proto.graph.node if node.op_type == op_type]


def torch_rnn(seed=13, opset=17):
    """torch.onnx (TorchScript exporter): F.pad reflect (pads computed in the graph), Conv1d, GELU (Erf below
    opset 20, the Gelu operator from 20), LayerNorm, a bidirectional batch-first GRU (linear_before_reset=1, its
    initial state computed from the input's shape) and an LSTM, then a Linear head: (batch, frames, classes)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 8, 128, stride=64)
            self.norm = nn.LayerNorm(8)
            self.gru = nn.GRU(8, 6, batch_first=True, bidirectional=True)
            self.lstm = nn.LSTM(12, 5, batch_first=True)
            self.head = nn.Linear(5, CLASSES)

        def forward(self, x):
            x = F.pad(x.unsqueeze(1), (64, 64), mode="reflect")
            x = self.norm(F.gelu(self.conv(x)).transpose(1, 2))
            x, _ = self.gru(x)
            x, _ = self.lstm(x)
            return self.head(x)

    torch.manual_seed(seed)
    proto = torch_exported(Net(), opset)
    return proto, _outputs_of(proto, "LayerNormalization") + _outputs_of(proto, "GRU")


def torch_stft(seed=14):
    """torch.onnx (TorchScript exporter, opset 17): torch.stft(center=False) becomes the STFT operator on the
    (batch, samples) input, then power, clamp (Clip with Constant-node bounds), log and a Linear head."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("window", torch.hann_window(256))
            self.proj = nn.Linear(129, 16)
            self.head = nn.Linear(16, CLASSES)

        def forward(self, x):
            spec = torch.stft(x, 256, 128, window=self.window, center=False, return_complex=False)
            logp = spec.pow(2).sum(-1).clamp_min(1e-6).log().transpose(1, 2)   # (batch, frames, 129)
            return self.head(torch.relu(self.proj(logp)))

    torch.manual_seed(seed)
    proto = torch_exported(Net(), 17)
    return proto, _outputs_of(proto, "Relu")


FIXTURES = {"nhwc-transposes": nhwc_transposes, "explicit-pad": explicit_pad, "slice-framing": slice_framing,
            "conv-front-end": conv_front_end, "opset15-ai.onnx.ml": opset15_with_ml_import,
            "dft-spectrum": dft_spectrum, "pad-modes": pad_modes, "where-neg-reduce-opset18": where_neg_reduce,
            "reversed-log-magnitude": reversed_log_magnitude, "resize-layer-norm": resize_layer_norm,
            "einsum-gelu-opset20": einsum_gelu, "lstm-gru": recurrent,
            "torch-rnn-opset17": torch_rnn, "torch-rnn-opset20": lambda: torch_rnn(opset=20),
            "torch-stft-opset17": torch_stft}
