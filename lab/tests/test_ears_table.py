"""lab/ears_table.py: every target by both ears, beside the noise control, from eval_dreams' JSON lines."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "ears_table.py"


def row(clip, target, rise, vs_noise, top3, noise_top3):
    return {"clip": clip, "target": target, "rise": rise, "vs_noise": vs_noise, "top3": top3,
            "noise_top3": noise_top3, "change_db": -6.0}


def test_one_table_per_run_and_material_with_each_ear_and_the_noise_control(tmp_path):
    runs = tmp_path / "runs.jsonl"
    lines = []
    for ear, rise in (("ear.onnx", 0.4), ("ear_disjoint.onnx", 0.2)):
        rows = [row("song@30", "brass", rise, rise - 0.1, True, False), row("tune@30", "brass", rise, rise - 0.1,
                                                                           False, True),
                row("song@30", "voice", 2 * rise, 2 * rise, True, True), row("tune@30", "voice", 0.0, 0.0, True, True)]
        lines.append({"label": "vivid", "ear": ear, "seed": 1, "clips": ["song@30", "tune@30"], "rows": rows})
    lines.append({"label": "vivid", "ear": "ear.onnx", "seed": 1, "clips": ["band"],
                  "rows": [row("band", "brass", 0.1, 0.1, True, True)]})  # only one ear: no table
    lines.append({"label": "old", "rows": []})  # a line from before --ear: passed over
    runs.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), str(runs)], capture_output=True, text=True, check=True).stdout
    assert out.count("| target |") == 1 and "`vivid` on the recordings" in out and "arrangements" not in out
    assert "| brass | +0.40 | +0.30 | 50% (50%) | +0.20 | +0.10 | 50% (50%) |" in out
    assert "| **all** | +0.40 | +0.35 | 75% (75%) | +0.20 | +0.15 | 75% (75%) |" in out
