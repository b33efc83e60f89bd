"""Batch render: many files, a grid of variations, on worker processes or Ray actors, resumable.

The driver plans the jobs (inputs x grid), skips what the manifest shows complete and unchanged,
hands the rest to workers and appends one manifest line per finished file. A worker loads a model
once and dreams many files with `offline.render_file`, the single render's own path. Each window's
randomness comes from the job's seed and the window's index, never from the worker, so a job's
output bits depend on its input, parameters, seed and torch thread count only, not on how many
workers there are or which one dreams it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import queue
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..atomic import atomic_path, discard_temps_of
from ..errors import AudioFileError, ParameterError, RunError, StreamDreamError
from ..params import Params

MANIFEST = "streamdream-manifest.jsonl"
# what libsndfile reads, by the suffixes people give those files
AUDIO_SUFFIXES = frozenset(".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .caf .w64 .rf64".split())
RAY_TASK_RETRIES = 2         # a file whose actor died is dreamed again this many times, then reported
SHIP_LIMIT = 512 << 20       # --ship: inputs up to this size travel through Ray's object store


@dataclass(frozen=True)
class Job:
    """One output: the input file dreamed with one combination of the grid."""
    source: Path
    output: Path           # under the output folder
    name: str              # the output relative to the output folder, as the manifest keys it
    params: Params
    fmt: str               # sample format, as render's --format


# ---------------------------------------------------------------- planning

def find_inputs(items: Iterable[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input file, its output path relative to `out_dir`, suffix still the input's) for each audio file.

    A folder is searched recursively for audio files (hidden ones and `out_dir` left out) and its tree
    mirrored; a .txt/.m3u list gives one path a line; a file stands for itself.
    """
    from .installation.material import PLAYLIST_SUFFIXES, read_playlist

    found = []
    out_dir = out_dir.resolve()
    for item in items:
        path = Path(item)
        if path.is_dir():
            inside = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
                            and not any(part.startswith(".") for part in f.relative_to(path).parts)
                            and not f.resolve().is_relative_to(out_dir))
            found += [(f, f.relative_to(path)) for f in inside]
        elif path.suffix.lower() in PLAYLIST_SUFFIXES:
            found += [(f, Path(f.name)) for f in read_playlist([item])]
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            raise AudioFileError(f"input {path} does not exist; check the path")
    if not found:
        raise AudioFileError("no audio files among the inputs (.wav, .flac, .ogg, .mp3, .aiff ...); check the paths")
    return found


def parse_seeds(texts: list[str]) -> list[int]:
    """--seed values for a grid: each N, A-B (inclusive) or a comma list of those."""
    seeds = []
    for part in ",".join(texts).split(","):
        match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(\d+)\s*)?", part)  # a negative one is the range check's
        if not match or (match[2] and int(match[2]) < int(match[1])):
            raise ParameterError(f"--seed {part!r}: give N, A-B or a comma list, e.g. --seed 1-5 or --seed 1,4,9")
        seeds += range(int(match[1]), int(match[2] or match[1]) + 1)
    return list(dict.fromkeys(seeds))


def grid_combinations(axes: dict[str, list]) -> list[dict]:
    """Every combination of the axes given, {"seed": [1, 2], ...} -> [{"seed": 1, ...}, {"seed": 2, ...}, ...]."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def grid_name(relative: Path, combination: dict, suffix: str) -> Path:
    """take.wav + {preset: deep, target: brass, seed: 3} -> take.deep.brass.s3.wav: every axis given is in the
    name, so two runs with different values never write the same file."""
    parts = [relative.stem]
    if "preset" in combination:
        parts.append(combination["preset"])
    if "target" in combination:  # a blend ("C4,E4:0.5") keeps its labels and weights, spelt for a file name
        parts.append(re.sub(r"[^\w.+=-]", "_", combination["target"].replace(",", "+").replace(":", "=")))
    if "seed" in combination:
        parts.append(f"s{combination['seed']}")
    return relative.with_name(".".join(parts) + suffix)


def output_suffix(source: Path, fmt: str) -> str:
    """.wav, or .flac for a FLAC input written as integers (FLAC holds no floats)."""
    return ".flac" if source.suffix.lower() == ".flac" and fmt not in ("float", "float32") else ".wav"


def plan(inputs: list[tuple[Path, Path]], out_dir: Path, combinations: list[tuple[dict, Params]],
         fmt: str) -> list[Job]:
    jobs, seen = [], {}
    sources = {source.resolve() for source, _ in inputs}
    for source, relative in inputs:
        for combination, params in combinations:
            name = grid_name(relative, combination, output_suffix(source, fmt))
            output = out_dir / name
            if output in seen:
                raise ParameterError(f"{seen[output]} and {source} would both be written to {output}; "
                                     "render them to different folders")
            if output.resolve() in sources:
                raise ParameterError(f"{output} would overwrite an input; choose another output folder")
            seen[output] = source
            # absolute: a Ray worker's current folder is not the driver's
            jobs.append(Job(source.absolute(), output.absolute(), name.as_posix(), params, fmt))
    return jobs


# ---------------------------------------------------------------- the manifest

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def job_key(input_sha256: str, params: Params, fmt: str, model_sha256: str, version: str) -> str:
    """What decides a job's output: the input's content, every parameter, the format, the model and the version."""
    settings = {"input": input_sha256, "params": dataclasses.asdict(params), "format": fmt,
                "model": model_sha256, "version": version}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


class Manifest:
    """`streamdream-manifest.jsonl` in the output folder: one JSON line per finished file, appended and flushed
    to disk as each one finishes, so a run stopped at any moment (Ctrl-C, SIGKILL, a power cut) keeps what it did.
    The last line about an output is the one that counts."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / MANIFEST
        self.records: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    self.records[record["output"]] = record
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill: that file is simply done again

    def complete(self, job: Job, key: str) -> bool:
        """The manifest says this output was written with these settings and it is still there, unchanged:
        the size and modification time it was written with, or else the same content."""
        record = self.records.get(job.name)
        if record is None or record.get("status") != "done" or record.get("key") != key or not job.output.is_file():
            return False
        found = job.output.stat()
        if (record.get("output_size"), record.get("output_mtime_ns")) == (found.st_size, found.st_mtime_ns):
            return True
        return record.get("output_sha256") == file_sha256(job.output)

    def append(self, record: dict) -> None:
        # Appended, not rewritten whole: atomic.py's temp-and-rename would copy a growing file per line.
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records[record["output"]] = record


@dataclass
class Outcome:
    done: int = 0
    skipped: int = 0           # complete and unchanged in the manifest
    failed: list = dataclasses.field(default_factory=list)   # (input, one-line error)
    seconds: float = 0.0       # audio dreamed


def run_batch(jobs: list[Job], out_dir: Path, version: str, threads: int, run: Callable[[list[Job], Report], None],
              started: Callable[[int], None], finished: Callable[[Job, dict], None]) -> Outcome:
    """Skip what the manifest shows complete, `run` the rest, and append each finished file to the manifest.

    `started(count)` once the work is known; `finished(job, record)` after each file, done or failed."""
    from ..dreaming.model import model_path

    manifest, outcome = Manifest(out_dir), Outcome()
    # An input or output whose size and modification time are those the manifest saw keeps the hash it
    # had (as make and rsync judge a file), so a rerun over a large library does not read every file again.
    known = {(r.get("input"), r.get("input_size"), r.get("input_mtime_ns")): r.get("input_sha256")
             for r in manifest.records.values()}
    hashes: dict[Path, str] = {}
    stats: dict[Path, os.stat_result] = {}
    todo: list[tuple[Job, dict]] = []
    discard_temps_of(*(job.output for job in jobs))  # left by a run that was killed
    for job in jobs:
        try:
            for path in (job.source, model_path(job.params.model)):
                if path not in hashes:
                    stats[path] = path.stat()
                    hashes[path] = known.get((str(path), stats[path].st_size, stats[path].st_mtime_ns)) \
                        or file_sha256(path)
        except OSError as exc:
            failure = {"status": "failed", "error": f"cannot read it: {exc.strerror or exc}"}
            outcome.failed.append((job.source, failure["error"]))
            finished(job, failure)
            continue
        common = {"input": str(job.source), "input_sha256": hashes[job.source],
                  "input_size": stats[job.source].st_size, "input_mtime_ns": stats[job.source].st_mtime_ns,
                  "output": job.name,
                  "params": dataclasses.asdict(job.params), "seed": job.params.seed, "format": job.fmt,
                  "model_sha256": hashes[model_path(job.params.model)], "version": version,
                  "threads": threads}  # recorded, not in the key: the bits depend on it, the output is as good
        common["key"] = job_key(common["input_sha256"], job.params, job.fmt, common["model_sha256"], version)
        if manifest.complete(job, common["key"]):
            outcome.skipped += 1
            continue
        todo.append((job, common))
    started(len(todo))

    def report(index: int, result: dict) -> None:
        job, common = todo[index]
        discard_temps_of(job.output)  # an attempt whose worker was killed leaves its temp file behind
        record = {**common, **result}
        if result["status"] == "done":  # as it is in the output folder, wherever it was dreamed
            written = job.output.stat()
            record.update(output_size=written.st_size, output_mtime_ns=written.st_mtime_ns)
        manifest.append(record)
        if result["status"] == "done":
            outcome.done += 1
            outcome.seconds += result["seconds"]
        else:
            outcome.failed.append((job.source, result["error"]))
        finished(job, record)

    for job, _ in todo:
        job.output.parent.mkdir(parents=True, exist_ok=True)
    if todo:
        run([job for job, _ in todo], report)
    return outcome


# ---------------------------------------------------------------- the worker (a process or a Ray actor)

_dreamers: dict = {}    # this worker's loaded Dreamers, by what they are built for
_KEEP_DREAMERS = 4      # a grid of presets holds a few; more would hold their memory for nothing


def _dreamer_for(params: Params, rate: int, channels: int, window: int):
    """A Dreamer from this worker's cache. The seed and the labels of --target/--away are read per window
    (live changes them without a rebuild), so one Dreamer serves every seed and every target of a grid."""
    from ..dreaming.dreamer import Dreamer

    built_for = dataclasses.replace(params, seed=0, target=params.target and "*", away=params.away and "*")
    key = (built_for, rate, channels, window)
    if key not in _dreamers:
        if len(_dreamers) >= _KEEP_DREAMERS:
            _dreamers.pop(next(iter(_dreamers)))
        _dreamers[key] = Dreamer(params, rate, channels, window)
    return _dreamers[key]


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def render_job(job: Job) -> dict:
    """Dream one job in this worker; the manifest's fields for it (status done, or failed with the error)."""
    from .offline import render_file

    began = time.perf_counter()
    try:
        report, reader = render_file(job.source, job.output, job.params, job.fmt, _dreamer_for)
    except (StreamDreamError, OSError, RuntimeError, ValueError) as exc:
        # one bad file must not stop a library's batch: reported in one line, and the rest goes on
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, (StreamDreamError, OSError)) or not text:  # not a message written for users
            text = f"{type(exc).__name__}: {text}"
        return {"status": "failed", "error": text}
    wall = time.perf_counter() - began
    seconds = report.frames / reader.sample_rate
    return {"status": "done", "seconds": round(seconds, 6), "wall_s": round(wall, 3),
            "rtf": round(wall / seconds, 4), "failed_windows": report.failed_windows,
            "warnings": reader.warnings(), "output_sha256": file_sha256(job.output)}


def _worker_main(tasks, results, threads: int) -> None:
    """A local worker process: jobs from `tasks` until None, each result to `results`."""
    from ..atomic import raise_on_sigterm

    raise_on_sigterm()  # the driver stops workers with SIGTERM: temp files are removed as on Ctrl-C
    try:
        set_threads(threads)
        parent = multiprocessing.parent_process()
        while True:
            if parent is not None and not parent.is_alive():
                return  # the driver was killed: stop, and a rerun redoes what has no manifest line
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                continue
            if item is None:
                return
            index, job = item
            results.put(("start", index, os.getpid()))
            results.put(("done", index, render_job(job)))
    except KeyboardInterrupt:
        return  # Ctrl-C reaches every process of the terminal's group; the driver says it stopped
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # past the jobs, nothing is left to clean up


# ---------------------------------------------------------------- running them

Report = Callable[[int, dict], None]   # (job index, its result) as each one finishes


def run_local(jobs: list[Job], processes: int, threads: int, report: Report) -> None:
    """The jobs on `processes` worker processes (spawned: torch is not fork-safe), `threads` torch threads each;
    one process is this one. A worker that dies takes only its current file with it (reported failed), and a
    new one takes its place."""
    if processes == 1:  # in this process: no start-up of a second Python and torch
        set_threads(threads)
        for index, job in enumerate(jobs):  # Ctrl-C: atomic_path removes the file being written
            report(index, render_job(job))
        return
    context = multiprocessing.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    for item in enumerate(jobs):
        tasks.put(item)
    workers: dict = {}

    def start_worker() -> None:
        tasks.put(None)  # one stop mark per worker, behind every job
        process = context.Process(target=_worker_main, args=(tasks, results, threads), daemon=True)
        process.start()
        workers[process.pid] = process

    for _ in range(min(processes, len(jobs))):
        start_worker()
    current: dict[int, int] = {}      # worker pid -> job index it is dreaming
    pending = len(jobs)
    try:
        while pending:
            try:
                kind, index, value = results.get(timeout=0.5)
            except queue.Empty:
                for pid, process in list(workers.items()):
                    if process.exitcode is not None:
                        del workers[pid]
                        if pid in current:
                            lost = current.pop(pid)
                            report(lost, {"status": "failed", "error": f"its worker process died "
                                                                       f"(exit code {process.exitcode})"})
                            pending -= 1
                            if pending:
                                start_worker()
                if not workers and pending:
                    raise RunError("every worker process stopped; see the messages above")
                continue
            if kind == "start":
                current[value] = index
                continue
            current = {pid: i for pid, i in current.items() if i != index}
            report(index, value)
            pending -= 1
    finally:
        _stop_local(workers, grace=0 if pending else 30)
        tasks.cancel_join_thread()  # jobs nobody will take: do not wait to flush them at exit
        discard_temps_of(*(jobs[index].output for index in current.values()))


def _stop_local(workers: dict, grace: float) -> None:
    """Workers get `grace` seconds to leave by themselves (after their stop marks), then SIGTERM, then SIGKILL."""
    deadline = time.monotonic() + grace
    for process in workers.values():
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers.values():
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + 30
    for process in workers.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()


class RenderActor:
    """The worker as a Ray actor: loads models once, dreams job after job (`ray.remote` applied at run time)."""

    def __init__(self, threads: int):
        set_threads(threads)

    def render(self, index: int, job: Job, data: bytes | None = None) -> tuple[int, dict, bytes | None]:
        """By path (shared storage); or, with the input's bytes, in a temp folder of this node, the output's
        bytes returned with the result."""
        if data is None:
            return index, render_job(job), None
        with tempfile.TemporaryDirectory(prefix="streamdream-ship.") as folder:
            here = dataclasses.replace(job, source=Path(folder) / f"in{job.source.suffix}",
                                       output=Path(folder) / f"out{job.output.suffix}")
            here.source.write_bytes(data)
            result = render_job(here)
            for key in ("error", "warnings"):  # the messages name the user's file, not this temp copy
                if key in result:
                    result[key] = json.loads(json.dumps(result[key]).replace(
                        json.dumps(str(here.source))[1:-1], json.dumps(str(job.source))[1:-1]))
            return index, result, here.output.read_bytes() if result["status"] == "done" else None


def run_ray(jobs: list[Job], address: str, actors: int | None, threads: int, report: Report,
            ship: bool = False) -> None:
    """The same jobs on Ray actors (`num_cpus` = threads each): a new local Ray for address "local", else the
    cluster at `address` (auto, ray://host:10001); `actors` None fills the cluster's CPUs. An actor that dies
    is restarted and its file dreamed again, at most RAY_TASK_RETRIES times, then reported failed.

    Inputs and outputs go by path (the cluster shares storage), or with `ship` through Ray's object store:
    each input up to SHIP_LIMIT bytes, read when its job starts, and its output written here."""
    try:
        import ray
    except ImportError:
        raise ParameterError("--ray needs Ray, an optional extra: pip install 'streamdream[cluster]'") from None
    started = not ray.is_initialized()
    if started:  # a cluster's nodes need streamdream installed; a local Ray's workers inherit this environment
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    actor_class = ray.remote(num_cpus=threads, max_restarts=-1, max_task_retries=RAY_TASK_RETRIES)(RenderActor)
    if actors is None:
        actors = int(ray.cluster_resources().get("CPU", 1) // threads)
    pool = [actor_class.remote(threads) for _ in range(max(1, min(actors, len(jobs))))]
    waiting = list(enumerate(jobs))[::-1]
    running: dict = {}                 # object ref -> (job index, actor)

    def feed(actor) -> None:
        while waiting:
            index, job = waiting.pop()
            try:
                data = job.source.read_bytes() if ship and job.source.stat().st_size <= SHIP_LIMIT else None
            except OSError as exc:
                report(index, {"status": "failed", "error": f"cannot read it: {exc.strerror or exc}"})
                continue
            if ship and data is None:
                report(index, {"status": "failed", "error": f"larger than --ship's {SHIP_LIMIT >> 20} MiB; "
                                                            "put it where the cluster's nodes can read it"})
                continue
            running[actor.render.remote(index, job, data)] = (index, actor)
            return

    try:
        for actor in pool:
            feed(actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            index, actor = running.pop(ready[0])
            try:
                _, result, data = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                result, data = {"status": "failed", "error": f"its Ray worker failed {RAY_TASK_RETRIES + 1} times "
                                                             f"({type(exc).__name__})"}, None
            if data is not None:
                with atomic_path(jobs[index].output) as tmp:
                    tmp.write_bytes(data)
            report(index, result)
            feed(actor)
    finally:
        for actor in pool:
            ray.kill(actor)
        # killed mid-file: their temp files stay behind otherwise
        discard_temps_of(*(jobs[index].output for index, _ in running.values()))
        if started:
            ray.shutdown()
