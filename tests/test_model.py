import onnx
import pytest
import torch
from onnx import TensorProto, helper

from conftest import run_cli
from streamdream.dreaming.model import (convert, inline_initializer_identities, layer_catalogue, read_model_info,
                                     view_input_shape)
from streamdream.errors import ModelError, ParameterError


def test_metadata_is_read(mel_model):
    info = read_model_info(mel_model)
    assert info.view == "mel"
    assert info.labels == ["piano", "brass", "drums", "voice"]
    assert info.front.n_mels == 32
    assert len(info.recommended) == 3 and info.default_layer == info.recommended[1].name


def test_export_dedup_identity_nodes_are_inlined(mel_model):
    proto = onnx.load(str(mel_model))
    identities = [n for n in proto.graph.node if n.op_type == "Identity"]
    # the fixture's equal zero biases make torch.onnx.export emit Identity nodes: the trap is present
    assert identities
    assert inline_initializer_identities(proto) == len(identities)
    assert not [n for n in proto.graph.node if n.op_type == "Identity"]


def test_conversion_matches_onnx_runtime(mel_model):
    info = read_model_info(mel_model)
    shape = view_input_shape(info, "mel", 16000, 16000)
    loaded = convert(info, [info.recommended[0].name, "logits"], shape)
    assert loaded.parity_error <= 1e-4
    out = loaded.module(torch.randn(shape))
    assert out[0].shape[1] == 8 and out[1].shape == (1, 4)


def test_layer_catalogue_lists_shapes_for_a_9s_window(mel_model):
    info = read_model_info(mel_model)
    layers = {layer.name: layer for layer in layer_catalogue(info, "mel")}
    first = layers[info.recommended[0].name]
    assert first.shape == (1, 8, 32, 901) and first.channels == 8 and first.description == "stage 1"
    assert layers["logits"].shape == (1, 4)


def test_unknown_layer_name_is_refused(mel_model):
    info = read_model_info(mel_model)
    with pytest.raises(ParameterError, match="no tensor named 'nope'"):
        convert(info, ["nope"], [1, 1, 32, 50])


def _save(proto, path):
    onnx.save(proto, str(path))
    return path


def test_not_onnx_is_refused(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not a protobuf at all \x00\xff" * 10)
    with pytest.raises(ModelError, match="not a readable ONNX model|holds no ONNX graph"):
        read_model_info(path)


def test_missing_model_is_refused(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        read_model_info(tmp_path / "absent.onnx")


def test_wrong_input_rank_is_refused(tmp_path):
    conv = torch.nn.Conv3d(1, 4, 3)
    path = tmp_path / "conv3d.onnx"
    torch.onnx.export(conv, (torch.randn(1, 1, 8, 8, 8),), str(path), input_names=["input"], dynamo=False)
    with pytest.raises(ModelError, match="has rank 5; streamdream takes a rank-4"):
        read_model_info(path)


def test_rank_3_input_is_a_waveform_for_a_spectrogram_view_it_is_refused(tmp_path):
    conv = torch.nn.Conv1d(1, 4, 3)
    path = tmp_path / "conv1d.onnx"
    torch.onnx.export(conv, (torch.randn(1, 1, 64),), str(path), input_names=["input"], dynamo=False)
    assert read_model_info(path).view is None  # readable: `models info` can describe it
    with pytest.raises(ModelError, match="rank-3 input, not the rank-4 input of the mel view.*annotate"):
        read_model_info(path, view="mel")


def test_unsupported_operator_is_refused(tmp_path):
    node = helper.make_node("Hardmax", ["input"], ["out"], axis=1, name="argmax_head")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 8, 8])])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "hardmax.onnx")
    info = read_model_info(path, view="mel")
    with pytest.raises(ModelError, match="hardmax.onnx: node 'argmax_head' uses operator Hardmax "
                                         r"\(ai.onnx opset 17\), which streamdream cannot run"):
        convert(info, ["out"], [1, 1, 8, 8])


def test_model_failing_parity_is_refused(tmp_path):
    # Dropout with training_mode=true: ONNX Runtime drops values at random, the torch
    # conversion (inference) keeps them all, so the two disagree.
    ratio = helper.make_tensor("ratio", TensorProto.FLOAT, [], [0.5])
    training = helper.make_tensor("training", TensorProto.BOOL, [], [True])
    node = helper.make_node("Dropout", ["input", "ratio", "training"], ["out"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 8, 8])],
                              initializer=[ratio, training])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "dropout.onnx")
    info = read_model_info(path, view="mel")
    with pytest.raises(ModelError, match="differs from ONNX Runtime"):
        convert(info, ["out"], [1, 1, 8, 8])


def test_models_info_cli_prints_view_labels_and_layers(mel_model, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    out = run_cli("models", "info", mel_model)
    assert out.returncode == 0, out.stderr
    assert "view: mel" in out.stdout
    assert "piano, brass, drums, voice" in out.stdout
    assert "1x8x32x901" in out.stdout and "stage 2 (default)" in out.stdout
    assert "44100 Hz (n_fft 2048, hop 441)" in out.stdout


def test_image_model_without_metadata_needs_a_view(image_model):
    info = read_model_info(image_model)
    assert info.view is None and info.image_hw == (64, 64)
    assert read_model_info(image_model, view="raw-image").view == "raw-image"


def test_the_shipped_model_converts_and_hears_the_demo_clip_as_its_card_says():
    # the conversion the whole program depends on, on the very file users get (onnx2torch is pinned)
    import soundfile as sf

    from streamdream.data import DEMO_CLIP, shipped_path
    from streamdream.dreaming.classify import classify

    info = read_model_info(None)
    assert info.path.parent.name == "data" and info.view == "mel" and len(info.labels) == 18
    shape = view_input_shape(info, "mel", 48000, 9 * 48000)
    outputs = [layer.name for layer in info.recommended] + [info.output_names[0]]
    loaded = convert(info, outputs, shape)
    assert loaded.parity_error <= 1e-4
    got = loaded.module(torch.randn(shape))
    assert got[-1].shape == (1, 18)
    audio, rate = sf.read(shipped_path(DEMO_CLIP), dtype="float32", always_2d=True)
    probs = classify(audio.T, rate, info=info)
    # models/MODEL_CARD.md: the demo clip is heard "mostly as bass, 19%" (the robust model)
    assert max(probs, key=probs.get) == "bass" and 0.13 < probs["bass"] < 0.25
