"""`streamdream render IN OUT`: dream a file offline, streamed window by window, written atomically;
`streamdream render IN... OUT_DIR`: many files and a grid of variations (stream/batch.py)."""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

from ..errors import ParameterError, RunError
from .dream import GRID, add_dream_options, params_from_args

OUTPUT_SUFFIXES = (".wav", ".flac")


def cmd_render(a: argparse.Namespace) -> int:
    from ..dreaming.threads import threads_per_worker
    from ..stream.installation.material import PLAYLIST_SUFFIXES

    if a.threads is not None and a.threads < 1:
        raise ParameterError("--threads must be 1 or more")
    *inputs, last = a.paths
    if not inputs:
        raise ParameterError("give an input and an output: render IN OUT, or render IN... OUT_DIR")
    # one input file and an audio file's name: the single-file form, whatever is at that name
    if len(inputs) > 1 or Path(last).suffix.lower() not in OUTPUT_SUFFIXES or os.path.isdir(inputs[0]) \
            or Path(inputs[0]).suffix.lower() in PLAYLIST_SUFFIXES:
        return render_batch(a, inputs, Path(last))
    for option, given in (("--jobs", a.jobs is not None), ("--ray", a.ray is not None), ("--ship", a.ship)):
        if given:
            raise ParameterError(f"{option} is for several files: give an output folder as the last path")
    for name, values in grid_axes(a).items():
        if len(values) > 1:
            raise ParameterError(f"several --{name} values make a grid: give an output folder as the last path")
        setattr(a, name, values[0])
    a.input, a.output = inputs[0], last
    import torch

    torch.set_num_threads(a.threads or threads_per_worker(1))
    return render_one(a)


def grid_axes(a: argparse.Namespace) -> dict:
    """The grid options given, each as its list of values (--seed's ranges spelt out)."""
    from ..stream.batch import parse_seeds

    axes = {name: getattr(a, name) for name in GRID if hasattr(a, name)}
    axes = {name: values if isinstance(values, list) else [values] for name, values in axes.items()}
    if "seed" in axes:
        axes["seed"] = parse_seeds([str(seed) for seed in axes["seed"]])
    return axes


def render_one(a: argparse.Namespace) -> int:
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


def render_batch(a: argparse.Namespace, inputs: list[str], out_dir: Path) -> int:
    """Many files and a grid of variations into `out_dir`, on --jobs processes or --ray actors, resumable."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..audio.files import check_output_path
    from ..dreaming.dreamer import class_weights
    from ..dreaming.model import read_model_info
    from ..dreaming.threads import threads_per_worker
    from ..stream import batch
    from .parser import package_version

    for option, given in (("--plot", a.plot), ("--overwrite", a.overwrite)):
        if given:
            raise ParameterError(f"{option} is for one file (render IN OUT); a batch never writes over its inputs")
    if out_dir.suffix.lower() in OUTPUT_SUFFIXES and not out_dir.is_dir():
        raise ParameterError(f"the last path, {out_dir}, is where several files go: give a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir} is a file; give a folder for the outputs")
    if a.jobs is not None and a.jobs < 1:
        raise ParameterError("--jobs must be 1 or more")
    if a.ship and a.ray is None:
        raise ParameterError("--ship sends files to Ray's workers: add --ray")
    combinations, infos = [], {}
    for combination in batch.grid_combinations(grid_axes(a)):
        given = copy.copy(a)
        for name in GRID:
            if hasattr(given, name):
                delattr(given, name)
        for name, value in combination.items():
            setattr(given, name, value)
        params = params_from_args(given)
        if (params.model, params.view) not in infos:
            infos[params.model, params.view] = read_model_info(params.model, params.view)
        class_weights(params, infos[params.model, params.view], None)  # an unknown label: before any work
        combinations.append((combination, params))
    jobs = batch.plan(batch.find_inputs(inputs, out_dir), out_dir, combinations, a.format)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_output_path(out_dir / jobs[0].output.name, a.format)  # the format, and a folder that takes files

    workers = a.jobs or os.cpu_count() or 1
    threads = a.threads or threads_per_worker(workers)
    if a.ray is not None:
        run = lambda todo, report: batch.run_ray(todo, a.ray, a.jobs, threads, report, a.ship)
    else:
        run = lambda todo, report: batch.run_local(todo, workers, threads, report)
    console = Console(stderr=True, quiet=a.quiet)
    with Progress(TextColumn("dreaming"), BarColumn(), TextColumn("{task.completed}/{task.total} files"),
                  TextColumn("{task.fields[audio]:.0f} s of audio, {task.fields[speed]}"), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("batch", total=len(jobs), audio=0.0, speed="RTF -")  # until the manifest is read
        clock = {"start": 0.0, "audio": 0.0}

        def started(count: int) -> None:
            clock["start"] = time.monotonic()
            bar.update(task, total=count)

        def finished(job, record: dict) -> None:
            if record["status"] != "done":
                print(f"streamdream: skipped {job.name}: {record['error']}", file=sys.stderr)
                bar.advance(task)
                return
            for warning in record["warnings"]:
                print(f"streamdream: warning: {warning}", file=sys.stderr)
            clock["audio"] += record["seconds"]
            rtf = (time.monotonic() - clock["start"]) / clock["audio"]  # all workers together
            bar.update(task, advance=1, audio=clock["audio"], speed=f"RTF {rtf:.2f}")

        outcome = batch.run_batch(jobs, out_dir, package_version(), threads, run, started, finished)
    console.print(f"rendered {outcome.done} file(s), {outcome.seconds:.1f} s of audio, into {out_dir}"
                  + (f"; {outcome.skipped} already done" if outcome.skipped else "")
                  + f" (manifest: {out_dir / batch.MANIFEST})", highlight=False, soft_wrap=True)
    if outcome.failed:
        raise RunError(f"{len(outcome.failed)} of {len(jobs)} file(s) failed (listed above); fix or remove them and "
                       "run the same command again: what is done is kept")
    return 0


def add_parser(sub) -> None:
    r = sub.add_parser("render", help="dream a file offline, or many",
                       usage="%(prog)s IN OUT | IN... OUT_DIR [options]")
    r.add_argument("paths", nargs="+", metavar="IN OUT",
                   help="audio file (WAV, FLAC, ...) and output .wav/.flac; or files, folders (searched "
                        "recursively, the tree mirrored) and .txt lists of files, then an output folder")
    r.add_argument("--jobs", type=int, metavar="N", help="several files: N worker processes (default: one per core)")
    r.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="several files on Ray: a local Ray, or ADDRESS (auto, ray://HOST:10001); pip install "
                        "'streamdream[cluster]'")
    r.add_argument("--ship", action="store_true",
                   help="with --ray: send inputs and outputs through Ray (nodes without the files)")
    r.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per worker (default: the count measured fastest on this machine)")
    r.add_argument("--format", default="float32", help="float32 (WAV only), 16 or 24 (default float32)")
    r.add_argument("--plot", metavar="PNG", help="write input/output/difference spectrograms to this .png")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.add_argument("--overwrite", action="store_true", help="allow the output to be the input file itself")
    add_dream_options(r, grid=True)
    r.set_defaults(func=cmd_render)
