import numpy as np
import pytest
import soundfile as sf

# harness/ is importable from the repository root, which pyproject's pytest `pythonpath` puts on sys.path
from harness.jackserver import JackServer, stop_clients
from harness.models import make_audio_model, make_image_model


def pytest_collection_modifyitems(config, items):
    """Markers that follow from what a test uses: a test that takes the `jack` fixture is a `jack` test,
    and every `jack` or `subprocess` test is `slow` (left out of the fast loop, `pytest -m "not slow"`)."""
    for item in items:
        if "jack" in getattr(item, "fixturenames", ()) and item.get_closest_marker("jack") is None:
            item.add_marker(pytest.mark.jack)
        if (item.get_closest_marker("jack") or item.get_closest_marker("subprocess")) \
                and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def _jack_server():
    """The session's JACK server (dummy driver), started by the first test that asks for `jack`.

    One name per test process: two runs at once (two people, two suites) never share a server, and a
    restarted server reuses the name, which lets JACK reclaim the entry of a server that died uncleanly
    (JACK's registry holds 8 servers and frees a dead one's entry only when its name comes back).
    """
    import os
    held = {"name": f"sd{os.getpid()}", "server": None}
    yield held
    if held["server"] is not None:
        held["server"].stop()


@pytest.fixture
def jack(_jack_server, monkeypatch):
    """A JACK server (dummy driver) with nothing but its own system ports on it; the test's clients
    (anything in `jack.clients`) are stopped after it. The server is shared by the session's tests that run
    no client of their own (rtmidi ports in this process); a test that ran clients, stopped it, or left
    other clients than the system's on it gets it stopped and the next test a fresh one.

    This process's own JACK clients (rtmidi ports) talk to it too.
    """
    server = _jack_server["server"]
    if server is None or server.proc.poll() is not None or not server.only_system_ports():
        if server is not None:
            server.stop()
        server = _jack_server["server"] = JackServer(_jack_server["name"])
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    server.clients = []
    yield server
    had_clients = bool(server.clients)
    stop_clients(server.clients)  # and reaped, so their JACK clients are gone, not zombies
    server.clients = []
    if had_clients or server.proc.poll() is not None or not server.only_system_ports(within=0.5):
        # a server that ran clients, stopped, was replaced or still holds one: the next test starts a
        # fresh one, so no test meets what an earlier one left in the server
        server.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mel_model(model_dir):
    return make_audio_model(model_dir / "tiny_mel.onnx")


@pytest.fixture(scope="session")
def stft_model(model_dir):
    return make_audio_model(model_dir / "tiny_stft.onnx", view="stft")


@pytest.fixture(scope="session")
def image_model(model_dir):
    return make_image_model(model_dir / "tiny_image.onnx")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def music_clip(sample_rate: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A little chord with decaying notes and some noise: something a CNN can respond to."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros((channels, t.size))
    for i, freq in enumerate((220.0, 277.2, 329.6, 440.0)):
        env = np.exp(-3.0 * ((t * (1 + i * 0.3)) % 0.7))
        for c in range(channels):
            out[c] += 0.12 * env * np.sin(2 * np.pi * freq * t * (1 + 0.003 * c))
    out += 0.01 * rng.standard_normal(out.shape)
    return out.astype(np.float32)


@pytest.fixture
def stereo_wav(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, music_clip(16000, 3.0).T, 16000, subtype="FLOAT")
    return path


class CliResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(*args) -> CliResult:
    """`streamdream ARGS` in this process, read as a subprocess's result (exit code, stdout, stderr): a
    fresh process per call would import torch and load the model again, seconds each. The console script
    in a real process is tested in test_render.py and test_cli.py."""
    import contextlib
    import io

    from streamdream.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return CliResult(code, out.getvalue(), err.getvalue())
