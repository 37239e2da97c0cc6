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
    assert u["spread_scale"] > 0 and 0.0 <= u["scaled_within_1std"] <= u["scaled_within_2std"] <= 1.0
    assert plot.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "| DiffPose |" in printed and "| context |" in printed


def _run(seed, context_mm, **variants_mm):
    result = {"seed": seed, "context": {"mpjpe_mm": context_mm, "p_mpjpe_mm": context_mm / 2}}
    for name, mm in variants_mm.items():
        result[name] = {"mpjpe_mm": mm, "p_mpjpe_mm": mm / 2}
    return result


def test_merge_runs_with_different_variant_sets(ablations, tmp_path, capsys):
    """A variant run on fewer seeds is averaged over those seeds only, and its ratio is to their own context."""
    full = {"size": "x", "seeds": [0], "seconds": 1.0,
            "per_seed": [_run(0, 100.0, DiffPose=80.0, **{"Stand-Diff": 90.0})]}
    # An older file: no "seed" key in the per-seed results, the seed comes from "seeds".
    partial = {"size": "x", "seeds": [1, 2], "seconds": 2.0,
               "per_seed": [{k: v for k, v in _run(s, ctx, DiffPose=d).items() if k != "seed"}
                            for s, ctx, d in ((1, 200.0, 150.0), (2, 300.0, 240.0))]}
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, run in zip(paths, (full, partial)):
        path.write_text(json.dumps(run))
    out = tmp_path / "merged.json"
    assert ablations.main(["--merge", *map(str, paths), "--out", str(out)]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert summary["DiffPose"]["seeds"] == [0, 1, 2]
    assert summary["DiffPose"]["mpjpe_mm"][0] == pytest.approx((80 + 150 + 240) / 3)
    ratios = [0.8, 0.75, 0.8]
    assert summary["DiffPose"]["vs_context"][0] == pytest.approx(sum(ratios) / 3)
    assert summary["Stand-Diff"]["seeds"] == [0]
    assert summary["Stand-Diff"]["mpjpe_mm"] == [90.0, 0.0]
    assert summary["Stand-Diff"]["vs_context"][0] == pytest.approx(0.9)
    printed = capsys.readouterr().out
    assert "| Stand-Diff | 90.0 ± 0.0 | 45.0 ± 0.0 | 0.900 ± 0.000 | 0 |" in printed


def test_merge_unites_the_variants_of_one_seed_split_over_runs(ablations, tmp_path):
    first = {"size": "x", "seeds": [0], "seconds": 1.0, "per_seed": [_run(0, 100.0, DiffPose=80.0)]}
    second = {"size": "x", "seeds": [0], "seconds": 1.0, "per_seed": [_run(0, 100.0, **{"GMM M=1": 85.0})]}
    merged = ablations.merge_per_seed([first, second])
    assert len(merged) == 1 and merged[0]["DiffPose"]["mpjpe_mm"] == 80.0 and merged[0]["GMM M=1"]["mpjpe_mm"] == 85.0
    other_encoder = {"size": "x", "seeds": [0], "seconds": 1.0, "per_seed": [_run(0, 120.0, **{"GMM M=9": 90.0})]}
    with pytest.raises(ValueError, match="two different context encoders"):
        ablations.merge_per_seed([first, other_encoder])
    with pytest.raises(ValueError, match="'DiffPose' in more than one run"):
        ablations.merge_per_seed([first, first])
