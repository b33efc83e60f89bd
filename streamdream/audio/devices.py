"""Audio devices: PortAudio through sounddevice, and a clock-driven null device.

Both drive the same callback signature, `process(indata, outdata, frames, status)`.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Callable

import numpy as np

from ..errors import DeviceError

def _sd():
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise DeviceError("PortAudio is not installed (Debian: apt-get install libportaudio2); "
                          "use --output-device null to run without audio hardware") from exc
    return sd


def list_devices() -> list[dict]:
    """Every PortAudio device, with which ones are the system's default input and output."""
    sd = _sd()
    apis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    out = []
    for index, dev in enumerate(sd.query_devices()):
        out.append({"index": index, "name": dev["name"], "hostapi": apis[dev["hostapi"]]["name"],
                    "inputs": dev["max_input_channels"], "outputs": dev["max_output_channels"],
                    "default_samplerate": dev["default_samplerate"],
                    "default_input": index == default_in, "default_output": index == default_out})
    return out


def _listing(devices: list[dict]) -> str:
    return "; ".join(f"{d['index']}: {d['name']} ({d['hostapi']}, {d['inputs']} in/{d['outputs']} out)"
                     for d in devices) or "none"


def find_device(spec: str | None, kind: str) -> int | None:
    """--input-device / --output-device -> PortAudio index; None (or "auto") means the system default.

    `spec` is an index, a whole name, or a part of one name (case-insensitive); a part that fits
    several devices is refused with the list, as sounddevice does, rather than picking one.
    """
    devices = list_devices()
    key = "inputs" if kind == "input" else "outputs"
    if spec in (None, "auto"):
        default = _sd().default.device[0 if kind == "input" else 1]
        if default is None or default < 0:
            hint = ("play a file with --input FILE, or run headless with --output-device null" if kind == "input"
                    else "use --output-device null")
            raise DeviceError(f"no audio {kind} device found (devices: {_listing(devices)}); {hint}")
        return None
    if spec.isdigit():
        match = [d for d in devices if d["index"] == int(spec)]
    else:
        candidates = [d for d in devices if d[key] > 0]
        match = ([d for d in candidates if d["name"].lower() == spec.lower()]
                 or [d for d in candidates if spec.lower() in d["name"].lower()])
    if not match:
        raise DeviceError(f"no audio {kind} device matches {spec!r}; devices: {_listing(devices)}")
    if len(match) > 1:
        raise DeviceError(f"{spec!r} matches several {kind} devices ({_listing(match)}); "
                          "give its index or more of its name")
    dev = match[0]
    if dev[key] == 0:
        hint = "play a file with --input FILE or pick" if kind == "input" else "pick"
        raise DeviceError(f"device {dev['name']!r} has no {key}; {hint} one of: {_listing(devices)}")
    return dev["index"]


def input_channel_slice(spec: str | None, device: int | None) -> tuple[int, slice]:
    """--input-channels "1,2" (1-based, one or two) -> (channels to open, slice picking them).

    Any one or two channels are a basic slice (a step of b - a), so the callback takes them
    without copying or allocating. Default: the first two (one on a mono device).
    """
    sd = _sd()
    available = int(sd.query_devices(device if device is not None else sd.default.device[0])["max_input_channels"])
    if spec is None:
        return min(2, available), slice(0, min(2, available))
    try:
        chosen = [int(c) for c in spec.split(",")]
    except ValueError:
        chosen = []
    if not 1 <= len(chosen) <= 2 or len(set(chosen)) != len(chosen) or min(chosen) < 1:
        raise DeviceError(f"--input-channels {spec!r}: give one or two channel numbers from 1, e.g. 1,2 or 3")
    if max(chosen) > available:
        raise DeviceError(f"--input-channels {spec}: the input device has {available} channel(s)")
    first = chosen[0] - 1
    if len(chosen) == 1:
        return first + 1, slice(first, first + 1)
    step = chosen[1] - chosen[0]
    stop = chosen[1] - 1 + (1 if step > 0 else -1)
    return max(chosen), slice(first, stop if stop >= 0 else None, step)


def check_settings(input_device: int | None, output_device: int | None, samplerate: int,
                   input_channels: int | None) -> None:
    """Refuse a rate or channel count the device cannot do, before any model is loaded."""
    sd = _sd()
    try:
        sd.check_output_settings(device=output_device, samplerate=samplerate, channels=2, dtype="float32")
        if input_channels:
            sd.check_input_settings(device=input_device, samplerate=samplerate, channels=input_channels,
                                    dtype="float32")
    except Exception as exc:
        info = sd.query_devices(output_device if output_device is not None else sd.default.device[1])
        raise DeviceError(f"{info['name']} cannot run at {samplerate} Hz ({str(exc).splitlines()[0]}); "
                          f"its default rate is {info['default_samplerate']:.0f} Hz, try --samplerate "
                          f"{info['default_samplerate']:.0f}") from exc


JACK_NAME_MAX = 63  # jack_client_name_size() - 1 on JACK2
_jack_name = None    # PortAudio keeps the pointer: the bytes must outlive every stream


def set_jack_client_name(name: str) -> None:
    """Name PortAudio's JACK client (PortAudio's own default is "PortAudio"), before any stream opens.

    PortAudio reads the name when it initialises its JACK host API, so it is restarted here.
    """
    global _jack_name
    if not name or len(name.encode()) > JACK_NAME_MAX or ":" in name:
        raise DeviceError(f"--name {name!r}: give 1 to {JACK_NAME_MAX} characters without ':'")
    sd = _sd()
    lib = ctypes.CDLL(sd._libname)  # the library sounddevice already loaded (one copy per process)
    if not hasattr(lib, "PaJack_SetClientName"):
        return  # PortAudio built without JACK: there is no client to name
    _jack_name = ctypes.create_string_buffer(name.encode())
    lib.PaJack_SetClientName(_jack_name)
    sd._terminate()
    sd._initialize()


REALTIME_PRIORITY = 70  # SCHED_FIFO priority for the callback thread: above JACK's default clients (~10-60)


def raise_thread_priority() -> str:
    """Give the calling (audio) thread real-time scheduling if the system allows it; says what happened.

    Opt-in (`live --realtime`). Under a real-time audio server the callback thread is real-time
    already and is left as it is. Under a non-real-time server (JACK --no-realtime) a SCHED_FIFO
    callback has a worse tail, not a better one: p99.9 36-46% of the period against 16-17% without
    it (docs/BENCHMARKS.md).
    """
    if not hasattr(os, "sched_setscheduler"):
        return "normal (this system has no real-time scheduling call)"
    policy = os.sched_getscheduler(0)
    if policy in (os.SCHED_FIFO, os.SCHED_RR):
        return f"real-time, priority {os.sched_getparam(0).sched_priority} (set by the audio system)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (PermissionError, OSError):
        return ("normal: no permission for real-time scheduling (allow it with an rtprio limit, e.g. the "
                "'audio' group in /etc/security/limits.d)")
    return f"real-time, priority {REALTIME_PRIORITY}"


class PortAudioStream:
    """A duplex (or output-only, when a file replaces capture) sounddevice stream around `process`."""

    def __init__(self, process: Callable, input_device: int | None, output_device: int | None, samplerate: int,
                 blocksize: int, input_channels: str | None = None, need_input: bool = True, realtime: bool = False):
        sd = _sd()
        if need_input:
            open_channels, pick = input_channel_slice(input_channels, input_device)
        self.failed: str | None = None
        self._process = process
        self.priority: str | None = None if realtime else "as the audio system set it (--realtime asks for more)"

        def callback(*args):
            if self.priority is None:  # first block, on the audio thread itself
                self.priority = raise_thread_priority()
            if need_input:
                indata, outdata, frames, _time, status = args
                indata = indata[:, pick]  # a view: the chosen capture channels
            else:
                outdata, frames, _time, status = args
                indata = None
            process(indata, outdata, frames, status)

        def finished():
            if not self._stopping:
                self.failed = "the audio device stopped the stream (unplugged, or its server went away)"

        self._stopping = False
        kwargs = dict(samplerate=samplerate, blocksize=blocksize, dtype="float32",
                      callback=callback, finished_callback=finished)
        try:
            if need_input:
                self.stream = sd.Stream(device=(input_device, output_device), channels=(open_channels, 2), **kwargs)
            else:
                self.stream = sd.OutputStream(device=output_device, channels=2, **kwargs)
        except Exception as exc:
            raise DeviceError(f"cannot open the audio device: {str(exc).splitlines()[0]}") from exc
        self.latency = self.stream.latency

    def start(self) -> None:
        self.stream.start()

    @property
    def active(self) -> bool:
        return self.stream.active and self.failed is None

    def stop(self) -> None:
        self._stopping = True
        try:
            self.stream.stop()
            self.stream.close()
        except Exception:
            pass  # a vanished device cannot be stopped twice; the engine still shuts down


class NullDevice:
    """The same callback driven by a clock: paced like a sound card, or in lockstep with the dreams.

    `lockstep(frames)`, when given, runs before each callback instead of the clock (the engine's
    wait for the dreams the next block needs): every window is dreamed, as fast as dreams allow.
    """

    def __init__(self, process: Callable, samplerate: int, blocksize: int,
                 lockstep: Callable[[int], None] | None = None, max_frames: int | None = None,
                 capture: np.ndarray | None = None):
        self._process = process
        self._capture = capture  # (frames, channels) played into the input side, then silence
        self.samplerate, self.blocksize = samplerate, blocksize or 512
        self._lockstep = lockstep
        self._stop = threading.Event()
        self.max_frames = max_frames
        self.failed: str | None = None
        self.latency = 0.0
        self._outdata = np.zeros((self.blocksize, 2), dtype=np.float32)
        self._thread = threading.Thread(target=self._run, name="streamdream-null-device", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def active(self) -> bool:
        return self._thread.is_alive() and self.failed is None

    def _run(self) -> None:
        period = self.blocksize / self.samplerate
        began = time.perf_counter()
        done = 0
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and done >= self.max_frames:
                    return
                if self._lockstep is not None:
                    self._lockstep(self.blocksize)
                self._process(self._input_block(done), self._outdata, self.blocksize, None)
                done += self.blocksize
                if self._lockstep is None:
                    wait = began + done / self.samplerate - time.perf_counter()
                    if wait > 0:
                        self._stop.wait(min(wait, period * 4))
        except BaseException as exc:
            self.failed = f"null device stopped: {type(exc).__name__}: {exc}"

    def _input_block(self, start: int) -> np.ndarray | None:
        if self._capture is None:
            return None
        block = self._capture[start:start + self.blocksize]
        if block.shape[0] < self.blocksize:
            block = np.concatenate([block, np.zeros((self.blocksize - block.shape[0], self._capture.shape[1]),
                                                    dtype=np.float32)])
        return block

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
