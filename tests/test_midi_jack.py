"""MIDI over real rtmidi ports on a JACK server: knobs steer a running engine."""
import json
import subprocess
import sys
import time

import numpy as np
import rtmidi

from conftest import music_clip
from harness.stallwatch import StallWatch

LIVE = [sys.executable, "-m", "streamdream.cli", "live", "--device", "system", "--set", "window_s=2", "--set",
        "crossfade_s=0.5", "--budget", "1", "--set", "steps=1", "--set", "octaves=1", "--set", "backend=eager", "--quiet"]


def out_port(jack, name="knobs"):
    """A controller: a JACK MIDI output port of our own."""
    port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="ctl")
    port.open_virtual_port(name)
    jack.clients.append(type("Closer", (), {"kill": lambda self: port.delete()})())
    return port


def connect_to_streamdream(jack):
    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="tester")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ports = sender.get_ports()
        hits = [i for i, p in enumerate(ports) if p == "streamdream-midi:streamdream"]
        if hits:
            sender.open_port(hits[0])
            return sender
        time.sleep(0.2)
    raise AssertionError(f"no streamdream virtual port; ports: {sender.get_ports()}")


def read_stats(path, until, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            snap = json.loads(path.read_text())
            if until(snap):
                return snap
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"stats never satisfied the condition; last: {path.read_text() if path.exists() else None}")


def start(jack, model, tmp_path, *extra):
    """streamdream live on the JACK device, playing a clip so the worker really dreams while we test."""
    import soundfile as sf
    clip = tmp_path / "clip.wav"
    sf.write(clip, music_clip(48000, 6.0, seed=2).T, 48000, subtype="FLOAT")
    extra = ("--input", clip) + extra
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(LIVE + ["--model", str(model), "--stats", str(stats), *map(str, extra)], env=jack.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jack.clients.append(proc)
    read_stats(stats, lambda s: s["seconds_out"] > 0, timeout=120)
    return proc, stats


def test_cc_and_notes_reach_the_running_engine(jack, mel_model, tmp_path):
    live, stats = start(jack, mel_model, tmp_path, "--intensity", "0", "--duration", "60")
    sender = connect_to_streamdream(jack)
    sender.send_message([0xB0, 1, 127])          # mod wheel: intensity 2
    sender.send_message([0x90, 48 + 1, 100])     # C#3: the model's second label
    sender.send_message([0xB0, 22, 127])         # steps up to 16
    snap = read_stats(stats, lambda s: s["controls"]["intensity"] > 1.99 and s["dream"]["target"] == "brass")
    assert snap["dream"]["steps"] == 16 and snap["midi"]["messages"] >= 3
    live.terminate()
    live.wait(timeout=30)


def unexplained_xruns(snap, watch: StallWatch) -> list[float]:
    """Xruns (callback times) that no stall of the machine itself accounts for."""
    return [t for t in snap["xrun_times"] if watch.explains(t) is None]


def test_flood_of_10000_messages_per_second_causes_no_xrun_or_late_window(jack, mel_model, tmp_path):
    # An xrun is the flood's doing unless the machine stopped a CPU at that moment (see stallwatch.py):
    # on this shared VM that happens every few minutes, whatever runs, and no program can prevent it.
    watch = StallWatch()
    try:
        live, stats = start(jack, mel_model, tmp_path, "--duration", "60")
        sender = connect_to_streamdream(jack)
        read_stats(stats, lambda s: s["windows_dreamed"] >= 1)
        before = json.loads(stats.read_text())
        began = time.monotonic()
        sent = 0
        kinds = [[0xB0, 1, 0], [0xB0, 99, 1], [0xF8], [0xB0, 20, 64], [0xFE], [0xB0, 21, 10]]
        while time.monotonic() - began < 5.0:  # 10,000 a second, paced in bursts of 100
            for _ in range(100):
                sender.send_message(kinds[sent % len(kinds)])
                sent += 1
            time.sleep(max(0.0, began + sent / 10000.0 - time.monotonic()))
        # clock and active sensing are dropped by rtmidi itself (ignore_types); 4 of the 6 kinds reach us
        after = read_stats(stats, lambda s: s["midi"]["messages"] >= before["midi"]["messages"] + sent * 4 // 6
                           and s["seconds_out"] > before["seconds_out"] + 5)
        live.terminate()
        live.wait(timeout=30)
    finally:
        watch.stop()
    assert sent >= 49000
    assert unexplained_xruns(after, watch) == [], (after["xrun_times"], watch.stalls)
    assert after["late_windows"] == 0 and after["windows_dreamed"] > before["windows_dreamed"]


def test_missing_port_lists_the_ports_that_are_there(jack, mel_model, tmp_path):
    out_port(jack, "knobs")
    proc = subprocess.run(LIVE + ["--model", str(mel_model), "--midi", "nanoKONTROL", "--duration", "1"],
                          env=jack.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no MIDI input port matches 'nanoKONTROL'" in proc.stderr and "ctl:knobs" in proc.stderr


def test_unplugged_controller_is_reported_and_the_audio_keeps_running(jack, mel_model, tmp_path):
    controller = out_port(jack, "knobs")
    live, stats = start(jack, mel_model, tmp_path, "--midi", "knobs", "--duration", "60")
    plugged = read_stats(stats, lambda s: "midi" in s and s["seconds_out"] > 3)
    assert plugged["midi"]["port"] == "ctl:knobs"
    controller.close_port()
    controller.delete()
    try:
        lost = read_stats(stats, lambda s: s["midi"]["connected"] is False)
    except AssertionError:
        live.terminate()
        raise AssertionError(live.communicate(timeout=30)[1])
    later = read_stats(stats, lambda s: s["seconds_out"] > lost["seconds_out"] + 2)
    # The audio keeps going. (JACK itself reports an xrun when a port leaves the graph; those are
    # counted in the stats and listed in docs/BENCHMARKS.md, not hidden.)
    assert live.poll() is None and later["late_windows"] == 0 and later["windows_dreamed"] > lost["windows_dreamed"]
    live.terminate()
    _, err = live.communicate(timeout=30)
    assert "disappeared" in err


def test_instant_control_changes_the_output_within_one_block_plus_smoothing(jack, mel_model):
    """In-process engine on a paced clock, a real JACK MIDI message: where does the output first change?"""
    from streamdream.audio.devices import NullDevice
    from streamdream.control.mapping import load_mapping
    from streamdream.control.midi import MidiControl
    from streamdream.params import Params
    from streamdream.stream.engine import Engine, FileSource

    rate, block = 48000, 512
    clip = music_clip(rate, 12.0, seed=9)
    params = Params(model=str(mel_model), window_s=1.0, crossfade_s=0.25, steps=1, octaves=1, backend="eager",
                    intensity=0.0)
    engine = Engine(params, rate, block, budget_s=0.5, source=FileSource(clip, loop=False))
    control = MidiControl(engine, load_mapping(), ["a"], ["/x"])
    control.open(None, virtual=True)
    from streamdream.control.midi import MidiPump
    pump = MidiPump(control)
    pump.start()
    jack.clients.append(type("Closer", (), {"kill": lambda self: (pump.stop(), control.close())})())
    out = []

    def process(indata, outdata, frames, status):
        engine.process(indata, outdata, frames, status)
        out.append(outdata.T.copy())

    device = NullDevice(process, rate, block, max_frames=8 * rate)
    engine.start_worker()
    device.start()
    sender = connect_to_streamdream(jack)
    while not engine.heard or engine.out_pos < 3 * rate:  # dreams are playing
        time.sleep(0.01)
    sender.send_message([0xB0, 1, 127])
    device.join(timeout=60)
    engine.stop_worker()
    output = np.concatenate(out, axis=1)
    lag = engine.latency - engine.preroll
    expected_dry = np.zeros_like(output)
    expected_dry[:, lag:] = clip[:, :output.shape[1] - lag]
    changed = np.nonzero(np.any(output != expected_dry, axis=0))[0]
    arrival = control.last_change_frame
    assert arrival > 3 * rate and changed.size
    # the message lands between blocks; the next block already glides toward the new value
    assert arrival <= changed[0] <= arrival + block + int(0.020 * rate)
    assert changed[0] <= arrival + block  # in fact: the very next block
