"""The ``train`` command: fit a model on BVH motion capture, synthetic data, Human3.6M or 3DHP files."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ._common import CliError, _device, _device_label, _need, _protocols


def _cmd_train(args: argparse.Namespace) -> int:
    device = _device(args.device)
    config = None
    if args.config:
        from ..config import LifterConfig

        if not os.path.isfile(args.config):
            raise CliError(f"--config: no such file: {args.config!r}")
        try:
            config = LifterConfig.load(args.config)
        except Exception as exc:  # JSON/YAML syntax, unknown keys, invalid values: all the user's to fix
            raise CliError(f"--config {args.config!r}: {exc}") from None
    if args.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise CliError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    common = dict(context_steps=args.context_steps, diffusion_steps=args.diffusion_steps,
                  progress=not args.no_progress, seed=args.seed, tensorboard=args.tensorboard, device=device)
    print(f"training on {_device_label(device)}", flush=True)
    start = time.perf_counter()
    if args.bvh and args.data not in (None, "bvh"):
        raise CliError(f"--bvh trains on motion capture; it cannot be combined with --data {args.data}")
    data = "bvh" if args.bvh else args.data
    if data is None:
        raise CliError("train: give --bvh FILE... or --data synthetic|h36m|3dhp")
    if data == "bvh" and not args.bvh:
        raise CliError("--data bvh needs --bvh FILE...")
    try:
        if data == "bvh":
            seqs, dataset = _bvh_sequences(args)
            history = _fit_and_save()(seqs, args.out, config, dataset=dataset, **common)
        elif data == "synthetic":
            from ..data.synthetic import generate_sequences

            fit_and_save = _fit_and_save()
            seqs = generate_sequences(args.train_sequences, args.frames, seed=args.data_seed)
            dataset = {"name": "synthetic", "sequences": args.train_sequences, "frames": args.frames,
                       "data_seed": args.data_seed}
            history = fit_and_save(seqs, args.out, config, dataset=dataset, **common)
        elif data == "h36m":
            _need(args, "h36m", "data_3d", "data_2d")
            history = _protocols("train_h36m")(args.data_3d, args.data_2d, args.out, config,
                                               downsample=args.downsample, **common)
        else:
            _need(args, "3dhp", "train_npz")
            history = _protocols("train_3dhp")(args.train_npz, args.out, config, downsample=args.downsample,
                                               **common)
    except (ValueError, TypeError, FileNotFoundError, KeyError, ImportError) as exc:
        raise CliError(str(exc)) from None
    last = {k: history[k][-1] for k in ("context", "diffusion") if history.get(k)}
    print(f"trained in {time.perf_counter() - start:.1f} s; final losses {last}; model folder: "
          f"{Path(args.out).resolve()}", flush=True)
    return 0


def _bvh_sequences(args: argparse.Namespace):
    """PoseSequences from the --bvh files (data.bvh, data.mocap) and the dataset description for history.json."""
    from ..data.bvh import BVHError, load_bvh
    from ..data.mocap import MocapViewConfig, mocap_sequences

    takes = []
    for path in args.bvh:
        if not os.path.isfile(path):
            raise CliError(f"--bvh: no such file: {path!r}")
        try:
            takes.append(load_bvh(path, fps=args.bvh_fps, units=args.bvh_units, up_axis=args.bvh_up))
        except (BVHError, OSError) as exc:
            raise CliError(f"--bvh: {exc}") from None
    if args.cameras == "h36m" and args.views > 4:
        raise CliError(f"--views: Human3.6M has 4 cameras, got {args.views}")
    seqs = mocap_sequences(takes, seed=args.data_seed, config=MocapViewConfig(cameras=args.cameras, views=args.views))
    print(f"{len(takes)} BVH take(s), {sum(t.num_frames for t in takes)} frames at {args.bvh_fps:g} fps -> "
          f"{len(seqs)} clips seen by {args.cameras} cameras", flush=True)
    dataset = {"name": "bvh", "files": [os.path.abspath(p) for p in args.bvh], "fps": args.bvh_fps,
               "cameras": args.cameras, "views": args.views, "data_seed": args.data_seed}
    return seqs, dataset


def _fit_and_save():
    try:
        from ..protocols.fit_and_save import fit_and_save
    except ImportError as exc:
        raise CliError(f"diffpose_fast.protocols.fit_and_save is not available in this installation: {exc}") from None
    return fit_and_save
