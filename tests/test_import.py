"""Models shaped like real exports (tf2onnx, torch.onnx, opset-17 DFT) import with ONNX Runtime parity and dream;
what cannot be converted is one line that says what to do."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from conftest import music_clip
from streamdream.cli import main
from streamdream.params import Params
from streamdream.dreaming.converters import register
from streamdream.dreaming.dreamer import Dreamer
from streamdream.dreaming.model import annotate, check_annotation, read_model_info
from streamdream.errors import ModelError
from harness.tf2onnx_like import (CLASSES, FIXTURES, NOTE_NAMES, PITCH_RATE, PITCH_SAMPLES, RATE,
                                   pitch_waveform)

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


@pytest.mark.parametrize("case", ["GlobalMaxPool", "ThresholdedRelu", "DFT-onesided", "DFT-full-padded",
                                  "DFT-20-axis-input", "DFT-20-default-axis"])
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
    elif case == "DFT-20-axis-input":  # opset 20: the axis is an input
        axis = onnx.numpy_helper.from_array(np.array(1, dtype=np.int64), "axis")
        proto = single_node_model("DFT", [2, 3, 50, 1], [2, 2, 50, 2], opset=20, inits=[axis],
                                  extra_inputs=["", "axis"], onesided=1)
    elif case == "DFT-20-default-axis":  # opset 20 without an axis: -2, the last axis of the signal
        proto = single_node_model("DFT", [2, 3, 50, 1], [2, 3, 50, 2], opset=20)
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


# --- any model means the models people have (issue 36) ---

def run_main(capsys, *argv):
    """The command line in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def pitch_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("pitch")
    proto, layers = pitch_waveform()
    path = root / "pitch.onnx"
    onnx.save(proto, str(path))
    notes = root / "notes.txt"
    notes.write_text("\n".join(NOTE_NAMES) + "\n")
    return path, notes, layers


def test_the_issue_command_annotates_a_tf2onnx_pitch_model(pitch_model, tmp_path, capsys):
    """The command of issue 36 on a graph shaped like the model it failed on (reflect Pad on the samples axis)."""
    path, _, _ = pitch_model
    code, out, err = run_main(capsys, "models", "annotate", path, tmp_path / "out.onnx", "--view", "waveform",
                              "--rate", "22050", "--class-axis", "2", "--multi-label")
    assert code == 0, err
    info = read_model_info(tmp_path / "out.onnx")
    assert (info.label_output, info.front.rate_hz, info.layout) == ("Identity_1:0", PITCH_RATE, "bsc")


def test_output_chooses_what_the_labels_describe_and_the_dream_pushes_it(pitch_model, tmp_path, capsys):
    path, notes, layers = pitch_model
    out = tmp_path / "onsets.onnx"
    code, _, err = run_main(capsys, "models", "annotate", path, out, "--view", "waveform", "--rate", "22050",
                            "--class-axis", "2", "--multi-label", "--labels-file", notes, "--output", "Identity_2:0",
                            "--layers", ",".join(layers))
    assert code == 0, err
    info = read_model_info(out)
    assert info.label_output == "Identity_2:0" and len(info.labels) == 88
    # parity of every output the dream reads (the two layers and the onsets), against ONNX Runtime
    loaded = check_annotation(info)
    assert loaded.parity_error <= 1e-4 and loaded.outputs[-1] == "Identity_2:0"
    assert loaded.output_shapes["Identity_2:0"] == (1, PITCH_SAMPLES // 256 + 1, 88)

    window = music_clip(48000, 1.0, channels=1)
    params = Params(model=str(out), target="A4", steps=3, octaves=1, jitter_ms=0.0, step_size=0.001, shape=0.0)
    dreamer = Dreamer(params, 48000, 1, window.shape[1])
    assert dreamer.objective.logits == "Identity_2:0"
    a4 = NOTE_NAMES.index("A4")

    def onset_a4(w):
        with torch.no_grad():
            return float(dreamer.loaded.module(dreamer.view(torch.from_numpy(w)))[..., a4].mean())

    dreamed = dreamer.dream_window(window, 0)
    assert np.all(np.isfinite(dreamed)) and onset_a4(dreamed) > onset_a4(window)

    code, text, err = run_main(capsys, "models", "info", out, "--json")
    assert code == 0, err
    described = json.loads(text)
    frames = PITCH_SAMPLES // 256 + 1
    # every output in graph order with its shape for one model input, the chosen one marked
    assert [(o["name"], o["shape"], o["labels"]) for o in described["outputs"]] == [
        ("Identity_1:0", [1, frames, 88], False), ("Identity_2:0", [1, frames, 88], True),
        ("Identity:0", [1, frames, 264], False)]
    assert described["input"] == {"name": "audio:0", "shape": [None, PITCH_SAMPLES, 1], "layout": "bsc"}
    assert described["opsets"] == {"ai.onnx": 15} and described["operators"]["Pad"] == 1
    assert {layer["name"] for layer in described["layers"] if layer["recommended"]} == set(layers)
    code, text, _ = run_main(capsys, "models", "info", out)
    assert code == 0 and f"Identity:0 [1, {frames}, 264]" in text and f"Identity_2:0 [1, {frames}, 88] (labels)" in text


@pytest.mark.parametrize("output, message", [
    ("Identity:0", "88 labels given but axis 2 of 'Identity:0' holds 264 classes"),
    ("nope", "pitch.onnx has no output named 'nope'; its outputs: Identity_1:0, Identity_2:0, Identity:0"),
])
def test_a_wrong_output_is_one_line_and_writes_nothing(pitch_model, tmp_path, capsys, output, message):
    path, notes, _ = pitch_model
    code, _, err = run_main(capsys, "models", "annotate", path, tmp_path / "x.onnx", "--view", "waveform", "--rate",
                            "22050", "--class-axis", "2", "--labels-file", notes, "--output", output)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.onnx").exists()


def resize_on_channels(path):
    """A graph ONNX Runtime runs but onnx2torch's Resize cannot (it scales the channel axis): fails at the first run."""
    node = helper.make_node("Resize", ["frames", "", "scales"], ["y"], name="model/upsample/Resize", mode="nearest")
    to_frames = helper.make_node("Transpose", ["x"], ["frames"], name="model/transpose", perm=[0, 2, 1])
    scales = onnx.numpy_helper.from_array(np.array([1.0, 2.0, 1.0], dtype=np.float32), "scales")
    graph = helper.make_graph([to_frames, node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4000, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[scales])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_a_failure_in_the_converted_module_is_one_line_naming_node_operator_opset(tmp_path, capsys):
    path = resize_on_channels(tmp_path / "resize.onnx")
    args = ["models", "annotate", path, tmp_path / "out.onnx", "--view", "waveform", "--rate", "16000"]
    code, _, err = run_main(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "resize.onnx: node 'model/upsample/Resize' (operator Resize, ai.onnx opset 13) fails in torch" in err
    assert f"re-export with another opset, or open an issue with `streamdream models info {path} --json` attached" in err
    assert not (tmp_path / "out.onnx").exists()
    # the report the message asks for exists for this very model
    code, text, err = run_main(capsys, "models", "info", path, "--json")
    assert code == 0 and json.loads(text)["operators"] == {"Resize": 1, "Transpose": 1}, err
    # --debug: the traceback, down to what onnx2torch raised
    with pytest.raises(ModelError) as raised:
        main(["--debug", *map(str, args)])
    assert isinstance(raised.value.__cause__, NotImplementedError)
    assert "cannot scale channel or batch dimensions" in str(raised.value.__cause__)


def _refused_annotation(proto, path, capsys) -> str:
    """`models annotate` of `proto` saved at `path`, as a 16-kHz waveform model: refused on one line, exit 2."""
    onnx.save(proto, str(path))
    code, _, err = run_main(capsys, "models", "annotate", path, path.with_name("out.onnx"), "--view", "waveform",
                            "--rate", "16000")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_a_converter_failure_is_one_line_naming_node_operator_opset(tmp_path, capsys):
    err = _refused_annotation(single_node_model("DFT", [1, 4000, 1], [1, 4000, 2], axis=1, inverse=1),
                              tmp_path / "idft.onnx", capsys)
    assert ("idft.onnx: node 'the_dft' (operator DFT, ai.onnx opset 17) cannot be converted to torch "
            "(NotImplementedError: node 'the_dft': DFT with inverse=1); re-export with another opset") in err


def test_an_operator_without_converter_says_what_to_do(tmp_path, capsys):
    proto, _ = FIXTURES["nhwc-transposes"]()
    for node in proto.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Shrink"
    path = tmp_path / "shrink.onnx"
    onnx.save(proto, str(path))
    code, _, err = run_main(capsys, "models", "annotate", path, tmp_path / "out.onnx", "--view", "waveform",
                            "--rate", "16000")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"open an issue with `streamdream models info {path} --json` attached" in err


def recurrent_model(op, hidden, direction, inputs=8, steps=7, batch=3, initial=True, **attrs):
    rng = np.random.default_rng([hidden, len(direction)])  # the same weights whatever the attributes
    dirs = 2 if direction == "bidirectional" else 1
    gates = 4 if op == "LSTM" else 3
    inits = [onnx.numpy_helper.from_array((rng.standard_normal(shape) * 0.4).astype(np.float32), name)
             for name, shape in (("W", [dirs, gates * hidden, inputs]), ("R", [dirs, gates * hidden, hidden]),
                                 ("B", [dirs, 2 * gates * hidden]), ("h0", [dirs, batch, hidden]),
                                 ("c0", [dirs, batch, hidden]), ("P", [dirs, 3 * hidden]))]
    names = ["x", "W", "R", "B", "", "h0" if initial else ""]
    if op == "LSTM":
        names += ["c0" if initial else "", "P" if attrs.pop("peepholes", False) else ""]
    while names[-1] == "":
        names.pop()
    outputs = ["y", "y_h"] + (["y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outputs, name=f"the_{op.lower()}", hidden_size=hidden, direction=direction,
                            **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, inputs])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)


@pytest.mark.parametrize("op, direction, attrs", [
    ("LSTM", "forward", {}), ("LSTM", "reverse", {"peepholes": True}), ("LSTM", "bidirectional", {"clip": 0.7}),
    ("LSTM", "forward", {"input_forget": 1, "peepholes": True}),
    ("LSTM", "bidirectional", {"activations": ["HardSigmoid", "Tanh", "Tanh"] * 2, "activation_alpha": [0.25, 0.3],
                               "activation_beta": [0.4, 0.6]}),
    ("GRU", "forward", {}), ("GRU", "reverse", {"linear_before_reset": 1}),
    ("GRU", "bidirectional", {"linear_before_reset": 1, "clip": 0.5}),
    ("GRU", "bidirectional", {"activations": ["HardSigmoid", "Relu"] * 2}),
])
def test_lstm_and_gru_match_onnx_runtime_with_every_output(op, direction, attrs):
    from onnx2torch import convert

    register()
    proto = recurrent_model(op, 5, direction, **attrs)
    x = np.random.default_rng(1).standard_normal((7, 3, 8)).astype(np.float32)
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = convert(proto)(torch.from_numpy(x))
    assert len(got) == len(expected)
    for ours, ref in zip(got, expected):
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_batch_major_layout_equals_the_sequence_major_one(op):
    """ONNX Runtime runs no layout=1 RNN: the same weights in layout 0 on the transposed input are the reference."""
    from onnx2torch import convert

    register()
    x = np.random.default_rng(2).standard_normal((7, 3, 8)).astype(np.float32)
    reference = ort.InferenceSession(recurrent_model(op, 5, "bidirectional").SerializeToString(),
                                     providers=["CPUExecutionProvider"]).run(None, {"x": x})
    batch_major = recurrent_model(op, 5, "bidirectional", initial=False, layout=1)
    batch_major.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7, 8]))
    zero_state = recurrent_model(op, 5, "bidirectional", initial=False)
    expected = ort.InferenceSession(zero_state.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = convert(batch_major)(torch.from_numpy(x.transpose(1, 0, 2).copy()))
    np.testing.assert_allclose(got[0].numpy(), expected[0].transpose(2, 0, 1, 3), rtol=1e-5, atol=1e-5)  # Y
    np.testing.assert_allclose(got[1].numpy(), expected[1].transpose(1, 0, 2), rtol=1e-5, atol=1e-5)     # Y_h
    assert not np.allclose(reference[0], expected[0])  # the initial state mattered: the comparison can tell


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceMean", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
                                "ReduceProd", "ReduceSumSquare"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_opset_18_reductions_with_axes_as_input_match_onnx_runtime(op, keepdims):
    from onnx2torch import convert

    register()
    axes = onnx.numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "axes")
    proto = single_node_model(op, [2, 3, 4, 5], None, opset=18, inits=[axes], extra_inputs=["axes"], keepdims=keepdims)
    x = np.random.default_rng(5).uniform(0.5, 1.5, (2, 3, 4, 5)).astype(np.float32)
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = convert(proto)(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_operator_matches_onnx_runtime(approximate):
    from onnx2torch import convert

    register()
    proto = single_node_model("Gelu", [2, 50], [2, 50], opset=20, approximate=approximate)
    x = np.random.default_rng(6).standard_normal((2, 50)).astype(np.float32) * 3
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(convert(proto)(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank, onesided", [(2, 1), (3, 1), (3, 0)])
def test_stft_matches_onnx_runtime(rank, onesided):
    """STFT as torch.onnx writes torch.stft(center=False): (batch, samples) or (batch, samples, 1), a window."""
    from onnx2torch import convert

    register()
    shape = [2, 1000] + [1] * (rank - 2)
    inits = [onnx.numpy_helper.from_array(np.array(100, dtype=np.int64), "step"),
             onnx.numpy_helper.from_array(np.hanning(256).astype(np.float32), "window")]
    proto = single_node_model("STFT", shape, None, opset=17, inits=inits, extra_inputs=["step", "window"],
                              onesided=onesided)
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = convert(proto)(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape == (2, 8, 129 if onesided else 256, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("bounds", ["constant-nodes", "computed", "min-only"])
def test_clip_with_bounds_from_constant_nodes_or_the_graph_matches_onnx_runtime(bounds):
    from onnx2torch import convert

    register()
    nodes = [helper.make_node("Constant", [], ["low"], value=onnx.numpy_helper.from_array(np.array(-0.5, np.float32))),
             helper.make_node("Constant", [], ["high"], value=onnx.numpy_helper.from_array(np.array(0.7, np.float32)))]
    if bounds == "computed":  # a bound that depends on the input: only known when the model runs
        nodes.append(helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=0))
        nodes.append(helper.make_node("Add", ["mean", "low"], ["low2"]))
    inputs = {"constant-nodes": ["x", "low", "high"], "computed": ["x", "low2", "high"], "min-only": ["x", "low"]}
    nodes.append(helper.make_node("Clip", inputs[bounds], ["y"], name="the_clip"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 40])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    x = np.random.default_rng(8).standard_normal((3, 40)).astype(np.float32)
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(convert(proto)(torch.from_numpy(x)).numpy(), expected)


def test_a_dft_of_a_complex_signal_is_refused_at_the_first_run_naming_the_node(tmp_path, capsys):
    # (batch, samples, re/im): stereo-shaped
    err = _refused_annotation(single_node_model("DFT", [1, 4000, 2], [1, 4000, 2], axis=1), tmp_path / "cdft.onnx",
                              capsys)
    assert ("cdft.onnx: node 'the_dft' (operator DFT, ai.onnx opset 17) fails in torch "
            "(NotImplementedError: DFT of a complex signal") in err


def test_a_tf2onnx_layer_name_ending_in_colon_zero_is_dreamed_whole(pitch_model, tmp_path, capsys):
    """tf2onnx names tensors "model/conv/Relu:0": as a default layer or a --layer it is a name, not NAME:WEIGHT."""
    path, notes, layers = pitch_model
    out = tmp_path / "layers.onnx"
    code, _, err = run_main(capsys, "models", "annotate", path, out, "--view", "waveform", "--rate", "22050",
                            "--class-axis", "2", "--multi-label", "--layers", layers[1])
    assert code == 0, err
    assert layers[1].endswith(":0")
    window = music_clip(48000, 1.0, channels=1)
    base = Params(model=str(out), steps=2, octaves=1, jitter_ms=0.0, step_size=0.001, shape=0.0)
    for layer, weight in ((None, 1.0), (layers[1], 1.0), (f"{layers[1]}:0.5", 0.5)):
        dreamer = Dreamer(base.with_changes(layer=layer), 48000, 1, window.shape[1])
        assert [entry[:2] for entry in dreamer.objective.layers] == [(layers[1], weight)]
        dreamed = dreamer.dream_window(window, 0)
        assert np.all(np.isfinite(dreamed)) and not np.array_equal(dreamed, window)
