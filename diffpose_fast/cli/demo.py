"""The ``demo`` command: train a small model on built-in synthetic data, lift held-out sequences, draw."""
from __future__ import annotations

import argparse
import os
import time

from ._common import QUICK_ENV, _device, _device_label


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import DemoSettings, run_demo

    quick = args.quick or os.environ.get(QUICK_ENV, "") not in ("", "0")
    settings = DemoSettings.quick() if quick else DemoSettings()
    changes = {k: v for k, v in (("train_sequences", args.train_sequences), ("train_frames", args.frames),
                                 ("test_sequences", args.test_sequences), ("context_steps", args.context_steps),
                                 ("diffusion_steps", args.diffusion_steps), ("batch_size", args.batch_size),
                                 ("seed", args.seed)) if v is not None}
    if args.no_video:
        changes["video"] = False
    settings = settings.replace(**changes)
    device = _device(args.device)
    import torch

    torch.set_num_threads(args.threads)
    print(f"diffpose-fast demo{' (quick)' if quick else ''} on {_device_label(device)}", flush=True)
    start = time.perf_counter()
    run_demo(args.out, settings, device=device, progress=not args.no_progress,
             log=lambda line: print(line, flush=True))
    print(f"demo finished in {time.perf_counter() - start:.1f} s", flush=True)
    return 0
