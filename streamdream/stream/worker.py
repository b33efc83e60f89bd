"""The dream worker: takes each window as soon as its last sample arrives, publishes weighted deltas.

It runs as a thread (tests, custom dreamers) or as a separate process (live default).
A thread shares the GIL with the audio callback: measured on the JACK dummy device,
the callback's p99.9 duration was several times its own median while a thread dreamed
(scripts/bench_live.py). A process owns its own interpreter, so the callback only
waits for the tiny MIDI and display work. Both modes run the same loop below over
the same DreamExchange (audio/shared.py); in process mode it lives in shared memory.
"""
from __future__ import annotations

import time

import numpy as np

from ..audio.mix import window_delta
from ..audio.shared import (W_CURRENT, W_DREAMED, W_FAILED, W_LAST_S, W_MAX_S, W_READY, W_STARTED, W_SUM_S,
                            DreamExchange, ExchangeSpec)
from ..control.mapping import keyboard_keys
from ..params import Params
from ..windows import Schedule


def dream_windows(buf: DreamExchange, schedule: Schedule, get_params, make_dreamer, stopped, lockstep: bool,
               notify=lambda: None) -> None:
    """Window after window until `stopped()`. get_params() -> (version, Params)."""
    w, h = schedule.window, schedule.hop
    n_slots = buf.slots.shape[0]
    dreamers: dict = {}  # by objective: switching back to a layer or target already used is instant
    last_dream = None
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
        window = buf.in_ring.read(k * h, w)
        counters[W_CURRENT], counters[W_STARTED] = k, time.perf_counter()
        began = time.perf_counter()
        if params.freeze and last_dream is not None:
            dreamed = last_dream  # freeze: keep replaying the current dream over the new windows
        else:
            key = dreamer_key(params)
            if key not in dreamers:
                if len(dreamers) >= 6:
                    dreamers.pop(next(iter(dreamers)))
                dreamers[key] = make_dreamer(params)
            dreamed = dreamers[key].dream_window(window, k, params)
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
        next_k = k + 1
        notify()


def dreamer_key(params: Params | None):
    """Settings that need a new Dreamer (new objective, model or view); the rest are read per window.

    Which classes --target/--away name (a chord held on a keyboard) is read per window too:
    only whether there are any changes the traced objective."""
    if params is None:
        return None
    return (params.model, params.view, params.reconstruct, params.layer, bool(params.target or params.away),
            params.backend, params.device, params.top_db)


def keyboard_params(params: Params, labels: list[str]) -> Params | None:
    """For a model whose labels are piano keys, dreamed without a target yet: the same settings
    with a key held, so the Dreamer that plays keys can be built before the performer plays."""
    if params.target or params.away or not keyboard_keys(labels):
        return None
    return params.with_changes(target=labels[0])


def process_main(spec: ExchangeSpec, window_s: float, crossfade_s: float, sample_rate: int, channels: int,
                 conn, stop_event, lockstep: bool, threads: int) -> None:
    """Entry point of the worker process (spawned: a fresh interpreter, no forked audio state)."""
    import os

    import torch

    from ..dreaming.dreamer import Dreamer

    torch.set_num_threads(threads)
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
        state = {"version": version, "params": params}

        def get_params():
            while conn.poll():
                state["version"], state["params"] = conn.recv()
            return state["version"], state["params"]

        def make_dreamer(p):
            return ready.get(dreamer_key(p)) or make(p)

        try:
            dream_windows(buf, schedule, get_params, make_dreamer, stopped, lockstep)
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        buf.release(unlink=False)
