"""The dream worker's allocator: jemalloc in the spawned worker, the audio process's environment untouched."""
import ctypes.util
import os
import time

import numpy as np

from conftest import music_clip
from streamdream.memory import JEMALLOC_CONF, jemalloc_for_spawned
from streamdream.params import Params
from streamdream.stream.engine import Engine, FileSource

JEMALLOC = ctypes.util.find_library("jemalloc")


def test_jemalloc_is_installed_as_the_readme_says():
    assert JEMALLOC is not None, "install libjemalloc2 (README, step 1)"


def test_spawns_inside_the_block_get_jemalloc_and_the_environment_is_put_back(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("MALLOC_CONF", raising=False)
    with jemalloc_for_spawned():
        assert os.environ["LD_PRELOAD"] == JEMALLOC and os.environ["MALLOC_CONF"] == JEMALLOC_CONF
    assert "LD_PRELOAD" not in os.environ and "MALLOC_CONF" not in os.environ


def test_a_users_own_preload_is_left_alone(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "libtcmalloc_minimal.so.4")
    monkeypatch.delenv("MALLOC_CONF", raising=False)
    with jemalloc_for_spawned():
        assert os.environ["LD_PRELOAD"] == "libtcmalloc_minimal.so.4" and "MALLOC_CONF" not in os.environ
    assert os.environ["LD_PRELOAD"] == "libtcmalloc_minimal.so.4"


def test_the_dream_process_allocates_with_jemalloc_and_reports_its_heap(mel_model, monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    rate, block = 16000, 256
    params = Params(model=str(mel_model), steps=2, octaves=2, window_s=1.5, crossfade_s=0.25, backend="eager")
    engine = Engine(params, rate, block, budget_s=0.6, source=FileSource(music_clip(rate, 6.0)), lockstep=True,
                    worker="process")
    out = np.zeros((block, 2), dtype=np.float32)
    engine.start_worker()
    try:
        maps = open(f"/proc/{engine.worker._handle.pid}/maps").read()
        assert "LD_PRELOAD" not in os.environ  # the audio process's own environment is as it was
        deadline = time.monotonic() + 120
        while engine.stats.windows_dreamed < 2:
            assert time.monotonic() < deadline, "no window dreamed within 120 s"
            engine.wait_for_dreams(block)
            engine.process(None, out, block, None)
        memory = engine.stats.worker_memory()
    finally:
        engine.close()
    assert "libjemalloc" in maps
    # jemalloc's statistics: the model and the dream's buffers are in use, and the worker is resident
    assert 1 << 20 < memory["heap_used_bytes"] < memory["rss_bytes"]
