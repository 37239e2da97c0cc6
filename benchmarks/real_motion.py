"""DiffPose against the Martinez et al. 2017 MLP on real captured motion (the real-motion issue's benchmark).

    python benchmarks/real_motion.py --rotations 0 1 2 --seeds 0 1 2 --jobs 2 --out benchmarks/out/real_motion.json
    python benchmarks/real_motion.py --merge benchmarks/out/real_motion*.json      # one table from several runs

Data nobody here wrote: the three BVH takes in the source distribution of ``bvhtools==1.6.0`` on PyPI (MIT
licence): ``testBvhFiles/test.bvh`` (7,184 frames at 30 fps) and ``test2.bvh`` (3,945 frames at 30 fps), one
actor on a CMU / Mixamo-style skeleton in centimetres, and ``test3.bvh`` (3,089 frames at 24 fps), another
actor on a Rigify skeleton in metres. The sdist is fetched at run time with ``pip download`` into a cache
(``$DIFFPOSE_FAST_CACHE`` or ``~/.cache/diffpose_fast``), checked against its sha256, and only those three files
are extracted; nothing of it is committed.

Each take is read with ``data.bvh`` (resampled to 30 fps) and cut into 5 s clips, each seen by one real Human3.6M
camera with detector-like 2D noise (``data.mocap``). Rotation r tests on take r and trains on the other two (split
by take: other motions, and for r = 2 another actor and skeleton). For every seed the same frames train the MLP
(10,000 Adam steps of batch 64, flip-augmented) and DiffPose (``DiffPoseLifter.fit`` with the given budget, the
defaults when none is given). Reported, frame-weighted over the test take (mm, root-relative): MPJPE and P-MPJPE
of the MLP, of DiffPose's context encoder ("context"), of DiffPose (DDIM 5, N = 5: the mean of the hypotheses),
the best of the N hypotheses per frame (P-Best), each also as a ratio to the MLP of the same seed, and DiffPose
to its own context encoder. Diagnostics: the encoder's error on training frames and per axis on test frames,
the share of test depth errors within one predicted depth sigma, one-step x0 (DDIM 1) error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

SDIST = "bvhtools-1.6.0.tar.gz"
SDIST_SHA256 = "840c67a4d94c4c4732d1a729eac0ba6b0cad7c334aed2773ea2ff15ffe64c144"
TAKES = ("test.bvh", "test2.bvh", "test3.bvh")
FPS = 30.0


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFPOSE_FAST_CACHE", Path.home() / ".cache" / "diffpose_fast")) / "bvhtools-1.6.0"


def fetch_takes(cache: Path | None = None) -> list[Path]:
    """The three BVH files, downloaded and verified once into the cache."""
    cache = cache or cache_dir()
    paths = [cache / name for name in TAKES]
    if all(p.exists() for p in paths):
        return paths
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / SDIST
    if not sdist.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "bvhtools==1.6.0", "-d", str(cache)], check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sdist.unlink()
        raise RuntimeError(f"{sdist}: sha256 {digest} is not the expected {SDIST_SHA256}")
    with tarfile.open(sdist) as tar:
        for name in TAKES:
            member = tar.getmember(f"bvhtools-1.6.0/testBvhFiles/{name}")
            with tar.extractfile(member) as src:
                (cache / name).write_bytes(src.read())
    return paths


def add_saved_model_arguments(ap) -> None:
    """--models, --variant, --rotations, --seed: which lifters written by ``--save-models`` a script reads."""
    ap.add_argument("--models", default="benchmarks/out/models")
    ap.add_argument("--variant", default="calibrated")
    ap.add_argument("--rotations", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seed", type=int, default=0)


def saved_lifters(args):
    """(rotation, the loaded lifter or None, its folder) for each of args.rotations (``add_saved_model_arguments``)."""
    from diffpose_fast import DiffPoseLifter

    for r in args.rotations:
        folder = Path(args.models) / f"{args.variant}-r{r}-s{args.seed}"
        yield r, (DiffPoseLifter.load(folder) if folder.exists() else None), folder


def load_split(rotation: int, views: int = 1, ambiguous: bool = False):
    """(train sequences, test sequences, description) of one rotation. ambiguous: the 2D of
    ``SyntheticConfig.ambiguous()`` (swaps, occlusions, double detections) with heatmaps, which H_K then reads."""
    from diffpose_fast.data.bvh import load_bvh
    from diffpose_fast.data.mocap import MocapViewConfig, mocap_sequences
    from diffpose_fast.data.synthetic import SyntheticConfig

    takes = [load_bvh(p, fps=FPS) for p in fetch_takes()]
    config = MocapViewConfig(views=views, detector=SyntheticConfig.ambiguous() if ambiguous else SyntheticConfig())
    train_takes = [t for i, t in enumerate(takes) if i != rotation]
    train = mocap_sequences(train_takes, seed=100 + rotation, config=config)
    test = mocap_sequences([takes[rotation]], seed=200 + rotation, config=config)
    info = {"train_takes": [t.name for t in train_takes], "test_take": takes[rotation].name,
            "train_frames": int(sum(s.num_frames for s in train)), "test_frames": int(sum(s.num_frames for s in test)),
            "train_clips": len(train), "test_clips": len(test)}
    return train, test, info


def _errors(pred, gt):
    from diffpose_fast import metrics

    return (float(metrics.mpjpe(pred, gt) * 1000), float(metrics.p_mpjpe(pred, gt) * 1000))


def _concat(per_seq):
    return np.concatenate([np.asarray(p, np.float64) for p in per_seq])


def evaluate_diffpose(lifter, test, train_subset):
    import torch
    from diffpose_fast import metrics

    gt = _concat([s.root_relative_poses() for s in test])
    out = {}
    ctx = [lifter.predict(s, sampler="context") for s in test]
    out["context"] = _errors(_concat([r.poses_3d for r in ctx]), gt)
    res = [lifter.predict(s, sampler="ddim", num_samples=5, steps=5) for s in test]
    mean = _concat([r.poses_3d for r in res])
    samples = np.concatenate([np.asarray(r.samples, np.float64) for r in res], axis=1)  # [N, F, J, 3]
    out["ddim5"] = _errors(mean, gt)
    out["best_of_5"] = (float(metrics.p_best(samples, gt) * 1000), float("nan"))
    one = [lifter.predict(s, sampler="ddim", num_samples=5, steps=1) for s in test]
    out["ddim1"] = _errors(_concat([r.poses_3d for r in one]), gt)
    # diagnostics
    pred_ctx = _concat([r.poses_3d for r in ctx])
    err = pred_ctx - gt
    diag = {"rms_axis_mm": [float(v) for v in np.sqrt((err[:, 1:] ** 2).mean((0, 1))) * 1000],
            "spread_ddim5_mm": float(np.mean(_concat([r.std for r in res])[:, 1:]) * 1000)}
    gt_tr = _concat([s.root_relative_poses() for s in train_subset])
    pred_tr = _concat([lifter.predict(s, sampler="context").poses_3d for s in train_subset])
    diag["context_train_mpjpe_mm"] = float(metrics.mpjpe(pred_tr, gt_tr) * 1000)
    # depth sigma coverage on test frames: |z error| within the predicted sigma_z
    from diffpose_fast.data.frames import frames_from_sequences

    cover = []
    with torch.no_grad():
        for s in test:
            fr = frames_from_sequences([s], lifter.config.default_confidence, require_poses=True)
            c = lifter.model.encode(fr.to(lifter.device))
            sig = torch.exp(c.log_sigma_z).cpu().numpy()[:, 1:]
            zerr = np.abs(c.pose[..., 2].cpu().numpy()[:, 1:] - fr.poses[..., 2].numpy()[:, 1:])
            cover.append((zerr <= sig).mean())
    diag["depth_within_1sigma"] = float(np.mean(cover))
    out["diagnostics"] = diag
    out["uncertainty"] = uncertainty_measures(lifter, test, res, ctx)
    return out


def _joint_errors(results, sequences):
    """[F, 17] metres: the distance of each result's mean pose to the ground truth, over all frames."""
    return _concat([np.linalg.norm(np.asarray(r.poses_3d, np.float64) - s.root_relative_poses(), axis=-1)
                    for r, s in zip(results, sequences)])


def _confidence(sequences, default):
    return _concat([np.full((s.num_frames, 17), default) if s.confidence is None else s.confidence
                    for s in sequences])


def uncertainty_measures(lifter, test, res, ctx) -> dict:
    """The uncertainty issue's measures on the test take: raw and calibrated spread of DDIM 5 (N = 5), the
    calibrated spread of the context encoder (N = 1), the response to noise on the left arm, and the calibration
    ablation (maps with fewer terms, refitted on the same held-out slice as fit's)."""
    from diffpose_fast.uncertainty import noise_response, uncertainty_report

    err = _joint_errors(res, test)
    out = {"raw": uncertainty_report(_concat([r.std for r in res]), err)}
    if res[0].calibrated_std is None:
        return out
    out["calibrated"] = uncertainty_report(_concat([r.calibrated_std for r in res]), err)
    out["context_calibrated"] = uncertainty_report(_concat([r.calibrated_std for r in ctx]), _joint_errors(ctx, test))
    out["noise_response"] = noise_response(lifter, test, sampler="ddim", num_samples=5, steps=5)
    out["map"] = lifter.calibration["spread"].to_dict()
    return out


def calibration_ablation(lifter, held_out, test, res) -> dict:
    """Calibrated Spearman / coverage / ECE on the test take for maps fitted on the held-out slice with fewer
    terms: one global factor (the old calibrate_spread), a factor per joint, floor + spread per joint, all."""
    from diffpose_fast.uncertainty import SpreadCalibration, uncertainty_report

    held = [lifter.predict(s, sampler="ddim", num_samples=5, steps=5) for s in held_out]
    h_std, h_err = _concat([r.std for r in held]), _joint_errors(held, held_out)
    h_conf = _confidence(held_out, lifter.config.default_confidence)
    t_std, t_err = _concat([r.std for r in res]), _joint_errors(res, test)
    t_conf = _confidence(test, lifter.config.default_confidence)
    out = {}
    for name, terms, per_joint in (("global factor", ("spread",), False), ("factor per joint", ("spread",), True),
                                   ("floor + spread per joint", ("floor", "spread"), True),
                                   ("floor + spread + confidence per joint", ("floor", "spread", "confidence"), True),
                                   ("floor + confidence per joint (no spread)", ("floor", "confidence"), True)):
        cal = SpreadCalibration.fit(h_std, h_err, h_conf, 5, terms=terms, per_joint=per_joint)
        rep = uncertainty_report(cal.apply(t_std, 5, t_conf), t_err)
        out[name] = {k: rep[k] for k in ("spearman", "within_1std", "within_2std", "ece")}
    return out


def run_one(rotation: int, seed: int, variant: str, overrides: dict, fit_kwargs: dict, mlp_steps: int,
            skip_mlp: bool, save_dir: str | None = None, ambiguous: bool = False) -> dict:
    import torch
    from diffpose_fast import DiffPoseLifter
    from diffpose_fast.baselines import MartinezLifter

    train, test, info = load_split(rotation, ambiguous=ambiguous)
    info["ambiguous_2d"] = ambiguous
    gt = _concat([s.root_relative_poses() for s in test])
    result = {"rotation": rotation, "seed": seed, "variant": variant, "overrides": overrides, "fit": fit_kwargs,
              **info, "torch_threads": torch.get_num_threads()}
    if not skip_mlp:
        t0 = time.time()
        mlp = MartinezLifter(seed=seed)
        mlp.fit(train, steps=mlp_steps, batch_size=64)
        result["mlp_train_s"] = time.time() - t0
        result["mlp"] = _errors(_concat([mlp.predict(s) for s in test]), gt)
        result["mlp_flip"] = _errors(_concat([mlp.predict(s, flip_test=True) for s in test]), gt)
    t0 = time.time()
    lifter = DiffPoseLifter(mode="frame", seed=seed, **overrides)
    history = lifter.fit(train, progress=False, **fit_kwargs)
    result["diffpose_train_s"] = time.time() - t0
    result["calibration"] = history.get("calibration")
    if save_dir:
        lifter.save(Path(save_dir) / f"{variant}-r{rotation}-s{seed}")
    rng = np.random.default_rng(seed)
    subset = [train[i] for i in rng.choice(len(train), size=min(12, len(train)), replace=False)]
    t0 = time.time()
    result.update(evaluate_diffpose(lifter, test, subset))
    cal = history.get("calibration") or {}
    if cal.get("source") == "held_out" and "tail_of_sequence" not in cal:
        res = [lifter.predict(s, sampler="ddim", num_samples=5, steps=5) for s in test]
        result["calibration_ablation"] = calibration_ablation(lifter, [train[i] for i in cal["sequences"]], test, res)
    result["eval_s"] = time.time() - t0
    return result


VARIANTS: dict[str, dict] = {"default": {}}


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and std over seeds per (variant, rotation) and over rotations."""
    rows = []
    keys = ("mlp", "mlp_flip", "context", "ddim5", "ddim1", "best_of_5")
    by = {}
    for r in runs:
        by.setdefault((r["variant"], r["rotation"]), []).append(r)
    for (variant, rotation), group in sorted(by.items()):
        row = {"variant": variant, "rotation": rotation, "seeds": sorted(g["seed"] for g in group)}
        for k in keys:
            vals = [g[k] for g in group if k in g]
            if vals:
                row[k] = np.mean(vals, 0).tolist()
                row[k + "_std"] = np.std(vals, 0).tolist()
        if "mlp" in row:
            for k in ("context", "ddim5"):
                if k in row:
                    row[k + "_vs_mlp"] = float(np.mean([g[k][0] / g["mlp"][0] for g in group if "mlp" in g]))
        if "context" in row and "ddim5" in row:
            row["ddim5_vs_context"] = float(np.mean([g["ddim5"][0] / g["context"][0] for g in group]))
            row["ddim5_vs_context_p"] = float(np.mean([g["ddim5"][1] / g["context"][1] for g in group]))
        row["train_s"] = float(np.mean([g["diffpose_train_s"] for g in group]))
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| variant | test take | seeds | MLP | context | DDIM 5, N 5 | best of 5 | DDIM 1 | context / MLP | "
            "DDIM / MLP | DDIM / context (P-MPJPE) | train s |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]

    def cell(row, k):
        if k not in row:
            return "-"
        m, s = row[k], row[k + "_std"]
        if k == "best_of_5":
            return f"{m[0]:.1f} ± {s[0]:.1f}"
        return f"{m[0]:.1f} ± {s[0]:.1f} / {m[1]:.1f}"

    for row in rows:
        lines.append(f"| {row['variant']} | {TAKES[row['rotation']]} | {len(row['seeds'])} | {cell(row, 'mlp')} | "
                     f"{cell(row, 'context')} | {cell(row, 'ddim5')} | {cell(row, 'best_of_5')} | "
                     f"{cell(row, 'ddim1')} | {row.get('context_vs_mlp', float('nan')):.3f} | "
                     f"{row.get('ddim5_vs_mlp', float('nan')):.3f} | {row.get('ddim5_vs_context', float('nan')):.3f} "
                     f"({row.get('ddim5_vs_context_p', float('nan')):.3f}) | {row['train_s']:.0f} |")
    return "\n".join(lines)


def uncertainty_markdown(runs: list[dict]) -> str:
    """One row per run with the uncertainty measures (DDIM 5, N = 5; the context encoder's calibrated map), then
    the calibration ablation: maps with fewer terms, fitted on the same held-out slice."""
    lines = ["| test take | seed | held-out frames | Spearman raw / calibrated (within-joint mean) | within 1 std raw / "
             "cal | within 2 std raw / cal | ECE raw / cal | context (N=1) cal: Spearman, within 1 / 2 | left-arm noise: "
             "arm / others cal std ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["rotation"], r["seed"])):
        u = r.get("uncertainty", {})
        if "calibrated" not in u:
            continue
        raw, cal, ctx, nr = u["raw"], u["calibrated"], u["context_calibrated"], u["noise_response"]
        within_joint = np.nanmean(cal["per_joint"]["spearman"][1:])
        lines.append(f"| {TAKES[r['rotation']]} | {r['seed']} | {r['calibration']['frames']} | {raw['spearman']:.3f} / "
                     f"{cal['spearman']:.3f} ({within_joint:.3f}) | {raw['within_1std']:.3f} / {cal['within_1std']:.3f} | "
                     f"{raw['within_2std']:.3f} / {cal['within_2std']:.3f} | {raw['ece']:.3f} / {cal['ece']:.3f} | "
                     f"{ctx['spearman']:.3f}, {ctx['within_1std']:.3f} / {ctx['within_2std']:.3f} | "
                     f"{nr['joints_ratio']:.2f} / {nr['others_ratio']:.2f} |")
    ablation = [r for r in runs if "calibration_ablation" in r]
    if ablation:
        names = list(ablation[0]["calibration_ablation"])
        lines += ["", "| calibration map (fitted on fit's held-out slice) | " + " | ".join(
            f"{TAKES[r['rotation']]} s{r['seed']}: Spearman, within 1 / 2, ECE" for r in ablation) + " |",
                  "|---|" + "---|" * len(ablation)]
        for name in names:
            cells = []
            for r in ablation:
                a = r["calibration_ablation"][name]
                cells.append(f"{a['spearman']:.3f}, {a['within_1std']:.3f} / {a['within_2std']:.3f}, {a['ece']:.3f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rotations", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variant", default="default", help="a name for the run's DiffPose settings")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="LifterConfig overrides (JSON values)")
    ap.add_argument("--context-steps", type=int, default=None)
    ap.add_argument("--diffusion-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--mlp-steps", type=int, default=10_000)
    ap.add_argument("--skip-mlp", action="store_true")
    ap.add_argument("--ambiguous", action="store_true",
                    help="2D with swaps, occlusions and double detections, as heatmaps H_K reads (SyntheticConfig.ambiguous)")
    ap.add_argument("--jobs", type=int, default=1, help="processes side by side (one torch thread each if > 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process")
    ap.add_argument("--out", default="benchmarks/out/real_motion.json")
    ap.add_argument("--save-models", metavar="DIR", help="also save each trained lifter to DIR/<variant>-r<R>-s<S>")
    ap.add_argument("--merge", nargs="+", help="JSON files of earlier runs: print one table")
    ap.add_argument("--worker", nargs=2, type=int, metavar=("ROTATION", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.merge:
        runs = [r for f in args.merge for r in json.loads(Path(f).read_text())["runs"]]
        print(markdown(summarise(runs)))
        print()
        print(uncertainty_markdown(runs))
        return 0
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: _parse_value(v) for k, v in overrides.items()}
    fit_kwargs = {k: v for k, v in (("context_steps", args.context_steps), ("diffusion_steps", args.diffusion_steps),
                                    ("batch_size", args.batch_size)) if v is not None}
    import torch

    if args.worker:
        torch.set_num_threads(args.threads or 1)
        r, s = args.worker
        res = run_one(r, s, args.variant, overrides, fit_kwargs, args.mlp_steps, args.skip_mlp, args.save_models,
                      args.ambiguous)
        Path(args.out).write_text(json.dumps(res))
        return 0
    fetch_takes()
    jobs = [(r, s) for r in args.rotations for s in args.seeds]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    started = time.time()
    if args.jobs <= 1:
        if args.threads:
            torch.set_num_threads(args.threads)
        for r, s in jobs:
            runs.append(run_one(r, s, args.variant, overrides, fit_kwargs, args.mlp_steps, args.skip_mlp,
                                args.save_models, args.ambiguous))
            print(json.dumps(runs[-1]), flush=True)
    else:
        pending = list(jobs)
        active = []
        while pending or active:
            while pending and len(active) < args.jobs:
                r, s = pending.pop(0)
                part = out.with_suffix(f".part-{r}-{s}.json")
                cmd = [sys.executable, __file__, "--worker", str(r), str(s), "--variant", args.variant,
                       "--mlp-steps", str(args.mlp_steps), "--out", str(part), "--threads", str(args.threads or 1)]
                cmd += (["--set", *args.set] if args.set else []) + (["--skip-mlp"] if args.skip_mlp else [])
                cmd += ["--ambiguous"] if args.ambiguous else []
                cmd += ["--save-models", args.save_models] if args.save_models else []
                for flag, v in (("--context-steps", args.context_steps), ("--diffusion-steps", args.diffusion_steps),
                                ("--batch-size", args.batch_size)):
                    if v is not None:
                        cmd += [flag, str(v)]
                env = dict(os.environ, OMP_NUM_THREADS=str(args.threads or 1))
                active.append((subprocess.Popen(cmd, env=env), part))
            time.sleep(2)
            for proc, part in list(active):
                if proc.poll() is not None:
                    active.remove((proc, part))
                    if proc.returncode != 0:
                        print(f"worker {part} failed with {proc.returncode}", flush=True)
                        continue
                    runs.append(json.loads(part.read_text()))
                    part.unlink()
                    print(json.dumps(runs[-1]), flush=True)
    doc = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "wall_s": time.time() - started,
           "command": " ".join(sys.argv), "runs": runs}
    out.write_text(json.dumps(doc, indent=1))
    print(markdown(summarise(runs)))
    print()
    print(uncertainty_markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
