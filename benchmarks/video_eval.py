"""Frame vs video DiffPose on a held-out synthetic split (MPJPE, MPJVE), and the causal mode's per-frame latency.

    python benchmarks/video_eval.py --steps 800 --train 16 --frames 27 --width 32          # accuracy table
    python benchmarks/video_eval.py ... --smoothing 0 2 4 8     # DDIM at these smoothing time constants (frames)
    python benchmarks/video_eval.py --latency --frames 27 --width 32                        # causal latency only

Every model gets the same data, widths, seed and optimiser steps (stage 2 gets half of them). The held-out split is
other synthetic subjects, cameras and motions (seed 100). Sizes are tiny (CPU): the numbers compare the variants,
they are not Human3.6M results.

Latency: the live setting of ``DiffPoseLifter(mode="video", causal=True)``: for every new frame the window of F
frames ending at it is encoded (flip TTA on or off) and that one frame is sampled (N = 5 hypotheses, DDIM 2 steps,
or the encoder alone); the time per new frame is the median over 40 frames (untrained weights: the cost does not
depend on them).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from diffpose_fast import DiffPoseLifter, PoseSequence
from diffpose_fast.data.synthetic import generate_sequences


def tiny(width: int, frames: int) -> dict:
    return dict(embed_dim=width, context_dim=width, denoiser_heads=2, denoiser_blocks=1, encoder_layers=2,
                encoder_heads=2, gmm_samples=16, gmm_max_iter=10, num_diffusion_steps=10, sampling_steps=2,
                batch_size=2 * frames)


def accuracy(args) -> None:
    train = generate_sequences(args.train, 200, seed=0)
    test = generate_sequences(4, 200, seed=100)
    speed = np.mean([np.linalg.norm(np.diff(s.root_relative_poses(), axis=0), axis=-1).mean() for s in test])
    print(f"held-out: 4 x 200 frames; mean |GT joint velocity| {speed * 1000:.2f} mm/frame (a frozen pose's MPJVE)")
    for name, kw in (("frame", dict(mode="frame")), ("video", dict(mode="video", frames=args.frames)),
                     ("video causal", dict(mode="video", frames=args.frames, causal=True))):
        start = time.perf_counter()
        lifter = DiffPoseLifter(seed=0, **kw, **tiny(args.width, args.frames))
        lifter.fit(train, context_steps=args.steps, diffusion_steps=args.steps // 2, progress=False)
        took = time.perf_counter() - start
        r = lifter.evaluate(test, sampler="context")
        print(f"{name:13s} context            MPJPE {r['mpjpe_mm']:6.1f} mm   MPJVE {r['mpjve_mm']:6.2f} mm/frame"
              f"   (training {took:.0f} s)", flush=True)
        for tau in args.smoothing:   # the hypotheses' smoothing time constant (inference.smoothing), frames
            r = lifter.evaluate(test, sampler="ddim", num_samples=5, steps=2, smoothing=tau)
            print(f"{name:13s} ddim  smoothing {tau:4g}  MPJPE {r['mpjpe_mm']:6.1f} mm   MPJVE {r['mpjve_mm']:6.2f} "
                  f"mm/frame", flush=True)


@torch.no_grad()
def latency(args) -> None:
    from diffpose_fast.models.context_frame import ContextOutput
    from diffpose_fast.data.frames import frames_from_sequences
    from diffpose_fast.models.flip_test import encode_with_flip_test

    lifter = DiffPoseLifter(mode="video", frames=args.frames, causal=True, seed=0, **tiny(args.width, args.frames))
    model, f = lifter.model, args.frames
    stream = generate_sequences(1, f + 40, seed=3)[0]
    frames = frames_from_sequences([stream], lifter.config.default_confidence, require_poses=False)
    gen = torch.Generator().manual_seed(0)
    for flip in (True, False):
        for sampler in ("context", "ddim"):
            times = []
            for t in range(f - 1, f + 39):  # frame t arrives: encode the window ending at t, sample frame t
                start = time.perf_counter()
                window = frames.inputs[t - f + 1:t + 1][None]
                ctx = encode_with_flip_test(model.encoder, window, flip)
                last = ContextOutput(*(c[0, -1:] for c in ctx))
                model.sample(frames.index(torch.tensor([t])), 5, 2, sampler, gen, context=last)
                times.append(time.perf_counter() - start)
            print(f"causal F={f} width={args.width} flip_test={flip!s:5s} {sampler:8s}: "
                  f"{np.median(times) * 1000:.1f} ms per new frame (median of 40; CPU, "
                  f"{torch.get_num_threads()} thread(s); N=5, DDIM 2 steps)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--train", type=int, default=16, help="training sequences of 200 frames")
    parser.add_argument("--frames", type=int, default=27)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--latency", action="store_true", help="only measure the causal per-frame latency")
    parser.add_argument("--smoothing", type=float, nargs="+", default=[0, 2, 4, 8],
                        help="time constants (frames) of the hypotheses' smoothing to evaluate DDIM at")
    args = parser.parse_args()
    if not args.latency:
        accuracy(args)
    latency(args)


if __name__ == "__main__":
    main()
