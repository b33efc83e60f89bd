"""lab/plot_ridge.py: eval_dreams' runs in one picture, and one line with exit 2 for what it cannot plot."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "plot_ridge.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def write_runs(path, *means):
    path.write_text("".join(json.dumps({"label": f"run{i}", "mean": m}) + "\n" for i, m in enumerate(means)))


def test_the_runs_with_a_target_are_drawn_and_bad_input_leaves_no_picture(tmp_path):
    runs = tmp_path / "runs.jsonl"
    good = {"rise": 0.3, "top3": 0.66, "noise_top3": 0.62, "change_db": -3.0}
    no_target = {"rise": float("nan"), "top3": 0.88, "noise_top3": 0.75, "change_db": -6.0}  # amplify: no rise
    write_runs(runs, good, {**good, "rise": 0.18, "top3": 0.81, "change_db": -5.9}, no_target)
    out = tmp_path / "ridge.png"
    drawn = run(runs, "--out", out, "--mark", "run0")
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith("2 runs")  # the run without a target has no rise to place
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    old = {k: v for k, v in good.items() if k != "change_db"}  # a run judged before the change's level was kept
    bad = tmp_path / "old.jsonl"
    write_runs(bad, good, old)
    only_amplify = tmp_path / "amplify.jsonl"
    write_runs(only_amplify, no_target)
    for args, said in (([bad], "line 2"), ([only_amplify], "no run with a target"),
                       ([tmp_path / "gone.jsonl"], "cannot read"), ([runs, "--mark", "run9"], "run9")):
        picture = tmp_path / "not.png"
        refused = run(*args, "--out", picture)
        assert refused.returncode == 2, refused.stderr
        assert said in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert not picture.exists()
    not_png = run(runs, "--out", tmp_path / "ridge.txt")
    assert not_png.returncode == 2 and "--out" in not_png.stderr and "must end in .png" in not_png.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["amplify.jsonl", "old.jsonl", "ridge.png", "runs.jsonl"]
