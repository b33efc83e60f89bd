"""`streamdream live`: live input (or a file played in real time) dreamed to the speakers; the options of a
real-time run, shared with `loop`."""
from __future__ import annotations

import argparse

from ..errors import ParameterError
from .dream import add_dream_options, params_from_args


def add_run_options(p: argparse.ArgumentParser, budget: float | None, capture: bool = True) -> None:
    """Options of a real-time run, shared by live and loop (which plays files: no `capture` side). Those for
    tests and benchmarks are hidden."""
    hidden = argparse.SUPPRESS
    on_capture = None if capture else hidden
    g = p.add_argument_group("sound")
    g.add_argument("--device", metavar="DEV", help="sound device for both sides (index or name part: `streamdream "
                                                   "devices`), or null: none")
    g.add_argument("--output-device", metavar="DEV", help="device to play to (overrides --device), or null")
    g.add_argument("--input-device", metavar="DEV", help=on_capture or "device to capture from (overrides --device)")
    g.add_argument("--input-channels", metavar="N,M", help=on_capture or "capture channels from 1, e.g. 3,4 (default 1,2)")
    g.add_argument("--name", default="streamdream", help="JACK client name (ports NAME:in_N, NAME:out_N)")
    g.add_argument("--samplerate", type=int, metavar="HZ", help="default 48000 (null device: the file's rate)")
    g.add_argument("--duration", type=float, metavar="S", help="stop after this many seconds of output")
    g.add_argument("--budget", dest="budget_s", type=float, default=budget, metavar="S",
                   help="time a window may take to dream; latency = window + budget " +
                        ("(default 2.8)" if budget else "(default: the window: dreams are read ahead)"))
    g.add_argument("--realtime", action="store_true", help="ask for SCHED_FIFO for the audio callback thread")
    g.add_argument("--no-monitor", action="store_true",
                   help=on_capture or "silence until the dream starts (default: a live input is heard meanwhile)")
    g.add_argument("--quiet", action="store_true", help="no live display")
    g.add_argument("--blocksize", type=int, default=0, help=hidden)  # frames per callback; 0: the host's
    g.add_argument("--threads", type=int, help=hidden)  # torch threads for dreaming; default: the fastest measured
    g.add_argument("--worker", choices=["process", "thread"], default="process", help=hidden)
    g.add_argument("--lockstep", action="store_true", help=hidden)  # null device: the clock waits for each dream
    g.add_argument("--unpaced", dest="lockstep", action="store_true", help=hidden)  # --lockstep's old name

    r = p.add_argument_group("recording and status")
    r.add_argument("--record", metavar="FILE", help="record what goes to the speakers (.wav/.flac, safe every second)")
    r.add_argument("--record-input", dest="record_input", metavar="FILE",
                   help="also record the input as it came in, on the same timeline")
    r.add_argument("--record-format", dest="record_format", choices=["float32", "16", "24"], metavar="F",
                   help="float32, 16 or 24 (default float32 in .wav, 24 in .flac)")
    r.add_argument("--stats", metavar="FILE", help="write counters as JSON once a second (docs/STATS.md)")
    r.add_argument("--osc-port", dest="osc_port", type=int, metavar="PORT",
                   help="OSC control and /streamdream/status on 127.0.0.1:PORT")
    r.add_argument("--web", metavar="[HOST:]PORT", help="status and control page (127.0.0.1 unless HOST; else a token)")

    m = p.add_argument_group("MIDI")
    m.add_argument("--midi", metavar="PORT", help="controller port (index or name part); the virtual port "
                                                  "'streamdream' opens too")
    m.add_argument("--midi-map", metavar="TOML", help="CC mapping (default: the shipped one; `midi learn`)")
    m.add_argument("--presets", metavar="TOML", help="presets file: program change N loads preset N")
    m.add_argument("--no-midi", action="store_true", help="open no MIDI port")
    add_dream_options(p)


def live_options(a: argparse.Namespace, **overrides):
    """The run options of the command line as LiveOptions (`overrides` for what the command decides itself)."""
    from ..stream.live import LiveOptions

    settings = dict(output_device=a.output_device or a.device or "auto", input_device=a.input_device or a.device,
                    input_channels=a.input_channels, name=a.name, samplerate=a.samplerate, blocksize=a.blocksize,
                    duration=a.duration, stats_path=a.stats, record_path=a.record, record_format=a.record_format,
                    record_input_path=a.record_input, quiet=a.quiet, budget_s=a.budget_s, lockstep=a.lockstep,
                    midi_port=a.midi, midi_map=a.midi_map, presets=a.presets, midi=not a.no_midi,
                    threads=a.threads, worker=a.worker, monitor=not a.no_monitor, realtime=a.realtime,
                    osc_port=a.osc_port, web=a.web)
    settings.update(overrides)
    return LiveOptions(**settings)


def cmd_live(a: argparse.Namespace) -> int:
    from rich.console import Console

    from ..stream.live import run_live

    console = Console(stderr=True)
    input_file = a.input
    if a.demo:
        if a.input:
            raise ParameterError("--demo plays the shipped clip: give it or --input FILE, not both")
        from ..data import DEMO_CLIP, shipped_path
        input_file = str(shipped_path(DEMO_CLIP))
    if input_file and (a.input_device or a.input_channels):
        raise ParameterError("--input FILE replaces the capture device: drop --input-device/--input-channels")
    if a.device == "null" and a.input_device:
        raise ParameterError("--device null has no capture side; play a file with --input FILE")
    opts = live_options(a, input_file=input_file, loop_input=not a.no_loop)
    run_live(params_from_args(a), opts, console)
    return 0


def add_parser(sub) -> None:
    lv = sub.add_parser("live", help="dream live input (or a file played in real time) to the speakers",
                        usage="%(prog)s [--input FILE | --demo] [options]")
    lv.add_argument("--input", metavar="FILE", help="play this file (looped) in place of the capture side")
    lv.add_argument("--demo", action="store_true", help="play the shipped demo clip (looped) instead")
    lv.add_argument("--no-loop", action="store_true", help="with --input: silence after the file ends")
    add_run_options(lv, budget=2.8)
    lv.set_defaults(func=cmd_live)
