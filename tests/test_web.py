"""The web page's server (streamdream/web/server.py), the real Starlette app through its HTTP and WebSocket
test client: the token, Host and Origin checks, the size and rate limits, the security headers, and the
checks on control messages before anything reaches the audio process. Its address and token options
and the piece's [web] table are checked here too."""
import json
import time

import pytest

pytest.importorskip("starlette")  # the web extra; `pip install -e '.[dev]'` brings it
from starlette.testclient import TestClient, WebSocketDenialResponse  # noqa: E402

from conftest import run_cli  # noqa: E402
from streamdream.errors import ParameterError  # noqa: E402
from streamdream.web import server  # noqa: E402
from streamdream.web.link import check_token, parse_listen  # noqa: E402

TOKEN = "k" * 12 + "-secret-token"
CHOICES = {"presets": ["vivid", "faithful"], "targets": ["none", "brass", "strings"], "feedback": False,
           "ranges": {"intensity": [0, 2], "mix": [0, 1], "gain_db": [-24, 6]}}
ORIGIN = {"origin": "http://testserver"}


class Page:
    """The app as the server process runs it, with what it would send to the audio process kept."""

    def __init__(self, token=TOKEN, hosts=None):
        self.sent, self.logged = [], []
        self.hub = server.Hub(CHOICES, self.sent.append, self.logged.append)
        self.client = TestClient(server.create_app(self.hub, token, hosts), follow_redirects=False)

    def forwarded(self) -> dict:
        merged = {}
        for message in self.sent:
            merged.update(message["set"])
        return merged


@pytest.fixture
def page():
    p = Page()
    with p.client:
        yield p


def test_without_the_right_token_every_request_and_handshake_gets_401_and_one_plain_log_line(page):
    for path in ("/", "/app.js", "/nothing"):
        assert page.client.get(path).status_code == 401
    answer = page.client.get("/", params={"token": "x" * len(TOKEN)})
    assert answer.status_code == 401 and answer.text.strip() == "401"  # no detail
    assert page.client.post("/control", json={"intensity": 1}, headers=ORIGIN).status_code == 401
    with pytest.raises(WebSocketDenialResponse) as refused:
        with page.client.websocket_connect("/ws", headers=ORIGIN):
            pass
    assert refused.value.status_code == 401
    assert len(page.logged) == 1 and "token" in page.logged[0]  # a flood of refusals: one line a second
    assert all(TOKEN not in line and "xxxx" not in line for line in page.logged)
    assert page.sent == []


def test_the_token_moves_from_the_address_into_a_cookie_that_opens_the_page_and_the_socket(page):
    answer = page.client.get("/", params={"token": TOKEN})
    assert answer.status_code == 303 and answer.headers["location"] == "/"  # the token leaves the address bar
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert page.client.get("/").status_code == 200  # the client keeps the cookie
    assert page.client.get("/app.js").headers["content-type"].startswith("text/javascript")
    with page.client.websocket_connect("/ws", headers=ORIGIN) as ws:
        assert json.loads(ws.receive_text())["choices"]["targets"] == CHOICES["targets"]
    bearer = TestClient(page.client.app).get("/", headers={"authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_a_socket_or_a_control_from_another_site_is_refused(page):
    page.client.cookies.set(server.COOKIE, TOKEN)
    for headers in ({"origin": "http://evil.example"}, {}, {"origin": "null"}):
        with pytest.raises(WebSocketDenialResponse) as refused:
            with page.client.websocket_connect("/ws", headers=headers):
                pass
        assert refused.value.status_code == 403
        assert page.client.post("/control", json={"intensity": 1.5}, headers=headers).status_code == 403
    assert page.sent == []
    assert page.client.post("/control", json={"intensity": 1.5}, headers=ORIGIN).status_code == 200
    assert page.forwarded() == {"intensity": 1.5}


def test_on_loopback_without_a_token_only_this_machines_host_names_are_served():
    p = Page(token=None, hosts=server.allowed_hosts("127.0.0.1", 8765, None))
    with p.client:
        assert p.client.get("/", headers={"host": "127.0.0.1:8765"}).status_code == 200
        assert p.client.get("/", headers={"host": "localhost:8765"}).status_code == 200
        assert p.client.get("/", headers={"host": "rebound.example:8765"}).status_code == 403  # DNS rebinding
    assert server.allowed_hosts("0.0.0.0", 8765, TOKEN) is None  # with a token, the token is the check


def test_oversized_bodies_and_messages_are_refused(page):
    page.client.cookies.set(server.COOKIE, TOKEN)
    big = json.dumps({"target": "b" * (server.MAX_BODY + 10)})
    answer = page.client.post("/control", content=big, headers={**ORIGIN, "content-type": "application/json"})
    assert answer.status_code == 413
    with page.client.websocket_connect("/ws", headers=ORIGIN) as ws:
        ws.receive_text()
        ws.send_text(big)
        assert "too long" in _next_error(ws)
    assert page.sent == []


def test_a_request_flood_from_one_address_is_cut_to_the_rate(page):
    page.client.cookies.set(server.COOKIE, TOKEN)
    codes = [page.client.get("/style.css").status_code for _ in range(int(server.HTTP_RATE[1]) + 40)]
    assert codes[0] == 200 and 429 in codes
    assert codes.count(200) <= server.HTTP_RATE[1] + 10  # the burst, and what the rate refilled meanwhile


def test_every_answer_carries_the_security_headers_and_nothing_else_is_served(page):
    page.client.cookies.set(server.COOKIE, TOKEN)
    for path, status in (("/", 200), ("/style.css", 200), ("/static/", 404), ("/static/app.js", 404),
                         ("/..%2fserver.py", 404), ("/web/", 404)):
        answer = page.client.get(path)
        assert answer.status_code == status, path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "server" not in answer.headers


@pytest.mark.parametrize("message, refused", [
    ({"intensity": 2.5}, "intensity must be"), ({"mix": "loud"}, "mix"), ({"gain_db": float("nan")}, "gain_db"),
    ({"target": "/etc/passwd"}, "target"), ({"preset": "../presets.toml"}, "preset"),
    ({"model": "/tmp/evil.onnx"}, "model"), ({"feedback": 0.5}, "feedback"), ({"freeze": "yes"}, "freeze"),
    ([1, 2], "JSON object"), ({}, "JSON object")])
def test_a_control_message_outside_the_choices_and_ranges_reaches_nothing(page, message, refused):
    page.client.cookies.set(server.COOKIE, TOKEN)
    answer = page.client.post("/control", content=json.dumps(message), headers=ORIGIN)
    assert answer.status_code == 400 and refused in answer.json()["error"]
    assert page.sent == []


def _next_error(ws) -> str:
    while True:
        message = json.loads(ws.receive_text())
        if "error" in message:
            return message["error"]


def test_moves_from_the_socket_are_merged_newest_first_and_dry_now_wins_over_the_mix(page):
    page.client.cookies.set(server.COOKIE, TOKEN)
    with page.client.websocket_connect("/ws", headers=ORIGIN) as ws:
        ws.receive_text()
        for value in (0.2, 0.4, 0.6):
            ws.send_text(json.dumps({"intensity": value}))
        ws.send_text(json.dumps({"target": "strings", "freeze": True}))
        ws.send_text(json.dumps({"mix": 0.8, "panic": True}))
        ws.send_text(json.dumps({"intensity": 9}))
        assert "intensity must be" in _next_error(ws)  # the last one was refused; the others went on
        deadline = time.monotonic() + 10
        while "panic" not in page.forwarded():  # batches go at most every FORWARD_EVERY_S
            assert time.monotonic() < deadline, page.sent
            time.sleep(0.01)
    assert len(page.sent) < 5  # merged, not one batch a move
    merged = page.forwarded()
    assert merged["intensity"] == 0.6
    assert merged["target"] == "strings" and merged["freeze"] is True and merged["panic"] is True
    assert all("mix" not in m["set"] for m in page.sent if "panic" in m["set"])


def test_the_status_pushed_is_the_newest_line_the_audio_process_sent(page):
    page.client.cookies.set(server.COOKIE, TOKEN)
    with page.client.websocket_connect("/ws", headers=ORIGIN) as ws:
        ws.receive_text()
        ws.receive_text()  # the status held when the page opened
        page.client.portal.call(page.hub.publish, json.dumps({"status": {"windows_dreamed": 7}}))
        assert json.loads(ws.receive_text())["status"]["windows_dreamed"] == 7


@pytest.mark.parametrize("text, expected", [("8765", ("127.0.0.1", 8765)), ("0.0.0.0:8080", ("0.0.0.0", 8080)),
                                            ("[::1]:9000", ("::1", 9000)), ("localhost:8765", ("localhost", 8765))])
def test_web_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["80", "host.example:8765", "8765x", "0.0.0.0:", "70000"])
def test_bad_web_addresses_are_refused_in_one_line(text):
    with pytest.raises(ParameterError):
        parse_listen(text)


@pytest.mark.parametrize("token", ["short", "a" * 20 + " b", 12345678901234567890, "a" * 20 + ";"])
def test_a_weak_or_odd_token_is_refused(token):
    with pytest.raises(ParameterError):
        check_token(token, "piece.toml [web] token")


def test_the_piece_web_table_and_its_mistakes(tmp_path):
    from streamdream.stream.installation.piece import load_piece

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"")
    toml = tmp_path / "piece.toml"
    toml.write_text(f'[piece]\nfiles = ["a.wav"]\n[web]\nlisten = "0.0.0.0:8765"\ntoken = "{TOKEN}"\n')
    piece = load_piece(str(toml))
    assert (piece.web, piece.web_token) == ("0.0.0.0:8765", TOKEN)
    assert piece.with_options({"web": "9000"}).web == "9000"  # the command line wins
    for table, said in (('[web]\nport = 8765\n', "[web] takes listen"), ('[web]\nlisten = "80"\n', "1024..65535"),
                        ('[web]\nlisten = "8765"\ntoken = "abc"\n', "at least 16"),
                        ('[piece]\nfiles = ["a.wav"]\nweb = "8765"\n', "unknown key")):
        toml.write_text(('[piece]\nfiles = ["a.wav"]\n' if "[piece]" not in table else "") + table)
        with pytest.raises(ParameterError, match=said.replace("[", r"\[")):
            load_piece(str(toml))


def test_a_bad_web_option_is_one_line_and_exit_2(tmp_path):
    result = run_cli("live", "--demo", "--device", "null", "--web", "example.org:80")
    assert result.returncode == 2 and "--web" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _decode_png(data: bytes):
    import struct
    import zlib

    import numpy as np
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat_length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    raw = np.frombuffer(zlib.decompress(data[41:41 + idat_length]), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (raw[:, 0] == 0).all()  # no row filters
    return raw[:, 1:].reshape(height, width, 3)


def test_the_picture_shows_the_input_and_the_change_each_at_its_own_pitch():
    import numpy as np

    from streamdream.web.picture import COLUMNS, GAP, ROWS, window_picture
    rate = 16000
    t = np.arange(2 * rate) / rate
    dry = np.stack([np.sin(2 * np.pi * 200 * t)] * 2).astype(np.float32)
    change = np.stack([0.5 * np.sin(2 * np.pi * 3000 * t)] * 2).astype(np.float32)
    image = _decode_png(window_picture(dry, change, rate)).astype(float).sum(axis=2)
    assert image.shape == (3 * ROWS + 2 * GAP, COLUMNS)
    top, middle, bottom = (image[i * (ROWS + GAP):i * (ROWS + GAP) + ROWS].mean(axis=1) for i in range(3))
    low, high = np.argmax(top), np.argmax(bottom)
    assert high < low  # the change is higher in pitch: nearer the top of its panel
    assert top[high] < top.max() / 3 and bottom[low] < bottom.max() / 3  # neither panel has the other's tone
    assert middle[low] > middle.max() / 2 and middle[high] > middle.max() / 2  # the dreamed window has both


class Said:
    """Say's interface (warn, and the log), kept."""

    def __init__(self):
        import logging
        self.warned, self.logged = [], []
        self.log = logging.getLogger("test-web-said")
        self.log.setLevel(logging.INFO)
        self.log.info = self.logged.append

    def warn(self, text):
        self.warned.append(text)


def test_the_audio_sides_changes_go_through_the_control_store_and_are_logged_with_their_source(mel_model):
    from conftest import music_clip
    from streamdream.params import Params
    from streamdream.stream.engine import Engine, FileSource
    from streamdream.web.link import apply_changes

    params = Params(model=str(mel_model), steps=2, octaves=1, window_s=1.5, crossfade_s=0.25, backend="eager",
                    target="drums")
    engine = Engine(params, 16000, 256, budget_s=0.5, source=FileSource(music_clip(16000, 2.0)))
    said = Said()
    labels, layers = ["drums", "piano"], ["/a"]
    version = engine.params_version
    apply_changes(engine, {"intensity": 1.6, "gain_db": -6.0}, labels, layers, [], said)
    assert engine.controls.target[0] == pytest.approx(1.6)
    assert engine.controls.target[2] == pytest.approx(10 ** (-6 / 20))
    assert engine.params_version == version  # instant ones never wait for a window
    apply_changes(engine, {"target": "piano", "freeze": True}, labels, layers, [], said)
    assert engine.params.target == "piano" and engine.params.freeze is True
    chosen = apply_changes(engine, {"preset": "faithful"}, labels, layers, [], said)
    assert chosen == "faithful"
    assert engine.params.ceiling_db == 0.0 and engine.params.steps == 8  # faithful's own settings
    assert engine.params.target == "piano"  # the target chosen on its own stays
    assert engine.controls.target[0] == pytest.approx(1.0)  # the preset's intensity, at the next block
    apply_changes(engine, {"target": "kazoo", "mix": 0.5}, labels, layers, [], said)
    assert engine.params.target == "piano" and engine.controls.target[1] == pytest.approx(0.5)
    assert any("kazoo" in line for line in said.warned)  # refused, said, and the rest still applied
    apply_changes(engine, {"panic": True}, labels, layers, [], said)
    assert engine.controls.target[1] == 0.0
    assert any("dry now" in line for line in said.warned)
    assert said.logged[:2] == ["web: intensity = 1.6", "web: gain_db = -6.0"]
    assert "web: preset = faithful" in said.logged
    engine.close()


def test_the_watchdog_makes_one_token_for_every_engine_it_starts_and_prints_it_once(monkeypatch):
    import io

    from rich.console import Console

    from streamdream.web.link import TOKEN_ENV, hand_down_token, handed_down_token
    monkeypatch.setenv(TOKEN_ENV, "")  # none handed down yet; and the one made below is gone after the test
    out = io.StringIO()
    console = Console(file=out, width=200)
    hand_down_token("8765", console)  # loopback: no token at all
    assert handed_down_token() is None and out.getvalue() == ""
    hand_down_token("0.0.0.0:8765", console)
    token = handed_down_token()
    check_token(token, "handed down")  # as strong as a piece's own
    hand_down_token("0.0.0.0:8765", console)  # a second engine: the same token, not printed again
    assert handed_down_token() == token and out.getvalue().count(token) == 1
    assert "http://0.0.0.0:8765/?token=" in out.getvalue()


def test_a_body_without_a_length_is_cut_at_the_limit_too(page):
    page.client.cookies.set(server.COOKIE, TOKEN)

    def chunks():
        for _ in range(100):
            yield b" " * 1000
    answer = page.client.post("/control", content=chunks(), headers=ORIGIN)
    assert answer.status_code == 413 and page.sent == []
