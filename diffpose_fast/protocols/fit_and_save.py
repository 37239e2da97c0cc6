"""The training entry points' shared plumbing (``fit_and_save``): config, TensorBoard logging, history file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["resolve_config", "fit_and_save", "downsample_sequence", "HISTORY_FILE"]

HISTORY_FILE = "history.json"


def resolve_config(config):
    """``config`` as a LifterConfig: None (the defaults), a LifterConfig, a dict of overrides of the defaults, or
    the path of a JSON / YAML file written by ``LifterConfig.save``."""
    from ..config import LifterConfig

    if config is None:
        return LifterConfig()
    if isinstance(config, LifterConfig):
        return config
    if isinstance(config, dict):
        return LifterConfig().replace(**config)
    if isinstance(config, (str, os.PathLike)):
        return LifterConfig.load(config)
    raise TypeError(f"config must be None, a LifterConfig, a dict of overrides or a JSON/YAML path, "
                    f"got {type(config).__name__}")


def _tensorboard_writer(logdir):
    if logdir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # checked before training starts, not after hours of it
        raise ImportError(f"tensorboard={str(logdir)!r} needs the tensorboard package (pip install tensorboard)"
                          ) from exc
    return SummaryWriter(log_dir=os.fspath(logdir))


def downsample_sequence(seq, factor: int):
    """Every ``factor``-th frame of a PoseSequence (VideoPose3D ``--downsample``)."""
    from ..data.sequence import PoseSequence

    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"downsample must be an int >= 1, got {factor!r}")
    if factor == 1:
        return seq
    cut = lambda a: None if a is None else a[::factor]  # noqa: E731
    return PoseSequence(cut(seq.keypoints_2d), cut(seq.poses_3d), seq.image_size, cut(seq.confidence),
                        cut(seq.heatmaps), cut(seq.heatmap_boxes), seq.camera, seq.subject, seq.action, cut(seq.valid))


def fit_and_save(sequences: Sequence, out, config, *, context_steps: Optional[int], diffusion_steps: Optional[int],
                 progress: bool, seed: int, tensorboard, device, dataset: dict[str, Any]) -> dict[str, Any]:
    """Train a DiffPoseLifter on ``sequences``, save it to folder ``out`` with ``history.json`` next to the
    weights, log the per-step losses to TensorBoard if asked, and return the history."""
    from ..lifter import DiffPoseLifter

    cfg = resolve_config(config)
    writer = _tensorboard_writer(tensorboard)
    lifter = DiffPoseLifter(mode=cfg.mode, device=device, seed=seed, config=cfg)
    history = lifter.fit(sequences, context_steps=context_steps, diffusion_steps=diffusion_steps,
                         progress=progress)
    lifter.save(out)
    frames = int(sum(s.num_frames for s in sequences))
    history = dict(history)
    history.update({"checkpoint": os.fspath(out), "sequences": len(sequences), "frames": frames,
                    "seed": seed, "dataset": dataset})
    record = {k: v for k, v in history.items() if k != "val"}
    record["context"] = [float(x) for x in history["context"]]
    record["diffusion"] = [float(x) for x in history["diffusion"]]
    (Path(out) / HISTORY_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if writer is not None:
        for stage in ("context", "diffusion"):
            for step, loss in enumerate(history[stage]):
                writer.add_scalar(f"loss/{stage}", float(loss), step)
        writer.close()
    return history
