"""ONNX models: metadata, loading through onnx2torch, parity with ONNX Runtime, layer catalogue.

A streamdream model is one `.onnx` file. Its `metadata_props` say how audio
becomes its input (keys below); a file without them (say, an image CNN from the
ONNX model zoo) is usable by naming its view and layer on the command line.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ModelError, ParameterError
from .frontend import (FrontEnd, VIEW_NAMES, WAVEFORM_LAYOUTS, frame_geometry, stft_bins, RAW_IMAGE_HEIGHT,
                       RAW_IMAGE_WIDTH)

META_VIEW = "streamdream.view"
META_FRONTEND = "streamdream.frontend"
META_LABELS = "streamdream.labels"
META_LAYERS = "streamdream.layers"  # JSON list of {"name": ONNX tensor, "description": what it adds}
META_DEFAULT_LAYER = "streamdream.default_layer"
META_OUTPUT = "streamdream.output"              # the output the labels describe (default: the first)
META_CLASS_AXIS = "streamdream.class_axis"      # axis of the labels in that output (default: the last)
META_CHANNEL_AXIS = "streamdream.channel_axis"  # axis NAME@CH picks from in every layer (default 1)
META_MULTI_LABEL = "streamdream.multi_label"    # "1": several labels can be true at once (sigmoid, not softmax)
# A layer name that is not a tensor: the labels the model hears in the input, each pushed by its
# probability (dreaming/dreamer.py). A model with labels may name it as its default layer.
HEARD = "heard"

PARITY_TOLERANCE = 1e-4
# What a user can do about a graph streamdream cannot convert; {path} is the model's file.
CONVERSION_ADVICE = ("re-export with another opset, or open an issue with `streamdream models info {path} --json` "
                     "attached")
# Activations of these ops carry features worth dreaming on.
DREAMABLE_OPS = {"Conv", "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "MaxPool", "AveragePool",
                 "BatchNormalization", "Concat", "Add", "Mul", "Clip", "HardSigmoid", "HardSwish", "Gelu",
                 "Gemm", "MatMul", "GlobalAveragePool", "LRN", "Softmax", "Flatten"}


def default_model_path() -> Path:
    """The shipped default model (package data); `STREAMDREAM_MODEL` overrides it."""
    from ..data import DEFAULT_MODEL, shipped_path

    override = os.environ.get("STREAMDREAM_MODEL")
    return Path(override) if override else shipped_path(DEFAULT_MODEL)


def model_path(spec: str | os.PathLike | None) -> Path:
    """--model: an .onnx file, or the name of a shipped model ("default", "pitch"); None is the default."""
    if spec is None:
        return default_model_path()
    path = Path(spec)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    from ..data import shipped_model_names, shipped_path

    if str(spec) in shipped_model_names():
        return shipped_path(f"{spec}.onnx")
    names = ", ".join(shipped_model_names())
    raise ModelError(f"no model file {spec!r} and no shipped model of that name; shipped models: {names}")


@dataclass
class Layer:
    name: str          # ONNX tensor name, what --layer takes
    op: str
    shape: tuple       # for one channel of a default-length window
    description: str = ""
    channel_axis: int = 1

    @property
    def channels(self) -> int:
        return int(self.shape[self.channel_axis]) if len(self.shape) >= 2 else 1


@dataclass
class ModelInfo:
    path: Path
    view: str | None           # None when the file has no streamdream metadata
    front: FrontEnd
    labels: list[str]
    recommended: list[Layer]
    default_layer: str | None
    input_name: str
    input_shape: list          # ints, or None for dynamic axes
    output_names: list[str]
    proto: object = field(repr=False, default=None)
    class_axis: int = -1       # where the labels are in the output: (batch, classes), (batch, frames, classes)...
    channel_axis: int = 1      # where NAME@CH picks its channel
    layout: str = ""           # waveform view: how the input holds batch, samples and audio channels
    multi_label: bool = False  # several labels at once (the pitch model's keys): probabilities by sigmoid
    chosen_output: str | None = None  # `models annotate --output NAME`: the output the labels describe

    @property
    def label_output(self) -> str:
        """The output the labels describe and --target pushes: the one chosen at annotation, else the first."""
        return self.chosen_output or self.output_names[0]

    @property
    def dream_layer(self) -> str | None:
        """The layer a dream without --layer or --target amplifies: the file's default, else the middle
        recommended layer."""
        return self.default_layer or (self.recommended[len(self.recommended) // 2].name if self.recommended else None)

    @property
    def layer_choices(self) -> list[str]:
        """What a layer knob, OSC or --evolve may pick: the recommended layers, then `heard` if there are labels."""
        return [layer.name for layer in self.recommended] + ([HEARD] if self.labels else [])

    @property
    def stereo_input(self) -> bool:
        """Raw images and stereo waveform models take both channels at once (mono is given as L = R)."""
        return self.view == "raw-image" or (self.view == "waveform" and self.model_channels == 2)

    @property
    def model_channels(self) -> int:
        """Audio channels a waveform model takes in one input (1 or 2)."""
        if self.layout == "bs":
            return 1
        size = self.input_shape[2] if self.layout == "bsc" else self.input_shape[1]
        return size if isinstance(size, int) and size > 0 else 1

    def label_index(self, label: str) -> int:
        lowered = [name.lower() for name in self.labels]
        if label.lower() in lowered:
            return lowered.index(label.lower())
        if label.isdigit() and (not self.labels or int(label) < len(self.labels)):
            return int(label)  # a model without labels: checked against its output width once loaded
        known = ", ".join(self.labels) if self.labels else "none (this model has no labels; use a class index)"
        raise ParameterError(f"unknown target label {label!r}; this model knows: {known}")

    @property
    def image_hw(self) -> tuple[int, int] | None:
        """Fixed (H, W) of an image model's input, or None when the model takes any size."""
        if len(self.input_shape) != 4:
            return None
        h, w = self.input_shape[2], self.input_shape[3]
        if isinstance(h, int) and isinstance(w, int) and (h, w) != (RAW_IMAGE_HEIGHT, RAW_IMAGE_WIDTH):
            return h, w
        return None


def write_metadata(proto, view: str, front: FrontEnd, labels: list[str], layers: list[dict],
                   default_layer: str | None = None, class_axis: int | None = None,
                   channel_axis: int | None = None, multi_label: bool | None = None,
                   output: str | None = None) -> None:
    """Stamp a model with what streamdream needs to know (training, `models annotate`, test fixtures)."""
    entries = {META_VIEW: view, META_FRONTEND: json.dumps(front.to_dict()), META_LABELS: json.dumps(labels),
               META_LAYERS: json.dumps(layers)}
    if default_layer:
        entries[META_DEFAULT_LAYER] = default_layer
    if class_axis is not None:
        entries[META_CLASS_AXIS] = str(class_axis)
    if channel_axis is not None:
        entries[META_CHANNEL_AXIS] = str(channel_axis)
    if multi_label is not None:
        entries[META_MULTI_LABEL] = "1" if multi_label else "0"
    if output is not None:
        entries[META_OUTPUT] = output
    keep = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value


def _read_onnx(path: Path):
    import onnx

    if not path.exists():
        raise ModelError(f"model file {path} does not exist; pass --model with an .onnx file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several kinds
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}); export it with torch.onnx.export") from exc
    if len(proto.graph.node) == 0:
        raise ModelError(f"{path} holds no ONNX graph; export the model with torch.onnx.export")
    return proto


def _dims(value_info) -> list:
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else None)
    return dims


def read_model_info(path: str | os.PathLike | None = None, view: str | None = None,
                    front_overrides: dict | None = None) -> ModelInfo:
    """Read and check an ONNX model's metadata and input; no torch conversion yet."""
    path = model_path(path)
    proto = _read_onnx(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(f"{path.name} has {len(inputs)} inputs; streamdream needs a CNN with exactly one input")
    shape = _dims(inputs[0])
    if len(shape) not in (2, 3, 4):
        raise ModelError(f"{path.name} input {inputs[0].name!r} has rank {len(shape)}; streamdream takes a rank-4 "
                         "(batch, channels, height, width) CNN input or a rank-2/3 waveform input "
                         "((batch, samples), (batch, samples, 1))")
    try:
        front = FrontEnd.from_dict(json.loads(meta[META_FRONTEND])) if META_FRONTEND in meta else FrontEnd()
        labels = json.loads(meta.get(META_LABELS, "[]"))
        channel_axis = int(meta.get(META_CHANNEL_AXIS, 1))
        class_axis = int(meta.get(META_CLASS_AXIS, -1))
        recommended = [Layer(d["name"], "", (), d.get("description", ""), int(d.get("channel_axis", channel_axis)))
                       for d in json.loads(meta.get(META_LAYERS, "[]"))]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path.name} has malformed streamdream metadata ({exc}); re-export it") from exc
    if front_overrides:
        front = FrontEnd.from_dict({**front.to_dict(), **front_overrides})
    front.validate()
    chosen_view = view or meta.get(META_VIEW)
    if chosen_view is not None and chosen_view not in VIEW_NAMES:
        raise ParameterError(f"unknown view {chosen_view!r}; choose one of {', '.join(VIEW_NAMES)}")
    info = ModelInfo(path=path, view=chosen_view, front=front, labels=list(labels), recommended=recommended,
                     default_layer=meta.get(META_DEFAULT_LAYER), input_name=inputs[0].name, input_shape=shape,
                     output_names=[o.name for o in proto.graph.output], proto=proto, class_axis=class_axis,
                     channel_axis=channel_axis, multi_label=meta.get(META_MULTI_LABEL) == "1",
                     chosen_output=meta.get(META_OUTPUT) or None)
    if info.chosen_output is not None and info.chosen_output not in info.output_names:
        raise ModelError(f"{path.name}: its metadata says the labels describe output {info.chosen_output!r}, which "
                         f"the graph does not have (outputs: {', '.join(info.output_names)}); annotate it again "
                         "with --output NAME")
    if len(shape) != 4 or chosen_view == "waveform":
        _check_waveform(info)
    return info


def waveform_layout(shape: list) -> str | None:
    """(batch, samples) -> "bs"; (batch, samples, 1|2) -> "bsc"; (batch, 1|2, samples) -> "bcs"."""
    if len(shape) == 2:
        return "bs"
    if len(shape) == 3 and shape[2] in (1, 2):
        return "bsc"
    if len(shape) == 3 and shape[1] in (1, 2):
        return "bcs"
    return None


def _check_waveform(info: ModelInfo) -> None:
    """A rank-2/3 input is a waveform: fill in its layout and length, or say how to describe it."""
    name, shape = info.path.name, info.input_shape
    if info.view not in (None, "waveform"):
        raise ModelError(f"{name} takes a rank-{len(shape)} input, not the rank-4 input of the {info.view} view; "
                         f"dream it with the waveform view (streamdream models annotate {name} OUT.onnx --view waveform ...)")
    if info.view is None:
        return  # `models info` shows what it can; Dreamer refuses it and names the annotate command
    if len(shape) == 4:
        raise ModelError(f"{name} takes a rank-4 input; the waveform view needs (batch, samples) or "
                         "(batch, samples, 1); choose mel, stft or raw-image")
    layout = info.front.layout or waveform_layout(shape)
    if layout is None or layout not in WAVEFORM_LAYOUTS or len(layout) != len(shape):
        raise ModelError(f"{name}: cannot tell samples from audio channels in input shape {shape}; "
                         f"annotate it with --layout {'|'.join(WAVEFORM_LAYOUTS)}")
    info.layout = layout
    samples = shape[layout.index("s")]
    if not info.front.input_samples:
        if not (isinstance(samples, int) and samples > 0):
            raise ModelError(f"{name} takes any number of samples; say how many it was trained on: "
                             f"streamdream models annotate {name} OUT.onnx --input-samples N")
        info.front.input_samples = samples
    elif isinstance(samples, int) and samples > 0 and samples != info.front.input_samples:
        raise ModelError(f"{name}: metadata says {info.front.input_samples} input samples but the input holds "
                         f"{samples}; re-annotate it")
    if not info.front.rate_hz:
        raise ModelError(f"{name} has no sample rate in its metadata; say what it was trained at: "
                         f"streamdream models annotate {name} OUT.onnx --rate HZ")


def inline_initializer_identities(proto) -> int:
    """Replace `Identity(initializer)` nodes by a copy of the initializer.

    torch.onnx.export deduplicates equal initializers (all-zero biases, say) and
    feeds the copies through Identity nodes; onnx2torch then looks the Conv bias up
    among the initializers and fails with KeyError. Returns how many were inlined.
    """
    graph = proto.graph
    by_name = {init.name: init for init in graph.initializer}
    inlined = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in by_name and node.output[0] not in by_name:
            clone = copy.deepcopy(by_name[node.input[0]])
            clone.name = node.output[0]
            graph.initializer.append(clone)
            by_name[clone.name] = clone
            inlined.append(node)
    for node in inlined:
        graph.node.remove(node)
    return len(inlined)


def view_input_shape(info: ModelInfo, view: str, sample_rate: int, frames: int) -> list[int]:
    """The CNN input shape for one channel of a `frames`-long window (for waveforms: one model input)."""
    if view == "waveform":
        sizes = {"b": 1, "s": info.front.input_samples, "c": info.model_channels}
        return [sizes[axis] for axis in info.layout]
    if view == "raw-image":
        h, w = info.image_hw or (RAW_IMAGE_HEIGHT, RAW_IMAGE_WIDTH)
        return [1, 3, h, w]
    _, _, hop = frame_geometry(info.front, sample_rate)
    time = frames // hop + 1
    bins = info.front.n_mels if view == "mel" else stft_bins(info.front)
    return [1, 1, bins, time]


def _check_input_fits(info: ModelInfo, shape: list[int], view: str) -> None:
    for axis, (want, have) in enumerate(zip(info.input_shape[1:], shape[1:]), start=1):
        if isinstance(want, int) and want > 0 and want != have and not (view == "raw-image" and axis >= 2):
            raise ModelError(f"{info.path.name} expects input axis {axis} of size {want} but the {view} view makes "
                             f"{have}; pick the view the model was trained on (--set view=...) or matching front-end settings")


def with_outputs(proto, names: list[str]):
    """A copy of the model whose graph outputs are exactly `names` (intermediate tensors allowed)."""
    import onnx

    out = copy.deepcopy(proto)
    del out.graph.output[:]
    for name in names:
        out.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return out


def _inferred(info: ModelInfo, view: str, sample_rate: int, seconds: float):
    """The model with its input fixed to what `view` makes of one channel of a `seconds` window, shapes inferred."""
    import onnx

    shape = view_input_shape(info, view, sample_rate, int(seconds * sample_rate))
    fixed = copy.deepcopy(info.proto)
    inline_initializer_identities(fixed)
    for inp in fixed.graph.input:
        if inp.name == info.input_name:
            for dim, size in zip(inp.type.tensor_type.shape.dim, shape):
                dim.Clear()
                dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception as exc:
        raise ModelError(f"{info.path.name}: ONNX shape inference failed ({_first_line(exc)}); "
                         "re-export the model") from exc
    return inferred


def output_shapes(info: ModelInfo, view: str | None = None, sample_rate: int = 48000,
                  seconds: float = 9.0) -> dict[str, list]:
    """Every graph output with its shape: for one channel of a `seconds` window when the view is known, else as
    the file declares it (None for an axis of any size)."""
    declared = {o.name: _dims(o) for o in info.proto.graph.output}
    if view is None or (view == "waveform" and not info.layout):
        return declared
    inferred = _inferred(info, view, sample_rate, seconds)
    found = {o.name: _dims(o) for o in inferred.graph.output}
    return {name: found.get(name) or dims for name, dims in declared.items()}


def layer_catalogue(info: ModelInfo, view: str, sample_rate: int = 48000, seconds: float = 9.0) -> list[Layer]:
    """Every dreamable tensor with its shape for one channel of a `seconds` window."""
    inferred = _inferred(info, view, sample_rate, seconds)
    shapes = {vi.name: tuple(_dims(vi)) for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    descriptions = {layer.name: layer.description for layer in info.recommended}
    axes = {layer.name: layer.channel_axis for layer in info.recommended}
    layers = []
    for node in inferred.graph.node:
        if node.op_type not in DREAMABLE_OPS:
            continue
        for name in node.output:
            dims = shapes.get(name)
            if dims and len(dims) in (2, 3, 4) and all(isinstance(d, int) for d in dims):
                layers.append(Layer(name, node.op_type, dims, descriptions.get(name, ""),
                                    axes.get(name, info.channel_axis)))
    return layers


class LoadedModel:
    """A model converted to torch, with the outputs a dream needs, parity-checked against ONNX Runtime."""

    def __init__(self, info: ModelInfo, outputs: list[str], module, parity_error: float,
                 output_shapes: dict[str, tuple] | None = None):
        self.info = info
        self.outputs = outputs
        self.module = module
        self.parity_error = parity_error
        self.output_shapes = output_shapes or {}  # for the parity probe (batch 1)

    def check_channels(self, objective) -> None:
        """Refuse a --layer NAME@CHANNEL past the layer's width (tracing would fail with an IndexError)."""
        for name, _, channel, axis in objective.layers:
            shape = self.output_shapes[name]
            width = shape[axis] if -len(shape) <= axis < len(shape) else 1
            if channel >= width:
                raise ParameterError(f"layer {name!r} has {width} channels; pick a channel from 0 to {width - 1}")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def conversion_error(info: ModelInfo, node, opsets: dict, cause: BaseException, what: str) -> ModelError:
    """One line: the file, the node, its operator and opset, what went wrong and what the user can do."""
    where = f"node {node.name!r}" if node.name else f"an unnamed node (output {node.output[0]!r})"
    opset = opsets.get(node.domain or "", "?")
    return ModelError(f"{info.path.name}: {where} (operator {node.op_type}, {node.domain or 'ai.onnx'} opset {opset}) "
                      f"{what} ({_first_line(cause)}); {CONVERSION_ADVICE.format(path=info.path)}")


def _separate_outputs(proto, outputs: list[str]) -> list[str]:
    """Give each output its own node where onnx2torch would return the wrong thing.

    onnx2torch returns a graph output by returning its producer's result: a node with several outputs (LSTM's
    Y and Y_h, Split) gives the whole tuple, and two outputs of one node come back once. An Identity per such
    output makes the module return exactly `outputs`, in order. Returns the names the graph now outputs."""
    from onnx import helper

    producers = {name: node for node in proto.graph.node for name in node.output}
    seen, names = set(), []
    for index, name in enumerate(outputs):
        node = producers.get(name)
        if node is None or (len(node.output) == 1 and id(node) not in seen):
            names.append(name)
        else:
            names.append(f"{name}/streamdream_output_{index}")
            proto.graph.node.append(helper.make_node("Identity", [name], [names[-1]],
                                                     name=f"streamdream/output_{index}"))
        if node is not None:
            seen.add(id(node))
    if names != outputs:
        del proto.graph.output[:]
        for name in names:
            proto.graph.output.append(helper.make_empty_tensor_value_info(name))
    return names


def _run_naming_the_node(module, probe, proto, info: ModelInfo, opsets: dict):
    """The converted module's first run, node by node, so a failure names the ONNX node it came from."""
    import torch
    from torch import fx
    from onnx2torch.onnx_graph import OnnxGraph

    by_module = {name: node.proto for name, node in OnnxGraph(proto.graph).nodes.items()}

    class Naming(fx.Interpreter):
        def run_node(self, n):
            try:
                return super().run_node(n)
            except Exception as exc:
                if n.op == "call_module" and n.target in by_module:
                    raise conversion_error(info, by_module[n.target], opsets, exc, "fails in torch") from exc
                raise

    with torch.no_grad():
        try:
            runner = Naming(module)
            runner.extra_traceback = False  # fx would append the fx node to the message: not one line any more
            return runner.run(probe)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{info.path.name}: the torch conversion fails on its first run ({_first_line(exc)}); "
                             f"{CONVERSION_ADVICE.format(path=info.path)}") from exc


def convert(info: ModelInfo, outputs: list[str], check_shape: list[int]) -> LoadedModel:
    """onnx2torch conversion of the model cut to `outputs`, refused unless it matches ONNX Runtime.

    Whatever the conversion or the converted module's first run raises becomes a one-line ModelError naming
    the node, its operator and opset (converters.NodeConversionError carries the node out of onnx2torch)."""
    import onnxruntime as ort
    import torch

    from .converters import NodeConversionError, check_convertible  # imports torch: the dreaming side pays

    _check_input_fits(info, check_shape, info.view or "mel")
    proto = with_outputs(info.proto, outputs)
    inline_initializer_identities(proto)
    known = {vi.name for vi in proto.graph.value_info} | {n for node in proto.graph.node for n in node.output}
    missing = [name for name in outputs if name not in known]
    if missing:
        raise ParameterError(f"{info.path.name} has no tensor named {missing[0]!r}; "
                             f"list them with: streamdream models info {info.path}")
    check_convertible(proto, info.path.name, info.path)
    graph_outputs = _separate_outputs(proto, outputs)
    opsets = {entry.domain: entry.version for entry in proto.opset_import}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from onnx2torch import convert as onnx2torch_convert
            module = onnx2torch_convert(proto)
    except NodeConversionError as exc:
        raise conversion_error(info, exc.node, opsets, exc.cause, "cannot be converted to torch") from exc.cause
    except Exception as exc:
        raise ModelError(f"{info.path.name} cannot be converted to torch ({_first_line(exc)}); "
                         f"{CONVERSION_ADVICE.format(path=info.path)}") from exc
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)

    rng = np.random.default_rng(0)
    probe = rng.standard_normal(check_shape).astype(np.float32)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        expected = session.run(graph_outputs, {info.input_name: probe})
    except Exception as exc:
        raise ModelError(f"ONNX Runtime cannot run {info.path.name} ({str(exc).splitlines()[0]}); check the file") from exc
    got = _run_naming_the_node(module, torch.from_numpy(probe), proto, info, opsets)
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    if len(got) != len(outputs):
        raise ModelError(f"{info.path.name}: the torch conversion returns {len(got)} outputs for the "
                         f"{len(outputs)} asked ({', '.join(outputs)}); {CONVERSION_ADVICE.format(path=info.path)}")
    worst = 0.0
    for name, ref, ours in zip(outputs, expected, got):
        ours = ours.numpy()
        if ref.shape != ours.shape:
            raise ModelError(f"{info.path.name}: torch and ONNX Runtime disagree on the shape of {name!r}; "
                             "the conversion is wrong, re-export the model")
        # NaN compares as neither close nor far: without this a model that outputs NaN passed as "exact"
        if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(ours))):
            raise ModelError(f"{info.path.name} outputs NaN or Inf in {name!r} for an ordinary input; "
                             "it cannot be dreamed with, check or re-export the model")
        scale = max(float(np.abs(ref).max()), 1e-12)
        worst = max(worst, float(np.abs(ref - ours).max()) / scale)
    if not worst <= PARITY_TOLERANCE:
        raise ModelError(f"{info.path.name}: torch conversion differs from ONNX Runtime by {worst:.2e} "
                         f"(limit {PARITY_TOLERANCE:.0e}); streamdream refuses it, re-export with standard ops")
    return LoadedModel(info, outputs, module, worst, {name: ref.shape for name, ref in zip(outputs, expected)})


def annotate(source: str | os.PathLike, dest: str | os.PathLike, view: str, front_changes: dict | None = None,
             labels: list[str] | None = None, layers: list[str] | None = None, default_layer: str | None = None,
             class_axis: int | None = None, channel_axis: int | None = None, multi_label: bool | None = None,
             force: bool = False, output: str | None = None) -> ModelInfo:
    """Write `source` with streamdream metadata to `dest`, checked by loading the result as a dream would.

    Starts from the metadata the file already has, so annotating twice changes only what is given.
    `output` names the graph output the labels describe (default: the first).
    `dest` appears only once the annotated model has loaded, converted and matched ONNX Runtime.
    """
    import onnx

    source, dest = Path(source), Path(dest)
    if dest.exists() and not force:
        raise ParameterError(f"{dest} exists; pass --force to replace it, or choose another output file")
    if view not in VIEW_NAMES:
        raise ParameterError(f"unknown view {view!r}; choose one of {', '.join(VIEW_NAMES)}")
    proto = _read_onnx(source)
    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        front = FrontEnd.from_dict({**json.loads(meta.get(META_FRONTEND, "{}")), **(front_changes or {})})
        old_layers = json.loads(meta.get(META_LAYERS, "[]"))
        old_labels = json.loads(meta.get(META_LABELS, "[]"))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"front-end settings: {exc}") from None
    outputs = [o.name for o in proto.graph.output]
    if output is not None and output not in outputs:
        raise ParameterError(f"{source.name} has no output named {output!r}; its outputs: {', '.join(outputs)} "
                             f"(shapes: streamdream models info {source})")
    layer_entries = [{"name": name} for name in layers] if layers is not None else old_layers
    write_metadata(proto, view, front, labels if labels is not None else old_labels, layer_entries,
                   default_layer or meta.get(META_DEFAULT_LAYER),
                   class_axis if class_axis is not None else int(meta.get(META_CLASS_AXIS, -1)),
                   channel_axis if channel_axis is not None else int(meta.get(META_CHANNEL_AXIS, 1)),
                   multi_label if multi_label is not None else meta.get(META_MULTI_LABEL) == "1",
                   output if output is not None else meta.get(META_OUTPUT) or None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        onnx.save(proto, str(tmp))
        info = read_model_info(tmp)
        info.path = source  # errors name the file the user gave
        check_annotation(info)
    info.path = dest
    return info


def check_annotation(info: ModelInfo) -> LoadedModel:
    """Load a described model the way a dream will: its view's input, its layers and labels, through torch."""
    shape = view_input_shape(info, info.view, 48000, 48000)
    names = [layer.name for layer in info.recommended]
    if info.default_layer == HEARD and not info.labels:
        raise ParameterError(f"default layer {HEARD!r} pushes the labels the model hears; give the labels too "
                             "(--labels or --labels-file)")
    if info.default_layer and info.default_layer != HEARD and info.default_layer not in names:
        names.append(info.default_layer)
    label_output = info.label_output
    outputs = names + [label_output] if label_output not in names else names
    loaded = convert(info, outputs, [1] + shape[1:])
    scores = loaded.output_shapes[label_output]
    if not -len(scores) <= info.class_axis < len(scores):
        raise ParameterError(f"class axis {info.class_axis} is outside {label_output!r}, which has "
                             f"shape {list(scores)}")
    if info.labels and scores[info.class_axis] != len(info.labels):
        others = [name for name in info.output_names if name != label_output]
        raise ParameterError(f"{len(info.labels)} labels given but axis {info.class_axis} of "
                             f"{label_output!r} holds {scores[info.class_axis]} classes "
                             f"(shape {list(scores)}); pass --class-axis or the matching labels"
                             + (f", or --output with another of {', '.join(others)}" if others else ""))
    for layer in info.recommended:
        rank = len(loaded.output_shapes[layer.name])
        if not -rank <= layer.channel_axis < rank:
            raise ParameterError(f"channel axis {layer.channel_axis} is outside layer {layer.name!r} (rank {rank})")
    return loaded
