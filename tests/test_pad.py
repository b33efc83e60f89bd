"""ONNX Pad converted here (streamdream/dreaming/converters.py), held against ONNX Runtime: every mode, every rank
1-5, every combination of axes, negative pads (cropping), pads and axes fixed or computed in the graph, opsets 2-19."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from streamdream.dreaming.converters import pad, register

MODES = ["constant", "reflect", "edge", "wrap"]
AXIS_SETS = [(rank, axes) for rank in range(1, 6) for k in range(1, rank + 1)
             for axes in itertools.combinations(range(rank), k)]


def random_pads(rng, shape, axes, mode):
    """begin/end pads in -1..3 per axis; reflect stays within what ONNX Runtime takes (at most size - 1 after a crop)."""
    begins, ends = [], []
    for axis in axes:
        begin, end = (int(v) for v in rng.integers(-1, 4, 2))
        if mode == "reflect":
            left = shape[axis] - max(-begin, 0) - max(-end, 0)
            begin, end = (min(v, left - 1) for v in (begin, end))
        begins.append(begin)
        ends.append(end)
    return begins + ends


def pad_model(shape, pads, mode, opset, axes=None, value=None, computed=False, as_constant_node=False):
    """One Pad node. pads/value/axes as initializers, as Constant nodes, or computed (Identity of an initializer);
    opset < 11: as attributes."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    if opset < 11:
        attrs = {"pads": pads, "mode": mode} | ({"value": value} if value is not None else {})
        node = helper.make_node("Pad", ["x"], ["y"], name="the_pad", **attrs)
        graph = helper.make_graph([node], "g", [x], [y])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    nodes, inits, names = [], [], ["x"]
    for name, values, dtype in (("pads", pads, np.int64), ("value", value, np.float32), ("axes", axes, np.int64)):
        if values is None:
            names.append("")
            continue
        array = np.asarray(values, dtype=dtype)
        if as_constant_node:
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name)))
        elif computed:
            inits.append(numpy_helper.from_array(array, f"{name}_init"))
            nodes.append(helper.make_node("Identity", [f"{name}_init"], [name], name=f"{name}_identity"))
        else:
            inits.append(numpy_helper.from_array(array, name))
        names.append(name)
    while names[-1] == "":
        names.pop()
    nodes.append(helper.make_node("Pad", names, ["y"], name="the_pad", mode=mode))
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def compare_with_onnx_runtime(proto, x):
    from onnx2torch import convert

    register()
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = convert(proto)(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # padding copies values: nothing to round


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rank, axes", AXIS_SETS, ids=[f"rank{r}-axes{''.join(map(str, a))}" for r, a in AXIS_SETS])
def test_every_mode_rank_and_axis_set_matches_onnx_runtime(rank, axes, mode):
    rng = np.random.default_rng([rank, *axes, MODES.index(mode)])
    shape = tuple(int(s) for s in rng.integers(3, 6, rank))
    x = rng.standard_normal(shape).astype(np.float32)
    pads = random_pads(rng, shape, axes, mode)
    # axes as given, and counted from the end for half of the cases (negative axes are ONNX too)
    given = [a - rank if (a + len(axes)) % 2 else a for a in axes]
    compare_with_onnx_runtime(pad_model(shape, pads, mode, 19, axes=given, value=0.5 if mode == "constant" else None), x)


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_pads_over_every_axis_in_older_opsets(opset, mode, rank):
    rng = np.random.default_rng([opset, rank, MODES.index(mode)])
    shape = tuple(int(s) for s in rng.integers(3, 6, rank))
    x = rng.standard_normal(shape).astype(np.float32)
    compare_with_onnx_runtime(pad_model(shape, random_pads(rng, shape, range(rank), mode), mode, opset), x)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_opset_2_pads_as_attributes(mode):
    x = np.random.default_rng(2).standard_normal((2, 4, 5)).astype(np.float32)
    # the case: reflect on a non-trailing axis of a rank-3 tensor, here with a crop on the last
    compare_with_onnx_runtime(pad_model(x.shape, [0, 2, 1, 0, 3, -1], mode, 2, value=-2.0), x)


@pytest.mark.parametrize("how", ["computed", "constant-node"])
@pytest.mark.parametrize("mode", MODES)
def test_pads_computed_in_the_graph_or_given_by_constant_nodes(how, mode):
    x = np.random.default_rng(4).standard_normal((3, 5, 4)).astype(np.float32)
    proto = pad_model(x.shape, [2, -1, 1, 1], mode, 19, axes=[1, 0], value=1.5 if mode == "constant" else None,
                      computed=how == "computed", as_constant_node=how == "constant-node")
    compare_with_onnx_runtime(proto, x)


@pytest.mark.parametrize("mode", ["reflect", "wrap"])
def test_pads_longer_than_the_axis_repeat_as_numpy_does(mode):
    """ONNX Runtime refuses a reflection longer than the axis; numpy.pad (whose rules ONNX names) repeats it."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = pad(torch.from_numpy(x), [7, 0, 2, 9], mode).numpy()
    np.testing.assert_array_equal(got, np.pad(x, ((7, 2), (0, 9)), mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_gradients_flow_through_every_mode(mode):
    """The dream differentiates the model: the backward pass of each mode, checked numerically (float64)."""
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    # a non-trailing axis padded, the last one cropped and padded
    assert torch.autograd.gradcheck(lambda t: pad(t, [3, -1, 2, 2], mode, 0.25, axes=[1, 2]), (x,))
    (grad,) = torch.autograd.grad(pad(x, [3, -1, 2, 2], mode, 0.25, axes=[1, 2]).sum(), x)
    # every element kept by the crop reaches the output at least once; the cropped column does not
    assert torch.all(grad[..., 1:] >= 1) and torch.all(grad[..., 0] == 0)
