"""The torch thread count: measured once on the machine, kept in the user's cache, chosen by speed."""
import json

import pytest

from streamdream.dreaming import threads


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "streamdream" / "threads.json"


def test_the_fastest_count_wins_only_by_a_clear_margin():
    assert threads.fastest({1: [1.0, 1.1, 1.0], 2: [0.6, 0.7, 0.6]}) == 2
    assert threads.fastest({1: [1.0, 1.0, 1.0], 2: [0.95, 0.96, 0.97]}) == 1  # 5% is within the noise
    assert threads.fastest({1: [0.6, 0.6, 0.6], 2: [1.0, 1.0, 1.0]}) == 1
    assert threads.fastest({1: [3.0], 2: [1.5], 3: [1.4], 4: [1.0]}) == 4
    assert threads.fastest({1: [3.0], 2: [1.5], 3: [1.0], 4: [0.95]}) == 3


def test_one_core_needs_no_measurement(cache_home, monkeypatch):
    monkeypatch.setattr(threads, "measure", lambda counts: pytest.fail("measured for one core"))
    assert threads.best_threads(1) == 1
    assert not cache_home.exists()


def test_measured_once_then_read_from_the_cache(cache_home, monkeypatch):
    chosen = threads.best_threads(2)
    assert chosen in (1, 2)
    kept = json.loads(cache_home.read_text())[threads.machine_key(2)]
    assert kept["threads"] == chosen
    assert sorted(kept["seconds"]) == ["1", "2"] and all(len(t) == threads.ROUNDS for t in kept["seconds"].values())
    monkeypatch.setattr(threads, "measure", lambda counts: pytest.fail("measured again"))
    assert threads.best_threads(2) == chosen


def test_a_damaged_cache_is_measured_again(cache_home, monkeypatch):
    cache_home.parent.mkdir(parents=True)
    monkeypatch.setattr(threads, "measure", lambda counts: {c: [1.0 / c] for c in counts})
    for damaged in ("{not json", "[1, 2]", json.dumps({threads.machine_key(2): {"threads": 7}})):
        cache_home.write_text(damaged)
        assert threads.best_threads(2) == 2
        assert json.loads(cache_home.read_text())[threads.machine_key(2)]["threads"] == 2


def test_an_unwritable_cache_still_gives_a_count(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache directory cannot be made inside a file
    monkeypatch.setattr(threads, "measure", lambda counts: {c: [1.0] for c in counts})
    assert threads.best_threads(2) == 1


def test_workers_share_the_cores_between_them(cache_home, monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    asked = []
    monkeypatch.setattr(threads, "best_threads", lambda cores: asked.append(cores) or cores)
    assert threads.threads_per_worker(1) == 8
    assert threads.threads_per_worker(3) == 2
    assert threads.threads_per_worker(1, reserve=1) == 7
    assert threads.threads_per_worker(16) == 1
    assert asked == [8, 2, 7, 1]


@pytest.mark.parametrize("measured", [1, 2])
def test_render_dreams_with_the_measured_count_unless_told(cache_home, tmp_path, mel_model, measured):
    import numpy as np
    import soundfile as sf
    import torch

    from conftest import run_cli

    cores = threads.os.cpu_count()
    measured = min(measured, cores)
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text(json.dumps({threads.machine_key(cores): {"threads": measured}}))
    sf.write(tmp_path / "in.wav", (0.1 * np.random.default_rng(0).standard_normal((16000, 2))).astype("float32"), 16000)
    before = torch.get_num_threads()
    try:
        fast = ["--model", mel_model, "--set", "steps=1", "--set", "octaves=1", "--quiet"]
        assert run_cli("render", tmp_path / "in.wav", tmp_path / "a.wav", *fast).returncode == 0
        assert torch.get_num_threads() == measured
        assert run_cli("render", tmp_path / "in.wav", tmp_path / "b.wav", "--threads", "3", *fast).returncode == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
