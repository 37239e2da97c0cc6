"""The ``evaluate`` command: the paper's protocols (Human3.6M, 3DHP, synthetic) on a saved model."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ._common import CliError, _device, _load_lifter, _need, _protocols


def _cmd_evaluate(args: argparse.Namespace) -> int:
    device = _device(args.device)
    steps = args.steps if args.sampler == "ddim" else None
    sampling = dict(sampler=args.sampler, num_samples=args.num_samples, steps=steps)
    if args.flip_tta is not None:   # otherwise each protocol's own default (3dhp: on)
        sampling["flip_tta"] = args.flip_tta
    format_report = _protocols("format_report")
    try:
        if args.data == "synthetic":
            from ..data.synthetic import generate_sequences

            lifter = _load_lifter(args.checkpoint, device)
            seqs = generate_sequences(args.sequences, args.frames, seed=args.data_seed)
            report = _protocols("evaluate_sequences")(lifter, seqs, per="sequence", progress=True, **sampling)
            report["protocol"] = "synthetic"
            report["dataset"] = {"name": "synthetic", "sequences": args.sequences, "frames": args.frames,
                                 "data_seed": args.data_seed, "checkpoint": args.checkpoint}
        elif args.data == "h36m":
            _need(args, "h36m", "data_3d", "data_2d")
            if not os.path.isdir(args.checkpoint):
                raise CliError(f"--checkpoint: no such model folder: {args.checkpoint!r}")
            report = _protocols("evaluate_h36m")(args.checkpoint, args.data_3d, args.data_2d,
                                                 downsample=args.downsample, device=device, **sampling)
        else:
            _need(args, "3dhp", "test_npz")
            if not os.path.isdir(args.checkpoint):
                raise CliError(f"--checkpoint: no such model folder: {args.checkpoint!r}")
            report = _protocols("evaluate_3dhp")(args.checkpoint, args.test_npz, device=device, **sampling)
    except CliError:
        raise
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        raise CliError(str(exc)) from None
    print(format_report(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"report written to {args.json}", flush=True)
    if args.plot_calibration:
        if "uncertainty" not in report:
            raise CliError("--plot-calibration: the model gave no spread to plot (use a diffusion sampler with "
                           "--num-samples >= 2, or a calibrated model)")
        from ..viz.calibration import save_calibration_plot

        try:
            save_calibration_plot(args.plot_calibration, report["uncertainty"],
                                  title=f"{args.checkpoint}: {args.data}")
        except (OSError, ValueError) as exc:
            raise CliError(f"--plot-calibration: cannot write {args.plot_calibration!r} ({exc})") from None
        print(f"reliability diagram written to {args.plot_calibration}", flush=True)
    return 0
