"""The dream worker: takes each window as soon as its last sample arrives, publishes weighted deltas.

It runs as a thread (tests, custom dreamers) or as a separate process (live default).
A thread shares the GIL with the audio callback: on the JACK dummy device the callback's
p99.9 duration is several times its own median while a thread dreams (scripts/bench_live.py). A process owns its own interpreter, so the callback only
waits for the tiny MIDI and display work. Both modes run the same loop below over
the same DreamExchange (audio/shared.py); in process mode it lives in shared memory.
"""
from __future__ import annotations

import functools
import threading
import time

import numpy as np

from ..audio.mix import window_delta
from ..audio.shared import (W_CURRENT, W_DREAMED, W_FAILED, W_HEAP_FREE, W_HEAP_USED, W_LAST_S, W_MAX_S, W_READY,
                            W_RSS, W_STARTED, W_SUM_S, DreamExchange, ExchangeSpec)
from ..control.mapping import keyboard_keys
from ..errors import StreamDreamError
from ..memory import give_back_freed_memory, heap_bytes, jemalloc_for_spawned, rss_bytes
from ..params import Params
from ..windows import Schedule


def gpu_failure(exc: BaseException) -> bool:
    """A CUDA error or out-of-memory (told apart by name and message: this module does not import torch)."""
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA" in str(exc) or "cuda" in str(exc)


MAX_DREAMERS = 32


def dream_windows(buf: DreamExchange, schedule: Schedule, get_params, make_dreamer, stopped, lockstep: bool,
                  notify=lambda: None, say=lambda text: None, own_process: bool = False) -> None:
    """Window after window until `stopped()`. get_params() -> (version, Params).

    A GPU that fails (CUDA error, out of memory) is given up for the rest of the run: the window plays
    dry, `say` tells why, and every later dream runs on the CPU. In its `own_process`, the worker gives
    freed memory back at each new objective (memory.give_back_freed_memory); beside the audio callback
    it does not, since the trim holds malloc's lock for 10-20 ms and the callback may need it."""
    cpu_only = False
    w, h = schedule.window, schedule.hop
    n_slots = buf.slots.shape[0]
    # One Dreamer per objective, built on first use and kept for the run: switching back to a layer or
    # target already used is instant. None is ever dropped, because dropping frees almost nothing:
    # TorchScript keeps every traced and scripted module type for the life of the process, so a worker
    # that dropped and rebuilt Dreamers grew ~30 MiB per rebuild without end (measured, default model).
    # Kept, memory is bounded by the objectives a run reaches: the knobs and --evolve reach the
    # model's recommended layers, with or without a target (12 for the default model, 13 with the
    # run's own starting layer; about 100 MiB each, scripts/soak.py). MAX_DREAMERS is only a safety
    # net; past it the oldest goes.
    dreamers: dict = {}
    last_dream = None
    last_key = None
    next_k = 0
    counters = buf.counters
    while not stopped():
        newest = (buf.in_ring.written - w) // h
        if newest < next_k:
            time.sleep(0.005)
            continue
        # Live: jump to the newest window rather than fall further behind. Lockstep: every window.
        k = next_k if lockstep else newest
        version, params = get_params()
        if cpu_only and params.torch_device != "cpu":
            params = params.with_changes(torch_device="cpu")
        window = buf.in_ring.read(k * h, w)
        counters[W_CURRENT], counters[W_STARTED] = k, time.perf_counter()
        began = time.perf_counter()
        if params.freeze and last_dream is not None:
            dreamed = last_dream  # freeze: keep replaying the current dream over the new windows
        else:
            key = dreamer_key(params)
            if key != last_key and own_process:
                give_back_freed_memory()  # what the last objective freed would otherwise stay resident
            last_key = key
            if key not in dreamers:
                if len(dreamers) >= MAX_DREAMERS:
                    dreamers.pop(next(iter(dreamers)))
                dreamers[key] = make_dreamer(params)
                if len(dreamers) > 1:  # the first is the run's own; later ones cost memory for good (above)
                    say(f"new dream objective: layer {params.layer or 'default'}, "
                        f"{'a' if params.target or params.away else 'no'} target ({len(dreamers)} kept)")
            try:
                dreamed = dreamers[key].dream_window(window, k, params)
            except Exception as exc:
                if cpu_only or params.torch_device == "cpu" or not gpu_failure(exc):
                    raise
                say(f"dreaming on the GPU failed ({type(exc).__name__}: {str(exc)[:200]}); "
                    f"window {k} plays dry and the dream carries on on the CPU")
                cpu_only, dreamed = True, None
                dreamers.clear()
            if dreamed is not None and not np.all(np.isfinite(dreamed)):
                dreamed = None  # a NaN/Inf dream is discarded; its slot plays dry
            if dreamed is not None:
                last_dream = dreamed
            seconds = time.perf_counter() - began
            counters[W_LAST_S] = seconds
            counters[W_SUM_S] += seconds
            counters[W_MAX_S] = max(counters[W_MAX_S], seconds)
        s = k % n_slots
        buf.slot_window[s] = -1  # unpublish before overwriting the slot
        buf.slots[s] = schedule.weights(k) * window_delta(window, dreamed, params.match_loudness)
        buf.slot_ok[s] = dreamed is not None
        buf.slot_version[s] = version
        buf.slot_window[s] = k   # publish last
        counters[W_DREAMED if dreamed is not None else W_FAILED] += 1
        counters[W_RSS] = rss_bytes()
        counters[W_HEAP_USED], counters[W_HEAP_FREE] = heap_bytes()
        counters[W_CURRENT] = -1  # idle: a window that stays "current" for long means a hung dream
        next_k = k + 1
        notify()


def dreamer_key(params: Params | None):
    """Settings that need a new Dreamer (new objective, model or view); the rest are read per window.

    Which classes --target/--away name (a chord held on a keyboard) is read per window too:
    only whether there are any changes the traced objective. No layer and no target means the
    model's default layer, so both spellings share one Dreamer."""
    if params is None:
        return None
    targeted = bool(params.target or params.away)
    layer = params.layer if params.layer is not None or targeted else _dream_layer(params.model, params.view)
    return (params.model, params.view, params.reconstruct, layer, targeted, params.backend, params.torch_device,
            params.top_db)


@functools.lru_cache(maxsize=16)
def _dream_layer(model: str | None, view: str | None) -> str | None:
    from ..dreaming.model import read_model_info
    return read_model_info(model, view).dream_layer


def keyboard_params(params: Params, labels: list[str]) -> Params | None:
    """For a model whose labels are piano keys, dreamed without a target yet: the same settings
    with a key held, so the Dreamer that plays keys can be built before the performer plays."""
    if params.target or params.away or not keyboard_keys(labels):
        return None
    return params.with_changes(target=labels[0])


def process_main(spec: ExchangeSpec, window_s: float, crossfade_s: float, sample_rate: int, channels: int,
                 conn, stop_event, lockstep: bool, threads: int | None) -> None:
    """Entry point of the worker process (spawned: a fresh interpreter, no forked audio state)."""
    import os

    import torch

    from ..dreaming.dreamer import Dreamer
    from ..dreaming.threads import threads_beside_audio

    # Chosen in this process, not in the audio one, which never imports torch.
    torch.set_num_threads(threads or threads_beside_audio())
    # The dream can wait a little (it has a budget of seconds); the audio callback cannot.
    os.nice(10)
    parent = os.getppid()

    def stopped() -> bool:  # asked to stop, or orphaned (the engine's process was killed)
        return stop_event.is_set() or os.getppid() != parent
    buf = DreamExchange.attach(spec)
    try:
        version, params = conn.recv()
        schedule = Schedule.from_seconds(sample_rate, window_s, crossfade_s)
        make = lambda p: Dreamer(p, sample_rate, channels, schedule.window)  # noqa: E731
        try:
            first = make(params).warm_up()
            ready = {dreamer_key(params): first}
            played = keyboard_params(params, first.info.labels)
            if played is not None:  # a keyboard model: the first key pressed is heard at the next window
                ready[dreamer_key(played)] = make(played).warm_up()
        except Exception as exc:  # a user error (bad model...) goes back as one line
            conn.send(("error", f"{exc}"))
            return
        buf.counters[W_READY] = 1
        conn.send(("ready", None))
        latest = [(version, params)]

        def receive_params():
            # Always reading, so the pipe never fills: MIDI sends a Params every 20 ms while a knob moves,
            # and a sender blocked on a full pipe would hold up the engine's control thread.
            try:
                while True:
                    latest[0] = conn.recv()
            except (EOFError, OSError):
                pass
        threading.Thread(target=receive_params, name="streamdream-params", daemon=True).start()

        def get_params():
            return latest[0]

        def make_dreamer(p):
            return ready.get(dreamer_key(p)) or make(p)

        try:
            dream_windows(buf, schedule, get_params, make_dreamer, stopped, lockstep,
                          say=lambda text: conn.send(("notice", text)), own_process=True)
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        buf.release(unlink=False)


class DreamWorker:
    """The dream worker's lifecycle for one engine: start, report, stop, and restart after a failure.

    mode "thread" runs dream_windows beside the callback (tests, custom dreamers); "process" runs it in a
    spawned process over the engine's shared DreamExchange (live). A failed worker leaves the slots
    unpublished, so the callback simply plays dry until a restarted one catches up.
    """

    def __init__(self, engine, mode: str, threads: int | None, dreamer_factory=None):
        if mode not in ("thread", "process"):
            raise ValueError("worker must be 'thread' or 'process'")
        self.engine, self.mode, self.threads, self.factory = engine, mode, threads, dreamer_factory
        self.ready = threading.Condition()   # a thread worker notifies it after each window
        self._stop = threading.Event()
        self._handle = None                  # the thread or process
        self._conn = None
        self._process_stop = None
        self.error: BaseException | None = None
        self.restarts = 0
        self.notices: list[str] = []         # said by the worker (e.g. a fallback to CPU); the caller empties it

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def send_params(self, version: int, params: Params) -> None:
        conn = self._conn
        if conn is not None:
            try:
                conn.send((version, params))
            except (OSError, ValueError):
                pass  # the worker died or is being restarted: a new one is sent the current Params at start

    def start(self, timeout: float = 300.0) -> None:
        self._stop = threading.Event()  # a fresh one: a hung thread left behind keeps its own, set
        self.error = None
        if self.mode == "thread":
            self._handle = threading.Thread(target=self._thread_main, name="streamdream-dream", daemon=True)
            self._handle.start()
            return
        import multiprocessing

        e = self.engine
        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds audio devices
        self._conn, child = ctx.Pipe()
        self._process_stop = ctx.Event()
        process = ctx.Process(target=process_main, name="streamdream-dream", daemon=True,
                              args=(e.exchange.spec(), e.params.window_s, e.params.crossfade_s,
                                    e.sample_rate, e.exchange.spec_args[0], child, self._process_stop, e.lockstep,
                                    self.threads))
        with jemalloc_for_spawned():  # glibc's heap grew window after window around its holes: see memory.py
            process.start()
        self._handle = process  # only a started process: stop() joins it
        self._conn.send((e.params_version, e.params))
        deadline = time.monotonic() + timeout
        while not self._conn.poll(0.1):
            # a worker killed while loading (out of memory, a crash in a native library) sends nothing:
            # say so at once rather than after the whole timeout
            if not process.is_alive():
                raise StreamDreamError(f"the dream worker process ended while starting (exit {process.exitcode}); "
                                       "check free memory and that the model loads with `streamdream models info`")
            if time.monotonic() > deadline:
                raise StreamDreamError(f"the dream worker did not start within {timeout:.0f} s")
        kind, message = self._conn.recv()
        if kind == "error":
            self._handle.join(timeout=10)
            raise StreamDreamError(message)

    def poll(self) -> None:
        """Main thread: pick up an error the worker process reported, a notice, or its death."""
        if self._conn is None or self.error is not None:
            return
        try:
            while self._conn.poll():
                kind, message = self._conn.recv()
                if kind == "error":
                    self.error = StreamDreamError(message)
                elif kind == "notice":
                    self.notices.append(message)
        except (EOFError, OSError):
            self.error = StreamDreamError("the dream worker process ended")
        if self.error is None and not self._handle.is_alive() and not self._process_stop.is_set():
            self.error = StreamDreamError(f"the dream worker process died (exit {self._handle.exitcode})")

    def hung_for(self) -> float:
        """Seconds the current window has been dreaming (0 when idle)."""
        counters = self.engine.exchange.counters
        if counters[W_CURRENT] < 0:
            return 0.0
        return max(0.0, time.perf_counter() - float(counters[W_STARTED]))

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        with self.ready:
            self.ready.notify_all()
        if self._handle is None:
            return
        if self.mode == "process":
            self._process_stop.set()
            self._handle.join(timeout=timeout)
            if self._handle.is_alive():
                self._handle.kill()
                self._handle.join(timeout=10)
            self._conn.close()
            self._conn = None
        else:
            self._handle.join(timeout=timeout)  # a thread cannot be killed: a hung one is left behind
        self._handle = None

    def restart(self, timeout: float = 300.0) -> None:
        """Stop what is left of the worker (a hung process is killed at once) and start a fresh one."""
        self.stop(timeout=0.5)
        self.engine.exchange.counters[W_CURRENT] = -1
        self.restarts += 1
        self.start(timeout)

    def _thread_main(self) -> None:
        from ..dreaming.dreamer import Dreamer

        e = self.engine
        w = e.schedule.window
        factory = self.factory or (lambda p: Dreamer(p, e.sample_rate, e.exchange.spec_args[0], w))
        stop = self._stop  # this thread's own event: a restart gives the next thread a fresh one

        def notify():
            with self.ready:
                self.ready.notify_all()

        try:
            dream_windows(e.exchange, e.schedule, lambda: (e.params_version, e.params), factory,
                          stop.is_set, e.lockstep, notify, self.notices.append)
        except BaseException as exc:  # reported by the main thread; the audio keeps playing dry
            if not stop.is_set():
                self.error = exc
            notify()
