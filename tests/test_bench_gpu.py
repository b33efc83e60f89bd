"""scripts/bench_gpu.py refuses loudly, not by skipping, when it was asked for CUDA and there is none."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_gpu.py"


@pytest.mark.subprocess
def test_no_cuda_device_is_a_failure_with_one_line(tmp_path):
    figures = tmp_path / "figures.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda:0", "--json", str(figures)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0] and "CUDA_VISIBLE_DEVICES=''" in lines[0]
    assert not figures.exists() and run.stdout == ""
