#!/usr/bin/env python3
"""Knob-to-sound latency on a JACK dummy device: MIDI CC sent -> first output block that reflects it.

    python scripts/bench_knobs.py [--turns 20] [--blocksize 512]

One process: a private JACK server (dummy, 48 kHz), the live engine on PortAudio's JACK
device with the demo clip as input and MIDI on the 'streamdream' virtual port, and a
JACK MIDI output port of our own playing the performer. For instant controls (CC 1,
intensity) the clock stops when the audio callback computes the first block gliding
toward the new value; for per-window controls (CC 22, steps) when the callback first
plays a window dreamed with the new value. PortAudio's reported output latency (the
time from that block to the DAC) is printed beside it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.jackserver import JackServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--window-turns", type=int, default=4)
    parser.add_argument("--blocksize", type=int, default=512)
    args = parser.parse_args()

    server = JackServer(f"sdknobs{os.getpid()}", rate=48000, period=args.blocksize)
    os.environ.update({"JACK_DEFAULT_SERVER": server.name, "JACK_NO_START_SERVER": "1"})
    import rtmidi

    from streamdream.audio.devices import PortAudioStream
    from streamdream.audio.files import read_audio
    from streamdream.control.mapping import load_mapping
    from streamdream.control.midi import MidiControl, MidiPump
    from streamdream.params import Params
    from streamdream.dreaming.dreamer import Dreamer
    from streamdream.dreaming.model import read_model_info
    from streamdream.stream.engine import CHANNELS, Engine, FileSource
    from streamdream.stream.live import warm_dreamer

    rate = 48000
    params = Params()
    info = read_model_info()
    first = warm_dreamer(params, rate, int(params.window_s * rate))
    clip = read_audio(ROOT / "streamdream" / "data" / "demo.flac").audio
    window = int(params.window_s * rate)
    engine = Engine(params, rate, args.blocksize, 3.0, source=FileSource(clip),
                    dreamer_factory=lambda p: first if p is params else Dreamer(p, rate, CHANNELS, window))
    control = MidiControl(engine, load_mapping(), info.labels, [layer.name for layer in info.recommended])
    control.open(None, virtual=True)
    pump = MidiPump(control)
    stream = PortAudioStream(engine.process, None, 0, rate, args.blocksize, need_input=False)
    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="performer")
    pump.start()
    engine.start_worker()
    stream.start()
    try:
        ports = sender.get_ports()
        sender.open_port(ports.index("streamdream-midi:streamdream"))
        time.sleep(2.0)
        instant = []
        for turn in range(args.turns):
            before = engine.controls.ramp_started_at
            value = 127 if turn % 2 == 0 else 0
            sent = time.perf_counter()
            sender.send_message([0xB0, 1, value])
            while engine.controls.ramp_started_at == before:
                time.sleep(0.0002)
            instant.append(engine.controls.ramp_started_at - sent)
            time.sleep(0.3)
        per_window = []
        for turn in range(args.window_turns):
            steps = 2 + turn  # a new value each time
            raw = round((steps - 1) / 15 * 127)
            sent = time.perf_counter()
            sender.send_message([0xB0, 22, raw])
            wanted = load_mapping().lookup()[(0, 22)].value(raw)
            seen = engine.heard_total
            while True:
                new = list(engine.heard)[len(engine.heard) - min(len(engine.heard), engine.heard_total - seen):]
                hits = [t for k, t, p in new if p is not None and p.steps == wanted]
                if hits:
                    per_window.append(hits[0] - sent)
                    break
                time.sleep(0.01)
    finally:
        stream.stop()
        engine.stop_worker()
        pump.stop()
        control.close()
        sender.close_port()
        del sender
        # PortAudio's JACK host API asserts at exit if its server went first: let it go while JACK runs
        import sounddevice
        sounddevice._terminate()
        server.stop()
    period_ms = 1000 * args.blocksize / rate
    out_latency = stream.latency[1] if isinstance(stream.latency, tuple) else stream.latency
    print(f"JACK dummy 48 kHz, period {args.blocksize} ({period_ms:.1f} ms); default dream settings; "
          f"PortAudio output latency {1000 * out_latency:.1f} ms (added after the block is computed)\n")
    print("| control | turns | median | max | target |")
    print("|---|---|---|---|---|")
    ms = [1000 * x for x in instant]
    print(f"| instant (CC 1 intensity): send -> first gliding block | {len(ms)} | {statistics.median(ms):.1f} ms | "
          f"{max(ms):.1f} ms | <= {period_ms:.1f} ms block + 20 ms glide |")
    s = per_window
    print(f"| per-window (CC 22 steps): send -> first block of a window dreamed with it | {len(s)} | "
          f"{statistics.median(s):.2f} s | {max(s):.2f} s | next window (<= hop + latency) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
