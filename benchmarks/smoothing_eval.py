"""Smooth hypotheses on real captured motion: MPJPE and MPJVE of DDIM at several smoothing time constants.

    python benchmarks/smoothing_eval.py --models benchmarks/out/models --rotations 0 1 2 --smoothing 0 2 4 8 16

Loads the frame lifters ``real_motion.py --save-models`` wrote (``<variant>-r<R>-s<S>``) and lifts each test
take's 5 s clips once with DDIM 5, N = 5, unsmoothed, and once with the encoder alone; then applies
``inference.smoothing.smooth_hypotheses`` (zero phase) to the hypotheses' offsets from the encoder's pose at each
time constant, which is what ``predict(seq, smoothing=tau)`` does (it smooths before the +-2 m bound, this after:
the same wherever a trained model stays inside it). Reports MPJPE, P-MPJPE (mm) and MPJVE (mm per frame) over the
test take, root-relative, and the mean per-joint spread of the hypotheses (mm).
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
    ap.add_argument("--smoothing", type=float, nargs="+", default=[0, 2, 4, 8, 16])
    args = ap.parse_args(argv)
    import torch

    from diffpose_fast import metrics
    from diffpose_fast.inference.smoothing import smooth_hypotheses

    torch.set_num_threads(1)
    print("| test take | answer | MPJPE | P-MPJPE | MPJVE (mm/frame) | spread (mm) |\n|---|---|---|---|---|---|")
    for r, lifter, folder in saved_lifters(args):
        if lifter is None:
            print(f"| {TAKES[r]} | no model at {folder} | | | | |")
            continue
        _, test, _ = load_split(r)
        lifted = []
        for seq in test:
            raw = lifter.predict(seq, sampler="ddim", num_samples=5, steps=5, smoothing=0)
            context = lifter.predict(seq, sampler="context").poses_3d
            lifted.append((seq, np.asarray(raw.samples), np.asarray(context)))
        rows = [("context", None)] + [(f"DDIM, smoothing {tau:g}", tau) for tau in args.smoothing]
        for name, tau in rows:
            err, perr, vel, spread = [], [], [], []
            for seq, samples, context in lifted:
                if tau is None:
                    pose = context
                else:
                    if tau > 0:
                        samples, _ = smooth_hypotheses(samples, context, tau, causal=False)
                    pose = samples.mean(0)
                    spread.append(np.sqrt(((samples - pose) ** 2).sum(-1).mean(0)).mean())
                gt = seq.root_relative_poses()
                err.append(metrics.mpjpe(pose, gt, reduce="none"))
                perr.append(metrics.p_mpjpe(pose, gt, reduce="none"))
                vel.append(metrics.mpjve(pose, gt, reduce="none"))
            mm = metrics.MM_PER_M
            err, perr, vel = (np.concatenate(v) * mm for v in (err, perr, vel))
            spread_mm = f"{np.mean(spread) * mm:.1f}" if spread else "-"
            print(f"| {TAKES[r]} | {name} | {err.mean():.1f} | {perr.mean():.1f} | {vel.mean():.2f} | {spread_mm} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
