"""OSC control and status, on loopback by default, for a technician (or a show controller) to reach a
running piece: the same parameters MIDI reaches (control/mapping.py KNOBS), by name, in their own units.

    /streamdream/<param> VALUE     any parameter `streamdream params` lists as heard at the next block
                                   (intensity, mix, gain_db) or the next window (steps, layer, target, ...)
    /streamdream/feedback SHARE    installation mode: the feedback share 0..1
    /streamdream/status            replies /streamdream/status JSON (the --stats snapshot) to the sender

A bad value is refused with the same one-line message the command line gives, sent back as
/streamdream/error and logged; the piece carries on.
"""
from __future__ import annotations

import json
import threading

from ..errors import ParameterError, StreamDreamError
from .store import set_control

PREFIX = "/streamdream/"


class OscControl:
    def __init__(self, engine, port: int, labels: list[str], layers: list[str], host: str = "127.0.0.1",
                 status=lambda: {}, report=print):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.engine, self.status, self.report = engine, status, report
        self.labels, self.layers = labels, layers  # what MIDI offers too: a wrong name never reaches the worker
        self.messages = 0
        dispatcher = Dispatcher()
        dispatcher.map(PREFIX + "*", self._on_message, needs_reply_address=True)
        try:
            self.server = ThreadingOSCUDPServer((host, port), dispatcher)
        except OSError as exc:
            raise StreamDreamError(f"cannot listen for OSC on {host}:{port} ({exc.strerror}); "
                                   "choose another --osc-port") from exc
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="streamdream-osc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, client, address: str, value) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        builder = OscMessageBuilder(address=address)
        builder.add_arg(value)
        self.server.socket.sendto(builder.build().dgram, client)

    def _on_message(self, client, address: str, *args) -> None:
        self.messages += 1
        name = address[len(PREFIX):]
        try:
            if name == "status":
                self._reply(client, PREFIX + "status", json.dumps(self.status()))
                return
            if len(args) != 1:
                raise ParameterError(f"{address} takes one value")
            self.apply(name, args[0])
        except StreamDreamError as exc:
            self.report(f"OSC {address}: {exc}")
            self._reply(client, PREFIX + "error", str(exc))

    def apply(self, name: str, value) -> None:
        set_control(self.engine, name, value, self.labels, self.layers)
