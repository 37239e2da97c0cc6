"""Flip test-time augmentation and the per-frame evaluation of a lifter on PoseSequences.

Everything here is model-agnostic: ``lifter`` is anything with ``predict(seq, *, sampler, num_samples, steps,
generator) -> LiftResult`` (a ``DiffPoseLifter``, or a stand-in in tests).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

import numpy as np

from .. import metrics as M
from ..data.h36m import ACTIONS, action_group
from ..evaluation import HYPOTHESIS_METRICS, POSE_METRICS, ErrorAccumulator
from ..data.sequence import PoseSequence
from ..data.skeleton import flip_permutation, mirror

__all__ = ["AVERAGE_LABELS", "METRIC_LABELS", "POSE_METRICS", "HYPOTHESIS_METRICS", "GROUPINGS", "unflip_poses",
           "predict_with_flip", "evaluate_sequences", "load_lifter"]

AVERAGE_LABELS = {"action_wise": "action-wise (paper)", "frame_wise": "frame-wise"}
METRIC_LABELS = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE",
                 "p_best": "P-Best", "j_best": "J-Best", "p_agg": "P-Agg", "j_agg": "J-Agg"}
GROUPINGS = ("action", "sequence", "subject")
_MIN_ROOT_DEPTH_M = 0.1   # J-Agg projects hypotheses placed at the GT root: it needs absolute camera-frame poses


def _numpy(x, name: str) -> np.ndarray:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}") from exc


def unflip_poses(poses) -> np.ndarray:
    """Map poses [..., 17, 3] predicted from the mirrored input back to the original view:
    swap left and right joints and negate x (camera frame): ``skeleton.mirror``. Its own inverse."""
    p = _numpy(poses, "poses")
    if p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"unflip_poses: poses must have shape [..., J, 3], got {tuple(p.shape)}")
    return mirror(p)


def _default_generator(lifter, generator):
    import torch

    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return generator
    seed = getattr(lifter, "seed", 0)
    return torch.Generator().manual_seed(int(seed) if isinstance(seed, (int, np.integer)) else 0)


def predict_with_flip(lifter, seq: PoseSequence, *, sampler: str, num_samples: int, steps: Optional[int],
                      flip_tta: bool, generator=None):
    """Predict ``seq``, optionally with flip test-time augmentation (VideoPose3D / MotionBERT / MMPose style).

    With ``flip_tta`` the lifter runs on ``seq`` and on ``seq.flipped()`` (normalised x negated, left/right
    swapped); the mirrored prediction is un-flipped (``unflip_poses``) and:

    * ``poses_3d`` = the average of the two mean poses (the field's flip TTA);
    * ``samples`` = **both sets of hypotheses concatenated**, [2N, T, 17, 3]: the first N from the original
      input, the last N from the mirrored input, un-flipped. Hypothesis i of one pass and hypothesis i of the
      other are independent draws, so they are not averaged pairwise. For a lifter whose ``poses_3d`` is the
      mean of its samples (``DiffPoseLifter``), ``poses_3d`` equals ``samples.mean(0)``. Multi-hypothesis
      metrics (P-Best, J-Best, ...) then see 2N hypotheses; reports state the count.
    * ``std`` = per-joint RMS distance of the 2N samples to ``poses_3d`` (with sampler "context" it measures
      the disagreement between the two passes).
    * ``calibrated_std`` = the mean of the two passes' calibrated std (None if the lifter has no calibration):
      the calibration was fitted for one pass; the average of two passes is a little more accurate, so this
      errs on the wide side.

    Args:
        lifter: a ``DiffPoseLifter`` (or any object with the same ``predict``).
        seq: the PoseSequence to lift.
        sampler, num_samples, steps: as ``DiffPoseLifter.predict``; ``steps`` is ignored for "ddpm", which
            always runs all K steps.
        flip_tta: run the mirrored pass too.
        generator: torch.Generator for both passes, drawn from in turn (None: one seeded with ``lifter.seed``,
            so the result is deterministic and the two passes draw different noise).

    Returns:
        a ``LiftResult`` with numpy float32 arrays.
    """
    from ..lifter import LiftResult

    if not isinstance(seq, PoseSequence):
        raise TypeError(f"predict_with_flip: seq must be a PoseSequence, got {type(seq).__name__}")
    gen = _default_generator(lifter, generator)
    kwargs = dict(sampler=sampler, num_samples=num_samples, steps=None if sampler == "ddpm" else steps,
                  generator=gen)
    res = lifter.predict(seq, **kwargs)
    poses = _numpy(res.poses_3d, "poses_3d").astype(np.float32)
    samples = _numpy(res.samples, "samples").astype(np.float32)
    calibrated = getattr(res, "calibrated_std", None)
    calibrated = None if calibrated is None else _numpy(calibrated, "calibrated_std").astype(np.float32)
    if not flip_tta:
        return LiftResult(poses, samples, _numpy(res.std, "std").astype(np.float32), calibrated)
    mirrored = lifter.predict(seq.flipped(), **kwargs)
    back_poses = unflip_poses(_numpy(mirrored.poses_3d, "poses_3d")).astype(np.float32)
    back_samples = unflip_poses(_numpy(mirrored.samples, "samples")).astype(np.float32)
    if back_samples.shape[1:] != samples.shape[1:]:
        raise ValueError(f"predict_with_flip: the mirrored pass returned samples {back_samples.shape}, the original "
                         f"{samples.shape}")
    mean = 0.5 * (poses + back_poses)
    both = np.concatenate([samples, back_samples], axis=0)
    std = np.sqrt(((both - mean) ** 2).sum(-1).mean(0))
    back_cal = getattr(mirrored, "calibrated_std", None)
    if calibrated is not None and back_cal is not None:   # per joint: un-flip swaps the left/right columns
        back = _numpy(back_cal, "calibrated_std")
        calibrated = (0.5 * (calibrated + back[..., flip_permutation(back.shape[-1])])).astype(np.float32)
    else:
        calibrated = None
    return LiftResult(mean.astype(np.float32), both, std.astype(np.float32), calibrated)


def load_lifter(checkpoint, device="cpu"):
    """A lifter from ``checkpoint``: a folder written by ``DiffPoseLifter.save``, or an already loaded lifter (any
    object with ``predict``), returned as is."""
    if hasattr(checkpoint, "predict"):
        return checkpoint
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a model folder path or a DiffPoseLifter, got {type(checkpoint).__name__}")
    from ..lifter import DiffPoseLifter

    return DiffPoseLifter.load(checkpoint, device=device)


def _group_label(seq: PoseSequence, per: str, index: int) -> str:
    if per == "action":
        if seq.action is None:
            raise ValueError(f"evaluate_sequences: per='action' needs every sequence's action; sequence {index} "
                             f"({seq!r}) has none (use per='sequence')")
        try:
            return action_group(seq.action)
        except ValueError as exc:
            raise ValueError(f"evaluate_sequences: per='action' groups by the 15 Human3.6M actions; sequence {index} "
                             f"has action {seq.action!r} ({exc}); use per='sequence' for other datasets") from None
    if per == "sequence":
        return seq.action if seq.action is not None else (seq.subject if seq.subject is not None else f"seq{index}")
    if per == "subject":
        return seq.subject if seq.subject is not None else f"seq{index}"
    raise ValueError(f"evaluate_sequences: per must be one of {list(GROUPINGS)}, got {per!r}")


def _can_reproject(seq: PoseSequence) -> bool:
    """J-Agg places hypotheses at the GT root and projects them with the sequence's camera: needs a camera,
    absolute camera-frame poses (root in front of the camera) and complete 2D keypoints."""
    if seq.camera is None or seq.poses_3d is None:
        return False
    return bool((seq.poses_3d[:, 0, 2] > _MIN_ROOT_DEPTH_M).all() and np.isfinite(seq.keypoints_2d).all())


def evaluate_sequences(lifter, sequences: Sequence[PoseSequence], *, sampler: str = "ddim", num_samples: int = 5,
                       steps: Optional[int] = 5, flip_tta: bool = False, per: str = "action", generator=None,
                       progress: bool = False) -> dict[str, Any]:
    """Per-frame errors of ``lifter`` on ``sequences`` (their ``valid`` frames), in mm, grouped and averaged.

    Poses are compared root-relative (joint 0 subtracted from prediction and ground truth). Per frame:
    MPJPE (protocol #1), P-MPJPE (#2, per-frame similarity Procrustes), N-MPJPE (#3, scale only); MPJVE over
    consecutive pairs of valid frames *within* each sequence (mm per frame at the sequence's frame rate, i.e.
    after any downsampling). With more than one hypothesis per frame (num_samples > 1, not sampler "context",
    or flip TTA's 2N) also P-Best, J-Best and P-Agg (metrics.p_best/j_best/p_agg), and J-Agg when every
    sequence has a camera and absolute camera-frame poses (hypotheses placed at the GT root, as D3DP does).

    Args:
        lifter: a ``DiffPoseLifter`` or an object with its ``predict``.
        sequences: PoseSequences with poses_3d (camera frame, metres).
        sampler, num_samples, steps: passed to ``predict`` (see ``predict_with_flip``).
        flip_tta: flip test-time augmentation (``predict_with_flip``).
        per: "action" (the 15 Human3.6M action groups, ``data.h36m.action_group``; groups listed in the paper's
            order), "sequence" (each sequence's ``action`` label, e.g. 3DHP's TS1..TS6) or "subject".
        generator: torch.Generator used for all sequences in turn (None: seeded with ``lifter.seed``).
        progress: show a progress bar over sequences.

    Returns:
        a JSON-serialisable dict:
            "protocol": "sequences", "units": "mm", "grouping": per,
            "settings": {sampler, num_samples, steps, flip_tta, num_hypotheses},
            "metrics": the metric names present (keys of METRIC_LABELS), in display order,
            "groups": group names (paper order for per="action"),
            "frames": {group: evaluated frames}, "velocity_pairs": {group: frame pairs used by MPJVE},
            "total_frames": int,
            "per_group": {metric: {group: mean over the group's frames}},
            "action_wise": {metric: unweighted mean over groups}  -- the paper's number,
            "frame_wise": {metric: mean over all frames (pairs for MPJVE)},
            "average_labels": AVERAGE_LABELS,
            "uncertainty": (when the lifter gives a spread: N > 1, or a calibration) ``uncertainty.uncertainty_report``
                of the per-joint std against the per-joint error of the mean pose (metres in, the curve in mm),
                with "std": "calibrated" (``LiftResult.calibrated_std``, what a user reads) or "raw",
            "missing_actions": (per="action") the of the 15 actions with no frame, whose absence makes the
                action-wise average differ from the paper's 15-action mean,
            "notes": [str].
    """
    if isinstance(sequences, PoseSequence):
        sequences = [sequences]
    sequences = list(sequences)
    if not sequences:
        raise ValueError("evaluate_sequences: no sequences to evaluate")
    if per not in GROUPINGS:
        raise ValueError(f"evaluate_sequences: per must be one of {list(GROUPINGS)}, got {per!r}")
    for i, seq in enumerate(sequences):
        if not isinstance(seq, PoseSequence):
            raise TypeError(f"evaluate_sequences: sequences[{i}] must be a PoseSequence, got {type(seq).__name__}")
        if seq.poses_3d is None:
            raise ValueError(f"evaluate_sequences: sequences[{i}] ({seq!r}) has no poses_3d to compare with")
    labels_all = [_group_label(seq, per, i) for i, seq in enumerate(sequences)]
    gen = _default_generator(lifter, generator)

    use_jagg = all(_can_reproject(s) for s in sequences)
    acc = ErrorAccumulator(hypothesis_metrics=True, j_agg=use_jagg)
    iterator = zip(sequences, labels_all)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(sequences), desc="evaluate", unit="seq")
    for seq, label in iterator:
        res = predict_with_flip(lifter, seq, sampler=sampler, num_samples=num_samples, steps=steps,
                                flip_tta=flip_tta, generator=gen)
        acc.add(seq, label, res.poses_3d, samples=res.samples, std=res.std, calibrated_std=res.calibrated_std)
    labels, hypotheses = acc.labels, acc.hypotheses
    if not labels:
        raise ValueError("evaluate_sequences: no valid frame in any sequence")

    order = _group_order(labels, per)
    present = acc.present()
    grouped = {m: acc.grouped(m) for m in present}
    frames = {g: int(grouped["mpjpe"][g].size) for g in order}
    per_group = {m: {g: float(grouped[m][g].mean()) for g in order} for m in present}
    action_wise = {m: M.action_wise_mean({g: grouped[m][g] for g in order}) for m in present}
    frame_wise = {m: M.frame_wise_mean(grouped[m]) for m in present}
    notes = []
    velocity_pairs = {g: 0 for g in order}
    if acc.velocity:
        vel = acc.grouped("mpjve")
        velocity_pairs.update({g: int(v.size) for g, v in vel.items()})
        per_group["mpjve"] = {g: (float(vel[g].mean()) if g in vel else None) for g in order}
        action_wise["mpjve"] = M.action_wise_mean(vel)
        frame_wise["mpjve"] = M.frame_wise_mean(vel)
        if len(vel) < len(order):
            notes.append("MPJVE: groups without two consecutive valid frames have no value and are left out of its "
                         "averages")
        present.insert(len(POSE_METRICS), "mpjve")
    if use_jagg and "j_agg" in present:
        notes.append("J-Agg places each hypothesis at the ground-truth root and projects it with the sequence's "
                     "camera (D3DP's protocol)")
    if flip_tta and hypotheses is not None and hypotheses > 1:
        notes.append(f"flip TTA: the multi-hypothesis metrics use the {hypotheses} hypotheses of both passes "
                     f"({hypotheses // 2} original + {hypotheses // 2} mirrored and un-flipped)")

    report: dict[str, Any] = {
        "protocol": "sequences", "units": "mm", "grouping": per,
        "settings": {"sampler": sampler, "num_samples": 1 if sampler == "context" else int(num_samples),
                     "steps": None if sampler in ("ddpm", "context") else steps, "flip_tta": bool(flip_tta),
                     "num_hypotheses": int(hypotheses or 0)},
        "metrics": present, "groups": order, "frames": frames, "velocity_pairs": velocity_pairs,
        "total_frames": int(len(labels)), "per_group": per_group, "action_wise": action_wise,
        "frame_wise": frame_wise, "average_labels": dict(AVERAGE_LABELS), "notes": notes,
    }
    uncertainty = acc.uncertainty()
    if uncertainty is not None:
        report["uncertainty"] = uncertainty
    if per == "action":
        report["missing_actions"] = [a for a in ACTIONS if a not in frames]
        if report["missing_actions"]:
            notes.append(f"only {len(order)} of the 15 actions were evaluated: the action-wise average is over those, "
                         "not the paper's 15")
    return report


def _group_order(labels: Sequence[str], per: str) -> list[str]:
    seen = list(dict.fromkeys(labels))
    if per == "action":
        return [a for a in ACTIONS if a in seen]
    return sorted(seen, key=_natural_key)


def _natural_key(name: str):
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(name))]
