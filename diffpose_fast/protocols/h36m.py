"""Human3.6M: the paper's Tables 1 and 3 (per-action MPJPE, action-wise average) and training on S1,S5,S6,S7,S8.

Frame protocol (Table 3, as the official evaluation runs it): test subjects S9 and S11, every frame (``downsample=1``), all
four cameras, **no flip TTA** (the default here). The video protocol (Table 1) runs its context encoder on the
clip and on its mirror: pass ``flip_tta=True``. The paper's number is the action-wise average over the 15
actions; the frame-wise average is reported beside it.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from ..data import h36m as H
from .core import evaluate_sequences, load_lifter
from .fit_and_save import fit_and_save

__all__ = ["PAPER_ACTION_ABBREVIATIONS", "h36m_sequences", "evaluate_h36m", "train_h36m"]

# Column headers of the paper's Tables 1 and 3, in its order (= data.h36m.ACTIONS).
PAPER_ACTION_ABBREVIATIONS: dict[str, str] = dict(zip(H.ACTIONS, (
    "Dir", "Disc", "Eat", "Greet", "Phone", "Photo", "Pose", "Pur", "Sit", "SitD", "Smoke", "Wait", "WalkD", "Walk",
    "WalkT")))


def h36m_sequences(data_3d, data_2d, subjects: Sequence[str], downsample: int = 1) -> list:
    """PoseSequences (one per subject, action, camera) of ``subjects`` from the VideoPose3D files."""
    if isinstance(subjects, str):
        subjects = [subjects]
    subjects = list(subjects)
    positions_3d = H.load_positions_3d(data_3d)
    positions_2d = H.load_positions_2d(data_2d)
    missing = [s for s in subjects if s not in positions_3d or s not in positions_2d.positions]
    if missing:
        raise ValueError(f"Human3.6M: subject(s) {missing} are not in both {os.fspath(data_3d)!r} (has "
                         f"{sorted(positions_3d)}) and {os.fspath(data_2d)!r} (has {sorted(positions_2d.positions)})")
    return H.build_sequences(positions_3d, positions_2d, subjects, downsample=downsample)


def evaluate_h36m(checkpoint, data_3d, data_2d, *, sampler: str = "ddim", num_samples: int = 5,
                  steps: Optional[int] = 5, flip_tta: bool = False, downsample: int = 1,
                  subjects: Sequence[str] = H.TEST_SUBJECTS, device="cpu", generator=None,
                  progress: bool = False) -> dict[str, Any]:
    """Evaluate a model on Human3.6M: Table 1 / Table 3 numbers.

    Args:
        checkpoint: a folder written by ``DiffPoseLifter.save`` (or a loaded lifter).
        data_3d: ``data_3d_h36m.npz``. data_2d: ``data_2d_h36m_gt.npz``, ``..._cpn_ft_h36m_dbb.npz`` or a DiffPose
            GMM file.
        sampler, num_samples, steps: the reverse process (paper: DDIM, N = 5, 5 steps).
        flip_tta: False for the frame protocol (the official frame code has none), True for the video protocol.
        downsample: evaluate every n-th frame (1 = the paper's protocol; larger only for quick checks).
        subjects: S9, S11.
        device: where a checkpoint folder is loaded.
        generator: torch.Generator for the hypotheses (None: seeded with the model's seed).
        progress: progress bar over sequences.

    Returns:
        ``evaluate_sequences``'s report grouped by action, with "protocol": "h36m" and "dataset":
        {data_3d, data_2d, subjects, downsample, sequences}.
    """
    lifter = load_lifter(checkpoint, device)
    sequences = h36m_sequences(data_3d, data_2d, subjects, downsample)
    report = evaluate_sequences(lifter, sequences, sampler=sampler, num_samples=num_samples, steps=steps,
                                flip_tta=flip_tta, per="action", generator=generator, progress=progress)
    report["protocol"] = "h36m"
    report["dataset"] = {"data_3d": os.fspath(data_3d), "data_2d": os.fspath(data_2d),
                         "subjects": list(subjects) if not isinstance(subjects, str) else [subjects],
                         "downsample": int(downsample), "sequences": len(sequences)}
    report["dataset"]["checkpoint"] = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    return report


def train_h36m(data_3d, data_2d, out, config=None, *, downsample: int = 1, context_steps: Optional[int] = None,
               diffusion_steps: Optional[int] = None, progress: bool = True, seed: int = 0, tensorboard=None,
               subjects: Sequence[str] = H.TRAIN_SUBJECTS, device="cpu") -> dict[str, Any]:
    """Train on Human3.6M S1, S5, S6, S7, S8 (all cameras, every ``downsample``-th frame) and save to ``out``.

    Args:
        data_3d, data_2d: the VideoPose3D files (2D: ground truth or detections, as for evaluation; DiffPose
            trains on GT 2D even for its CPN results, as its released training script does).
        out: the model folder (``DiffPoseLifter.save``), plus ``history.json`` with the per-step losses.
        config: None (defaults), a LifterConfig, a dict of overrides, or a JSON/YAML config path.
        downsample: frame-rate subsampling of the training data.
        context_steps, diffusion_steps: optimiser steps of the two stages (None: the configured epochs).
        progress: progress bars. seed: weights and training randomness.
        tensorboard: a log folder for the per-step losses (needs the tensorboard package), or None.
        subjects: the training subjects (keep the default to follow the paper).
        device: torch device to train on.

    Returns:
        the history: {"context": [loss per step], "diffusion": [...], "val": None, "checkpoint", "sequences",
        "frames", "seed", "dataset"}.
    """
    sequences = h36m_sequences(data_3d, data_2d, subjects, downsample)
    dataset = {"name": "h36m", "data_3d": os.fspath(data_3d), "data_2d": os.fspath(data_2d),
               "subjects": list(subjects) if not isinstance(subjects, str) else [subjects],
               "downsample": int(downsample)}
    return fit_and_save(sequences, out, config, context_steps=context_steps, diffusion_steps=diffusion_steps,
                        progress=progress, seed=seed, tensorboard=tensorboard, device=device, dataset=dataset)
