"""The web page in a real browser: Debian's chromium, driven headless by Playwright (pointed at the system
browser; nothing downloads one), against `streamdream loop --web` on the JACK server (dummy driver). It
reads the status, moves sliders and sees the engine follow in --stats, presses "Dry now", and keeps
screenshots at phone and desktop sizes."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import soundfile as sf

from conftest import music_clip

CHROMIUM = "/usr/bin/chromium"
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # the system browser is used, never a download
import playwright.sync_api as playwright  # noqa: E402  (after the setting above)

# Debian's chromium comes with the README's apt line: a machine without it fails here, it does not skip
pytestmark = pytest.mark.subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def read_stats(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_the_page_reads_and_controls_a_running_loop_in_chromium(jack, mel_model, tmp_path):
    src = tmp_path / "steady.wav"
    sf.write(src, music_clip(48000, 6.0).T, 48000)
    stats, log = tmp_path / "stats.json", tmp_path / "piece.log"
    port = free_port()
    cmd = [sys.executable, "-m", "streamdream.cli", "loop", str(src), "--device", "system", "--samplerate", "48000",
           "--set", "window_s=2", "--set", "crossfade_s=0.5", "--set", "steps=2", "--set", "octaves=1",
           "--set", "backend=eager", "--quiet", "--no-midi", "--model", str(mel_model), "--stats", str(stats),
           "--log", str(log), "--web", f"0.0.0.0:{port}"]  # off loopback: a token is generated and printed
    proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    jack.clients.append(proc)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()

    def token():
        found = [re.search(r"\?token=(\S+)", line) for line in err]
        return next((m.group(1) for m in found if m), None)

    wait_for("the token line", lambda: token() is not None or proc.poll() is not None, 120)
    assert proc.poll() is None, "".join(err)
    wait_for("audio", lambda: (read_stats(stats) or {}).get("seconds_out", 0) > 0 and
             read_stats(stats)["windows_dreamed"] > 0, 120)
    base = f"http://127.0.0.1:{port}/"
    import httpx
    assert httpx.get(base).status_code == 401  # no token, no page

    shots = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(base + "?token=" + token())
            expect = playwright.expect
            expect(page.locator("#state")).to_have_text("dreaming", timeout=60000)
            expect(page.locator("#counters")).to_contain_text("dreamed")
            shown = int(re.search(r"(\d+) dreamed", page.locator("#counters").inner_text()).group(1))
            assert shown >= 1
            assert "token" not in page.url  # moved into a cookie

            page.locator("#intensity").fill("0.35")
            wait_for("intensity in --stats", lambda: read_stats(stats)["controls"]["intensity"] == pytest.approx(0.35))
            wait_for("sound out", lambda: read_stats(stats)["output_peak"] > 0.01)  # after the first latency
            loud = read_stats(stats)["output_peak"]
            page.locator("#gain_db").fill("-24")
            wait_for("the output level to follow the gain", lambda: read_stats(stats)["output_peak"] < loud / 8)
            page.locator("#gain_db").fill("0")
            wait_for("the output level back", lambda: read_stats(stats)["output_peak"] > loud / 2)
            expect(page.locator("#log")).to_contain_text("web: intensity = 0.35")

            # choosers and freeze reach the next window's settings, as --stats shows them
            page.locator("#preset").select_option("faithful")  # its 8 steps, over the run's --set steps=2
            wait_for("the preset in --stats", lambda: read_stats(stats)["dream"]["steps"] == 8)
            label = page.locator("#target option").nth(1).text_content()
            page.locator("#target").select_option(label)
            wait_for("the target in --stats", lambda: read_stats(stats)["dream"]["target"] == label)
            page.locator("#freeze").check()
            wait_for("freeze in --stats", lambda: read_stats(stats)["dream"]["freeze"] is True)
            page.locator("#freeze").uncheck()
            wait_for("freeze off in --stats", lambda: read_stats(stats)["dream"]["freeze"] is False)

            # the last dreamed window's spectrograms, read by the server from the shared memory
            expect(page.locator("#picture-card")).to_be_visible(timeout=60000)
            expect(page.locator("#picture-caption")).to_contain_text("window")
            wait_for("the picture to load", lambda: page.evaluate("document.getElementById('picture').naturalWidth") > 0)
            picture = page.request.get(base + "picture.png")
            assert picture.status == 200 and picture.body()[:8] == b"\x89PNG\r\n\x1a\n"
            shots["desktop"] = tmp_path / "web-desktop-1920x1080.png"
            page.screenshot(path=shots["desktop"])
            page.set_viewport_size({"width": 390, "height": 844})
            expect(page.locator("#state")).to_have_text("dreaming")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than a phone
            shots["phone"] = tmp_path / "web-phone-390x844.png"
            page.screenshot(path=shots["phone"], full_page=True)

            page.locator("#panic").click()
            wait_for("mix 0 in --stats after Dry now", lambda: read_stats(stats)["controls"]["mix"] == 0.0)
            expect(page.locator("#state")).to_contain_text("dry")
            expect(page.locator("#mix")).to_have_value("0")
            shots["phone-dry"] = tmp_path / "web-phone-dry.png"
            page.screenshot(path=shots["phone-dry"], full_page=True)
        finally:
            browser.close()
    proc.terminate()
    proc.wait(timeout=60)
    for name, path in shots.items():
        assert path.stat().st_size > 10_000
        print(f"screenshot {name}: {path}")
    everything = "".join(err)
    assert everything.count(token()) == 1  # printed once, to the console only
    logged = log.read_text()
    assert token() not in logged and "web: dry now" in logged and "refused" in logged
