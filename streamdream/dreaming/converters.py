"""ONNX operators onnx2torch cannot convert, converted here, and a check that names what is left.

Exported audio models (tf2onnx, torch.onnx with an in-graph STFT) use a few operators the
onnx2torch release we run has no converter for. Each one below is a small torch module
registered in onnx2torch's own registry, so the rest of the conversion is unchanged; each is
tested against ONNX Runtime in tests/test_import.py.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError

_registered = False


class GlobalMaxPool(nn.Module):
    """(N, C, *spatial) -> (N, C, 1, ...): the maximum over every spatial axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=list(range(2, x.dim())), keepdim=True)


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

    def forward(self, x: torch.Tensor, dft_length: torch.Tensor | None = None) -> torch.Tensor:
        # dft_length is an initializer, read once at conversion (self.length); onnx2torch still passes it
        signal = x[..., 0]
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        if self.onesided:
            spec = torch.fft.rfft(signal, n=self.length, dim=axis)
        else:
            spec = torch.fft.fft(signal, n=self.length, dim=axis)
        return torch.stack([spec.real, spec.imag], dim=-1)


def _attribute(node, name: str, default):
    return node.attributes.get(name, default)


def register() -> None:
    """Add streamdream's converters to onnx2torch's registry (once per process)."""
    global _registered
    if _registered:
        return
    from onnx2torch.node_converters.registry import add_converter
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    def result(node, module):
        return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node=node))

    @add_converter(operation_type="GlobalMaxPool", version=1)
    def _global_max_pool(node, graph):
        return result(node, GlobalMaxPool())

    @add_converter(operation_type="ThresholdedRelu", version=10)
    def _thresholded_relu(node, graph):
        return result(node, ThresholdedRelu(float(_attribute(node, "alpha", 1.0))))

    @add_converter(operation_type="DFT", version=17)
    def _dft(node, graph):
        if int(_attribute(node, "inverse", 0)):
            raise NotImplementedError(f"node {node.name!r}: DFT with inverse=1")
        length = None
        if len(node.input_values) > 1 and node.input_values[1]:
            if node.input_values[1] not in graph.initializers:
                raise NotImplementedError(f"node {node.name!r}: DFT whose dft_length is computed in the graph")
            length = int(graph.initializers[node.input_values[1]].to_torch())
        axis = int(_attribute(node, "axis", 1))
        return result(node, RealDFT(axis, bool(_attribute(node, "onesided", 0)), length))

    _registered = True


def check_convertible(proto, model_name: str) -> None:
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
                             "re-export without it, or cut the model before it") from None
