"""The root trajectory on real captured motion: how far ``LiftResult.trajectory`` puts the pelvis from the truth.

    python benchmarks/trajectory_eval.py --models benchmarks/out/models --rotations 0 1

Loads the lifters ``real_motion.py --save-models`` wrote (``<variant>-r<R>-s<S>``), lifts each test take with its
real Human3.6M camera (DDIM 5, N = 5) and reports, over the frames: the root's depth error (mean and median
absolute, mm, and relative to the true depth), its error across the image (x, y), and the reprojection error of
pose + trajectory onto the noisy input keypoints as a share of the 2D pose size (bounding-box diagonal).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from real_motion import TAKES, add_saved_model_arguments, load_split, saved_lifters  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_saved_model_arguments(ap)
    args = ap.parse_args(argv)
    import torch

    from diffpose_fast.trajectory import reprojection_error_px

    torch.set_num_threads(1)
    print("| test take | frames | root depth error, mean / median (mm) | relative to depth | across (x, y) RMS (mm) | "
          "reprojection / 2D pose size, median (p90) |\n|---|---|---|---|---|---|")
    for r, lifter, folder in saved_lifters(args):
        if lifter is None:
            print(f"| {TAKES[r]} | no model at {folder} | | | | |")
            continue
        _, test, _ = load_split(r)
        dz, rel, across, reproj = [], [], [], []
        for seq in test:
            res = lifter.predict(seq, sampler="ddim", num_samples=5, steps=5)
            root = np.asarray(seq.poses_3d, np.float64)[:, 0]
            traj = np.asarray(res.trajectory, np.float64)
            ok = np.isfinite(traj).all(-1)
            dz.append(np.abs(traj[ok, 2] - root[ok, 2]))
            rel.append(np.abs(traj[ok, 2] - root[ok, 2]) / root[ok, 2])
            across.append(np.linalg.norm(traj[ok, :2] - root[ok, :2], axis=-1))
            err = reprojection_error_px(res.poses_3d, traj, seq.keypoints_2d, seq.camera, seq.confidence)
            kp = np.asarray(seq.keypoints_2d, np.float64)
            size = np.linalg.norm(np.nanmax(kp, 1) - np.nanmin(kp, 1), axis=-1)
            reproj.append((err / size)[ok])
        dz, rel, across, reproj = (np.concatenate(v) for v in (dz, rel, across, reproj))
        print(f"| {TAKES[r]} | {dz.size} | {dz.mean() * 1000:.0f} / {np.median(dz) * 1000:.0f} | "
              f"{np.mean(rel) * 100:.1f} % | {np.sqrt(np.mean(across ** 2)) * 1000:.0f} | "
              f"{np.nanmedian(reproj) * 100:.1f} % ({np.nanquantile(reproj, 0.9) * 100:.1f} %) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
