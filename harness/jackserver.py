"""Start and stop a private JACK server with the dummy driver, for tests through real PortAudio and rtmidi."""
from __future__ import annotations

import os
import shutil
import subprocess
import time


class JackServer:
    def __init__(self, name: str, rate: int = 48000, period: int = 512, realtime: bool = False):
        if shutil.which("jackd") is None:
            raise RuntimeError("jackd is not installed: apt-get install --no-install-recommends jackd2 libportaudio2")
        self.name, self.rate, self.period = name, rate, period
        # every client of this test talks to this server and never autostarts another; --sync makes
        # JACK2 run a cycle in graph order, so a chain of clients adds no hidden period of delay
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
        rt = ["--realtime"] if realtime else ["--no-realtime"]
        self.proc = subprocess.Popen(["jackd", "-n", name, *rt, "--sync", "-d", "dummy", "-r", str(rate),
                                      "-p", str(period)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited: {self.proc.stderr.read().decode(errors='replace')[-500:]}")
            if "system:playback_1" in self.ports():
                return
            time.sleep(0.2)
        raise RuntimeError("jackd did not come up within 15 s")

    def run(self, *cmd, **kwargs):
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, **kwargs)

    def ports(self) -> str:
        return self.run("jack_lsp", timeout=10).stdout

    def only_system_ports(self, within: float = 0.0) -> bool:
        """Whether the server is up with no ports but its own (system:...), waiting up to `within` seconds
        for clients that are leaving."""
        deadline = time.monotonic() + within
        while True:
            try:
                out = self.run("jack_lsp", timeout=10)
                names = out.stdout.split()
                if out.returncode == 0 and "system:playback_1" in names and \
                        all(name.startswith("system:") for name in names):
                    return True
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def wait_for_port(self, name: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.ports():
                return
            time.sleep(0.25)
        raise TimeoutError(f"JACK port {name} did not appear within {timeout:.0f} s")

    def connect(self, src: str, dst: str) -> None:
        out = self.run("jack_connect", src, dst, timeout=10)
        assert out.returncode == 0, out.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def stop_clients(clients, timeout: float = 10.0) -> None:
    """Stop a test's JACK clients: processes as a user quitting them would (SIGTERM), killing only what is
    left after `timeout`; anything else with a `kill()` (a closer of this process's own ports) by calling
    it; then any JackServer among them (one a test started itself). A client killed outright stays in the
    graph until the server gives up on it, and a server running --sync waits for it every cycle meanwhile:
    the others' streams then take seconds to stop."""
    procs = [c for c in clients if isinstance(c, subprocess.Popen)]
    for client in clients:
        if isinstance(client, subprocess.Popen):
            if client.poll() is None:
                client.terminate()
        elif not isinstance(client, JackServer):
            client.kill()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    for server in clients:
        if isinstance(server, JackServer):
            server.stop()
