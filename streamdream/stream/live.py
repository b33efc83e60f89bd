"""`streamdream live`: wire a source, the engine, a device, the recorder and the status display."""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from ..audio import devices
from ..atomic import write_text_atomic
from ..audio.files import read_audio
from ..params import Params
from ..errors import FileWriteError, MidiPortError, ParameterError, RunError, StreamDreamError
from ..memory import no_huge_pages, rss_bytes
from .display import DisplayPipe, status_view
from .engine import CHANNELS, Engine, FileSource
from .recorder import Recorder, default_format


STALL_SECONDS = 2.0  # no audio callback for this long means the device is gone
# --stats JSON layout, documented key by key in docs/STATS.md: raise it when a key changes meaning or goes
STATS_SCHEMA_VERSION = 1


@dataclass
class LiveOptions:
    output_device: str = "auto"   # "auto" (default device, else null), "null", an index or a name (part)
    input_device: str | None = None  # capture device (index or name part); None: the default input
    input_channels: str | None = None  # capture channels, 1-based "1,2" or "3"; default the first two
    name: str = "streamdream"     # JACK client name (its ports are NAME:in_N / NAME:out_N)
    samplerate: int | None = None
    blocksize: int = 0            # 0: the host's own block size
    input_file: str | None = None
    loop_input: bool = True
    duration: float | None = None
    stats_path: str | None = None
    record_path: str | None = None
    record_format: str | None = None  # float32, 16 or 24; default float32 in .wav, 24 in .flac
    record_input_path: str | None = None  # --record-input: the input as it came in, same timeline and format
    quiet: bool = False
    budget_s: float = 2.8          # a 9-s window dreams in about 2 s on a 2-core CPU (docs/BENCHMARKS.md)
    lockstep: bool = False        # null device only: the clock waits for each dream (every window dreamed)
    midi_port: str | None = None  # --midi: index or name substring of a controller's port
    midi_map: str | None = None   # --midi-map TOML (default: the shipped mapping)
    presets: str | None = None    # --presets TOML: program change loads, saves go here
    midi: bool = True             # open the 'streamdream' virtual MIDI port when a MIDI system exists
    threads: int | None = None    # torch threads for dreaming; default: the fastest measured (dreaming/threads.py)
    worker: str = "process"       # "process" keeps the dream off the audio callback's GIL; "thread" for tests
    monitor: bool = True          # live capture: play the input until the delayed stream starts
    realtime: bool = False        # ask for SCHED_FIFO for the audio callback thread (opt-in: see BENCHMARKS)
    osc_port: int | None = None   # OSC control and status on 127.0.0.1:PORT (control/osc.py)
    web: str | None = None        # --web [HOST:]PORT: the status and control page (streamdream/web)
    web_token: str | None = None  # the page's token (a piece's [web] token); generated off loopback if None

    def check(self) -> "LiveOptions":
        """Every option and every file the run will need, checked before the model loads (which takes seconds)."""
        from ..audio.files import check_output_path
        from ..atomic import check_writable
        from ..control.mapping import load_mapping
        from ..control.presets import load_presets

        if self.samplerate is not None and not 8000 <= self.samplerate <= 192000:
            raise ParameterError(f"--samplerate {self.samplerate} is outside 8000-192000 Hz")
        if not 0 <= self.blocksize <= 8192:
            raise ParameterError("--blocksize must be 0 (let the device choose) to 8192 frames")
        if not 0.1 <= self.budget_s <= 60.0:  # also refuses nan
            raise ParameterError("--budget must be 0.1 to 60 seconds (how long a dream may take)")
        if self.duration is not None and not 0 < self.duration < math.inf:
            raise ParameterError("--duration must be a positive, finite number of seconds (leave it out to run until stopped)")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ParameterError("--threads must be 1 or more (leave it out for the fastest measured count)")
        if self.stats_path:
            check_writable(self.stats_path, "--stats")
        if self.record_path:
            check_output_path(self.record_path, default_format(self.record_path, self.record_format), "--record")
        if self.record_input_path:
            check_output_path(self.record_input_path, default_format(self.record_input_path, self.record_format),
                              "--record-input")
            if self.record_path and os.path.abspath(self.record_input_path) == os.path.abspath(self.record_path):
                raise ParameterError("--record-input and --record name the same file; give each its own")
        if self.web is not None:
            from ..web.link import check_token, check_web_extra, parse_listen
            parse_listen(self.web)
            check_token(self.web_token, "the web page")
            check_web_extra()
        load_mapping(self.midi_map)
        if self.presets:
            load_presets(self.presets)
        return self


def stats_snapshot(engine: Engine, started: float, blocksize: int, midi=None,
                   audio_thread: str | None = None) -> dict:
    s = engine.stats
    dream = s.dream_seconds()
    window_s = engine.schedule.window / engine.sample_rate
    period = (blocksize or s.last_frames) / engine.sample_rate if (blocksize or s.last_frames) else None
    pct = s.callback_percentiles()
    return {
        "schema_version": STATS_SCHEMA_VERSION,
        "elapsed_s": round(time.perf_counter() - started, 3),
        "seconds_out": s.frames_out / engine.sample_rate,
        "skipped_s": engine.skipped_time.skipped / engine.sample_rate,  # device cycles skipped (silence recorded)
        "recording_behind_s": engine.skipped_time.behind_s(),
        "windows_dreamed": s.windows_dreamed,
        "late_windows": s.late_windows,
        "failed_windows": s.failed_windows,
        "warmup_windows": s.warmup_windows,
        "xruns": dict(s.flags),
        "xrun_times": sorted(float(t) for t in s.xrun_times if t == t),  # time.perf_counter() of each
        "dream_seconds_per_window": dream,
        "real_time_factor": dream["mean"] / window_s if dream["mean"] is not None else None,
        "callback_seconds": pct,
        "callback_fraction_of_block": ({k: v / period for k, v in pct.items()} if period and pct else {}),
        "callbacks": s.callbacks,
        "slow_callbacks": s.slow_events,  # over SLOW_FRACTION of their block's time
        "slow_callback_times": [[float(t), float(d)] for t, d in s.slow_callbacks if t == t],
        "latency_s": engine.latency / engine.sample_rate,
        "audio_thread": audio_thread,
        "latency_frames": engine.latency,
        "rss_bytes": rss_bytes(),
        "worker_memory": s.worker_memory(),
        "controls": {"intensity": float(engine.controls.target[0]), "mix": float(engine.controls.target[1]),
                     "gain": float(engine.controls.gain), "schedule_level": float(engine.controls.level)},
        "input_peak": s.input_peak, "output_peak": s.output_peak,
        "dream": {"layer": engine.params.layer, "target": engine.params.target, "steps": engine.params.steps,
                  "step_size": engine.params.step_size, "octaves": engine.params.octaves,
                  "freeze": engine.params.freeze},
        **({"midi": {"port": midi.port_name, "connected": not midi.port_lost, "messages": midi.messages,
                     "ignored": midi.ignored}} if midi is not None else {}),
    }


class StatsFile:
    """--stats: rewritten whole once a second. It is a side channel, so a write that fails mid-run
    (disk full) is reported once and the audio goes on; the path itself was checked before the start."""

    def __init__(self, path: str | None, say):
        self.path, self.say, self.failed = path, say, False

    def write(self, snap: dict) -> None:
        if not self.path:
            return
        try:
            write_text_atomic(self.path, json.dumps(snap, indent=1))
            self.failed = False
        except FileWriteError as exc:
            if not self.failed:
                self.say.warn(f"warning: {exc}; will keep trying")
            self.failed = True


def warm_dreamer(params: Params, sample_rate: int, window_frames: int):
    """The first dreamer, built and warmed up before audio starts."""
    from ..dreaming.dreamer import Dreamer

    return Dreamer(params, sample_rate, CHANNELS, window_frames).warm_up()


def open_device(engine: Engine, opts: LiveOptions, rate: int, capture: np.ndarray | None = None):
    need_input = opts.input_file is None
    if opts.output_device == "null":
        return devices.NullDevice(engine.process, rate, opts.blocksize, capture=capture,
                                  lockstep=engine.wait_for_dreams if opts.lockstep else None)
    return devices.PortAudioStream(engine.process, *_device_indices(opts), rate, opts.blocksize,
                                   opts.input_channels, need_input, opts.realtime)


def _device_indices(opts: LiveOptions) -> tuple[int | None, int | None]:
    need_input = opts.input_file is None
    return (devices.find_device(opts.input_device, "input") if need_input else None,
            devices.find_device(opts.output_device, "output"))


def choose_device(opts: LiveOptions, console) -> LiveOptions:
    """--output-device auto: the default sound device when there is one, else the null device (said out loud)."""
    if opts.output_device != "auto":
        return opts
    try:
        _device_indices(opts)
        return opts
    except StreamDreamError as exc:
        console.print(f"[yellow]{exc}[/]; using the null device (no sound, --record still works)")
        return replace(opts, output_device="null")


def _stop_with_timeout(device, failed: bool) -> bool:
    """Closing a stream whose server died can block inside PortAudio; never let that lose the recording.

    Returns False if the stream may still be calling back."""
    closer = threading.Thread(target=device.stop, daemon=True)
    closer.start()
    closer.join(timeout=3.0 if failed else 30.0)
    return not closer.is_alive()


def open_midi(engine: Engine, params: Params, opts: LiveOptions, console):
    """The MIDI layer, or None when there is no MIDI system and no --midi was asked for."""
    from ..control.mapping import load_mapping
    from ..control.midi import MidiControl, available_apis
    from ..control.presets import load_presets
    from ..dreaming.model import read_model_info

    mapping = load_mapping(opts.midi_map)
    presets = load_presets(opts.presets) if opts.presets else []
    if not opts.midi_port and not available_apis():
        return None
    info = read_model_info(params.model, params.view)
    control = MidiControl(engine, mapping, info.labels, info.layer_choices,
                          presets, opts.presets)
    try:
        control.open(opts.midi_port, virtual=True)
    except MidiPortError:
        raise
    except Exception as exc:
        if opts.midi_port:
            raise MidiPortError(f"cannot open MIDI: {exc}") from exc
        console.print(f"[yellow]MIDI unavailable ({exc}); running without it[/]")
        return None
    console.print("MIDI: virtual port 'streamdream'" + (f" and {control.port_name!r}" if control.port_name else ""))
    return control


def run_live(params: Params, opts: LiveOptions, console, source_audio: tuple[np.ndarray, int] | None = None,
             ticks=(), feedback: float | None = None) -> dict:
    """Run until --duration, a stop signal, or the device fails. Returns the final stats snapshot.

    source_audio (audio, rate) replaces --input; `ticks` are objects with tick(engine, seconds, say) called
    about ten times a second (installation mode's guard, evolution, schedule); feedback is the share of
    the output fed back into the input (None: no feedback path)."""
    params = params.validate()
    opts.check()
    from ..dreaming.model import read_model_info
    read_model_info(params.model, params.view)  # refuse a bad model file before touching audio
    opts, source, rate = _prepare(opts, console, source_audio)
    say = Say(console)
    engine = _start_engine(params, opts, rate, source, feedback, say)
    try:
        midi = open_midi(engine, params, opts, console) if (opts.midi or opts.midi_port) else None
        device = open_device(engine, opts, rate)
    except BaseException:
        engine.close()
        raise
    if isinstance(device, devices.NullDevice):
        device.max_frames = int(opts.duration * rate) if opts.duration else None
    say(f"latency {engine.latency / rate:.3f} s ({engine.latency} frames: window {params.window_s:g} s "
        f"+ budget {opts.budget_s:g} s + limiter {engine.limiter.latency} frames)"
        + (f" + device {device.latency}" if getattr(device, "latency", 0) else "")
        + f"; {rate} Hz, block {opts.blocksize or 'host default'}, device {opts.output_device}")
    return Session(engine, device, midi, opts, say, ticks).run()


def _prepare(opts: LiveOptions, console, source_audio) -> tuple[LiveOptions, FileSource | None, int]:
    """The options as the run will use them (the device chosen), the source and the rate; device problems
    found before any time goes into the model. The caller's options are left as they were."""
    import soxr

    if source_audio is not None:
        opts = replace(opts, input_file=opts.input_file or "<loop>")  # a file-like source: no capture side
    opts = choose_device(opts, console)
    source = None
    rate = opts.samplerate
    if source_audio is not None or opts.input_file:
        if source_audio is None:
            loaded = read_audio(opts.input_file)
            for warning in loaded.warnings:
                console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
            source_audio = loaded.audio, loaded.sample_rate
        audio, file_rate = source_audio
        rate = rate or (48000 if opts.output_device != "null" else file_rate)
        if file_rate != rate:
            audio = soxr.resample(audio.T, file_rate, rate).T.astype(np.float32)
        source = FileSource(audio, loop=opts.loop_input)
    rate = rate or 48000
    if opts.lockstep and opts.output_device != "null":
        raise StreamDreamError("--lockstep runs on the null device only (--output-device null)")
    if opts.output_device != "null":  # fail on device problems before spending time on the model
        devices.set_jack_client_name(opts.name)
        input_index, output_index = _device_indices(opts)
        channels = (devices.input_channel_slice(opts.input_channels, input_index)[0]
                    if opts.input_file is None else None)
        devices.check_settings(input_index, output_index, rate, channels)
    return opts, source, rate


def _start_engine(params: Params, opts: LiveOptions, rate: int, source, feedback, say) -> Engine:
    window_frames = int(round(params.window_s * rate))
    no_huge_pages()  # before the worker starts: it inherits the setting (see memory.py)
    factory = None
    if opts.worker == "thread":
        import torch

        from ..dreaming.threads import threads_beside_audio
        torch.set_num_threads(opts.threads or threads_beside_audio())
        first = warm_dreamer(params, rate, window_frames)
        from ..dreaming.dreamer import Dreamer
        factory = lambda p: first if p is params else Dreamer(p, rate, CHANNELS, window_frames)  # noqa: E731
    say(f"loading the model and warming up the dream loop ({opts.worker} worker, torch threads: "
        f"{opts.threads or 'the fastest measured'}) ...")
    engine = Engine(params, rate, opts.blocksize, opts.budget_s, source=source, dreamer_factory=factory,
                    lockstep=opts.lockstep, worker=opts.worker, threads=opts.threads, monitor=opts.monitor,
                    feedback=feedback)
    try:
        engine.start_worker()
    except BaseException:
        engine.close()
        raise
    return engine


def open_display(say: "Say") -> DisplayPipe | None:
    """The live status, drawn by its own process on the console's terminal; None if it cannot start
    (a console without a file descriptor, no processes left): the run goes on without it."""
    try:
        return DisplayPipe(say.console)
    except (OSError, ValueError, AttributeError) as exc:  # io.UnsupportedOperation is an OSError
        say.warn(f"no live display: {exc}")
        return None


class Say:
    """Messages to the screen and the log. A closed terminal (SIGHUP, ssh gone) must not stop the show
    or lose the recording: after the first failed write the screen is left alone."""

    def __init__(self, console):
        self.console = console
        self.screen = True
        self.display = None  # a DisplayPipe while the live status is drawn: messages then print through it
        self.log = logging.getLogger("streamdream")

    def __call__(self, text: str, style: str | None = None, level: int = logging.INFO) -> None:
        self.log.log(level, text)
        markup = f"[{style}]{text}[/]" if style else text
        if self.display is not None and self.display.say(markup):
            return
        if self.screen:
            try:
                self.console.print(markup, soft_wrap=True)  # one message, one line: the terminal wraps it
            except (OSError, ValueError, SystemExit):  # rich turns a broken pipe into SystemExit(1)
                self.screen = False

    def warn(self, text: str) -> None:
        self(text, "yellow", logging.WARNING)


WORKER_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # waits before successive restarts of a failing worker
WORKER_CALM_S = 600.0      # a worker that ran this long since its last restart starts the backoff afresh
# A window dreamed for longer than max(8 budgets, 60 s) is hung. Generous: a new layer or target builds
# and warms up a new dreamer first, which can take over half a minute on a small machine under load.
HANG_FACTOR, HANG_FLOOR_S = 8.0, 60.0


class Session:
    """One run: the main thread's watch over the engine, device, worker, recorder, MIDI and display."""

    def __init__(self, engine: Engine, device, midi, opts: LiveOptions, say: Say, ticks=()):
        self.engine, self.device, self.midi, self.opts, self.say = engine, device, midi, opts, say
        self.ticks = list(ticks)
        self.rate = engine.sample_rate
        self.failure: str | None = None
        self.recorder: Recorder | None = None        # --record
        self.input_recorder: Recorder | None = None  # --record-input
        self.pump = None
        self.osc = None
        self.web = None
        self.started = time.perf_counter()
        self.stop = threading.Event()
        self.stopped_by: list[int] = []
        self.stats_file = StatsFile(opts.stats_path, say)
        self.next_restart_at: float | None = None
        self.restarting: threading.Thread | None = None
        self.last_restart = 0.0
        self.failed_restarts = 0
        self.callback_errors_said = 0
        self.slow_dream_said = False

    # ---- life
    def run(self) -> dict:
        engine, opts = self.engine, self.opts
        try:
            if opts.osc_port is not None:
                self._open_osc()
            if opts.web is not None:
                self._open_web()
            if opts.record_path:
                self.recorder = Recorder(opts.record_path, self.rate, CHANNELS, opts.record_format)
            if opts.record_input_path:
                self.input_recorder = Recorder(opts.record_input_path, self.rate, CHANNELS, opts.record_format)
        except BaseException:
            for rec in self._recorders():
                rec.abandon()
            if self.osc is not None:
                self.osc.stop()
            if self.web is not None:
                self.web.stop()
            self.engine.close()
            if self.midi is not None:
                self.midi.close()
            raise
        # Python hands the GIL over every 5 ms by default; the audio callback should not wait that long.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        # Ctrl-C, SIGTERM from a service manager, SIGHUP from a closed terminal: all stop cleanly
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = ([signal.getsignal(sig) for sig in handled]
                    if threading.current_thread() is threading.main_thread() else None)
        if previous is not None:
            for sig in handled:
                signal.signal(sig, lambda signum, _frame: (self.stopped_by.append(signum), self.stop.set()))
        if self.recorder:
            engine.record_ring = self.recorder.ring
        if self.input_recorder:
            engine.input_record_ring = self.input_recorder.ring
        for rec in self._recorders():
            rec.start()
        # Everything loaded so far lives for the whole run: keep the cyclic garbage collector from
        # walking it (a full collection here is a multi-millisecond pause that can land on the callback).
        import gc
        gc.collect()
        gc.freeze()
        if self.midi is not None:
            from ..control.midi import MidiPump
            self.pump = MidiPump(self.midi, report=self.say.warn)
            self.pump.start()
        self.device.start()
        try:
            if not opts.quiet:
                self.say.display = open_display(self.say)
            self._watch()
        finally:
            snap = self._finish()
            if previous is not None:
                for sig, handler in zip(handled, previous):
                    signal.signal(sig, handler)
            sys.setswitchinterval(switch_interval)
            gc.unfreeze()  # a caller that goes on (the Python API, a test) gets its collector back
        if self.failure:
            kept = "".join(f"; the recording so far is in {rec.path}" for rec in self._recorders())
            raise RunError(f"{self.failure}{kept}")
        self.say(f"stopped after {snap['seconds_out']:.1f} s: {snap['windows_dreamed']} windows dreamed, "
                 f"{snap['late_windows']} late, xruns: {sum(snap['xruns'].values())}")
        if signal.SIGINT in self.stopped_by:
            raise KeyboardInterrupt  # cleaned up; the CLI exits 130 as for Ctrl-C in any command
        return snap

    def _open_osc(self) -> None:
        from ..control.osc import OscControl
        from ..dreaming.model import read_model_info
        info = read_model_info(self.engine.params.model, self.engine.params.view)
        self.osc = OscControl(self.engine, self.opts.osc_port, info.labels, info.layer_choices,
                              status=self.snapshot, report=self.say.warn)
        self.osc.start()
        self.say(f"OSC: control and status on 127.0.0.1:{self.osc.port} (/streamdream/...)")

    def _open_web(self) -> None:
        from ..web.link import WebLink, parse_listen
        self.web = WebLink(self, *parse_listen(self.opts.web), self.opts.web_token)
        self.web.start()
        self.web.announce(self.say.console)

    def _watch(self) -> None:
        engine, opts = self.engine, self.opts
        max_frames = int(opts.duration * self.rate) if opts.duration else None
        last_stats = 0.0
        self.progress = (-1, time.perf_counter())
        priority_said = False
        while not self.stop.is_set():
            time.sleep(0.1)
            now = time.perf_counter()
            if not priority_said and getattr(self.device, "priority", None):
                self.say(f"audio thread: {self.device.priority}")
                priority_said = True
            if max_frames is not None and engine.stats.frames_out >= max_frames:
                break
            if not self._check_device(now):
                break
            self._check_worker(now)
            self._check_callback()
            self._check_recorder()
            self._check_dream_time()
            seconds = engine.stats.frames_out / self.rate
            for tick in self.ticks:
                tick.tick(engine, seconds, self.say)
            snap = None
            if opts.stats_path and now - last_stats >= 1.0:
                snap = self.snapshot()
                self.stats_file.write(snap)
                last_stats = now
            display = self.say.display
            if display is not None and display.due():
                s = engine.stats
                dreaming = (s.current_window, now - s.window_started) if s.current_window >= 0 else None
                display.status(status_view(snap or stats_snapshot(engine, self.started, opts.blocksize), dreaming))

    def snapshot(self) -> dict:
        snap = stats_snapshot(self.engine, self.started, self.opts.blocksize, self.midi,
                              getattr(self.device, "priority", None))
        snap.update(worker_restarts=self.engine.worker.restarts, callback_errors=self.engine.stats.callback_errors,
                    recorded_s=(self.recorder.frames_written / self.rate if self.recorder else None),
                    recorded_input_s=(self.input_recorder.frames_written / self.rate if self.input_recorder else None),
                    recording_error=next((rec.error for rec in self._recorders() if rec.error), None))
        if self.engine.feedback is not None:
            snap["feedback"] = {"share": self.engine.feedback.share, "effective": self.engine.feedback.effective}
        return snap

    # ---- faults
    def _check_device(self, now: float) -> bool:
        """False when the device is gone (loop --watchdog then starts a fresh engine until it is back:
        PortAudio cannot be restarted reliably inside a process whose stream died with its server)."""
        engine = self.engine
        failure = None
        if self.device.failed or not self.device.active:
            failure = self.device.failed or "the audio device stopped the stream (unplugged, or its server went away)"
        elif not engine.lockstep:  # in lockstep the null device waits for each dream by design
            # A vanished device (unplugged card, JACK server gone) may simply stop calling back.
            frames, since = self.progress
            if engine.stats.frames_out != frames:
                self.progress = (engine.stats.frames_out, now)
            elif now - since > STALL_SECONDS:
                failure = f"the audio device stopped delivering blocks for {STALL_SECONDS:g} s (unplugged?)"
        if failure is None:
            return True
        self.failure = failure
        self.say.warn(failure)
        return False

    def _check_worker(self, now: float) -> None:
        """A worker that raised, died or hangs past its budget is restarted with backoff; dry plays meanwhile."""
        worker, engine = self.engine.worker, self.engine
        if self.restarting is not None:  # a new worker is loading (seconds): the watch carries on meanwhile
            if self.restarting.is_alive():
                return
            self.restarting = None
            if worker.error is None:
                self.say(f"dream worker restarted ({worker.restarts} restart(s) so far)", "green")
        worker.poll()
        while worker.notices:
            self.say.warn(f"dream worker: {worker.notices.pop(0)}")
        if self.next_restart_at is None:
            hang_limit = max(HANG_FACTOR * engine.budget / self.rate, HANG_FLOOR_S)
            if worker.error is not None:
                reason = f"the dream worker failed: {worker.error}"
            elif worker.hung_for() > hang_limit:
                reason = f"the dream worker has been on one window for over {hang_limit:.0f} s"
            else:
                return
            if now - self.last_restart > WORKER_CALM_S:
                self.failed_restarts = 0
            wait = WORKER_BACKOFF_S[min(self.failed_restarts, len(WORKER_BACKOFF_S) - 1)]
            self.say.warn(f"{reason}; dry sound plays; restarting it in {wait:g} s "
                          f"(restart {worker.restarts + 1})")
            worker.stop(timeout=0.5)  # a hung process is killed now, not when the restart is due
            self.next_restart_at = now + wait
            return
        if now < self.next_restart_at:
            return
        self.next_restart_at = None
        self.last_restart = now
        self.failed_restarts += 1

        def restart():
            try:
                worker.restart()
            except StreamDreamError as exc:
                worker.error = exc  # picked up on the next pass: the backoff grows

        self.restarting = threading.Thread(target=restart, name="streamdream-restart", daemon=True)
        self.restarting.start()

    def _check_callback(self) -> None:
        stats = self.engine.stats
        if stats.callback_errors > self.callback_errors_said:
            exc = self.engine.callback_error
            self.say.warn(f"error in the audio callback ({stats.callback_errors} block(s) played as silence so far): "
                          f"{type(exc).__name__}: {exc}")
            self.callback_errors_said = stats.callback_errors

    def _check_dream_time(self) -> None:
        """Say once, with what to do, when windows come late because the dream takes longer than its budget
        (a slower machine, a heavier preset): a performer otherwise hears the dry input and sees only a count."""
        stats, budget_s = self.engine.stats, self.engine.budget / self.rate
        if self.slow_dream_said or stats.late_windows == 0 or stats.windows_dreamed == 0:
            return
        took = stats.dream_seconds()
        if took["mean"] <= budget_s:
            return  # late for another reason (a worker being restarted): said where that happens
        self.slow_dream_said = True
        enough = min(60.0, math.ceil(took["max"] * 1.2 * 2) / 2)  # a fifth to spare, in half seconds
        self.say.warn(f"windows come late and play dry: a dream takes {took['mean']:.1f} s on average, the budget "
                      f"is {budget_s:g} s; give it more time (--budget {enough:g}, which adds "
                      f"{enough - budget_s:.1f} s of latency) or less to do (--preset tint, or fewer steps)")

    def _recorders(self) -> list[Recorder]:
        return [rec for rec in (self.recorder, self.input_recorder) if rec is not None]

    def _check_recorder(self) -> None:
        for rec in self._recorders():
            if rec.error is not None and not rec.error_said:
                rec.error_said = True
                if rec is self.recorder:
                    self.engine.record_ring = None
                else:
                    self.engine.input_record_ring = None
                self.say.warn(f"recording stopped: {rec.error}; the audio plays on "
                              f"({rec.frames_written / self.rate:.1f} s are safe in {rec.path})")

    def _finish(self) -> dict:
        engine = self.engine
        if self.restarting is not None:
            self.restarting.join(timeout=120)  # let a worker being started finish, then stop it as usual
        if _stop_with_timeout(self.device, self.failure is not None):
            engine.close()
        else:
            engine.stop_worker()  # the callback may still touch the buffers: leave them mapped
        finished = []
        for rec in self._recorders():  # first: nothing below may cost the recording
            try:
                finished.append((rec.close(), rec.frames_written))
            except OSError as exc:
                self.say.warn(f"finishing the recording {rec.path} failed: {exc}")
        if self.pump is not None:
            self.pump.stop()
        if self.osc is not None:
            self.osc.stop()
        if self.web is not None:
            self.web.stop()
        if self.midi is not None:
            self.midi.close()
        snap = self.snapshot()
        self.stats_file.write(snap)
        for path, frames in finished:
            self.say(f"recorded {frames / self.rate:.1f} s to {path}")
        if self.say.display is not None:  # last: it draws the final status; later messages go to the console
            self.say.display.close(status_view(snap, None))
            self.say.display = None
        return snap
