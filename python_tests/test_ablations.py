"""The ablation script runs end to end at a tiny size and writes a table, a JSON and a reliability plot."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ablations.py"


@pytest.fixture(scope="module")
def ablations():
    spec = importlib.util.spec_from_file_location("ablations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_ablation_run(ablations, tmp_path, capsys):
    out, plot = tmp_path / "ab.json", tmp_path / "rel.png"
    code = ablations.main(["--size", "tiny", "--seeds", "0", "--variants", "DiffPose",
                           "--out", str(out), "--plot", str(plot)])
    assert code == 0
    result = json.loads(out.read_text())
    summary = result["summary"]
    for name in ("context", "DiffPose", "DiffPose N=1", "DiffPose steps=10 (ddpm)"):
        mean, spread = summary[name]["mpjpe_mm"]
        assert 0 < mean < 5000 and spread == 0.0  # one seed: no spread
    u = result["per_seed"][0]["uncertainty"]
    assert -1.0 <= u["spearman"] <= 1.0 and 0.0 <= u["within_1std"] <= u["within_2std"] <= 1.0
    assert u["noise_injection_mm"]["left_arm_std_noisy"] > 0
    assert plot.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "| DiffPose |" in printed and "| context |" in printed
