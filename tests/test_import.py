"""Models shaped like real exports (tf2onnx, opset-17 DFT) import with ONNX Runtime parity and dream."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from conftest import music_clip
from streamdream.params import Params
from streamdream.dreaming.converters import register
from streamdream.dreaming.dreamer import Dreamer
from streamdream.dreaming.model import annotate, check_annotation, read_model_info
from streamdream.errors import ModelError
from harness.tf2onnx_like import CLASSES, FIXTURES, RATE

LABELS = ["a", "b", "c", "d"][:CLASSES]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Each fixture as the user's file, and annotated (view waveform at 16 kHz, labels, layers)."""
    root = tmp_path_factory.mktemp("tf2onnx")
    out = {}
    for name, build in FIXTURES.items():
        proto, layers = build()
        bare = root / f"{name}.onnx"
        onnx.save(proto, str(bare))
        out[name] = annotate(bare, root / f"{name}.annotated.onnx", "waveform", {"rate_hz": RATE}, LABELS, layers)
    return out


@pytest.mark.parametrize("name", list(FIXTURES))
def test_fixture_matches_onnx_runtime_and_dreams(exported, name):
    info = exported[name]
    loaded = check_annotation(info)
    assert loaded.parity_error <= 1e-4
    window = music_clip(48000, 1.0, channels=1)
    # small steps: random weights behind a log front end curve sharply (1e-3 of the level overshoots)
    # shape=0: the plain gradient, so the score must rise (a shaped step only climbs to first order)
    params = Params(model=str(info.path), target="b", steps=3, octaves=1, jitter_ms=0.0, step_size=0.001, shape=0.0)
    dreamer = Dreamer(params, 48000, 1, window.shape[1])
    module = dreamer.loaded.module

    def score_b(w):
        with torch.no_grad():
            scores = module(dreamer.view(torch.from_numpy(w)))
        return float(scores.movedim(info.class_axis, -1).reshape(-1, CLASSES).mean(0)[1])

    dreamed = dreamer.dream_window(window, 0)
    assert np.all(np.isfinite(dreamed)) and score_b(dreamed) > score_b(window)


def single_node_model(op, shape, out_shape, opset=17, inits=(), extra_inputs=(), **attrs):
    node = helper.make_node(op, ["x", *extra_inputs], ["y"], name=f"the_{op.lower()}", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@pytest.mark.parametrize("case", ["GlobalMaxPool", "ThresholdedRelu", "DFT-onesided", "DFT-full-padded"])
def test_own_converters_match_onnx_runtime(case):
    from onnx2torch import convert

    register()
    x = np.random.default_rng(3).standard_normal((2, 3, 50, 1)).astype(np.float32)
    if case == "GlobalMaxPool":
        proto = single_node_model("GlobalMaxPool", [2, 3, 50, 1], [2, 3, 1, 1])
    elif case == "ThresholdedRelu":
        proto = single_node_model("ThresholdedRelu", [2, 3, 50, 1], [2, 3, 50, 1], alpha=0.7)
    elif case == "DFT-onesided":
        proto = single_node_model("DFT", [2, 3, 50, 1], [2, 3, 26, 2], axis=2, onesided=1)
    else:
        length = onnx.numpy_helper.from_array(np.array(64, dtype=np.int64), "n")
        proto = single_node_model("DFT", [2, 3, 50, 1], [2, 3, 64, 2], inits=[length], extra_inputs=["n"], axis=2)
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = convert(proto)(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_inverse_dft_is_refused_naming_the_node(tmp_path):
    proto = single_node_model("DFT", [1, 4000, 1], [1, 4000, 2], axis=1, inverse=1)
    path = tmp_path / "idft.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="node 'the_dft': DFT with inverse=1"):
        annotate(path, tmp_path / "out.onnx", "waveform", {"rate_hz": RATE})
    assert not (tmp_path / "out.onnx").exists()


def test_missing_operator_error_names_op_and_node(tmp_path):
    proto, _ = FIXTURES["nhwc-transposes"]()
    for node in proto.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Shrink"  # an operator neither onnx2torch nor streamdream converts
    path = tmp_path / "shrink.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=r"shrink.onnx: node 'model/conv/Relu' uses operator Shrink \(ai.onnx opset 13\)"):
        annotate(path, tmp_path / "out.onnx", "waveform", {"rate_hz": RATE})
    assert read_model_info(path).view is None
