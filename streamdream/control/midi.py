"""MIDI input through python-rtmidi."""
from __future__ import annotations


def list_midi_ports() -> list[tuple[str, int, str]]:
    """(api name, index, port name) for every MIDI input port rtmidi can see, on every compiled API."""
    import rtmidi

    ports = []
    for api in rtmidi.get_compiled_api():
        if api == rtmidi.API_RTMIDI_DUMMY:
            continue
        try:
            midi_in = rtmidi.MidiIn(api)
        except Exception:  # e.g. the JACK API with no JACK server running
            continue
        for index, name in enumerate(midi_in.get_ports()):
            ports.append((rtmidi.get_api_display_name(api), index, name))
        midi_in.delete()
    return ports
