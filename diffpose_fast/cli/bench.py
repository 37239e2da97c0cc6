"""The ``bench`` command: frames per second of ``predict``."""
from __future__ import annotations

import argparse
import time

from ._common import _device, _device_label, _load_lifter


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ..data.synthetic import generate_sequences
    from ..lifter import DiffPoseLifter

    device = _device(args.device)
    lifter = (_load_lifter(args.checkpoint, device) if args.checkpoint
              else DiffPoseLifter(mode=args.mode, device=device, seed=0))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    seq = generate_sequences(1, args.frames, seed=7)[0]
    seq_2d = dict(image_size=seq.image_size, confidence=seq.confidence)
    cfg = lifter.config
    steps = args.steps if args.sampler == "ddim" else None
    print(f"bench on {_device_label(device)}", flush=True)
    print(f"model: {'checkpoint ' + args.checkpoint if args.checkpoint else 'untrained, default config'}, "
          f"{cfg.mode}{f' (window {cfg.frames} frames)' if cfg.mode == 'video' else ''} "
          f"(embed {cfg.embed_dim}, context {cfg.context_dim}, {cfg.denoiser_blocks} blocks, "
          f"gmm {cfg.gmm_scope} M={cfg.gmm_components}); sampler {args.sampler}, N={args.num_samples}, "
          f"steps {steps}; {args.frames} frames per call, batch {args.batch_size}; "
          f"median of {args.repeats} calls after 1 warm-up", flush=True)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for backend in backends:
        try:
            call = lambda: lifter.predict(seq.keypoints_2d, **seq_2d, sampler=args.sampler,  # noqa: E731
                                          num_samples=args.num_samples, steps=steps, backend=backend,
                                          batch_size=args.batch_size)
            call()
            times = []
            for _ in range(args.repeats):
                sync()
                t0 = time.perf_counter()
                call()
                sync()
                times.append(time.perf_counter() - t0)
        except (ValueError, NotImplementedError) as exc:
            print(f"  backend {backend:<10} cannot run: {exc}", flush=True)
            continue
        med = sorted(times)[len(times) // 2]
        print(f"  backend {backend:<10} {args.frames / med:10.1f} frames/s  ({med * 1000:.1f} ms per call)", flush=True)
    return 0
