"""Command line: `streamdream render | models info | models classify` (and the live commands)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from .dreaming.frontend import VIEW_NAMES, WAVEFORM_LAYOUTS
from .params import BACKENDS, RANGES, RECONSTRUCT_MODES, Params
from .errors import (EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, DeviceError, ParameterError, RunError,
                     StreamDreamError, Terminated)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other bad input."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"streamdream: error: {message} (see: {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamdream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def add_dream_options(p: argparse.ArgumentParser) -> None:
    """Dream options. None has a parser default: what is not given comes from --preset (default: live)."""
    from .control.presets import BUILTIN_PRESETS

    d, r = Params(), RANGES
    g = p.add_argument_group("dream")
    given = []  # the dest of every dream option, so params_from_args reads these and nothing else

    def add(*flags, **kwargs):
        given.append(g.add_argument(*flags, default=argparse.SUPPRESS, **kwargs).dest)

    add("--preset", choices=list(BUILTIN_PRESETS),
        help="a named set of the options below; options given too override it (default: live, "
             "the settings listed as defaults here; see docs/DREAMS.md)")
    add("--model", help="ONNX model file, or a shipped model by name: default (instruments), "
                        "pitch (piano keys: --target C4,E4,G4, MIDI notes play it)")
    add("--view", choices=VIEW_NAMES, help="override the model's own view")
    add("--reconstruct", choices=RECONSTRUCT_MODES,
        help="stft baselines: dream magnitudes, resynthesise with the original phase or Griffin-Lim")
    add("--layer", help="layer to amplify: NAME, NAME@CHANNEL, heard (the labels the model hears, by their "
                         "probability) or A:0.5,B:1.0 (see models info)")
    add("--target", help="class label(s) to dream toward: LABEL, or A,B:0.5 for several with weights")
    add("--away", help="class label(s) to dream away from (same form as --target)")
    add("--steps", type=int, help=f"gradient steps per octave, {r['steps']} (default {d.steps})")
    add("--step-size", type=float, help=f"step per iteration relative to the window's RMS, "
                                        f"{r['step_size'].lo:g}..{r['step_size'].hi:g} (default {d.step_size:g})")
    add("--octaves", type=int, help=f"{r['octaves']} (default {d.octaves})")
    add("--octave-scale", type=float, help=f"{r['octave_scale']} (default {d.octave_scale:g})")
    add("--jitter", dest="jitter_ms", type=float,
        help=f"max random shift per step, {r['jitter_ms']} (default {d.jitter_ms:g})")
    add("--seed", type=int, help=f"default {d.seed}")
    add("--top-db", dest="top_db", type=float,
        help=f"the view ignores what lies this many dB under each frame's loudest band, {r['top_db']}; "
             f"none for the shipped model (default {d.top_db:g})")
    add("--shape", type=float, help="shape each step by the input's spectrum so the change grows where the music "
                                    f"has energy, {r['shape']}, 1 = in proportion (default {d.shape:g})")
    add("--sustain", dest="sustain_ms", type=float,
        help="with --target: shape by the input's spectrum averaged over this long either side, so the target's "
             f"colour may hold between transients, {r['sustain_ms']} (default {d.sustain_ms:g})")
    add("--eq-bands", dest="eq_bands", type=float,
        help="> 0: the dream may only re-EQ the music, a smooth gain per band (this many to the octave) and "
             f"11-ms frame on the input's own spectrum, {r['eq_bands']} (default {d.eq_bands:g}; "
             "--preset amplify-eq uses 1)")
    add("--eq-depth", dest="eq_depth_db", type=float,
        help=f"with --eq-bands: the most any band is raised or cut, {r['eq_depth_db']} (default {d.eq_depth_db:g})")
    add("--eot", type=float, help="random gain, EQ and noise per step, so only changes that survive them grow, "
                                  f"{r['eot']}, 1 = full (default {d.eot:g})")
    add("--keep", type=float, help="with --target: push what the model hears in the input at this weight too, so "
                                   f"the music stays itself while it moves, {r['keep']} (default {d.keep:g})")
    add("--hold-others", dest="hold_others", type=float,
        help="with --target: hold what else the model hears in the input (its other labels' proportions) at this "
             f"weight, so no neighbour of the target takes the music's place, {r['hold_others']} "
             f"(default {d.hold_others:g})")
    add("--ceiling", dest="ceiling_db", type=float,
        help="hold the change, in every time-frequency cell, to at most this many dB over the music there "
             f"(0: it may colour or cancel what the music has, never cover it), {r['ceiling_db']} "
             f"(default {d.ceiling_db:g})")
    add("--swell", dest="swell_db", type=float,
        help="hold the finished change, at every moment (a 43-ms frame, all frequencies together), to at most this "
             f"many dB over the music then, so reverb tails and the gaps between hits do not swell, {r['swell_db']} "
             f"(default {d.swell_db:g})")
    add("--intensity", type=float, help=f"{r['intensity']} times the dreamed change (default {d.intensity:g})")
    add("--mix", type=float, help=f"{r['mix']}: 0 = dry only, 1 = full dream (default {d.mix:g})")
    add("--gain", dest="gain_db", type=float,
        help=f"output gain before the limiter, {r['gain_db']} (default {d.gain_db:g})")
    add("--no-match-loudness", dest="match_loudness", action="store_false",
        help="do not bring each dreamed window to the input's level")
    add("--limit", dest="limit_db", type=float, help=f"true-peak ceiling, {r['limit_db']} (default {d.limit_db:g})")
    add("--window", dest="window_s", type=float, help=f"window length, {r['window_s']} (default {d.window_s:g})")
    add("--crossfade", dest="crossfade_s", type=float,
        help=f"equal-power crossfade, 0..window/2 s (default {d.crossfade_s:g})")
    add("--backend", choices=BACKENDS, help=f"default {d.backend}")
    # one name per meaning in every command: --torch-device computes, --device/--input-device/--output-device sound
    add("--torch-device", dest="torch_device", help="torch device: auto (CUDA when present), cpu or cuda[:N]")
    p.set_defaults(dream_options=tuple(given))


def params_from_args(a: argparse.Namespace) -> Params:
    """The --preset (default: live), with every dream option given on the command line on top."""
    from .control.presets import builtin_preset

    field = {"torch_device": "device", "preset": None}  # option dest -> Params field, where they differ
    given = {field.get(dest, dest): getattr(a, dest) for dest in a.dream_options
             if hasattr(a, dest) and field.get(dest, dest)}
    return builtin_preset(getattr(a, "preset", "live")).with_changes(**given)


def cmd_render(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .audio.files import AudioReader, audio_writer, check_output_path
    from .dreaming.dreamer import Dreamer
    from .dreaming.model import read_model_info
    from .plot import Spectrogram, check_plot_path, save_comparison_plot
    from .stream.offline import RenderReport, render_stream
    from .windows import Schedule

    console = Console(stderr=True, quiet=a.quiet)
    params = params_from_args(a)
    check_output_path(a.output, a.format)
    if a.plot:
        check_plot_path(a.plot)
    if not a.overwrite and os.path.exists(a.input) and os.path.exists(a.output) \
            and os.path.samefile(a.input, a.output):
        raise ParameterError(f"{a.output} is the input file itself; write the dream elsewhere, "
                             "or pass --overwrite to replace the input once the render has finished")
    info = read_model_info(params.model, params.view)
    with AudioReader(a.input) as reader:
        rate, channels = reader.sample_rate, reader.channels
        schedule = Schedule.from_seconds(rate, params.window_s, params.crossfade_s)
        dreamer = Dreamer(params, rate, channels, schedule.window, info=info)
        spectra = (Spectrogram(reader.frames), Spectrogram(reader.frames)) if a.plot else None

        def read(n):
            block = reader.read(n)
            if spectra:
                spectra[0].push(block)
            return block

        report = RenderReport()
        with Progress(TextColumn("dreaming"), BarColumn(), TextColumn("{task.completed}/{task.total} windows"),
                      TimeRemainingColumn(), console=console, transient=True,
                      disable=not console.is_terminal) as bar, \
                audio_writer(a.output, rate, channels, a.format, reader.frames) as write_audio:
            task = bar.add_task("dream", total=schedule.count(reader.frames))

            def write(block):
                write_audio(block)
                if spectra:
                    spectra[1].push(block)

            render_stream(read, write, channels, rate, params, dreamer,
                          lambda done: bar.update(task, completed=done), report)
            if a.plot:  # before the audio is renamed into place: a failed plot leaves no output
                save_comparison_plot(a.plot, *spectra, report.frames / rate, rate, title=f"{a.input} -> {a.output}")
    for warning in reader.warnings():  # even with --quiet: the data was not what it seemed
        print(f"streamdream: warning: {warning}", file=sys.stderr)
    console.print(f"wrote {a.output}: {report.frames / rate:.1f} s, {channels} ch, {rate} Hz; {report.windows} window(s), "
                  f"{sum(report.dream_seconds):.1f} s dreaming"
                  + (f", {report.failed_windows} failed windows left dry" if report.failed_windows else ""),
                  highlight=False, soft_wrap=True)
    return 0


def cmd_models_info(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .dreaming.model import HEARD, layer_catalogue, read_model_info
    from .dreaming.views import frame_geometry, needed_sample_rate

    info = read_model_info(a.model, a.view)
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
            console.print(f"input: {info.input_name} {info.input_shape}   outputs: {', '.join(info.output_names)}")
            return 0
        view = "raw-image"
    f = info.front
    console.print(f"view: {view}   input: {info.input_name} {info.input_shape}")
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
                  + (f" (on axis {info.class_axis} of {info.output_names[0]}"
                     + (", multi-label)" if info.multi_label else ")") if info.labels else ""))
    title = "one model input" if view == "waveform" else "one channel of a 9-s window at 48 kHz"
    table = Table(title=f"dreamable layers (shape for {title})")
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
    from .dreaming.model import waveform_layout

    layout = waveform_layout(info.input_shape)
    size = info.input_shape[layout.index("s")] if layout else None
    return size if isinstance(size, int) and size > 0 else None


def cmd_models_annotate(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .dreaming.model import annotate

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
                    a.channel_axis, True if a.multi_label else None, a.force)
    print(f"wrote {info.path}: view {info.view}, {len(info.labels)} labels, "
          f"{len(info.recommended)} recommended layer(s); checked against ONNX Runtime")
    if not info.recommended and not info.default_layer:
        print(f"no layer to dream by default: pass --layer or --target when dreaming, or annotate again with "
              f"--layers (the dreamable ones: streamdream models info {info.path})")
    return 0


def cmd_models_classify(a: argparse.Namespace) -> int:
    from .audio.files import read_audio
    from .dreaming.classify import classify

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


def cmd_live(a: argparse.Namespace) -> int:
    from rich.console import Console

    from .stream.live import LiveOptions, run_live

    console = Console(stderr=True)
    if a.demo:
        if a.input:
            raise ParameterError("--demo plays the shipped clip: give it or --input FILE, not both")
        from .data import DEMO_CLIP, shipped_path
        a.input = str(shipped_path(DEMO_CLIP))
    if a.input and (a.input_device or a.input_channels):
        raise ParameterError("--input FILE replaces the capture device: drop --input-device/--input-channels")
    opts = LiveOptions(output_device=a.output_device or a.device or "auto", input_device=a.input_device or a.device,
                       input_channels=a.input_channels, name=a.name, samplerate=a.samplerate,
                       blocksize=a.blocksize, input_file=a.input,
                       loop_input=not a.no_loop, duration=a.duration, stats_path=a.stats, record_path=a.record,
                       quiet=a.quiet, budget_s=a.budget, lockstep=a.lockstep, midi_port=a.midi,
                       midi_map=a.midi_map, presets=a.presets, midi=not a.no_midi, threads=a.threads,
                       worker=a.worker, monitor=not a.no_monitor, realtime=a.realtime,
                       record_format=a.record_format, record_input_path=a.record_input, osc_port=a.osc_port)
    if a.device == "null" and a.input_device:
        raise ParameterError("--device null has no capture side; play a file with --input FILE")
    run_live(params_from_args(a), opts, console)
    return 0


# Params field -> the argparse dest of its dream option (where the names differ)
DREAM_DESTS = {"jitter_ms": "jitter", "gain_db": "gain", "limit_db": "limit", "window_s": "window",
               "crossfade_s": "crossfade", "device": "torch_device"}


def piece_arg_defaults(argv: list[str]) -> dict | None:
    """`loop --config piece.toml`: the piece's settings become the defaults, so options given on the command
    line win over the file."""
    if not argv or argv[0] != "loop" or "--config" not in argv[:-1]:
        return None
    from .stream.installation import load_piece

    piece = load_piece(argv[argv.index("--config") + 1])
    defaults = {DREAM_DESTS.get(k, k): v for k, v in piece.dream.items() if k != "match_loudness"}
    if "match_loudness" in piece.dream:
        defaults["no_match_loudness"] = not piece.dream["match_loudness"]
    for key in ("feedback", "evolve", "evolve_period_s", "record", "record_input", "record_format", "samplerate", "blocksize",
                "duration", "log", "stats", "osc_port"):
        value = getattr(piece, key)
        if value is not None:
            defaults[key] = value
    defaults.update(evolve_seed=piece.seed, device=piece.device, _piece=piece)
    if piece.budget_s is not None:
        defaults["budget"] = piece.budget_s
    return defaults


def cmd_loop(a: argparse.Namespace) -> int:
    from rich.console import Console

    from .stream.installation import Piece, check_piece, run_loop
    from .stream.live import LiveOptions

    piece = getattr(a, "_piece", None) or Piece()
    piece.files = a.files or piece.files
    piece.feedback, piece.evolve, piece.evolve_period_s = a.feedback, a.evolve, a.evolve_period_s
    piece.seed, piece.log, piece.osc_port = a.evolve_seed, a.log, a.osc_port
    check_piece(piece, "loop")
    if not piece.files:
        raise ParameterError("loop needs audio files or a playlist (or a --config whose [piece] lists files)")
    if a.duration is not None and a.duration <= 0:
        raise ParameterError("--duration must be positive seconds")
    params = params_from_args(a)
    if a.watchdog:
        from .stream.installation import run_watchdog, setup_log
        from .stream.live import Say
        setup_log(piece.log)
        argv = [x for x in a._argv if x != "--watchdog"]
        return run_watchdog(argv, a.stats, {"--record": a.record, "--record-input": a.record_input},
                            Say(Console(stderr=True)))
    budget = a.budget if a.budget is not None else params.window_s  # read ahead: a late window is unlikely
    console = Console(stderr=True)
    opts = LiveOptions(output_device=a.output_device or a.device or "auto", input_device=None, name=a.name,
                       samplerate=a.samplerate, blocksize=a.blocksize, duration=a.duration,
                       stats_path=a.stats, record_path=a.record, record_format=a.record_format,
                       record_input_path=a.record_input, quiet=a.quiet,
                       budget_s=budget, lockstep=a.lockstep, midi_port=a.midi, midi_map=a.midi_map,
                       presets=a.presets, midi=not a.no_midi, threads=a.threads, worker=a.worker,
                       realtime=a.realtime, osc_port=a.osc_port)
    run_loop(piece, params, opts, console)
    return 0


def cmd_service(a: argparse.Namespace) -> int:
    from .stream.installation import install_service, service_unit

    if a.service_command == "unit":
        print(service_unit(a.piece), end="")
        return 0
    path = install_service(a.piece, a.folder)
    name = path.stem
    print(f"wrote {path}\nstart it now and at every boot: systemctl {'--user ' if not a.folder else ''}daemon-reload && "
          f"systemctl {'--user ' if not a.folder else ''}enable --now {name}")
    return 0


def cmd_devices(a: argparse.Namespace) -> int:
    from .audio.devices import list_devices
    from .control.midi import list_midi_ports

    found = list_devices()
    ports = list_midi_ports()
    if a.json:
        print(json.dumps({"audio": found, "midi": [{"api": api, "index": index, "name": name}
                                                   for api, index, name in ports]}, indent=1))
        return 0
    print("audio devices (PortAudio; > default input, < default output):")
    for d in found:
        mark = (">" if d["default_input"] else " ") + ("<" if d["default_output"] else " ")
        print(f"{mark}{d['index']:>3}  {d['name']}  [{d['hostapi']}]  {d['inputs']} in / {d['outputs']} out, "
              f"{d['default_samplerate']:.0f} Hz")
    if not found:
        print("  none (use --output-device null, with --input FILE)")
    print("  null  clock-driven null device (no sound; --record still works)")
    print("MIDI input ports (rtmidi):")
    for api, index, name in ports:
        print(f"  {index:>3}  {name}  [{api}]")
    if not ports:
        print("  none")
    return 0


def cmd_midi_learn(a: argparse.Namespace) -> int:
    import rtmidi

    from .control.learn import LEARN_ORDER, learn_mapping, rtmidi_waiter, write_mapping
    from .control.mapping import describe
    from .control.midi import available_apis, find_port

    if hasattr(sys.stdout, "reconfigure"):  # an interactive dialogue, even through a pipe
        sys.stdout.reconfigure(line_buffering=True)
    if os.path.exists(a.out) and not a.force:
        raise ParameterError(f"{a.out} exists; pass --force to replace it, or choose another --out")
    params = a.params.split(",") if a.params else LEARN_ORDER
    apis = available_apis()
    if not apis:
        raise ParameterError("no MIDI system found (start JACK, or load the ALSA sequencer)")
    midi_in = rtmidi.MidiIn(apis[0], name="streamdream-learn")
    if a.port:
        names = midi_in.get_ports()
        index = find_port(names, a.port)
        midi_in.open_port(index)
        print(f"listening on {names[index]}")
    else:
        midi_in.open_virtual_port("streamdream")
        print("listening on the virtual port 'streamdream': connect your controller to it")
    try:
        mapping = learn_mapping(params, rtmidi_waiter(midi_in, timeout=a.timeout))
    finally:
        midi_in.close_port()
    path = write_mapping(a.out, mapping, a.force)
    print(f"wrote {path}:")
    for line in describe(mapping):
        print("  " + line)
    return 0


def build_parser(piece_defaults: dict | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="streamdream", description="DeepDream for audio: amplify what a music CNN hears.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("render", help="dream a file offline")
    r.add_argument("input", help="audio file (WAV, FLAC, ...), mono or stereo, 8-192 kHz")
    r.add_argument("output", help="output .wav or .flac (same rate, length and channels)")
    r.add_argument("--format", default="float32", help="float32 (WAV only), 16 or 24 (default float32)")
    r.add_argument("--plot", help="write input/output/difference spectrograms to this .png")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.add_argument("--overwrite", action="store_true", help="allow the output to be the input file itself")
    add_dream_options(r)
    r.set_defaults(func=cmd_render)

    lv = sub.add_parser("live", help="dream live input (or a file played in real time) to the speakers")
    lv.add_argument("--input", help="play this file (looped) in place of the capture side")
    lv.add_argument("--demo", action="store_true", help="play the shipped demo clip (looped) in place of the capture side")
    lv.add_argument("--no-loop", action="store_true", help="with --input: silence after the file ends")
    add_run_options(lv, budget=2.8)
    lv.set_defaults(func=cmd_live)

    lp = sub.add_parser("loop", help="installation mode: loop files or a playlist through the dream for days")
    lp.add_argument("files", nargs="*", metavar="FILE|PLAYLIST",
                    help="audio files and/or .m3u/.txt playlists, played back to back and looped with a crossfade")
    lp.add_argument("--config", help="piece TOML holding everything the piece needs (options given here win)")
    lp.add_argument("--feedback", type=float, default=0.0,
                    help="share 0..1 of the output fed back into the dream's input (guarded against runaway)")
    lp.add_argument("--evolve", action="store_true", help="slowly walk layer, target and depth (seeded)")
    lp.add_argument("--evolve-seed", dest="evolve_seed", type=int, default=0, help="seed of the --evolve walk")
    lp.add_argument("--evolve-period", dest="evolve_period_s", type=float, default=120.0,
                    help="seconds of audio between evolve steps (default 120)")
    lp.add_argument("--log", help="also log to this file (rotated at 5 MB, 10 kept)")
    lp.add_argument("--watchdog", action="store_true",
                    help="run the engine as a child and restart it if it dies or freezes (recordings of later "
                         "starts are numbered: night-2.flac ...)")
    add_run_options(lp, budget=None)
    if piece_defaults:
        lp.set_defaults(**piece_defaults)
    lp.set_defaults(func=cmd_loop)

    sv = sub.add_parser("service", help="run a piece as a systemd service (starts at boot, restarts on failure)")
    svsub = sv.add_subparsers(dest="service_command", required=True, parser_class=_Parser)
    su = svsub.add_parser("unit", help="print the systemd unit for a piece TOML")
    su.add_argument("piece")
    si = svsub.add_parser("install", help="write the unit to ~/.config/systemd/user (then: systemctl --user "
                                          "enable --now streamdream-NAME)")
    si.add_argument("piece")
    si.add_argument("--folder", help="write the unit here instead (e.g. /etc/systemd/system)")
    sv.set_defaults(func=cmd_service)
    _rest_of_parser(sub)
    return parser


def add_run_options(lv: argparse.ArgumentParser, budget: float | None) -> None:
    """Options of a real-time run, shared by live and loop."""
    lv.add_argument("--device", help="sound device for both sides (index or part of its name, see `streamdream "
                                     "devices`), or null: a clock, no sound (default: the system's defaults, else null)")
    lv.add_argument("--output-device", help="sound device to play to (overrides --device for output), or null")
    lv.add_argument("--input-device", help="sound device to capture from (overrides --device for input)")
    lv.add_argument("--input-channels", help="capture channels, from 1: one (mono) or two, e.g. 3,4 (default 1,2)")
    lv.add_argument("--name", default="streamdream",
                    help="JACK client name: ports appear as NAME:in_N / NAME:out_N (default streamdream)")
    lv.add_argument("--samplerate", type=int, help="default: 48000 (or the file's rate on the null device)")
    lv.add_argument("--blocksize", type=int, default=0,
                    help="frames per callback; 0 (default) lets the host choose, which on JACK adds no "
                         "buffering (a forced size equal to the JACK period adds one block)")
    lv.add_argument("--duration", type=float, help="stop after this many seconds of output")
    lv.add_argument("--budget", type=float, default=budget,
                    help="processing budget per window, s; latency = window + budget "
                         + ("(default 2.8: a file input starts sounding after 2.8 s)" if budget else
                            "(default: the window length; the material is known, so dreams are read ahead)"))
    lv.add_argument("--stats", help="write counters as JSON to this file once a second")
    lv.add_argument("--osc-port", dest="osc_port", type=int,
                    help="OSC control (the parameters MIDI reaches) and /streamdream/status on 127.0.0.1:PORT")
    lv.add_argument("--record", help="record what goes to the speakers (.wav or .flac), safe on disk every second")
    lv.add_argument("--record-input", dest="record_input",
                    help="also record the input as it came in (before any feedback), on the same timeline as --record")
    lv.add_argument("--record-format", dest="record_format", choices=["float32", "16", "24"],
                    help="sample format of --record and --record-input (default float32 in .wav, 24 in .flac)")
    lv.add_argument("--quiet", action="store_true", help="no live display")
    lv.add_argument("--lockstep", action="store_true",
                    help="null device only: the clock waits for each dream, so every window is dreamed, "
                         "as fast as dreams allow (tests, offline)")
    lv.add_argument("--unpaced", dest="lockstep", action="store_true", help=argparse.SUPPRESS)  # the old name
    lv.add_argument("--midi", help="MIDI input port (index or name substring); a virtual port 'streamdream' "
                                   "is opened too")
    lv.add_argument("--midi-map", help="TOML mapping of CCs to parameters (default: the shipped generic map)")
    lv.add_argument("--presets", help="TOML presets file: program change N loads preset N")
    lv.add_argument("--no-midi", action="store_true", help="do not open any MIDI port")
    lv.add_argument("--realtime", action="store_true",
                    help="ask for SCHED_FIFO for the audio callback thread (default: leave it as the audio "
                         "system set it; on a non-real-time audio server this made the timing tail worse)")
    lv.add_argument("--no-monitor", action="store_true",
                    help="stay silent until the delayed stream starts (default: a live input is heard at once, "
                         "fading out just before its delayed, dreamed stream begins)")
    lv.add_argument("--threads", type=int, help="torch threads for dreaming (default: all cores but one)")
    lv.add_argument("--worker", choices=["process", "thread"], default="process",
                    help="run the dream in its own process (default: keeps the audio callback off the GIL) "
                         "or in a thread")
    add_dream_options(lv)


def _rest_of_parser(sub) -> None:
    md = sub.add_parser("midi", help="MIDI mapping tools")
    msub = md.add_subparsers(dest="midi_command", required=True, parser_class=_Parser)
    ml = msub.add_parser("learn", help="move a knob for each parameter; writes a --midi-map TOML")
    ml.add_argument("--port", help="controller port (index or name substring); default: the virtual port")
    ml.add_argument("--out", default="midi-map.toml", help="where to write the mapping (default midi-map.toml)")
    ml.add_argument("--force", action="store_true", help="replace --out if it exists")
    ml.add_argument("--params", help="comma-separated parameters to learn (default: all)")
    ml.add_argument("--timeout", type=float, help="skip a parameter after this many seconds without a knob")
    ml.set_defaults(func=cmd_midi_learn)

    dv = sub.add_parser("devices", help="list audio devices (marking the defaults) and MIDI ports")
    dv.add_argument("--json", action="store_true", help="as JSON: {audio: [...], midi: [...]}")
    dv.set_defaults(func=cmd_devices)

    m = sub.add_parser("models", help="inspect models")
    mosub = m.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    i = mosub.add_parser("info", help="view, sample-rate handling, labels and dreamable layers")
    i.add_argument("model", nargs="?", help="ONNX file (default: the shipped model)")
    i.add_argument("--view", choices=VIEW_NAMES)
    i.set_defaults(func=cmd_models_info)
    an = mosub.add_parser("annotate", help="write streamdream's metadata into any ONNX model (checked by loading it)")
    an.add_argument("input", help="ONNX model to describe (not modified)")
    an.add_argument("output", help="where to write the described model")
    an.add_argument("--view", required=True, choices=VIEW_NAMES, help="how audio becomes the model's input")
    an.add_argument("--rate", type=int, help="waveform: the model's own sample rate, Hz")
    an.add_argument("--input-samples", type=int, help="waveform: samples per input (default: the input's shape)")
    an.add_argument("--overlap", type=float, help="waveform: overlap of consecutive inputs, 0..0.5 (default 0.5)")
    an.add_argument("--layout", choices=WAVEFORM_LAYOUTS,
                    help="waveform: b=batch, s=samples, c=channels (default: from the input's shape)")
    an.add_argument("--front", action="append", metavar="KEY=VALUE",
                    help="front-end setting, e.g. n_mels=64 or mean=-4.2 (repeatable; see models info)")
    an.add_argument("--labels", help="comma-separated class labels, in output order")
    an.add_argument("--labels-file", help="class labels, one per line")
    an.add_argument("--class-axis", type=int, help="axis of the classes in the first output (default -1, the last)")
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from .atomic import raise_on_sigterm
    before = raise_on_sigterm()  # a service manager's SIGTERM cleans up temp files as Ctrl-C does
    try:
        parser = build_parser(piece_arg_defaults(argv))
        args = parser.parse_args(argv)
        args._argv = argv  # the watchdog starts the same command as its child
        return args.func(args)
    except StreamDreamError as exc:
        print(f"streamdream: error: {exc}", file=sys.stderr)
        if isinstance(exc, (DeviceError, RunError)) and "sounddevice" in sys.modules:
            # After its server vanished, PortAudio's exit handler can hang or abort; everything
            # worth keeping (recording, stats) is already closed, so leave without it.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        return exc.exit_code
    except OSError as exc:
        # The system refused something a check could not foresee (a disk filled up, a file vanished):
        # the user can act on it, so one line. Anything else is a bug and keeps its traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"streamdream: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        try:
            print("streamdream: stopped", file=sys.stderr)
        except OSError:
            pass  # the terminal is gone (closed window, SIGHUP): the exit code still says why
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
