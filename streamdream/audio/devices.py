"""Audio devices: PortAudio through sounddevice, and a clock-driven null device.

Both drive the same callback signature, `process(indata, outdata, frames, status)`.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

import numpy as np

from ..errors import DeviceError

NULL = "null"


def _sd():
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise DeviceError("PortAudio is not installed (Debian: apt-get install libportaudio2); "
                          "use --device null to run without audio hardware") from exc
    return sd


def list_devices() -> list[dict]:
    sd = _sd()
    apis = sd.query_hostapis()
    out = []
    for index, dev in enumerate(sd.query_devices()):
        out.append({"index": index, "name": dev["name"], "hostapi": apis[dev["hostapi"]]["name"],
                    "inputs": dev["max_input_channels"], "outputs": dev["max_output_channels"],
                    "default_samplerate": dev["default_samplerate"]})
    return out


def resolve_device(spec: str | None, need_input: bool) -> int | None:
    """--device by index or name substring -> PortAudio index; None means the system default."""
    devices = list_devices()
    usable = [d for d in devices if d["outputs"] > 0 and (d["inputs"] > 0 or not need_input)]
    listing = "; ".join(f"{d['index']}: {d['name']} ({d['hostapi']}, {d['inputs']} in/{d['outputs']} out)"
                        for d in devices) or "none"
    if spec is None:
        sd = _sd()
        default_out = sd.default.device[1]
        default_in = sd.default.device[0]
        if default_out is None or default_out < 0:
            raise DeviceError(f"no audio output device found (devices: {listing}); use --device null")
        if need_input and (default_in is None or default_in < 0):
            raise DeviceError("no audio input device found; play a file with --input FILE, "
                              "or run headless with --device null")
        return None
    if spec.isdigit():
        index = int(spec)
        match = [d for d in devices if d["index"] == index]
    else:
        match = [d for d in usable if spec.lower() in d["name"].lower()]
    if not match:
        raise DeviceError(f"no audio device matches {spec!r}; devices: {listing}")
    dev = match[0]
    if dev["outputs"] == 0:
        raise DeviceError(f"device {dev['name']!r} has no outputs; pick one of: {listing}")
    if need_input and dev["inputs"] == 0:
        raise DeviceError(f"device {dev['name']!r} has no inputs; play a file with --input FILE or pick one of: {listing}")
    return dev["index"]


def check_settings(device: int | None, samplerate: int, need_input: bool) -> None:
    sd = _sd()
    try:
        sd.check_output_settings(device=device, samplerate=samplerate, channels=2, dtype="float32")
        if need_input:
            sd.check_input_settings(device=device, samplerate=samplerate, channels=_input_channels(device),
                                    dtype="float32")
    except Exception as exc:
        info = sd.query_devices(device if device is not None else sd.default.device[1])
        raise DeviceError(f"{info['name']} cannot run at {samplerate} Hz ({str(exc).splitlines()[0]}); "
                          f"its default rate is {info['default_samplerate']:.0f} Hz, try --samplerate "
                          f"{info['default_samplerate']:.0f}") from exc


def _input_channels(device: int | None) -> int:
    sd = _sd()
    info = sd.query_devices(device if device is not None else sd.default.device[0])
    return min(2, int(info["max_input_channels"]))


REALTIME_PRIORITY = 70  # SCHED_FIFO priority for the callback thread: above JACK's default clients (~10-60)


def raise_thread_priority() -> str:
    """Give the calling (audio) thread real-time scheduling if the system allows it; says what happened.

    Opt-in (`live --realtime`). Under a real-time audio server the callback thread is real-time
    already and is left as it is. Under a non-real-time server (JACK --no-realtime on this VM) a
    SCHED_FIFO callback had a worse tail, not a better one: p99.9 36-46% of the period against
    16-17% without it (docs/BENCHMARKS.md), although a kernel thread had once held a normal
    callback off its CPU for 1 ms.
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

    def __init__(self, process: Callable, device: int | None, samplerate: int, blocksize: int, need_input: bool,
                 realtime: bool = False):
        sd = _sd()
        self.failed: str | None = None
        self._process = process
        self.priority: str | None = None if realtime else "as the audio system set it (--realtime asks for more)"

        def callback(*args):
            if self.priority is None:  # first block, on the audio thread itself
                self.priority = raise_thread_priority()
            if need_input:
                indata, outdata, frames, _time, status = args
            else:
                outdata, frames, _time, status = args
                indata = None
            process(indata, outdata, frames, status)

        def finished():
            if not self._stopping:
                self.failed = "the audio device stopped the stream (unplugged, or its server went away)"

        self._stopping = False
        kwargs = dict(device=device, samplerate=samplerate, blocksize=blocksize, dtype="float32",
                      callback=callback, finished_callback=finished)
        try:
            if need_input:
                self.stream = sd.Stream(channels=(_input_channels(device), 2), **kwargs)
            else:
                self.stream = sd.OutputStream(channels=2, **kwargs)
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
    """The same callback driven by a clock: paced like a sound card, or as fast as possible.

    `before_block(frames)` runs before each callback (the engine's lockstep wait when unpaced).
    """

    def __init__(self, process: Callable, samplerate: int, blocksize: int, paced: bool = True,
                 before_block: Callable[[int], None] | None = None, max_frames: int | None = None,
                 capture: np.ndarray | None = None):
        self._process = process
        self._capture = capture  # (frames, channels) played into the input side, then silence
        self.samplerate, self.blocksize, self.paced = samplerate, blocksize or 512, paced
        self._before = before_block
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
                if self._before is not None:
                    self._before(self.blocksize)
                self._process(self._input_block(done), self._outdata, self.blocksize, None)
                done += self.blocksize
                if self.paced:
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
