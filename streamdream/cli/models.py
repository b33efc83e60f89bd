"""`streamdream models info | annotate | classify`: what a model is, describing your own, what it hears."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import ParameterError
from ..dreaming.frontend import WAVEFORM_LAYOUTS
from ..params import VIEWS
from .parser import Parser


def _shape(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _outputs_line(info, shapes: dict) -> str:
    return "outputs: " + ", ".join(f"{name} {_shape(dims)}" + (" (labels)" if info.labels and name == info.label_output
                                                                 else "")
                                   for name, dims in shapes.items())


def models_info_json(info) -> dict:
    """`models info --json`: everything a bug report about a model needs, without converting it."""
    from collections import Counter

    from ..dreaming.model import ModelError, layer_catalogue, output_shapes

    proto = info.proto
    view = info.view or (None if len(info.input_shape) != 4 else "raw-image")
    out = {"model": str(info.path), "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
           "opsets": {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import},
           "view": info.view,
           "input": {"name": info.input_name, "shape": info.input_shape, "layout": info.layout or None},
           "front_end": info.front.to_dict() if info.view else None,
           "label_output": info.label_output, "labels": info.labels, "class_axis": info.class_axis,
           "multi_label": info.multi_label, "default_layer": info.default_layer,
           "operators": dict(sorted(Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}"
                                            for n in proto.graph.node).items())),
           "shapes_for": "one model input" if view == "waveform" else "one channel of a 9-s window at 48 kHz"}
    recommended = {layer.name: layer for layer in info.recommended}
    try:
        shapes = output_shapes(info, view)
        layers = layer_catalogue(info, view) if view and (view != "waveform" or info.layout) else []
    except ModelError as exc:  # the report still says what is known: that is what it is for
        shapes, layers, out["error"] = {o.name: None for o in proto.graph.output}, [], str(exc)
    out["outputs"] = [{"name": name, "shape": dims, "labels": name == info.label_output}
                      for name, dims in shapes.items()]
    out["layers"] = [{"name": layer.name, "op": layer.op, "shape": list(layer.shape), "channels": layer.channels,
                      "recommended": layer.name in recommended, "description": layer.description,
                      "default": layer.name == info.default_layer} for layer in layers]
    return out


def cmd_models_info(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..dreaming.model import HEARD, layer_catalogue, output_shapes, read_model_info
    from ..dreaming.views import frame_geometry, needed_sample_rate

    info = read_model_info(a.model, a.view)
    if a.json:
        print(json.dumps(models_info_json(info), indent=2))
        return 0
    # Piped output (scripts, tests) gets full layer names instead of a table squeezed to 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=240)
    view = info.view
    console.print(f"[bold]{info.path}[/]")
    if view is None:
        waveform = len(info.input_shape) != 4
        how = "--view waveform --rate HZ" + ("" if waveform_input_samples(info) else " --input-samples N") \
            if waveform else "--view mel|stft|raw-image"
        console.print(f"no streamdream metadata; describe it once with:\n  streamdream models annotate {info.path} "
                      f"OUT.onnx {how} [--labels A,B,C] [--layers NAME,...]")
        if waveform:
            console.print(f"input: {info.input_name} {_shape(info.input_shape)}   "
                          + _outputs_line(info, output_shapes(info)))
            return 0
        view = "raw-image"
    f = info.front
    console.print(f"view: {view}   input: {info.input_name} {info.input_shape}")
    shape_of = "one model input" if view == "waveform" else "one channel of a 9-s window at 48 kHz"
    console.print(_outputs_line(info, output_shapes(info, view)) + f" (shapes for {shape_of})")
    if view in ("mel", "stft"):
        console.print(f"front end: window {f.window_ms:g} ms, hop {f.hop_ms:g} ms, "
                      + (f"{f.n_mels} mel bands {f.fmin_hz:g}-{f.fmax_hz:g} Hz, " if view == "mel" else "")
                      + f"log offset {f.log_offset:g}, normalisation (x - {f.mean:.4g}) / {f.std:.4g}")
        rates = []
        for rate in (8000, 16000, 22050, 44100, 48000, 96000, 192000):
            n_fft, win, hop = frame_geometry(f, needed_sample_rate(view, f, rate), view)
            run = needed_sample_rate(view, f, rate)
            rates.append(f"{rate} Hz" + (f" (dreamed at {run} Hz)" if run != rate else f" (n_fft {n_fft}, hop {hop})"))
        console.print("sample rates: any from 8 to 192 kHz, front end scaled in physical units: " + "; ".join(rates))
    elif view == "waveform":
        console.print(f"waveform at {f.rate_hz} Hz, {f.input_samples} samples per input "
                      f"({f.input_samples / f.rate_hz:.3g} s), layout {info.layout}, {info.model_channels} channel(s), "
                      f"overlap {f.overlap:g}; any operating rate (resampled inside the view)")
    else:
        console.print("sample rates: any; 3 x 103,000 stereo frames per image "
                      f"(2.15 s at 48 kHz), resized to the model's {info.image_hw or 'native'} input")
    console.print(f"labels ({len(info.labels)}): " + (", ".join(info.labels) if info.labels else "none")
                  + (f" (on axis {info.class_axis} of {info.label_output}"
                     + (", multi-label)" if info.multi_label else ")") if info.labels else ""))
    table = Table(title=f"dreamable layers (shape for {shape_of})")
    for col in ("layer (--layer)", "op", "shape", "channels", "recommended for"):
        table.add_column(col)
    recommended = {layer.name for layer in info.recommended}
    for layer in layer_catalogue(info, view):
        mark = layer.description or ("yes" if layer.name in recommended else "")
        if layer.name == info.default_layer:
            mark = (mark + " (default)").strip()
        table.add_row(layer.name, layer.op, "x".join(map(str, layer.shape)), str(layer.channels), mark)
    if info.labels:
        table.add_row(HEARD, "", "", "", "the labels the model hears in the input, each pushed by its probability: "
                      "more of what the music already is" + (" (default)" if info.default_layer == HEARD else ""))
    console.print(table)
    return 0


def waveform_input_samples(info) -> int | None:
    """The fixed sample count of a waveform input, if its shape says."""
    from ..dreaming.model import waveform_layout

    layout = waveform_layout(info.input_shape)
    size = info.input_shape[layout.index("s")] if layout else None
    return size if isinstance(size, int) and size > 0 else None


def cmd_models_annotate(a: argparse.Namespace) -> int:
    from pathlib import Path

    from ..dreaming.model import annotate

    front: dict = {}
    for item in a.front or []:
        key, _, value = item.partition("=")
        if not value:
            raise ParameterError(f"--front {item!r}: write KEY=VALUE, e.g. --front hop_ms=10")
        try:
            front[key] = json.loads(value)
        except ValueError:
            front[key] = value
    for key, value in (("rate_hz", a.rate), ("input_samples", a.input_samples), ("overlap", a.overlap),
                       ("layout", a.layout)):
        if value is not None:
            front[key] = value
    if a.labels and a.labels_file:
        raise ParameterError("give --labels or --labels-file, not both")
    labels = a.labels.split(",") if a.labels else None
    if a.labels_file:
        try:
            labels = [line.strip() for line in Path(a.labels_file).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise ParameterError(f"cannot read --labels-file {a.labels_file}: {exc.strerror}") from None
    layers = a.layers.split(",") if a.layers else None
    info = annotate(a.input, a.output, a.view, front, labels, layers, a.default_layer, a.class_axis,
                    a.channel_axis, True if a.multi_label else None, a.force, a.label_output)
    print(f"wrote {info.path}: view {info.view}, {len(info.labels)} labels, "
          f"{len(info.recommended)} recommended layer(s); checked against ONNX Runtime")
    if not info.recommended and not info.default_layer:
        print(f"no layer to dream by default: pass --layer or --target when dreaming, or annotate again with "
              f"--layers (the dreamable ones: streamdream models info {info.path})")
    return 0


def cmd_models_classify(a: argparse.Namespace) -> int:
    from ..audio.files import read_audio
    from ..dreaming.classify import classify

    if a.top < 1:
        raise ParameterError("--top must be 1 or more (how many labels to list; --json lists them all)")
    loaded = read_audio(a.file)
    for warning in loaded.warnings:
        print(f"streamdream: warning: {warning}", file=sys.stderr)
    probs = classify(loaded.audio, loaded.sample_rate, a.model)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    if a.json:
        print(json.dumps({"file": str(a.file), "probabilities": dict(ranked)}, indent=2))
    else:
        for label, p in ranked[:a.top]:
            print(f"{label:>22s}  {p * 100:5.1f}%  " + "#" * int(round(p * 40)))
    return 0



def add_parser(sub) -> None:
    m = sub.add_parser("models", help="inspect models")
    mosub = m.add_subparsers(dest="models_command", required=True, parser_class=Parser)
    i = mosub.add_parser("info", help="view, sample-rate handling, labels and dreamable layers")
    i.add_argument("model", nargs="?", help="ONNX file (default: the shipped model)")
    i.add_argument("--view", choices=VIEWS)
    i.add_argument("--json", action="store_true",
                   help="inputs, outputs, labels, layers, operators as JSON (for a bug report)")
    i.set_defaults(func=cmd_models_info)
    an = mosub.add_parser("annotate", help="write streamdream's metadata into any ONNX model (checked by loading it)")
    an.add_argument("input", help="ONNX model to describe (not modified)")
    an.add_argument("output", help="where to write the described model")
    an.add_argument("--view", required=True, choices=VIEWS, help="how audio becomes the model's input")
    an.add_argument("--rate", type=int, help="waveform: the model's own sample rate, Hz")
    an.add_argument("--input-samples", type=int, help="waveform: samples per input (default: the input's shape)")
    an.add_argument("--overlap", type=float, help="waveform: overlap of consecutive inputs, 0..0.5 (default 0.5)")
    an.add_argument("--layout", choices=WAVEFORM_LAYOUTS,
                    help="waveform: b=batch, s=samples, c=channels (default: from the input's shape)")
    an.add_argument("--front", action="append", metavar="KEY=VALUE",
                    help="front-end setting, e.g. n_mels=64 or mean=-4.2 (repeatable; see models info)")
    an.add_argument("--labels", help="comma-separated class labels, in output order")
    an.add_argument("--labels-file", help="class labels, one per line")
    an.add_argument("--output", dest="label_output", metavar="NAME",
                    help="the output the labels describe (default: the first; see models info)")
    an.add_argument("--class-axis", type=int, help="axis of the classes in that output (default -1, the last)")
    an.add_argument("--channel-axis", type=int, help="axis NAME@CH picks a channel from (default 1)")
    an.add_argument("--multi-label", action="store_true",
                    help="several labels can be true at once (classify reports each by sigmoid, not softmax)")
    an.add_argument("--layers", help="comma-separated recommended layers (ONNX tensor names)")
    an.add_argument("--default-layer", help="layer dreamed when no --layer or --target is given")
    an.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    an.set_defaults(func=cmd_models_annotate)
    c = mosub.add_parser("classify", help="label probabilities averaged over a file's windows")
    c.add_argument("file")
    c.add_argument("--model")
    c.add_argument("--json", action="store_true", help="all labels as JSON")
    c.add_argument("--top", type=int, default=5)
    c.set_defaults(func=cmd_models_classify)
