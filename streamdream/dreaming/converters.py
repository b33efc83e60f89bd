"""ONNX operators onnx2torch cannot convert (or converts only in part), converted here, and a check that
names what is left.

Exported audio models (tf2onnx, torch.onnx with an in-graph STFT) use a few operators the
onnx2torch release we run has no converter for, and pad in ways its Pad cannot (reflect or edge
on a non-trailing axis or a low-rank tensor, wrap, the `axes` input of opset 18). Each one below
is a small torch module registered in onnx2torch's own registry (Pad replaces onnx2torch's for
every opset), so the rest of the conversion is unchanged; each is tested against ONNX Runtime in
tests/test_import.py and tests/test_pad.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

_registered = False
PAD_MODES = ("constant", "reflect", "edge", "wrap")


class NodeConversionError(Exception):
    """A converter (onnx2torch's or ours) failed on one node; model.convert turns it into a one-line ModelError."""

    def __init__(self, node, cause: BaseException):
        super().__init__(str(cause))
        self.node, self.cause = node, cause


class GlobalMaxPool(nn.Module):
    """(N, C, *spatial) -> (N, C, 1, ...): the maximum over every spatial axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=list(range(2, x.dim())), keepdim=True)


class Gelu(nn.Module):
    def __init__(self, approximate: str):
        super().__init__()
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate=self.approximate)


class ThresholdedRelu(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > self.alpha, x, torch.zeros_like(x))


class RealDFT(nn.Module):
    """DFT (opset 17+) of a real signal, (..., 1) -> (..., 2) with real and imaginary parts last.

    The forms exporters emit for an in-graph STFT: real input, forward transform, one-sided or
    not, along one axis, optionally zero-padded or cut to `length` points.
    """

    def __init__(self, axis: int, onesided: bool, length: int | None):
        super().__init__()
        self.axis, self.onesided, self.length = axis, onesided, length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 1:
            raise NotImplementedError("DFT of a complex signal (last axis of size 2)")
        signal = x[..., 0]
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        if self.onesided:
            spec = torch.fft.rfft(signal, n=self.length, dim=axis)
        else:
            spec = torch.fft.fft(signal, n=self.length, dim=axis)
        return torch.stack([spec.real, spec.imag], dim=-1)


class RealSTFT(nn.Module):
    """STFT (opset 17) of a real signal, (batch, samples[, 1]) -> (batch, frames, bins, 2), as torch.onnx writes
    torch.stft(center=False): frames of `length` every `step` samples, times the window, then the DFT."""

    def __init__(self, step: int, length: int | None, onesided: bool, window: torch.Tensor | None):
        super().__init__()
        self.step, self.length, self.onesided = step, length, onesided
        self.register_buffer("window", window)

    def forward(self, signal: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
        window = self.window if window is None else window
        length = self.length or int(window.shape[0])
        signal = signal[..., 0] if signal.dim() == 3 else signal  # torch.onnx writes (batch, samples) as it is
        frames = signal.unfold(-1, length, self.step)                            # (batch, frames, length)
        if window is not None:
            frames = frames * window
        spec = torch.fft.rfft(frames, dim=-1) if self.onesided else torch.fft.fft(frames, dim=-1)
        return torch.stack([spec.real, spec.imag], dim=-1)


class Clip(nn.Module):
    """Clip (opset 11+) whose bounds are constants (initializers or Constant nodes, as torch.onnx writes clamp) or
    computed in the graph (then passed in)."""

    def __init__(self, low: float | None, high: float | None):
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor, low: torch.Tensor | None = None, high: torch.Tensor | None = None):
        low = low if low is not None else self.low
        high = high if high is not None else self.high
        if low is not None:
            x = torch.clamp_min(x, low)
        if high is not None:
            x = torch.clamp_max(x, high)
        return x


def _source_index(size: int, begin: int, end: int, mode: str, device) -> torch.Tensor:
    """Where each element of an axis of `size` padded by `begin`, `end` (>= 0) comes from, by numpy.pad's rules:
    reflect mirrors on the first and last element (period 2 (size - 1)), edge repeats them, wrap is periodic."""
    index = torch.arange(-begin, size + end, device=device)
    if mode == "edge" or (mode == "reflect" and size == 1):
        return index.clamp(0, size - 1)
    if mode == "wrap":
        return torch.remainder(index, size)
    period = 2 * (size - 1)
    index = torch.remainder(index, period)
    return torch.where(index < size, index, period - index)


def pad(x: torch.Tensor, pads: list[int], mode: str = "constant", value: float = 0.0,
        axes: list[int] | None = None) -> torch.Tensor:
    """ONNX Pad on a tensor of any rank: `pads` is [begin of each axis..., end of each axis...] over `axes`
    (default: every axis); a negative pad crops. reflect, edge and wrap gather with computed indices
    (torch's own reflect and replicate take only the last one to three axes), so gradients flow."""
    rank = x.dim()
    axes = list(range(rank)) if axes is None else [int(a) + rank if int(a) < 0 else int(a) for a in axes]
    if len(pads) != 2 * len(axes) or not all(0 <= a < rank for a in axes):
        raise ValueError(f"Pad: {len(pads)} pads for axes {axes} of a rank-{rank} tensor")
    begins, ends = [int(p) for p in pads[:len(axes)]], [int(p) for p in pads[len(axes):]]
    if mode == "constant":
        torch_pads = [0] * (2 * rank)  # torch lists the last axis first
        for axis, begin, end in zip(axes, begins, ends):
            torch_pads[2 * (rank - 1 - axis)], torch_pads[2 * (rank - 1 - axis) + 1] = begin, end
        while torch_pads and torch_pads[-1] == 0 and torch_pads[-2] == 0:
            torch_pads = torch_pads[:-2]
        return F.pad(x, torch_pads, mode="constant", value=value) if torch_pads else x
    if mode not in PAD_MODES:
        raise ValueError(f"Pad mode {mode!r} is not one of {', '.join(PAD_MODES)}")
    for axis, begin, end in zip(axes, begins, ends):
        # ONNX Runtime crops first, then pads what is left (so a reflection never reaches past a crop)
        if begin < 0:
            x = x.narrow(axis, -begin, x.shape[axis] + begin)
        if end < 0:
            x = x.narrow(axis, 0, x.shape[axis] + end)
        if begin > 0 or end > 0:
            x = x.index_select(axis, _source_index(x.shape[axis], max(begin, 0), max(end, 0), mode, x.device))
    return x


class Pad(nn.Module):
    """ONNX Pad, any opset, mode, rank and axes. Pads, value and axes read at conversion when the graph holds
    them as constants; otherwise they arrive as inputs (read on each call)."""

    def __init__(self, mode: str, pads: list[int] | None = None, value: float = 0.0, axes: list[int] | None = None):
        super().__init__()
        if mode not in PAD_MODES:
            raise NotImplementedError(f"Pad mode {mode!r} (ONNX knows {', '.join(PAD_MODES)})")
        self.mode, self.pads, self.value, self.axes = mode, pads, value, axes

    def forward(self, x: torch.Tensor, pads: torch.Tensor | None = None, constant_value: torch.Tensor | None = None,
                axes: torch.Tensor | None = None) -> torch.Tensor:
        if pads is not None:
            value = float(constant_value) if constant_value is not None and constant_value.numel() else 0.0
            return pad(x, pads.tolist(), self.mode, value, axes.tolist() if axes is not None else None)
        return pad(x, self.pads, self.mode, self.value, self.axes)


class Reduce(nn.Module):
    """ReduceMax/Min/Mean/... of opset 18 and later, whose axes are an input (read at conversion when fixed)."""

    def __init__(self, op: str, keepdims: bool, noop_with_empty_axes: bool, axes: list[int] | None = None,
                 axes_given: bool = False):
        super().__init__()
        self.op, self.keepdims, self.noop = op, keepdims, noop_with_empty_axes
        self.axes, self.axes_given = axes, axes_given

    def forward(self, x: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:
        dims = axes.tolist() if axes is not None else self.axes
        if not dims:
            if self.noop:
                return x
            dims = list(range(x.dim()))
        dims = sorted(int(d) % x.dim() for d in dims)
        keep = self.keepdims
        if self.op == "ReduceMax":
            return x.amax(dim=dims, keepdim=keep)
        if self.op == "ReduceMin":
            return x.amin(dim=dims, keepdim=keep)
        if self.op == "ReduceMean":
            return x.mean(dim=dims, keepdim=keep)
        if self.op == "ReduceSum":
            return x.sum(dim=dims, keepdim=keep)
        if self.op == "ReduceSumSquare":
            return (x * x).sum(dim=dims, keepdim=keep)
        if self.op == "ReduceL1":
            return x.abs().sum(dim=dims, keepdim=keep)
        if self.op == "ReduceL2":
            return (x * x).sum(dim=dims, keepdim=keep).sqrt()
        if self.op == "ReduceLogSum":
            return x.sum(dim=dims, keepdim=keep).log()
        if self.op == "ReduceLogSumExp":
            return torch.logsumexp(x, dim=dims, keepdim=keep)
        for dim in reversed(dims):  # ReduceProd: torch's prod takes one axis at a time
            x = x.prod(dim=dim, keepdim=keep)
        return x


def _activation(name: str, alpha: float | None, beta: float | None):
    """An RNN activation by its ONNX name, with its alpha/beta (ONNX's defaults when not given)."""
    if name == "Sigmoid":
        return torch.sigmoid
    if name == "Tanh":
        return torch.tanh
    if name == "Relu":
        return torch.relu
    if name == "HardSigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda z: (a * z + b).clamp(0.0, 1.0)
    if name == "LeakyRelu":
        return lambda z: F.leaky_relu(z, 0.01 if alpha is None else alpha)
    if name == "Softsign":
        return F.softsign
    if name == "Softplus":
        return F.softplus
    raise NotImplementedError(f"RNN activation {name}")


class Recurrent(nn.Module):
    """ONNX LSTM and GRU (any direction, layout 0 or 1, initial states, LSTM peepholes and input_forget, GRU either
    linear_before_reset), a step at a time in plain torch ops: differentiable on any device (cuDNN's RNN
    backward refuses to run in eval mode) and traceable (the loop unrolls for the fixed shapes of a dream)."""

    def __init__(self, kind: str, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None, p: torch.Tensor | None,
                 direction: str, layout: int, activations: list, clip: float | None, linear_before_reset: bool,
                 input_forget: bool, n_outputs: int):
        super().__init__()
        self.kind, self.layout, self.clip, self.n_outputs = kind, layout, clip, n_outputs
        self.linear_before_reset, self.input_forget = linear_before_reset, input_forget
        self.reverse = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]
        self.hidden = r.shape[-1]
        gates = 4 if kind == "LSTM" else 3
        self.register_buffer("w", w)
        self.register_buffer("r", r)
        self.register_buffer("b", b if b is not None else torch.zeros(w.shape[0], 2 * gates * self.hidden))
        self.register_buffer("p", p if p is not None else torch.zeros(w.shape[0], 3 * self.hidden))
        self.activations = activations  # per direction: (f, g[, h])

    def _cut(self, z):
        return z.clamp(-self.clip, self.clip) if self.clip is not None else z

    def forward(self, x: torch.Tensor, sequence_lens: torch.Tensor | None = None,
                initial_h: torch.Tensor | None = None, initial_c: torch.Tensor | None = None):
        if self.layout:
            x = x.transpose(0, 1)
            initial_h = initial_h.transpose(0, 1) if initial_h is not None else None
            initial_c = initial_c.transpose(0, 1) if initial_c is not None else None
        steps, batch, size = x.shape[0], x.shape[1], self.hidden
        if sequence_lens is not None and sequence_lens.numel() and bool((sequence_lens != steps).any()):
            raise NotImplementedError("sequence_lens shorter than the sequence (padded batches)")
        ys, hs, cs = [], [], []
        for d, reverse in enumerate(self.reverse):
            f, g = self.activations[d][0], self.activations[d][1]
            h = initial_h[d] if initial_h is not None else x.new_zeros(batch, size)
            c = initial_c[d] if initial_c is not None else x.new_zeros(batch, size)
            wb, rb = self.b[d].chunk(2)
            inputs = x @ self.w[d].t() + wb          # every step's input projection at once
            out = [h] * steps
            for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
                if self.kind == "LSTM":
                    i, o, fg, cc = (inputs[t] + h @ self.r[d].t() + rb).chunk(4, dim=-1)
                    pi, po, pf = self.p[d].chunk(3)
                    i = f(self._cut(i + pi * c))
                    fg = 1 - i if self.input_forget else f(self._cut(fg + pf * c))
                    c = fg * c + i * g(self._cut(cc))
                    h = f(self._cut(o + po * c)) * self.activations[d][2](c)
                else:
                    xz, xr, xh = inputs[t].chunk(3, dim=-1)
                    rz, rr, rh = self.r[d].chunk(3)
                    bz, br, bh = rb.chunk(3)
                    z = f(self._cut(xz + h @ rz.t() + bz))
                    rt = f(self._cut(xr + h @ rr.t() + br))
                    if self.linear_before_reset:
                        candidate = g(self._cut(xh + rt * (h @ rh.t() + bh)))
                    else:
                        candidate = g(self._cut(xh + (rt * h) @ rh.t() + bh))
                    h = (1 - z) * candidate + z * h
                out[t] = h
            ys.append(torch.stack(out))
            hs.append(h)
            cs.append(c)
        y, y_h, y_c = torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)   # (steps, dirs, batch, hidden)...
        if self.layout:
            y, y_h, y_c = y.permute(2, 0, 1, 3), y_h.transpose(0, 1), y_c.transpose(0, 1)
        results = (y, y_h, y_c)[:self.n_outputs]
        return results if self.n_outputs > 1 else results[0]


# ONNX versions that only widened the element types (float8, int4...) of an operator onnx2torch converts at
# the version named: the same conversion applies.
TYPE_ONLY_VERSIONS = {("Identity", 19): 16, ("Identity", 21): 16, ("Constant", 19): 13, ("Constant", 21): 13,
                      ("Reshape", 19): 14, ("Reshape", 21): 14, ("Cast", 19): 13, ("Cast", 21): 13,
                      ("Shape", 19): 15, ("Shape", 21): 15, ("Unsqueeze", 21): 13, ("Transpose", 21): 13,
                      ("Flatten", 21): 13, ("ConstantOfShape", 20): 9, ("ConstantOfShape", 21): 9}
# Reductions whose axes became an input at opset 18 (ReduceMax/Min again at 20, for bool and empty sets)
REDUCE_18 = {"ReduceMax": (18, 20), "ReduceMin": (18, 20), "ReduceMean": (18,), "ReduceL1": (18,),
             "ReduceL2": (18,), "ReduceLogSum": (18,), "ReduceLogSumExp": (18,), "ReduceProd": (18,),
             "ReduceSumSquare": (18,)}


def _constant_input(node, graph, index: int):
    """(True, value as a tensor) for an input the graph fixes (initializer or Constant node), (True, None) for an
    absent optional input, (False, None) for one computed in the graph."""
    if len(node.input_values) <= index or not node.input_values[index]:
        return True, None
    name = node.input_values[index]
    if name in graph.initializers:
        return True, graph.initializers[name].to_torch()
    try:
        producer, _ = graph.value_as_node_output(name)
    except KeyError:
        return False, None
    if producer.operation_type == "Constant" and "value" in producer.attributes:
        return True, producer.attributes["value"].to_torch()
    return False, None


def _attribute(node, name: str, default):
    return node.attributes.get(name, default)


def register() -> None:
    """Add streamdream's converters to onnx2torch's registry (once per process)."""
    global _registered
    if _registered:
        return
    from onnx import defs
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, onnx_mapping_from_node

    def result(node, module):
        return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node=node))

    def pad_converter(node, graph):
        mode = _attribute(node, "mode", "constant")
        if len(node.input_values) == 1:
            # Pad-1 and Pad-2: pads (Pad-1: paddings) and value are attributes
            pads = _attribute(node, "pads", _attribute(node, "paddings", None))
            if pads is None:
                raise NotImplementedError(f"node {node.name!r}: Pad without pads")
            return result(node, Pad(mode, [int(p) for p in pads], float(_attribute(node, "value", 0.0))))
        fixed = [_constant_input(node, graph, i) for i in (1, 2, 3)]
        if all(known for known, _ in fixed):
            pads, value, axes = (v for _, v in fixed)
            module = Pad(mode, [int(p) for p in pads.tolist()],
                         float(value) if value is not None and value.numel() else 0.0,
                         [int(a) for a in axes.tolist()] if axes is not None else None)
            return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
                inputs=node.input_values[:1], outputs=node.output_values))
        return result(node, Pad(mode))

    # onnx2torch's Pad takes reflect and edge on the last axes of a rank 3-5 tensor only, and no wrap: replace it
    for version in sorted({s.since_version for s in defs.get_all_schemas_with_history()
                           if s.name == "Pad" and s.domain == ""}):
        _CONVERTER_REGISTRY[OperationDescription(defs.ONNX_DOMAIN, "Pad", version)] = pad_converter

    def reduce_converter(node, graph):
        known, axes = _constant_input(node, graph, 1)
        module = Reduce(node.operation_type, bool(_attribute(node, "keepdims", 1)),
                        bool(_attribute(node, "noop_with_empty_axes", 0)),
                        [int(a) for a in axes.tolist()] if axes is not None else None)
        if known:
            return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
                inputs=node.input_values[:1], outputs=node.output_values))
        return result(node, module)

    for op, versions in REDUCE_18.items():
        for version in versions:
            _CONVERTER_REGISTRY.setdefault(OperationDescription(defs.ONNX_DOMAIN, op, version), reduce_converter)

    for (op, version), same_as in TYPE_ONLY_VERSIONS.items():
        known = _CONVERTER_REGISTRY.get(OperationDescription(defs.ONNX_DOMAIN, op, same_as))
        if known is not None:
            _CONVERTER_REGISTRY.setdefault(OperationDescription(defs.ONNX_DOMAIN, op, version), known)

    def recurrent_converter(node, graph):
        kind = node.operation_type
        fixed = {}
        for index, name in ((1, "W"), (2, "R"), (3, "B"), (7, "P")):
            known, value = _constant_input(node, graph, index)
            if not known:
                raise NotImplementedError(f"node {node.name!r}: {kind} whose {name} is computed in the graph")
            fixed[name] = value.float() if value is not None else None
        dirs = fixed["W"].shape[0]
        defaults = ["Sigmoid", "Tanh", "Tanh"] if kind == "LSTM" else ["Sigmoid", "Tanh"]
        names = list(_attribute(node, "activations", defaults * dirs))
        alphas, betas = list(_attribute(node, "activation_alpha", [])), list(_attribute(node, "activation_beta", []))
        functions = []
        for name in names:  # alpha/beta are listed for the activations that take them, in order
            takes = name in ("HardSigmoid", "LeakyRelu")
            alpha = alphas.pop(0) if takes and alphas else None
            beta = betas.pop(0) if name == "HardSigmoid" and betas else None
            functions.append(_activation(name, alpha, beta))
        per = len(defaults)
        activations = [functions[d * per:(d + 1) * per] for d in range(dirs)]
        clip = _attribute(node, "clip", None)
        outputs = len(node.output_values)
        module = Recurrent(kind, fixed["W"], fixed["R"], fixed["B"], fixed["P"],
                           _attribute(node, "direction", "forward"), int(_attribute(node, "layout", 0)), activations,
                           float(clip) if clip is not None else None, bool(_attribute(node, "linear_before_reset", 0)),
                           bool(_attribute(node, "input_forget", 0)), outputs)
        inputs = [node.input_values[i] if len(node.input_values) > i else "" for i in (0, 4, 5, 6)]
        inputs = inputs[:1 + (kind == "LSTM") * 3 + (kind == "GRU") * 2]
        while inputs and inputs[-1] == "":
            inputs.pop()
        return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
            inputs=tuple(inputs), outputs=node.output_values))

    for op, versions in (("LSTM", (7, 14, 22)), ("GRU", (7, 14, 22))):
        for version in versions:  # 7: no layout; 22: more element types
            _CONVERTER_REGISTRY.setdefault(OperationDescription(defs.ONNX_DOMAIN, op, version), recurrent_converter)

    def clip_converter(node, graph):
        (low_known, low), (high_known, high) = (_constant_input(node, graph, i) for i in (1, 2))
        module = Clip(float(low) if low_known and low is not None else None,
                      float(high) if high_known and high is not None else None)
        inputs = [node.input_values[0], "" if low_known else node.input_values[1],
                  "" if high_known else node.input_values[2]]
        while inputs[-1] == "":
            inputs.pop()
        return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
            inputs=tuple(inputs), outputs=node.output_values))

    # onnx2torch's Clip takes bounds from initializers only; torch.onnx writes clamp's as Constant nodes
    for version in (11, 12, 13):
        _CONVERTER_REGISTRY[OperationDescription(defs.ONNX_DOMAIN, "Clip", version)] = clip_converter

    @add_converter(operation_type="STFT", version=17)
    def _stft(node, graph):
        fixed = [_constant_input(node, graph, i) for i in (1, 2, 3)]
        (step_known, step), (window_known, window), (length_known, length) = fixed
        if not (step_known and length_known) or step is None:
            raise NotImplementedError(f"node {node.name!r}: STFT whose frame step or length is computed in the graph")
        shape = graph.value_info.get(node.input_values[0])
        dims = shape.type.tensor_type.shape.dim if shape is not None else []
        if len(dims) == 3 and dims[-1].HasField("dim_value") and dims[-1].dim_value == 2:
            raise NotImplementedError(f"node {node.name!r}: STFT of a complex signal")
        module = RealSTFT(int(step), int(length) if length is not None else None,
                          bool(_attribute(node, "onesided", 1)), window.float() if window is not None else None)
        if window is None and length is None:
            raise NotImplementedError(f"node {node.name!r}: STFT without a window or a frame length")
        inputs = node.input_values[:1] + ((node.input_values[2],) if not window_known else ())
        return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
            inputs=inputs, outputs=node.output_values))

    @add_converter(operation_type="Gelu", version=20)
    def _gelu(node, graph):
        approximate = _attribute(node, "approximate", "none")
        if approximate not in ("none", "tanh"):
            raise NotImplementedError(f"node {node.name!r}: Gelu with approximate={approximate!r}")
        return result(node, Gelu(approximate))

    @add_converter(operation_type="GlobalMaxPool", version=1)
    def _global_max_pool(node, graph):
        return result(node, GlobalMaxPool())

    @add_converter(operation_type="ThresholdedRelu", version=10)
    def _thresholded_relu(node, graph):
        return result(node, ThresholdedRelu(float(_attribute(node, "alpha", 1.0))))

    def dft_converter(version):
        def convert_dft(node, graph):
            if int(_attribute(node, "inverse", 0)):
                raise NotImplementedError(f"node {node.name!r}: DFT with inverse=1")
            (length_known, length), (axis_known, axis) = (_constant_input(node, graph, i) for i in (1, 2))
            if not (length_known and axis_known):
                raise NotImplementedError(f"node {node.name!r}: DFT whose dft_length or axis is computed in the graph")
            # DFT-17: axis an attribute, default 1; DFT-20: an input, default -2 (the last axis of the signal)
            if version < 20:
                axis = int(_attribute(node, "axis", 1))
            else:
                axis = int(axis) if axis is not None else -2
            module = RealDFT(axis, bool(_attribute(node, "onesided", 0)), int(length) if length is not None else None)
            return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
                inputs=node.input_values[:1], outputs=node.output_values))
        return convert_dft

    for version in (17, 20):
        add_converter(operation_type="DFT", version=version)(dft_converter(version))

    # every converter, onnx2torch's and ours, says which node it failed on (model.convert makes that one line)
    for key, converter in list(_CONVERTER_REGISTRY.items()):
        _CONVERTER_REGISTRY[key] = _naming(converter)
    _registered = True


def _naming(converter):
    """`converter`, raising NodeConversionError (the node and the cause) instead of whatever it raises."""
    if getattr(converter, "_names_the_node", False):
        return converter

    def named(node, graph):
        try:
            return converter(node, graph)
        except Exception as exc:
            raise NodeConversionError(node.proto, exc) from exc

    named._names_the_node = True
    named.__wrapped__ = converter
    return named


def check_convertible(proto, model_name: str, path=None) -> None:
    """Refuse, naming the operator and the node, before onnx2torch fails somewhere inside."""
    from onnx import defs
    from onnx2torch.node_converters.registry import get_converter

    register()
    opsets = {entry.domain or defs.ONNX_DOMAIN: entry.version for entry in proto.opset_import}
    for index, node in enumerate(proto.graph.node):
        domain = node.domain or defs.ONNX_DOMAIN
        try:
            get_converter(node.op_type, opsets.get(domain, opsets.get(defs.ONNX_DOMAIN, 1)), domain)
        except NotImplementedError:
            where = f"node {node.name!r}" if node.name else f"node #{index} (unnamed, output {node.output[0]!r})"
            raise ModelError(f"{model_name}: {where} uses operator {node.op_type} "
                             f"({domain or 'ai.onnx'} opset {opsets.get(domain, '?')}), which streamdream cannot run; "
                             "re-export with another opset or without it, or open an issue with "
                             f"`streamdream models info {path or model_name} --json` attached") from None
