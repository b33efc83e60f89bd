"""The web page's server: Starlette on uvicorn, in a process of its own (`python -m
streamdream.web.server LISTEN_FD LINK_FD`, started by web/link.py).

It reads status lines from the audio process over the link and pushes the newest to every open page
over a WebSocket (`/ws`); the page's control messages are checked here (names, types, ranges, rate),
merged (the newest value of each control wins) and forwarded at most 50 times a second, and the audio
process applies them through the control store.

Secure by default: the audio process binds loopback unless told otherwise, and any other address gets
a token. `Guard` checks every HTTP request and WebSocket handshake: the token (from `?token=` once,
then a cookie), the Host (loopback without a token, against DNS rebinding), the Origin on WebSocket
upgrades and state-changing requests, a request rate per client, the body size; it answers 401/403/
413/429 with no detail, logs refusals (at most one line a second) and sets security headers on every
answer. Only the page's three files and its picture are served: no directory, no path from the request.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import sys
import time
from importlib import resources
from urllib.parse import parse_qs

from ..params import check_value

FORWARD_EVERY_S = 0.02      # control batches to the audio process: at most 50 a second
MAX_BODY = 4096             # bytes of a request body or a WebSocket message
HTTP_RATE = (20.0, 60.0)    # per client address: requests a second, and the burst allowed
WS_RATE = (100.0, 200.0)    # per page: control messages a second, and the burst
MAX_PAGES = 64              # open WebSockets at once
PICTURE_EVERY_S = 0.5       # how often the shared memory is looked at for a newly dreamed window
COOKIE = "streamdream_token"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/style.css": ("style.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"), (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
INSTANT = ("intensity", "mix", "gain_db")


class Bucket:
    """A token bucket: `rate` a second, up to `burst` at once."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Hub:
    """The newest status for every page, and the control changes waiting to go to the audio process.
    `send(dict)` writes one line to the audio process; `report(text)` logs a line there."""

    def __init__(self, choices: dict, send, report):
        self.choices, self.send, self.report = choices, send, report
        self.status = json.dumps({"status": {}})
        self.pages: set[asyncio.Event] = set()
        self.pending: dict = {}
        self.wake = asyncio.Event()
        self.last_report = 0.0
        self.unreported = 0
        self.picture: tuple[int, bytes] | None = None   # (window index, PNG) of the last dreamed window

    def publish(self, status_line: str) -> None:
        self.status = status_line
        for page in self.pages:
            page.set()

    def show(self, window: int, picture: bytes) -> None:
        self.picture = (window, picture)
        for page in self.pages:
            page.set()

    async def draw(self, windows, sample_rate: int) -> None:
        """A new picture once per dreamed window: looked for twice a second, drawn in a worker thread."""
        from .picture import window_picture

        while True:
            await asyncio.sleep(PICTURE_EVERY_S)
            found = windows.newest()
            if found is not None:
                k, dry, change = found
                self.show(k, await asyncio.to_thread(window_picture, dry, change, sample_rate))

    def check(self, message) -> dict:
        """A page's control message, checked as the command line checks its options; ValueError if wrong."""
        if not isinstance(message, dict) or not message:
            raise ValueError("a control message is a JSON object, e.g. {\"intensity\": 1.2}")
        checked = {}
        for name, value in message.items():
            if name in INSTANT:
                checked[name] = check_value(name, value, "web")
            elif name == "feedback" and self.choices["feedback"]:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError("feedback must be 0..1")
                checked[name] = float(value)
            elif name == "target" and value in self.choices["targets"]:
                checked[name] = value
            elif name == "preset" and value in self.choices["presets"]:
                checked[name] = value
            elif name in ("freeze", "panic") and isinstance(value, bool):
                if name == "freeze" or value:
                    checked[name] = value
            else:
                raise ValueError(f"{name} cannot be set to that from the page")
        return checked

    def control(self, changes: dict) -> None:
        self.pending.update(changes)
        self.wake.set()

    async def forward(self) -> None:
        """Merged control changes to the audio process, at most one batch every FORWARD_EVERY_S."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, {}
            if "panic" in batch:  # dry now wins over a mix moved in the same batch
                batch.pop("mix", None)
            self.send({"set": batch})
            await asyncio.sleep(FORWARD_EVERY_S)

    def refused(self, what: str) -> None:
        """One log line a second at most about refused requests (a flood must not fill the log)."""
        self.unreported += 1
        now = time.monotonic()
        if now - self.last_report >= 1.0:
            more = f" (and {self.unreported - 1} more refused since the last line)" if self.unreported > 1 else ""
            self.report(f"web: refused {what}{more}")
            self.last_report, self.unreported = now, 0


class Guard:
    """The checks every request and handshake pass before the app sees it (see the module's docstring)."""

    def __init__(self, app, hub: Hub, token: str | None, hosts: set[str] | None):
        self.app, self.hub, self.token, self.hosts = app, hub, token, hosts
        self.buckets: dict[str, Bucket] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = (scope.get("client") or ("?", 0))[0]
        if scope["type"] == "websocket":
            await receive()  # the handshake's websocket.connect
        if len(self.buckets) > 10000:
            self.buckets.clear()
        bucket = self.buckets.setdefault(client, Bucket(*HTTP_RATE))
        if not bucket.take():
            return await self.deny(scope, send, 429, "a request from " + client + " over the rate limit")
        host = headers.get("host", "")
        if self.hosts is not None and host not in self.hosts:
            return await self.deny(scope, send, 403, f"a request from {client} for another host name")
        if self.token is not None:
            given = _token_of(scope, headers)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                return await self.deny(scope, send, 401, f"a request from {client} without the right token")
        if scope["type"] == "websocket" or scope["method"] not in ("GET", "HEAD"):
            if headers.get("origin") != f"http://{host}":
                return await self.deny(scope, send, 403, f"a request from {client} from another site")
        length = headers.get("content-length", "0")
        if scope["type"] == "http" and (not length.isdigit() or int(length) > MAX_BODY):
            return await self.deny(scope, send, 413, f"a request from {client} over {MAX_BODY} bytes")
        if scope["type"] == "websocket":
            receive = _replay_connect(receive)  # the app's WebSocket reads the connect message again
        return await self.app(scope, receive, self.with_headers(send))

    def with_headers(self, send):
        async def send_with_headers(message):
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)
        return send_with_headers

    async def deny(self, scope, send, status: int, what: str) -> None:
        self.hub.refused(what)
        start = {"status": status, "headers": [(b"content-type", b"text/plain"), *SECURITY_HEADERS]}
        body = {"body": f"{status}\n".encode()}
        if scope["type"] == "http":
            await send({"type": "http.response.start", **start})
            await send({"type": "http.response.body", **body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", **body})
        else:
            await send({"type": "websocket.close", "code": 1008})


def _replay_connect(receive):
    replayed = False

    async def receive_after_connect():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "websocket.connect"}
        return await receive()
    return receive_after_connect


def _token_of(scope, headers: dict) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "token" in query:
        return query["token"][0]
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def create_app(hub: Hub, token: str | None, hosts: set[str] | None):
    """The ASGI app: the page's three files, the WebSocket and POST /control, behind the Guard."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    files = {path: ((resources.files(__package__) / "static" / name).read_bytes(), kind)
             for path, (name, kind) in PAGES.items()}

    async def page(request: Request):
        if "token" in request.query_params:  # the token moves from the address bar into a cookie
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
            return response
        body, kind = files[request.url.path]
        return Response(body, media_type=kind)

    async def picture(request: Request):
        if hub.picture is None:
            return Response(status_code=404)
        return Response(hub.picture[1], media_type="image/png")

    async def control(request: Request):
        body = b""
        async for chunk in request.stream():  # a body without a length (chunked) is cut off here too
            body += chunk
            if len(body) > MAX_BODY:
                return Response(status_code=413)
        try:
            changes = hub.check(json.loads(body))
        except ValueError as exc:  # json's errors are ValueErrors too
            return JSONResponse({"error": str(exc)}, status_code=400)
        hub.control(changes)
        return JSONResponse({"ok": True})

    async def socket(ws: WebSocket):
        if len(hub.pages) >= MAX_PAGES:
            await ws.close(code=1013)  # try again later
            return
        await ws.accept()
        news = asyncio.Event()
        news.set()
        hub.pages.add(news)
        bucket = Bucket(*WS_RATE)

        async def push():
            await ws.send_text(json.dumps({"choices": hub.choices}))
            shown = None
            while True:
                await news.wait()
                news.clear()
                await ws.send_text(hub.status)
                if hub.picture is not None and hub.picture[0] != shown:
                    shown = hub.picture[0]
                    await ws.send_text(json.dumps({"picture": shown}))

        pusher = asyncio.create_task(push())
        try:
            while True:
                text = await ws.receive_text()
                if not bucket.take():
                    continue  # over the rate: dropped (the next move carries the newest value)
                try:
                    if len(text) > MAX_BODY:
                        raise ValueError("message too long")
                    hub.control(hub.check(json.loads(text)))
                except ValueError as exc:
                    await ws.send_text(json.dumps({"error": str(exc)}))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.pages.discard(news)
            pusher.cancel()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        forwarder = asyncio.create_task(hub.forward())
        yield
        forwarder.cancel()

    routes = [Route(path, page, methods=["GET", "HEAD"]) for path in PAGES]
    routes += [Route("/picture.png", picture, methods=["GET", "HEAD"]), Route("/control", control, methods=["POST"]),
               WebSocketRoute("/ws", socket)]
    return Guard(Starlette(routes=routes, lifespan=lifespan), hub, token, hosts)


def allowed_hosts(host: str, port: int, token: str | None) -> set[str] | None:
    """Host headers accepted: on loopback without a token, only this machine's own names (a DNS
    rebinding page gets nothing); with a token, any (the token is the check)."""
    if token is not None:
        return None
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


async def serve(listener, link) -> None:
    import uvicorn

    reader, writer = await asyncio.open_connection(sock=link, limit=1 << 22)
    config = json.loads(await reader.readline())["config"]

    def send(message: dict) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(message).encode() + b"\n")

    hub = Hub(config["choices"], send, lambda text: send({"log": text}))
    app = create_app(hub, config["token"], allowed_hosts(config["host"], config["port"], config["token"]))
    server = uvicorn.Server(uvicorn.Config(
        app, lifespan="on", log_level="critical", access_log=False, ws="websockets", ws_max_size=MAX_BODY,
        ws_per_message_deflate=False, limit_concurrency=MAX_PAGES + 64, h11_max_incomplete_event_size=16384,
        server_header=False, date_header=False, timeout_keep_alive=5, proxy_headers=False))

    async def read_link():
        while line := await reader.readline():
            if line.startswith(b'{"status"'):
                hub.publish(line.decode().rstrip("\n"))
        server.should_exit = True  # the audio process ended the link: the run is over

    tasks = [asyncio.create_task(read_link())]
    windows = None
    if config.get("shared") is not None:
        from .picture import WindowReader
        windows = WindowReader(config["shared"])
        tasks.append(asyncio.create_task(hub.draw(windows, config["shared"]["sample_rate"])))
    try:
        await server.serve(sockets=[listener])
    finally:
        for task in tasks:
            task.cancel()
        if windows is not None:
            windows.close()


def main() -> int:
    import socket

    listen_fd, link_fd = (int(x) for x in sys.argv[1:3])
    link = socket.socket(fileno=link_fd)
    try:
        asyncio.run(serve(socket.socket(fileno=listen_fd), link))
    except Exception as exc:  # said in the piece's log, where someone will look
        try:
            link.sendall(json.dumps({"log": f"the web page's server failed: {type(exc).__name__}: {exc}"}).encode()
                         + b"\n")
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
