"""OSC on loopback: the parameters MIDI reaches, by name, and a status reply; bad values refused in one line."""
import json
import socket
import time

import numpy as np
import pytest

from conftest import music_clip
from streamdream.control.osc import OscControl
from streamdream.params import Params
from streamdream.stream.engine import Engine, FileSource


@pytest.fixture
def osc(mel_model):
    params = Params(model=str(mel_model), steps=2, octaves=1, window_s=1.5, crossfade_s=0.25, backend="eager")
    engine = Engine(params, 16000, 256, budget_s=0.5, source=FileSource(music_clip(16000, 2.0)), feedback=0.2)
    said = []
    control = OscControl(engine, 0, ["drums", "piano"], ["/a", "/b"], status=lambda: {"windows_dreamed": 7},
                         report=said.append)
    control.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(30)
    yield engine, control, client, said
    control.stop()
    client.close()


def send(client, port, address, *values):
    from pythonosc.osc_message_builder import OscMessageBuilder
    builder = OscMessageBuilder(address=address)
    for v in values:
        builder.add_arg(v)
    client.sendto(builder.build().dgram, ("127.0.0.1", port))


def receive(client):
    from pythonosc.osc_message import OscMessage
    message = OscMessage(client.recv(65536))
    return message.address, message.params


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "OSC message not applied"
        time.sleep(0.01)


def test_osc_reaches_instant_and_per_window_parameters_and_feedback(osc):
    engine, control, client, _ = osc
    assert control.server.server_address[0] == "127.0.0.1"  # loopback only
    send(client, control.port, "/streamdream/intensity", 1.7)
    wait_for(lambda: engine.controls.target[0] == pytest.approx(1.7))
    version = engine.params_version
    send(client, control.port, "/streamdream/steps", 9)
    send(client, control.port, "/streamdream/target", "piano")
    send(client, control.port, "/streamdream/eq_bands", 1.0)  # the re-EQ, as in --preset tone
    send(client, control.port, "/streamdream/hold_others", 2.5)  # the music's identity held harder
    send(client, control.port, "/streamdream/freeze", 1)
    wait_for(lambda: engine.params.freeze)
    assert engine.params.steps == 9 and engine.params.target == "piano" and engine.params.eq_bands == 1.0
    assert engine.params.hold_others == 2.5
    assert engine.params_version == version + 5
    send(client, control.port, "/streamdream/feedback", 0.6)
    wait_for(lambda: engine.feedback.share == pytest.approx(0.6))


def test_osc_status_replies_to_the_sender(osc):
    engine, control, client, _ = osc
    send(client, control.port, "/streamdream/status")
    address, params = receive(client)
    assert address == "/streamdream/status" and json.loads(params[0]) == {"windows_dreamed": 7}


@pytest.mark.parametrize("address,value,message", [
    ("/streamdream/steps", 0, "steps must be 1..1000"),
    ("/streamdream/eq_depth_db", 100.0, "eq_depth_db must be 0.5..40 dB"),
    ("/streamdream/sustain_ms", 5000.0, "sustain_ms must be 0..1000 ms"),
    ("/streamdream/target", "tuba", "unknown target 'tuba'; choose one of: drums, piano"),
    ("/streamdream/volume", 1.0, "unknown parameter 'volume'"),
    ("/streamdream/feedback", 2.0, "feedback must be 0..1"),
])
def test_bad_osc_values_are_refused_with_one_line_and_change_nothing(osc, address, value, message):
    engine, control, client, said = osc
    before = (engine.params, engine.params_version, engine.feedback.share)
    send(client, control.port, address, value)
    reply, params = receive(client)
    assert reply == "/streamdream/error" and message in params[0] and "\n" not in params[0]
    assert (engine.params, engine.params_version, engine.feedback.share) == before
    assert message in said[-1]
