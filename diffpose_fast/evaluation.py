"""The one evaluator: per-frame errors of lifted sequences against their ground truth, grouped by a label.

``DiffPoseLifter.evaluate`` (its flat report), ``protocols.evaluate_sequences`` (the paper's grouped tables, the
CLI's ``evaluate`` and the H36M / 3DHP protocols) and the demo all lift with ``predict`` and then hand each
sequence's answer to an ``ErrorAccumulator``; what differs between them is only how they lift (flip TTA,
torchrun) and how they lay out the report.

Poses are compared root-relative (joint 0 subtracted from the prediction and the ground truth) on each
sequence's ``valid`` frames. Per frame, in mm: MPJPE (protocol #1), P-MPJPE (#2, per-frame similarity
Procrustes), N-MPJPE (#3, scale only); MPJVE per pair of consecutive valid frames *within* a sequence (mm per
frame); with several hypotheses P-Best, J-Best, P-Agg, and J-Agg where the sequence can be reprojected. The
spread (calibrated std when the lifter has a calibration, else the raw std) is kept per joint beside the error
of the mean pose, for ``uncertainty.uncertainty_report``.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import metrics as M
from .data.sequence import PoseSequence

__all__ = ["POSE_METRICS", "HYPOTHESIS_METRICS", "ErrorAccumulator"]

POSE_METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe")
HYPOTHESIS_METRICS = ("p_best", "j_best", "p_agg", "j_agg")


class ErrorAccumulator:
    """Collects per-frame errors sequence by sequence (``add``), then gives them grouped (``grouped``).

    Args:
        hypothesis_metrics: also compute P-Best, J-Best and P-Agg when a result has more than one hypothesis.
        j_agg: also J-Agg (needs every added sequence to have a camera and absolute camera-frame poses; the
            hypotheses are placed at the ground-truth root, as D3DP does).
    """

    def __init__(self, *, hypothesis_metrics: bool = False, j_agg: bool = False):
        self.hypothesis_metrics = hypothesis_metrics
        self.j_agg = j_agg
        self.errors: dict[str, list[np.ndarray]] = {m: [] for m in POSE_METRICS + HYPOTHESIS_METRICS}
        self.labels: list = []                 # one per evaluated frame
        self.velocity: list[np.ndarray] = []   # MPJVE per pair of consecutive valid frames, mm per frame
        self.velocity_labels: list = []
        self.hypotheses: Optional[int] = None  # N of the first result added
        self.spread_kind: Optional[str] = None  # "calibrated" or "raw", from the first sequence with a spread
        self.spreads: list[np.ndarray] = []     # [F, 17] metres, of spread_kind
        self.joint_errors: list[np.ndarray] = []  # [F, 17] metres, the mean pose's per-joint error

    def add(self, seq: PoseSequence, label, poses_3d, *, samples=None, std=None, calibrated_std=None,
            num_hypotheses: Optional[int] = None) -> None:
        """One sequence's answer, metres: poses_3d [T, 17, 3] (the mean pose), samples [N, T, 17, 3] (needed for
        the hypothesis metrics), std [T, 17] (raw spread) and calibrated_std [T, 17] or None, as a ``LiftResult``
        holds them; num_hypotheses: N when samples are not given. ``label``: the group of its frames."""
        pred = M.root_relative(np.asarray(poses_3d))
        samples = None if samples is None else M.root_relative(np.asarray(samples))
        n = int(samples.shape[0]) if samples is not None else int(num_hypotheses or 1)
        if self.hypotheses is None:
            self.hypotheses = n
        gt = M.root_relative(seq.poses_3d)
        keep = np.ones(seq.num_frames, bool) if seq.valid is None else np.asarray(seq.valid, bool)
        if keep.any():
            for m in POSE_METRICS:
                self.errors[m].append(getattr(M, m)(pred[keep], gt[keep], reduce="none") * M.MM_PER_M)
            self.labels += [label] * int(keep.sum())
            kind = "raw" if calibrated_std is None else "calibrated"
            if self.spread_kind is None:
                self.spread_kind = kind
            spread = std if kind == "raw" else calibrated_std
            if kind == self.spread_kind and spread is not None and (n > 1 or kind == "calibrated"):
                self.spreads.append(np.asarray(spread, np.float64)[keep])
                self.joint_errors.append(np.linalg.norm(np.asarray(pred, np.float64)[keep] - gt[keep], axis=-1))
            if self.hypothesis_metrics and samples is not None and n > 1:
                for m in ("p_best", "j_best", "p_agg"):
                    self.errors[m].append(getattr(M, m)(samples[:, keep], gt[keep], reduce="none") * M.MM_PER_M)
                if self.j_agg:
                    root = np.asarray(seq.poses_3d, np.float64)[keep][:, :1]
                    self.errors["j_agg"].append(M.j_agg(samples[:, keep], gt[keep], seq.keypoints_2d[keep],
                                                        camera=seq.camera, root_trajectory=root,
                                                        reduce="none") * M.MM_PER_M)
        if seq.num_frames >= 2:
            pairs = keep[1:] & keep[:-1]
            if pairs.any():
                self.velocity.append(M.mpjve(pred, gt, reduce="none")[pairs] * M.MM_PER_M)
                self.velocity_labels += [label] * int(pairs.sum())

    @property
    def frames(self) -> int:
        return len(self.labels)

    def present(self) -> list[str]:
        """The per-frame metrics that have values (MPJVE is separate: ``velocity``)."""
        return [m for m in POSE_METRICS + HYPOTHESIS_METRICS if self.errors[m]]

    def frame_errors(self, metric: str) -> np.ndarray:
        """All frames' errors of ``metric`` in mm, in the order added."""
        return np.concatenate(self.errors[metric])

    def grouped(self, metric: str, labels=None) -> dict[Any, np.ndarray]:
        """{group: errors in mm} of ``metric`` ("mpjve": per frame pair); ``labels`` replace the frames' own."""
        if metric == "mpjve":
            return M.errors_by_group(np.concatenate(self.velocity), self.velocity_labels if labels is None else labels)
        return M.errors_by_group(self.frame_errors(metric), self.labels if labels is None else labels)

    def mpjve_mm(self) -> float:
        """MPJVE over every pair of consecutive valid frames (NaN if there is none)."""
        pairs = np.concatenate(self.velocity) if self.velocity else np.zeros(0)
        return float(pairs.mean()) if pairs.size else float("nan")

    def uncertainty(self) -> Optional[dict[str, Any]]:
        """``uncertainty.uncertainty_report`` of the spread against the mean pose's error, with "std" saying which
        spread (calibrated or raw); None when no result had a spread (one hypothesis, no calibration)."""
        if not self.spreads:
            return None
        from .uncertainty import uncertainty_report

        return {"std": self.spread_kind, **uncertainty_report(np.concatenate(self.spreads),
                                                              np.concatenate(self.joint_errors))}
