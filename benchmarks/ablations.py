"""The paper's ablations (Tables 4-6, Fig. 4) redone on our data, and the calibration of the hypotheses' spread.

    python benchmarks/ablations.py --size small --seeds 0 1 2 --out benchmarks/ablations_small.json \
        --plot benchmarks/figures/reliability_small.png
    python benchmarks/ablations.py --size session --ambiguous --seeds 0 --no-sweeps \
        --variants DiffPose "GMM M=1" Stand-Diff "whole-pose GMM (diag)"    # Table 5 on ambiguous 2D
    python benchmarks/ablations.py --size paper --h36m-3d data_3d_h36m.npz \
        --h36m-2d data_2d_h36m_cpn_ft_h36m_dbb.npz --seeds 0 1 2          # with the Human3.6M files

For every seed: the context encoder is trained once (stage 1) and shared by every variant, so the variants differ
only in what the paper's ablation changes; each variant's diffusion model is trained from the same encoder with
the same step budget, then evaluated on the held-out split (synthetic: other subjects, cameras and motions with
detector-like 2D noise; Human3.6M: S9, S11).

Variants (Tables 4-6): "context" (the encoder alone), "DiffPose" (GMM forward process, per-joint GMM, M = 5, x0 loss,
DDIM 5 steps, N = 5), "Stand-Diff" (Eq. 4), "whole-pose GMM" (D = 48, diagonal), M = 1 / 9, "Eq. 9 weights",
"Baseline A" (the same denoiser trained to predict h_0 in one step: K = 1), "Baseline B" (K = 1 with the blocks
stacked 5x, matching DiffPose's DDIM-5 compute per hypothesis). On the DiffPose model: N = 1, 5, 10 and sampler
steps 1, 2, 5, 10, 50 (training chain K = 50). Uncertainty: rank correlation of the per-joint spread with the
per-joint error, the fractions within 1 and 2 spreads, the reliability curve, and the spread's response to 2D
noise injected on the left arm.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffpose_fast import DiffPoseLifter
from diffpose_fast.uncertainty import calibration_report, fit_spread_scale, within

SIZES = {
    # model overrides, data (train sequences x frames, test sequences x frames), steps (context, diffusion)
    "tiny": dict(model=dict(embed_dim=16, context_dim=16, denoiser_heads=2, denoiser_blocks=1, encoder_layers=1,
                            encoder_heads=2, gmm_samples=16, gmm_max_iter=10, batch_size=32, num_diffusion_steps=10),
                 data=(2, 32, 2, 16), steps=(10, 10), stacked_blocks=2),
    "small": dict(model=dict(embed_dim=64, context_dim=64, denoiser_heads=4, encoder_layers=3, batch_size=256,
                             gmm_samples=32, gmm_max_iter=10),
                  data=(40, 200, 10, 200), steps=(1500, 800), stacked_blocks=15),
    "session": dict(model=dict(embed_dim=64, context_dim=64, denoiser_heads=4, encoder_layers=3, batch_size=128,
                               gmm_samples=32, gmm_max_iter=10),
                    data=(20, 200, 6, 200), steps=(600, 300), stacked_blocks=15),
    "session-long": dict(model=dict(embed_dim=64, context_dim=64, denoiser_heads=4, encoder_layers=3, batch_size=128,
                                    gmm_samples=32, gmm_max_iter=10),
                         data=(20, 200, 6, 200), steps=(600, 3000), stacked_blocks=15),  # "session", 10x stage 2
    "paper": dict(model=dict(), data=(200, 500, 40, 500), steps=(None, None), stacked_blocks=15),
}

TRAINING_VARIANTS = {
    "DiffPose": {},
    "Stand-Diff": {"forward_process": "standard"},
    "whole-pose GMM (diag)": {"gmm_scope": "whole_pose", "gmm_covariance": "diag", "gmm_samples": 128},
    "GMM M=1": {"gmm_components": 1},
    "GMM M=9": {"gmm_components": 9},
    "Eq. 9 weights": {"loss_weighting": "eq9"},
    "Baseline A": {"num_diffusion_steps": 1, "sampling_steps": 1},
    "Baseline B": {"num_diffusion_steps": 1, "sampling_steps": 1, "denoiser_blocks": None},  # blocks set per size
}


def load_data(args, size):
    if args.h36m_3d:
        from diffpose_fast.data import h36m

        p3 = h36m.load_positions_3d(args.h36m_3d)
        p2 = h36m.load_positions_2d(args.h36m_2d)
        train = h36m.build_sequences(p3, p2, h36m.TRAIN_SUBJECTS, downsample=args.downsample)
        test = h36m.build_sequences(p3, p2, h36m.TEST_SUBJECTS, downsample=args.downsample)
        return train, test
    from diffpose_fast.data.synthetic import SyntheticConfig, generate_sequences

    # --ambiguous: swaps, occlusions (wide / split heatmaps) and double detections, H_K from the heatmaps
    # --heatmaps: the default failure rates, but H_K from rendered heatmaps of the same 48 x 36 cells (the
    # no-ambiguity control of --ambiguous)
    config = (SyntheticConfig.ambiguous() if args.ambiguous
              else SyntheticConfig(heatmap_size=SyntheticConfig.ambiguous().heatmap_size) if args.heatmaps else None)
    n_train, t_train, n_test, t_test = size["data"]
    return (generate_sequences(n_train, t_train, seed=0, config=config),
            generate_sequences(n_test, t_test, seed=1000, config=config))


def evaluate(lifter, test, **kwargs):
    """MPJPE and P-MPJPE of the mean pose (mm); with several hypotheses also J-Best and P-Best (the MPJPE of the
    best hypothesis per joint / per whole pose: do the hypotheses cover the truth where the mean does not?)."""
    from diffpose_fast.evaluation import ErrorAccumulator

    acc = ErrorAccumulator(hypothesis_metrics=True)
    for seq in test:
        res = lifter.predict(seq, **kwargs)
        acc.add(seq, None, res.poses_3d, samples=res.samples, std=res.std, calibrated_std=res.calibrated_std)
    out = {"mpjpe_mm": float(acc.frame_errors("mpjpe").mean()), "p_mpjpe_mm": float(acc.frame_errors("p_mpjpe").mean())}
    for m in ("j_best", "p_best"):
        if acc.errors[m]:
            out[f"{m}_mm"] = float(acc.frame_errors(m).mean())
    return out


def uncertainty(lifter, test, seed):
    """Calibration of res.std against the per-joint error, and its response to injected 2D noise."""
    stds, errs = [], []
    for seq in test:
        res = lifter.predict(seq, num_samples=10, steps=5)
        stds.append(res.std)
        errs.append(np.linalg.norm(res.poses_3d - seq.root_relative_poses(), axis=-1))
    report = calibration_report(np.concatenate(stds)[:, 1:], np.concatenate(errs)[:, 1:])
    # One spread factor fitted on half of the held-out sequences (even indices), checked on the other half: does a
    # single number make the spread calibrated (within 1 and 2 spreads: 0.608 and 0.993)?
    fit_half, check_half = slice(0, None, 2), slice(1, None, 2)
    if len(stds) >= 2:
        scale = fit_spread_scale(np.maximum(np.concatenate(stds[fit_half])[:, 1:], 1e-9),
                                 np.concatenate(errs[fit_half])[:, 1:])
        std_check, err_check = np.concatenate(stds[check_half])[:, 1:], np.concatenate(errs[check_half])[:, 1:]
        report["spread_scale"] = scale
        report["scaled_within_1std"] = within(scale * std_check, err_check, 1.0)
        report["scaled_within_2std"] = within(scale * std_check, err_check, 2.0)

    # Inject 2D noise on the left arm (elbow 12, wrist 13) and lower its confidence, as a detector would.
    from diffpose_fast.data.sequence import PoseSequence

    rng = np.random.default_rng(seed)
    arm = [12, 13]
    before, after, others_before, others_after = [], [], [], []
    for seq in test:
        kp = np.array(seq.keypoints_2d)
        conf = np.array(seq.confidence) if seq.confidence is not None else np.ones(kp.shape[:2], np.float32)
        kp[:, arm] += rng.normal(scale=20.0, size=(kp.shape[0], len(arm), 2))
        conf[:, arm] = np.minimum(conf[:, arm], 0.3)
        noisy = PoseSequence(kp, seq.poses_3d, seq.image_size, conf, camera=seq.camera, action=seq.action)
        clean_std = lifter.predict(seq, num_samples=10, steps=5).std
        noisy_std = lifter.predict(noisy, num_samples=10, steps=5).std
        others = [j for j in range(1, 17) if j not in arm]
        before.append(clean_std[:, arm].mean())
        after.append(noisy_std[:, arm].mean())
        others_before.append(clean_std[:, others].mean())
        others_after.append(noisy_std[:, others].mean())
    report["noise_injection_mm"] = {
        "left_arm_std_clean": float(np.mean(before) * 1000), "left_arm_std_noisy": float(np.mean(after) * 1000),
        "other_joints_std_clean": float(np.mean(others_before) * 1000),
        "other_joints_std_noisy": float(np.mean(others_after) * 1000),
    }
    return report


def run_seed(args, size, train, test, seed, log):
    model = dict(size["model"])
    c_steps, d_steps = size["steps"]
    results = {"seed": seed}
    base = DiffPoseLifter(seed=seed, **model)
    t0 = time.time()
    base.fit(train, context_steps=c_steps, diffusion_steps=0, progress=args.progress)
    log(f"seed {seed}: stage 1 in {time.time() - t0:.0f} s")
    encoder = {k: v.clone() for k, v in base.model.encoder.state_dict().items()}
    results["context"] = evaluate(base, test, sampler="context")
    log(f"  context {results['context']}")
    trained = {}
    for name, overrides in TRAINING_VARIANTS.items():
        if args.variants and name not in args.variants:
            continue
        overrides = dict(overrides)
        if overrides.get("denoiser_blocks", 0) is None:
            overrides["denoiser_blocks"] = size["stacked_blocks"]
        lifter = DiffPoseLifter(seed=seed, **{**model, **overrides})
        lifter.model.encoder.load_state_dict(encoder)  # the same frozen encoder for every variant
        t0 = time.time()
        lifter.fit(train, context_steps=0, diffusion_steps=d_steps, progress=args.progress)
        results[name] = evaluate(lifter, test, sampler="ddim", num_samples=5,
                                 steps=lifter.config.sampling_steps)
        results[name]["train_s"] = time.time() - t0
        log(f"  {name} {results[name]}")
        trained[name] = lifter
    main = trained.get("DiffPose")
    if main is not None and not args.no_sweeps:
        for n in (1, 5, 10):
            results[f"DiffPose N={n}"] = evaluate(main, test, sampler="ddim", num_samples=n, steps=5)
        for s in (1, 2, 5, 10):
            results[f"DiffPose steps={s}"] = evaluate(main, test, sampler="ddim", num_samples=5, steps=s)
        k = main.config.num_diffusion_steps
        results[f"DiffPose steps={k} (ddpm)"] = evaluate(main, test, sampler="ddpm", num_samples=5, steps=None)
        results["uncertainty"] = uncertainty(main, test, seed)
        log(f"  uncertainty {results['uncertainty']}")
    return results


NOT_VARIANTS = ("uncertainty", "seed")


def summarise(per_seed: list[dict]) -> dict:
    """mean and std over the seeds that ran each (variant, metric), and how many did ("seeds").

    Runs merged with --merge may cover different variants (a cheap variant on three seeds, an expensive one on
    one), so a variant's statistics use only the seeds that have it; "vs context" in the table is then taken
    against those same seeds' context (see ``markdown``).
    """
    out = {}
    names = [n for r in per_seed for n in r if n not in NOT_VARIANTS]
    for name in dict.fromkeys(names):  # first-seen order, no duplicates
        runs = [r for r in per_seed if name in r]
        out[name] = {"seeds": [r.get("seed") for r in runs]}
        for metric in ("mpjpe_mm", "p_mpjpe_mm", "j_best_mm", "p_best_mm"):
            if not all(metric in r[name] for r in runs):
                continue
            values = np.array([r[name][metric] for r in runs])
            out[name][metric] = (float(values.mean()), float(values.std()))
        # The ratio to the context of the same seeds, averaged over seeds (the encoder differs per seed).
        ratios = np.array([r[name]["mpjpe_mm"] / r["context"]["mpjpe_mm"] for r in runs])
        out[name]["vs_context"] = (float(ratios.mean()), float(ratios.std()))
    return out


def merge_per_seed(runs: list[dict]) -> list[dict]:
    """The per-seed results of several runs, one dict per seed, sorted by seed.

    Runs of the same seed with different --variants (the variants of one seed split over processes) are united:
    each trains the same stage-1 encoder from the seed, so their "context" rows must agree; a variant present in
    two runs of one seed is refused, since which to keep would be a guess.
    """
    merged: dict[int, dict] = {}
    for run in runs:
        # A run's per-seed results follow its "seeds" list (older JSON files lack the "seed" key).
        for seed, result in zip(run["seeds"], run["per_seed"]):
            into = merged.setdefault(seed, {"seed": seed})
            for name, value in result.items():
                if name == "seed":
                    continue
                if name == "context" and "context" in into:
                    a, b = into["context"]["mpjpe_mm"], value["mpjpe_mm"]
                    if abs(a - b) > 1e-6 * abs(a):
                        raise ValueError(f"--merge: seed {seed} has two different context encoders "
                                         f"({a:.4f} vs {b:.4f} mm MPJPE): runs of different sizes or data?")
                    continue
                if name in into:
                    raise ValueError(f"--merge: seed {seed} has {name!r} in more than one run")
                into[name] = value
    return [merged[seed] for seed in sorted(merged)]


def markdown(summary: dict) -> str:
    """One row per variant: mean ± std over its seeds; "vs context" is the mean over those seeds of the ratio
    to the same seed's context encoder (± its std), and "seeds" says which seeds ran it."""
    lines = ["| variant | MPJPE (mm) | P-MPJPE (mm) | vs context | seeds |", "|---|---|---|---|---|"]
    for name, metrics in summary.items():
        m, s = metrics["mpjpe_mm"]
        pm, ps = metrics["p_mpjpe_mm"]
        r, rs = metrics["vs_context"]
        seeds = ", ".join("?" if x is None else str(x) for x in metrics["seeds"])
        lines.append(f"| {name} | {m:.1f} ± {s:.1f} | {pm:.1f} ± {ps:.1f} | {r:.3f} ± {rs:.3f} | {seeds} |")
    return "\n".join(lines)


def best_markdown(summary: dict) -> str:
    """Best-of-N against the mean, per variant with hypotheses (mm, mean over seeds): MPJPE of the mean pose,
    P-Best (the MPJPE of the single best hypothesis per frame), J-Best (the best hypothesis per joint)."""
    lines = ["| variant | MPJPE of the mean | P-Best (best pose of N) | J-Best (best joint of N) |", "|---|---|---|---|"]
    for name, metrics in summary.items():
        if "j_best_mm" in metrics:
            lines.append(f"| {name} | {metrics['mpjpe_mm'][0]:.1f} | {metrics['p_best_mm'][0]:.1f} | "
                         f"{metrics['j_best_mm'][0]:.1f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def uncertainty_markdown(per_seed: list[dict]) -> str:
    """One row per seed: rank correlation, fractions within 1 and 2 spreads, the noise-injection response."""
    lines = ["| seed | Spearman(std, error) | within 1 std (calibrated 0.61) | within 2 std (0.99) | "
             "left-arm std clean -> noisy (mm) | other joints clean -> noisy (mm) | held-out spread factor: "
             "within 1 / 2 scaled std |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(per_seed):
        u = r.get("uncertainty")
        if u is None:
            continue
        ni = u["noise_injection_mm"]
        lines.append(f"| {r.get('seed', f'#{i}')} | {u['spearman']:.3f} | {u['within_1std']:.3f} | {u['within_2std']:.3f} | "
                     f"{ni['left_arm_std_clean']:.0f} -> {ni['left_arm_std_noisy']:.0f} | "
                     f"{ni['other_joints_std_clean']:.0f} -> {ni['other_joints_std_noisy']:.0f} | "
                     + (f"{u['spread_scale']:.2f}: {u['scaled_within_1std']:.3f} / {u['scaled_within_2std']:.3f} |"
                        if "spread_scale" in u else "- |"))
    return "\n".join(lines)


def plot_reliability(per_seed: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    top = 0.0
    for i, seed_result in enumerate(per_seed):
        u = seed_result.get("uncertainty")
        if u is None:
            continue
        ax.plot(u["curve_std_mm"], u["curve_rms_error_mm"], "o-", alpha=0.8,
                label=f"seed {seed_result.get('seed', i)}")
        top = max(top, max(u["curve_std_mm"]), max(u["curve_rms_error_mm"]))
    ax.plot([0, top], [0, top], "k--", lw=1, label="calibrated")
    ax.set_xlabel("predicted per-joint spread (mm)")
    ax.set_ylabel("RMS per-joint error (mm)")
    ax.set_title("Reliability of the N-hypothesis spread")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=None, help="subset of the training variants")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for every number")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the reliability curve")
    parser.add_argument("--h36m-3d", default=None)
    parser.add_argument("--h36m-2d", default=None)
    parser.add_argument("--downsample", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--ambiguous", action="store_true",
                        help="synthetic 2D with swaps, occlusions and double detections, as heatmaps "
                             "(SyntheticConfig.ambiguous)")
    parser.add_argument("--heatmaps", action="store_true",
                        help="synthetic 2D at the default failure rates, with heatmaps (the control of --ambiguous)")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the N / steps / uncertainty sweeps")
    parser.add_argument("--model-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="LifterConfig overrides for every variant of the size (JSON values), e.g. gmm_samples=256")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="combine the JSON files of runs made with different --seeds (e.g. in parallel) into "
                             "one table; nothing is trained")
    args = parser.parse_args(argv)
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        per_seed = merge_per_seed(runs)
        summary = summarise(per_seed)
        table = markdown(summary)
        print(table)
        print(best_markdown(summary))
        print(uncertainty_markdown(per_seed))
        if args.out:
            args.out.write_text(json.dumps({**runs[0], "seeds": [r["seed"] for r in per_seed],
                                            "summary": summary, "per_seed": per_seed, "markdown": table,
                                            "seconds": sum(run["seconds"] for run in runs)}, indent=1))
        if args.plot:
            plot_reliability(per_seed, args.plot)
        return 0
    size = SIZES[args.size]
    if args.model_set:
        extra = {}
        for item in args.model_set:
            key, _, value = item.partition("=")
            extra[key] = json.loads(value)
        size = {**size, "model": {**size["model"], **extra}}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train, test = load_data(args, size)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    started = time.time()
    per_seed = [run_seed(args, size, train, test, seed, log) for seed in args.seeds]
    summary = summarise(per_seed)
    table = markdown(summary)
    print(table)
    print(best_markdown(summary))
    print(uncertainty_markdown(per_seed))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "size": args.size, "seeds": args.seeds, "data": "h36m" if args.h36m_3d else "synthetic",
            "machine": f"{platform.machine()} {platform.processor()} threads={torch.get_num_threads()}",
            "torch": torch.__version__, "seconds": time.time() - started, "summary": summary,
            "per_seed": per_seed, "markdown": table}, indent=1))
    if args.plot:
        plot_reliability(per_seed, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
