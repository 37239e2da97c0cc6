"""MPI-INF-3DHP: the paper's Table 2 (PCK@150mm, AUC, MPJPE) and training on the 8-camera training set.

Protocol (P-STMO's and DiffPose's evaluation): test sequences TS1..TS6 of the P-STMO ``data_test_3dhp.npz``, **valid frames
only**, poses root-relative (pelvis subtracted from prediction and ground truth), ``univ_annot3`` ground truth.
PCK = % of joints with error strictly below 150 mm; AUC = mean PCK over the 31 thresholds 0, 5, ..., 150 mm.
Both are given for the official 14-joint grouping (``mpii_get_pck_auc_joint_groups.m``: no pelvis, spine or
head centre) and for all 17 joints (MMPose's Python evaluator; the pelvis then always counts as correct for
thresholds above 0). MPJPE is over all 17 joints. Every value is per test sequence and "overall": the overall
value is **frame-weighted across sequences** (= pooled over all valid frames), as P-STMO reports it; the
unweighted mean of the six sequences is given too, labelled. Flip TTA is on by default (P-STMO, D3DP test with it).
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from .. import metrics as M
from ..data import mpi3dhp as D
from .core import AVERAGE_LABELS, load_lifter, predict_with_flip, _default_generator
from .fit_and_save import downsample_sequence, fit_and_save

__all__ = ["PCK_THRESHOLD_M", "TABLE2_METRICS", "evaluate_3dhp", "train_3dhp"]

PCK_THRESHOLD_M = 0.150
# (key, label) of the per-sequence columns, in display order.
TABLE2_METRICS: tuple[tuple[str, str], ...] = (
    ("pck_14", "PCK (14 joints)"), ("auc_14", "AUC (14 joints)"), ("pck_all", "PCK (all 17)"),
    ("auc_all", "AUC (all 17)"), ("mpjpe", "MPJPE (mm)"),
)


def _per_frame(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "pck_14": M.pck(pred, gt, PCK_THRESHOLD_M, joints="mpii14", joint_order="h36m", reduce="none"),
        "auc_14": M.auc(pred, gt, joints="mpii14", joint_order="h36m", max_threshold=PCK_THRESHOLD_M,
                        num_thresholds=31, reduce="none"),
        "pck_all": M.pck(pred, gt, PCK_THRESHOLD_M, joints="all", reduce="none"),
        "auc_all": M.auc(pred, gt, joints="all", max_threshold=PCK_THRESHOLD_M, num_thresholds=31, reduce="none"),
        "mpjpe": M.mpjpe(pred, gt, reduce="none") * M.MM_PER_M,
    }


def evaluate_3dhp(checkpoint, test_npz, *, sampler: str = "ddim", num_samples: int = 5, steps: Optional[int] = 5,
                  flip_tta: bool = True, device="cpu", generator=None) -> dict[str, Any]:
    """Evaluate a model on the MPI-INF-3DHP test set in Table 2's terms.

    Args:
        checkpoint: a model folder (``DiffPoseLifter.save``) or a loaded lifter.
        test_npz: P-STMO's ``data_test_3dhp.npz`` (read with ``data.mpi3dhp.load_test``, H36M joint order).
        sampler, num_samples, steps: the reverse process. flip_tta: flip test-time augmentation.
        device: where a checkpoint folder is loaded. generator: torch.Generator (None: seeded by the model).

    Returns:
        {"protocol": "3dhp", "units": {...}, "settings": {...}, "metrics": [keys of TABLE2_METRICS],
         "sequences": ["TS1", ...], "frames": {seq: valid frames},
         "per_sequence": {metric: {seq: value}},
         "overall": {metric: frame-weighted over sequences}, "sequence_mean": {metric: unweighted mean},
         "average_labels": {"overall": ..., "sequence_mean": ...}, "total_frames", "dataset", "notes"}.
        PCK and AUC in percent, MPJPE in mm.
    """
    lifter = load_lifter(checkpoint, device)
    sequences = D.load_test(test_npz)
    gen = _default_generator(lifter, generator)
    keys = [k for k, _ in TABLE2_METRICS]
    per_frame: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    per_sequence: dict[str, dict[str, float]] = {k: {} for k in keys}
    frames: dict[str, int] = {}
    hypotheses = 0
    for seq in sequences:
        name = seq.action
        keep = np.asarray(seq.valid, bool) if seq.valid is not None else np.ones(seq.num_frames, bool)
        frames[name] = int(keep.sum())
        if not keep.any():
            continue
        res = predict_with_flip(lifter, seq, sampler=sampler, num_samples=num_samples, steps=steps,
                                flip_tta=flip_tta, generator=gen)
        hypotheses = int(res.samples.shape[0])
        values = _per_frame(M.root_relative(res.poses_3d)[keep], M.root_relative(seq.poses_3d)[keep])
        for k in keys:
            per_frame[k].append(values[k])
            per_sequence[k][name] = float(values[k].mean())
    evaluated = [s.action for s in sequences if frames[s.action] > 0]
    if not evaluated:
        raise ValueError(f"evaluate_3dhp: {os.fspath(test_npz)!r} has no valid frame")
    overall = {k: float(np.concatenate(per_frame[k]).mean()) for k in keys}
    sequence_mean = {k: float(np.mean([per_sequence[k][s] for s in evaluated])) for k in keys}
    notes = ["valid frames only; poses root-relative (pelvis); PCK threshold 150 mm (strict <); AUC over 31 "
             "thresholds 0:5:150 mm",
             "14 joints = the official MATLAB grouping (without pelvis, spine, head centre); all 17 = MMPose's "
             "Python evaluator"]
    skipped = [s.action for s in sequences if frames[s.action] == 0]
    if skipped:
        notes.append(f"sequences without valid frames: {skipped}")
    return {
        "protocol": "3dhp",
        "units": {"pck": "percent", "auc": "percent", "mpjpe": "mm"},
        "settings": {"sampler": sampler, "num_samples": 1 if sampler == "context" else int(num_samples),
                     "steps": None if sampler in ("ddpm", "context") else steps, "flip_tta": bool(flip_tta),
                     "num_hypotheses": hypotheses},
        "metrics": keys, "metric_labels": dict(TABLE2_METRICS), "sequences": evaluated, "frames": frames,
        "total_frames": int(sum(frames.values())), "per_sequence": per_sequence, "overall": overall,
        "sequence_mean": sequence_mean,
        "average_labels": {"overall": f"overall ({AVERAGE_LABELS['frame_wise']}: frame-weighted across sequences, "
                                      "as P-STMO)",
                           "sequence_mean": "mean of sequences (unweighted)"},
        "dataset": {"test_npz": os.fspath(test_npz),
                    "checkpoint": os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None},
        "notes": notes,
    }


def train_3dhp(train_npz, out, config=None, *, downsample: int = 1, context_steps: Optional[int] = None,
               diffusion_steps: Optional[int] = None, progress: bool = True, seed: int = 0, tensorboard=None,
               device="cpu") -> dict[str, Any]:
    """Train on every sequence and camera of P-STMO's ``data_train_3dhp.npz`` (ground-truth 2D, as the paper
    does for 3DHP) and save to ``out``. Arguments and return value as ``train_h36m``."""
    sequences = [downsample_sequence(s, downsample) for s in D.load_train(train_npz)]
    if not sequences:
        raise ValueError(f"train_3dhp: {os.fspath(train_npz)!r} holds no sequence")
    dataset = {"name": "3dhp", "train_npz": os.fspath(train_npz), "downsample": int(downsample)}
    return fit_and_save(sequences, out, config, context_steps=context_steps, diffusion_steps=diffusion_steps,
                        progress=progress, seed=seed, tensorboard=tensorboard, device=device, dataset=dataset)
