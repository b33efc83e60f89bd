"""`streamdream render IN... OUT_DIR`: folders, grids, manifest and resume, worker processes, Ctrl-C, SIGKILL, Ray."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import music_clip, run_cli
from streamdream.stream import batch

FAST = ["--set", "steps=2", "--set", "octaves=2", "--set", "window_s=1.5", "--set", "crossfade_s=0.25",
        "--set", "backend=eager"]
RATE = 16000


def write_clip(path: Path, seconds: float = 2.0, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, music_clip(RATE, seconds, seed=seed).T, RATE, subtype="FLOAT")
    return path


def samples(path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".part" in p.name]


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / batch.MANIFEST).read_text().splitlines()]


@pytest.fixture
def library(tmp_path):
    """A little sample library: two good files in a tree, one that is not audio, one that is not a sound at all."""
    root = tmp_path / "samples"
    write_clip(root / "kick.wav")
    write_clip(root / "loops" / "groove.wav", 2.5, seed=1)
    (root / "loops" / "broken.wav").write_bytes(b"RIFF but not really")
    (root / "notes.md").write_text("not audio, not looked at")
    return root


def test_seed_ranges_grid_and_names():
    assert batch.parse_seeds(["1-3", "7,2"]) == [1, 2, 3, 7]
    combos = batch.grid_combinations({"preset": ["vivid", "deep"], "target": ["brass"], "seed": [1, 2]})
    assert combos == [{"preset": p, "target": "brass", "seed": s} for p in ("vivid", "deep") for s in (1, 2)]
    assert batch.grid_combinations({}) == [{}]
    assert batch.grid_name(Path("a/take.flac"), {"target": "brass", "seed": 3}, ".wav") == Path("a/take.brass.s3.wav")
    blend = batch.grid_name(Path("take.wav"), {"preset": "deep", "target": "C4,E4:0.5"}, ".wav")
    assert blend == Path("take.deep.C4+E4=0.5.wav")
    assert batch.parse_seeds(["-3"]) == [-3]  # refused by the parameter's own range check, as before
    for bad in (["5-1"], ["x"], ["1-"]):
        with pytest.raises(batch.ParameterError):
            batch.parse_seeds(bad)


def test_a_folder_is_mirrored_and_a_bad_file_is_skipped_with_exit_1(library, tmp_path, mel_model):
    out = tmp_path / "out"
    result = run_cli("render", library, out, "--model", mel_model, "--jobs", "1", *FAST)
    assert result.returncode == 1
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "loops/broken.wav" in skipped[0]
    assert "1 of 3 file(s) failed" in result.stderr.splitlines()[-1]
    for name in ("kick.wav", "loops/groove.wav"):
        dry, wet = samples(library / name), samples(out / name)
        assert wet.shape == dry.shape and not np.allclose(wet, dry, atol=1e-4)
    assert not (out / "notes.md").exists() and not (out / "loops" / "broken.wav").exists() and not temp_files(out)
    records = {r["output"]: r for r in manifest(out)}
    assert records["kick.wav"]["status"] == "done" and records["loops/broken.wav"]["status"] == "failed"


def test_a_grid_renders_every_combination_under_predictable_names(tmp_path, mel_model):
    take = write_clip(tmp_path / "take.wav")
    listing = tmp_path / "list.txt"
    listing.write_text("# one take\ntake.wav\n")
    out = tmp_path / "out"
    result = run_cli("render", listing, out, "--model", mel_model, "--target", "brass", "--target", "drums",
                     "--seed", "1-2", "--jobs", "1", *FAST)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.glob("*.wav"))
    assert names == ["take.brass.s1.wav", "take.brass.s2.wav", "take.drums.s1.wav", "take.drums.s2.wav"]
    dreams = {name: samples(out / name) for name in names}
    assert not np.array_equal(dreams["take.brass.s1.wav"], dreams["take.brass.s2.wav"])
    assert not np.array_equal(dreams["take.brass.s1.wav"], dreams["take.drums.s1.wav"])
    # one of them rendered alone, as the single-file command does, is the same dream
    single = tmp_path / "single.wav"
    assert run_cli("render", take, single, "--model", mel_model, "--target", "drums", "--seed", "2",
                   *FAST).returncode == 0
    assert np.array_equal(samples(single), dreams["take.drums.s2.wav"])


def test_a_rerun_skips_what_is_done_and_redoes_what_changed_or_is_missing(tmp_path, mel_model):
    src, out = tmp_path / "in", tmp_path / "out"
    for name, seed in (("a.wav", 0), ("b.wav", 1), ("c.wav", 2), ("d.wav", 3)):
        write_clip(src / name, seed=seed)
    command = ("render", src, out, "--model", mel_model, "--jobs", "1", *FAST)
    assert run_cli(*command).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}

    again = run_cli(*command)
    assert again.returncode == 0 and "rendered 0 file(s)" in again.stderr and "4 already done" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == before

    write_clip(src / "a.wav", seed=9)                                   # the input changed
    (out / "b.wav").write_bytes((out / "b.wav").read_bytes()[:1000])    # an output cut short
    (out / "c.wav").unlink()                                            # an output gone
    (out / ".d.wav.x1y2.part.wav").write_bytes(b"left by a killed run")
    with open(out / batch.MANIFEST, "a") as fh:
        fh.write('{"output": "d.wav", "sta')                            # a line cut short by a kill
    third = run_cli(*command)
    assert third.returncode == 0 and "rendered 3 file(s)" in third.stderr and "1 already done" in third.stderr
    assert (out / "d.wav").stat().st_mtime_ns == before["d.wav"] and not temp_files(out)
    assert samples(out / "b.wav").shape == samples(src / "b.wav").shape and (out / "c.wav").exists()
    # the redone input is dreamed from its new content
    assert run_cli("render", src / "a.wav", tmp_path / "a1.wav", "--model", mel_model, *FAST).returncode == 0
    assert np.array_equal(samples(out / "a.wav"), samples(tmp_path / "a1.wav"))
    # another setting is another output's key: everything is done again
    assert "rendered 4 file(s)" in run_cli(*command, "--gain", "-3").stderr


@pytest.mark.parametrize("args, said", [
    (["--seed", "1-3"], "several --seed values make a grid"),
    (["--jobs", "2"], "--jobs is for several files"),
])
def test_grid_and_worker_options_on_one_file_are_usage_errors(stereo_wav, tmp_path, mel_model, args, said):
    result = run_cli("render", stereo_wav, tmp_path / "o.wav", "--model", mel_model, *args, *FAST)
    assert result.returncode == 2 and said in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()


def test_bad_batch_usage_is_refused_before_any_work(library, tmp_path, mel_model):
    def refused(*args):
        result = run_cli("render", *args, "--model", mel_model, *FAST)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    assert "kazoo" in refused(library, tmp_path / "o1", "--target", "brass", "--target", "kazoo")
    assert not (tmp_path / "o1").exists()
    (tmp_path / "file").write_text("x")
    assert "is a file" in refused(library, tmp_path / "file")
    assert "overwrite an input" in refused(library / "kick.wav", library)
    (tmp_path / "empty").mkdir()
    assert "no audio files" in refused(tmp_path / "empty", tmp_path / "o2")
    assert "does not exist" in refused(tmp_path / "absent", tmp_path / "o3")
    assert "--plot is for one file" in refused(library, tmp_path / "o4", "--plot", tmp_path / "p.png")


# ------------------------------------------------------------------ worker processes, signals, Ray

@pytest.mark.subprocess
def test_one_worker_or_two_give_the_same_samples(library, tmp_path, mel_model):
    outs = {}
    for jobs in ("1", "2"):
        outs[jobs] = tmp_path / f"out{jobs}"
        result = run_cli("render", library, outs[jobs], "--model", mel_model, "--seed", "1-2", "--jobs", jobs,
                         "--threads", "1", *FAST)
        assert result.returncode == 1 and "2 of 6 file(s) failed" in result.stderr
    names = sorted(p.relative_to(outs["1"]) for p in outs["1"].rglob("*.wav"))
    assert len(names) == 4
    for name in names:
        assert np.array_equal(samples(outs["1"] / name), samples(outs["2"] / name)), name


def start_batch(src: Path, out: Path, model: Path, *extra) -> subprocess.Popen:
    """The command line in its own process group, as a terminal runs it (Ctrl-C reaches the whole group)."""
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "streamdream.cli", "render", src, out, "--model", model,
                             *FAST, "--set", "steps=6", *extra], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_manifest_lines(out: Path, count: int, proc: subprocess.Popen, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if (out / batch.MANIFEST).exists() and len((out / batch.MANIFEST).read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {count} finished files within {deadline_s} s")


def many_files(folder: Path, count: int = 8) -> Path:
    for i in range(count):
        write_clip(folder / f"f{i}.wav", 3.0, seed=i)
    return folder


@pytest.mark.subprocess
def test_ctrl_c_mid_batch_keeps_finished_files_and_leaves_no_temp_files(tmp_path, mel_model):
    src, out = many_files(tmp_path / "in"), tmp_path / "out"
    proc = start_batch(src, out, mel_model, "--jobs", "2")
    wait_for_manifest_lines(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not temp_files(out)
    done = [r for r in manifest(out) if r["status"] == "done"]
    assert 1 <= len(done) < 8
    for record in done:
        assert samples(out / record["output"]).shape == samples(src / record["output"]).shape


def processes(test) -> list[int]:
    """Pids of the processes whose /proc entry passes `test` (those that end meanwhile left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and test(entry):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def session_processes(session: int) -> list[int]:
    """The processes of the session `session` leads (the command and its workers)."""
    return processes(lambda entry: int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == session)


@pytest.mark.subprocess
def test_a_batch_killed_with_sigkill_resumes_where_it_stopped(tmp_path, mel_model):
    src, out = many_files(tmp_path / "in", 12), tmp_path / "out"
    proc = start_batch(src, out, mel_model, "--jobs", "2")
    wait_for_manifest_lines(out, 2, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: no cleanup runs, its workers are orphaned
    proc.wait(timeout=30)
    deadline = time.monotonic() + 120
    while session_processes(proc.pid):  # the orphans finish the file in hand and stop taking new ones
        assert time.monotonic() < deadline, "worker processes outlived their driver"
        time.sleep(0.1)
    finished = len([r for r in manifest(out) if r["status"] == "done"])
    # each of the two workers may add a file the driver had not recorded yet and the one in hand, no more
    assert len(list(out.glob("*.wav"))) <= finished + 4
    result = run_cli("render", src, out, "--model", mel_model, *FAST, "--set", "steps=6", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert f"{finished} already done" in result.stderr and f"rendered {12 - finished} file(s)" in result.stderr
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(p.name for p in src.glob("*.wav"))
    assert not temp_files(out)


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray", reason="the `cluster` extra")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


def actor_pids() -> list[int]:
    return processes(lambda entry: b"RenderActor" in (entry / "cmdline").read_bytes())


@pytest.mark.subprocess
def test_ray_gives_the_same_samples_and_survives_a_killed_actor(local_ray, tmp_path, mel_model):
    src = many_files(tmp_path / "in", 6)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert run_cli("render", src, local, "--model", mel_model, *FAST, "--jobs", "1", "--threads", "1").returncode == 0

    killed = []

    def kill_an_actor_mid_batch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if (on_ray / batch.MANIFEST).exists() and actor_pids():
                os.kill(actor_pids()[0], signal.SIGKILL)
                killed.append(True)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_an_actor_mid_batch)
    killer.start()
    result = run_cli("render", src, on_ray, "--model", mel_model, *FAST, "--ray", "--threads", "1")
    killer.join()
    assert killed and result.returncode == 0, result.stderr
    # the inputs sent through Ray's object store, the outputs written back here
    shipped = tmp_path / "shipped"
    (src / "f0.wav").write_bytes(b"RIFF, then nothing")
    result = run_cli("render", src, shipped, "--model", mel_model, *FAST, "--ray", "--ship", "--threads", "1")
    assert result.returncode == 1 and f"skipped f0.wav: {src / 'f0.wav'} is not an audio file" in result.stderr
    for wav in sorted(src.glob("*.wav"))[1:]:
        assert np.array_equal(samples(local / wav.name), samples(on_ray / wav.name)), wav.name
        assert np.array_equal(samples(local / wav.name), samples(shipped / wav.name)), wav.name
    assert not temp_files(on_ray) and not temp_files(shipped)
