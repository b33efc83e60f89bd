"""`streamdream render IN OUT`: dream a file offline, streamed window by window, written atomically."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import ParameterError
from .dream import add_dream_options, params_from_args


def cmd_render(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..audio.files import AudioReader, check_output_path
    from ..dreaming.dreamer import Dreamer
    from ..dreaming.model import read_model_info
    from ..plot import Spectrogram, check_plot_path, save_comparison_plot
    from ..stream.offline import render_file

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
    spectra = None
    if a.plot:
        with AudioReader(a.input) as reader:  # its length sizes the spectrograms
            spectra = (Spectrogram(reader.frames), Spectrogram(reader.frames))
    with Progress(TextColumn("dreaming"), BarColumn(), TextColumn("{task.completed}/{task.total} windows"),
                  TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("dream", total=None)
        report, reader = render_file(
            a.input, a.output, params, a.format, lambda *shape: Dreamer(*shape, info=info),
            lambda done, total: bar.update(task, completed=done, total=total),
            tap=(spectra[0].push, spectra[1].push) if a.plot else None,
            # before the audio is renamed into place: a failed plot leaves no output
            before_publish=a.plot and (lambda report, rate: save_comparison_plot(
                a.plot, *spectra, report.frames / rate, rate, title=f"{a.input} -> {a.output}")))
    rate, channels = reader.sample_rate, reader.channels
    for warning in reader.warnings():  # even with --quiet: the data was not what it seemed
        print(f"streamdream: warning: {warning}", file=sys.stderr)
    console.print(f"wrote {a.output}: {report.frames / rate:.1f} s, {channels} ch, {rate} Hz; {report.windows} window(s), "
                  f"{sum(report.dream_seconds):.1f} s dreaming"
                  + (f", {report.failed_windows} failed windows left dry" if report.failed_windows else ""),
                  highlight=False, soft_wrap=True)
    return 0


def add_parser(sub) -> None:
    r = sub.add_parser("render", help="dream a file offline", usage="%(prog)s IN OUT [options]")
    r.add_argument("input", help="audio file (WAV, FLAC, ...), mono or stereo, 8-192 kHz")
    r.add_argument("output", help="output .wav or .flac (same rate, length and channels)")
    r.add_argument("--format", default="float32", help="float32 (WAV only), 16 or 24 (default float32)")
    r.add_argument("--plot", metavar="PNG", help="write input/output/difference spectrograms to this .png")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.add_argument("--overwrite", action="store_true", help="allow the output to be the input file itself")
    add_dream_options(r)
    r.set_defaults(func=cmd_render)
