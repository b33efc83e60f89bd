"""The dream worker's allocator: jemalloc for spawned processes, the spawning process's environment untouched.

The live worker itself is checked in test_engine.py (test_the_dream_process_allocates_with_jemalloc...)."""
import ctypes.util
import os

from streamdream.memory import JEMALLOC_CONF, jemalloc_for_spawned

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
