"""`streamdream devices` and `streamdream midi learn`: what is plugged in, and mapping a controller."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import ParameterError
from .parser import Parser


def cmd_devices(a: argparse.Namespace) -> int:
    from ..audio.devices import list_devices
    from ..control.midi import list_midi_ports

    found = list_devices()
    ports = list_midi_ports()
    if a.json:
        print(json.dumps({"audio": found, "midi": [{"api": api, "index": index, "name": name}
                                                   for api, index, name in ports]}, indent=1))
        return 0
    print("audio devices (PortAudio; > default input, < default output):")
    for d in found:
        mark = (">" if d["default_input"] else " ") + ("<" if d["default_output"] else " ")
        print(f"{mark}{d['index']:>3}  {d['name']}  [{d['hostapi']}]  {d['inputs']} in / {d['outputs']} out, "
              f"{d['default_samplerate']:.0f} Hz")
    if not found:
        print("  none (use --output-device null, with --input FILE)")
    print("  null  clock-driven null device (no sound; --record still works)")
    print("MIDI input ports (rtmidi):")
    for api, index, name in ports:
        print(f"  {index:>3}  {name}  [{api}]")
    if not ports:
        print("  none")
    return 0


def cmd_midi_learn(a: argparse.Namespace) -> int:
    import rtmidi

    from ..control.learn import LEARN_ORDER, learn_mapping, rtmidi_waiter, write_mapping
    from ..control.mapping import describe
    from ..control.midi import available_apis, find_port

    if hasattr(sys.stdout, "reconfigure"):  # an interactive dialogue, even through a pipe
        sys.stdout.reconfigure(line_buffering=True)
    if os.path.exists(a.out) and not a.force:
        raise ParameterError(f"{a.out} exists; pass --force to replace it, or choose another --out")
    params = a.params.split(",") if a.params else LEARN_ORDER
    apis = available_apis()
    if not apis:
        raise ParameterError("no MIDI system found (start JACK, or load the ALSA sequencer)")
    midi_in = rtmidi.MidiIn(apis[0], name="streamdream-learn")
    if a.port:
        names = midi_in.get_ports()
        index = find_port(names, a.port)
        midi_in.open_port(index)
        print(f"listening on {names[index]}")
    else:
        midi_in.open_virtual_port("streamdream")
        print("listening on the virtual port 'streamdream': connect your controller to it")
    try:
        mapping = learn_mapping(params, rtmidi_waiter(midi_in, timeout=a.timeout))
    finally:
        midi_in.close_port()
    path = write_mapping(a.out, mapping, a.force)
    print(f"wrote {path}:")
    for line in describe(mapping):
        print("  " + line)
    return 0



def add_parser(sub) -> None:
    md = sub.add_parser("midi", help="MIDI mapping tools")
    msub = md.add_subparsers(dest="midi_command", required=True, parser_class=Parser)
    ml = msub.add_parser("learn", help="move a knob for each parameter; writes a --midi-map TOML")
    ml.add_argument("--port", help="controller port (index or name substring); default: the virtual port")
    ml.add_argument("--out", default="midi-map.toml", help="where to write the mapping (default midi-map.toml)")
    ml.add_argument("--force", action="store_true", help="replace --out if it exists")
    ml.add_argument("--params", help="comma-separated parameters to learn (default: all)")
    ml.add_argument("--timeout", type=float, help="skip a parameter after this many seconds without a knob")
    ml.set_defaults(func=cmd_midi_learn)

    dv = sub.add_parser("devices", help="list audio devices (marking the defaults) and MIDI ports")
    dv.add_argument("--json", action="store_true", help="as JSON: {audio: [...], midi: [...]}")
    dv.set_defaults(func=cmd_devices)

