"""Latency of live lifting (``lifter.stream(...).push``) per new frame, against predict over one window.

    python benchmarks/stream_latency.py --frames 27 81 243 --pushes 20 --threads 2

An untrained causal video model with the default widths (weights do not change the speed), DDIM 5 steps, N = 5,
flip test on. Per F: the median time of ``push`` once the window is full, and of ``predict`` on an F-frame
sequence (what a non-streaming caller would pay to get its newest frame: one window per frame, hop 1, for every
frame of the window), and of one causal window's encoding alone. CPU only here; on a GPU run it there.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[27, 81, 243])
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    from diffpose_fast import DiffPoseLifter
    from diffpose_fast.data.synthetic import generate_sequences

    torch.set_num_threads(args.threads)
    rows = []
    for f in args.frames:
        lifter = DiffPoseLifter(mode="video", device=args.device, seed=0, frames=f, causal=True)
        seq = generate_sequences(1, f + args.pushes, seed=1)[0]
        stream = lifter.stream(seq.image_size)
        times = []
        for t in range(seq.num_frames):
            t0 = time.perf_counter()
            stream.push(seq.keypoints_2d[t], seq.confidence[t])
            if t >= f:
                times.append(time.perf_counter() - t0)
        window = seq.slice(0, f)
        lifter.predict(window.slice(0, 2))   # warm-up
        t0 = time.perf_counter()
        lifter.predict(window)
        predict_s = time.perf_counter() - t0
        rows.append({"frames": f, "push_ms": float(np.median(times) * 1000), "push_p90_ms": float(np.quantile(times, 0.9) * 1000),
                     "predict_window_ms": predict_s * 1000, "predict_per_frame_ms": predict_s * 1000 / f})
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"device {args.device}")
    print("| F | push: median (p90) ms per new frame | predict on F frames, ms | per frame of it, ms |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['frames']} | {r['push_ms']:.1f} ({r['push_p90_ms']:.1f}) | {r['predict_window_ms']:.0f} | "
              f"{r['predict_per_frame_ms']:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": " ".join(sys.argv), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
