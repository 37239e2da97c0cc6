"""Does a two-peaked 2D heatmap reach the hypotheses? (the heatmap issue's first goal)

    python benchmarks/heatmap_ambiguity.py --seeds 0 1 2 --out benchmarks/out/heatmap_ambiguity.json

A small model is trained briefly on synthetic motion with heatmaps (``SyntheticConfig(heatmap_size=(64, 64))``,
so stage 2 sees heatmap-built H_K), then held-out frames are lifted twice with the same draws: with one-peaked
maps (a Gaussian at each detected keypoint, sigma = the detector noise), and with the left wrist's map given a
second peak 120 px away (weight 0.5: "left or right?"). Both use the same boxes (grown to hold the second
peak), the same keypoints and confidences, so only the wrist's map differs. Reported per seed: the mean raw
spread (``LiftResult.std``, mm) of the left wrist and of the other non-root joints, one- and two-peaked, their
ratios, and the same for the calibrated spread. Goal: wrist ratio >= 1.5, others within 20 %.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

LEFT_WRIST = 13
SECOND_PEAK_PX = 120.0
MODEL = dict(embed_dim=64, context_dim=64, denoiser_heads=4, encoder_layers=2, gmm_samples=64)


def run(seed: int, context_steps: int, diffusion_steps: int, train_sequences: int, frames: int) -> dict:
    from diffpose_fast import DiffPoseLifter, PoseSequence
    from diffpose_fast.data.heatmaps import auto_boxes, render_heatmaps
    from diffpose_fast.data.synthetic import SyntheticConfig, generate_sequences

    cfg = SyntheticConfig(heatmap_size=(64, 64))
    train = generate_sequences(train_sequences, frames, seed=100 + seed, config=cfg)
    test = generate_sequences(4, 60, seed=200 + seed)          # keypoints only: the maps are drawn below
    lifter = DiffPoseLifter(seed=seed, **MODEL)
    t0 = time.time()
    lifter.fit(train, context_steps=context_steps, diffusion_steps=diffusion_steps, progress=False)
    train_s = time.time() - t0
    stats = {k: [] for k in ("wrist_one", "wrist_two", "others_one", "others_two",
                             "cal_wrist_one", "cal_wrist_two", "cal_others_one", "cal_others_two")}
    others = [j for j in range(1, 17) if j != LEFT_WRIST]
    for seq in test:
        kp = np.nan_to_num(np.asarray(seq.keypoints_2d, np.float64), nan=0.0)
        alt = kp.copy()
        direction = np.where(kp[:, LEFT_WRIST, 0:1] < seq.image_size[0] / 2, 1.0, -1.0)   # stay inside the image
        alt[:, LEFT_WRIST, 0] += direction[:, 0] * SECOND_PEAK_PX
        boxes = auto_boxes(np.concatenate([kp, alt[:, LEFT_WRIST:LEFT_WRIST + 1]], axis=1), size=(64, 64))
        sigma = np.full(kp.shape[:2], 6.0)
        one, _ = render_heatmaps(kp, sigma, boxes, size=(64, 64))
        weight = np.zeros(kp.shape[:2])
        weight[:, LEFT_WRIST] = 0.5
        two, _ = render_heatmaps(kp, sigma, boxes, size=(64, 64), second_mode=(weight, alt))
        results = {}
        for tag, maps in (("one", one), ("two", two)):
            s = PoseSequence(seq.keypoints_2d, image_size=seq.image_size, confidence=seq.confidence, heatmaps=maps,
                             heatmap_boxes=boxes)
            results[tag] = lifter.predict(s, sampler="ddim", num_samples=10, steps=5)
        for tag, res in results.items():
            std = np.asarray(res.std, np.float64)
            stats[f"wrist_{tag}"].append(std[:, LEFT_WRIST].mean())
            stats[f"others_{tag}"].append(std[:, others].mean())
            if res.calibrated_std is not None:
                cal = np.asarray(res.calibrated_std, np.float64)
                stats[f"cal_wrist_{tag}"].append(cal[:, LEFT_WRIST].mean())
                stats[f"cal_others_{tag}"].append(cal[:, others].mean())
    out = {"seed": seed, "train_s": train_s, **{f"{k}_mm": float(np.mean(v) * 1000) for k, v in stats.items() if v}}
    out["wrist_ratio"] = out["wrist_two_mm"] / out["wrist_one_mm"]
    out["others_ratio"] = out["others_two_mm"] / out["others_one_mm"]
    if "cal_wrist_one_mm" in out:
        out["cal_wrist_ratio"] = out["cal_wrist_two_mm"] / out["cal_wrist_one_mm"]
        out["cal_others_ratio"] = out["cal_others_two_mm"] / out["cal_others_one_mm"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--context-steps", type=int, default=300)
    ap.add_argument("--diffusion-steps", type=int, default=600)
    ap.add_argument("--train-sequences", type=int, default=30)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--out", default="benchmarks/out/heatmap_ambiguity.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    runs = [run(s, args.context_steps, args.diffusion_steps, args.train_sequences, args.frames) for s in args.seeds]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "runs": runs}, indent=1))
    print("| seed | left wrist std one -> two peaks (mm) | ratio | other joints (mm) | ratio | calibrated: wrist / "
          "others ratio | train s |\n|---|---|---|---|---|---|---|")
    for r in runs:
        cal = (f"{r['cal_wrist_ratio']:.2f} / {r['cal_others_ratio']:.2f}" if "cal_wrist_ratio" in r else "-")
        print(f"| {r['seed']} | {r['wrist_one_mm']:.1f} -> {r['wrist_two_mm']:.1f} | {r['wrist_ratio']:.2f} | "
              f"{r['others_one_mm']:.1f} -> {r['others_two_mm']:.1f} | {r['others_ratio']:.2f} | {cal} | "
              f"{r['train_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
