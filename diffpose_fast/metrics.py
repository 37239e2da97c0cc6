"""3D pose evaluation metrics: MPJPE, P-MPJPE, N-MPJPE, MPJVE, PCK, AUC and the multi-hypothesis metrics.

Conventions (those of the VideoPose3D / DiffPose evaluation code, which the field's numbers use):

* Inputs are numpy arrays or torch tensors ``[..., J, 3]``; torch tensors are detached and copied to the CPU.
  Everything is computed in float64. Metrics are evaluation functions, not losses: no gradients flow.
* **Units: errors come back in the units of the input.** The library's poses are in metres, so errors are in
  metres; the field reports millimetres, so the caller multiplies by ``MM_PER_M`` (1000) when reporting.
  PCK and AUC thresholds are in the input's units too (default 0.150 = 150 mm for metre inputs); PCK and
  AUC are returned in percent.
* Poses are compared as given: pass root-relative poses (``root_relative``) as the protocols require.
* ``reduce="mean"`` (default) returns a Python float averaged over every frame; ``reduce="none"`` returns the
  per-frame float64 array of shape ``[...]`` (the leading dimensions).
* Dataset averages: ``action_wise_mean`` (mean of per-action means: the number DiffPose / VideoPose3D papers
  report) and ``frame_wise_mean`` (mean over all frames: MMPose's number); ``summarize_by_action`` gives both,
  labelled.

Multi-hypothesis metrics (D3DP's definitions) take hypotheses ``[N, ..., J, 3]`` (hypothesis axis first; pass
``axis`` if it is elsewhere) and the ground truth ``[..., J, 3]``, and select per frame.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from .data.mpi3dhp import PCK14_JOINTS_H36M, PCK14_JOINTS_MPI3DHP

__all__ = [
    "MM_PER_M", "root_relative", "joint_errors", "procrustes_align",
    "mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc",
    "p_best", "j_best", "p_agg", "j_agg", "joint_reprojection_select",
    "errors_by_group", "action_wise_mean", "frame_wise_mean", "ActionSummary", "summarize_by_action",
]

MM_PER_M = 1000.0


# ----------------------------------------------------------------------------------------------- helpers

def _to_numpy(x, name: str, fn: str) -> np.ndarray:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fn}: {name} must be a numpy array or torch tensor of numbers, "
                        f"got {type(x).__name__}") from exc


def _poses(x, name: str, fn: str, coords: int | None = 3) -> np.ndarray:
    a = _to_numpy(x, name, fn)
    if a.ndim < 2 or (coords is not None and a.shape[-1] != coords):
        want = f"[..., J, {coords}]" if coords is not None else "[..., J, C]"
        raise ValueError(f"{fn}: {name} must have shape {want}, got {tuple(a.shape)}")
    return a


def _pair(pred, gt, fn: str, coords: int | None = 3) -> tuple[np.ndarray, np.ndarray]:
    p = _poses(pred, "pred", fn, coords)
    g = _poses(gt, "gt", fn, coords)
    if p.shape != g.shape:
        raise ValueError(f"{fn}: pred and gt must have the same shape, got pred {tuple(p.shape)} "
                         f"and gt {tuple(g.shape)}")
    return p, g


def _reduce(per_frame: np.ndarray, reduce: str, fn: str):
    if reduce == "none":
        return per_frame
    if reduce == "mean":
        if per_frame.size == 0:
            raise ValueError(f"{fn}: no frames to average (input has zero frames)")
        return float(per_frame.mean())
    raise ValueError(f"{fn}: reduce must be 'mean' or 'none', got {reduce!r}")


def root_relative(poses, root: int = 0) -> np.ndarray:
    """Subtract joint ``root`` from every joint: [..., J, C] -> [..., J, C] float64 (root = 0 for H36M-17,
    14 for 3DHP order)."""
    p = _poses(poses, "poses", "root_relative", coords=None)
    if not -p.shape[-2] <= root < p.shape[-2]:
        raise ValueError(f"root_relative: root={root} out of range for J={p.shape[-2]}")
    return p - p[..., root:root + 1, :]


def joint_errors(pred, gt) -> np.ndarray:
    """Euclidean error of every joint, [..., J] float64, in the input's units."""
    p, g = _pair(pred, gt, "joint_errors", coords=None)
    return np.linalg.norm(p - g, axis=-1)


# ----------------------------------------------------------------------------------- single-pose metrics

def mpjpe(pred, gt, reduce: str = "mean"):
    """Protocol #1: mean per-joint position error, mean_j ||pred_j - gt_j||_2.

    Args:
        pred, gt: [..., J, 3] (metres in this library).
        reduce: ``"mean"`` -> float over all frames; ``"none"`` -> per-frame [...] array.
    """
    p, g = _pair(pred, gt, "mpjpe")
    return _reduce(np.linalg.norm(p - g, axis=-1).mean(axis=-1), reduce, "mpjpe")


def procrustes_align(pred, gt) -> np.ndarray:
    """Align each frame of ``pred`` to ``gt`` with the optimal similarity transform (scale, rotation, translation).

    Orthogonal Procrustes on the centred, Frobenius-normalised point sets (SVD of X0^T Y0); a reflection is
    never allowed: when det(R) < 0 the last singular vector and value change sign. Scale s = trace(S) ||X0|| /
    ||Y0||, aligned = s * pred @ R + t. A frame whose pred joints all coincide is mapped to gt's centroid.

    Args:
        pred, gt: [..., J, 3].
    Returns:
        aligned pred, [..., J, 3] float64.
    """
    p, g = _pair(pred, gt, "procrustes_align")
    shape = p.shape
    Y = p.reshape(-1, shape[-2], 3)
    X = g.reshape(-1, shape[-2], 3)
    mu_x, mu_y = X.mean(axis=1, keepdims=True), Y.mean(axis=1, keepdims=True)
    X0, Y0 = X - mu_x, Y - mu_y
    norm_x = np.sqrt((X0 ** 2).sum(axis=(1, 2), keepdims=True))
    norm_y = np.sqrt((Y0 ** 2).sum(axis=(1, 2), keepdims=True))
    norm_x_safe = np.where(norm_x > 0, norm_x, 1.0)
    norm_y_safe = np.where(norm_y > 0, norm_y, 1.0)
    X0, Y0 = X0 / norm_x_safe, Y0 / norm_y_safe
    U, s, Vt = np.linalg.svd(np.matmul(X0.transpose(0, 2, 1), Y0))
    V = Vt.transpose(0, 2, 1)
    R = np.matmul(V, U.transpose(0, 2, 1))
    sign = np.where(np.linalg.det(R) < 0, -1.0, 1.0)
    V[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    R = np.matmul(V, U.transpose(0, 2, 1))
    scale = s.sum(axis=1)[:, None, None] * norm_x / norm_y_safe
    scale = np.where(norm_y > 0, scale, 0.0)
    t = mu_x - scale * np.matmul(mu_y, R)
    return (scale * np.matmul(Y, R) + t).reshape(shape)


def p_mpjpe(pred, gt, reduce: str = "mean"):
    """Protocol #2: MPJPE after per-frame similarity Procrustes alignment (``procrustes_align``, no reflection).

    Args:
        pred, gt: [..., J, 3].
        reduce: ``"mean"`` or ``"none"`` (per-frame [...]).
    """
    p, g = _pair(pred, gt, "p_mpjpe")
    return _reduce(np.linalg.norm(procrustes_align(p, g) - g, axis=-1).mean(axis=-1), reduce, "p_mpjpe")


def n_mpjpe(pred, gt, reduce: str = "mean"):
    """Protocol #3: MPJPE after per-frame optimal scaling of pred, s = <gt, pred> / <pred, pred> (Rhodin et al.).

    Args:
        pred, gt: [..., J, 3] (root-relative: no translation is fitted).
        reduce: ``"mean"`` or ``"none"`` (per-frame [...]).
    """
    p, g = _pair(pred, gt, "n_mpjpe")
    num = (g * p).sum(axis=(-2, -1), keepdims=True)
    den = (p * p).sum(axis=(-2, -1), keepdims=True)
    scale = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return _reduce(np.linalg.norm(scale * p - g, axis=-1).mean(axis=-1), reduce, "n_mpjpe")


def mpjve(pred, gt, reduce: str = "mean"):
    """Mean per-joint velocity error: mean_j ||(pred_t+1 - pred_t) - (gt_t+1 - gt_t)||_2.

    Args:
        pred, gt: [..., T, J, 3] with T >= 2 frames along axis -3.
        reduce: ``"mean"`` or ``"none"`` (per-frame-pair [..., T-1]).
    Returns:
        error per frame (input units per frame at the sequence's frame rate).
    """
    p, g = _pair(pred, gt, "mpjve")
    if p.ndim < 3 or p.shape[-3] < 2:
        raise ValueError(f"mpjve: pred and gt must have shape [..., T, J, 3] with T >= 2, got {tuple(p.shape)}")
    dv = np.diff(p, axis=-3) - np.diff(g, axis=-3)
    return _reduce(np.linalg.norm(dv, axis=-1).mean(axis=-1), reduce, "mpjve")


def _select_joints(joints, joint_order: str, num_joints: int, fn: str) -> np.ndarray:
    if isinstance(joints, str):
        if joints == "all":
            return np.arange(num_joints)
        if joints == "mpii14":
            if num_joints != 17:
                raise ValueError(f"{fn}: joints='mpii14' needs 17-joint poses, got J={num_joints}")
            if joint_order == "h36m":
                return np.array(PCK14_JOINTS_H36M)
            if joint_order == "mpi3dhp":
                return np.array(PCK14_JOINTS_MPI3DHP)
            raise ValueError(f"{fn}: joint_order must be 'h36m' or 'mpi3dhp', got {joint_order!r}")
        raise ValueError(f"{fn}: joints must be 'all', 'mpii14' or a sequence of indices, got {joints!r}")
    idx = np.asarray(joints, dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= num_joints:
        raise ValueError(f"{fn}: joint indices must be non-empty and in [0, {num_joints}), got {idx.tolist()}")
    return idx


def pck(pred, gt, threshold: float = 0.150, joints: str | Sequence[int] = "all", joint_order: str = "h36m",
        reduce: str = "mean"):
    """Percentage of correct keypoints: 100 * fraction of joints with error strictly below ``threshold``.

    Args:
        pred, gt: [..., J, 3], root-relative.
        threshold: in the input's units (0.150 = 150 mm for metres).
        joints: ``"all"`` (MMPose's Python evaluator), ``"mpii14"`` (the official MATLAB 14 joints: without
            pelvis, spine and head; see ``data.mpi3dhp``), or explicit joint indices.
        joint_order: order of the 17 joints for ``"mpii14"``: ``"h36m"`` or ``"mpi3dhp"``.
        reduce: ``"mean"`` -> percent over all frames; ``"none"`` -> per-frame percent [...].
    """
    err = joint_errors(*_pair(pred, gt, "pck"))
    idx = _select_joints(joints, joint_order, err.shape[-1], "pck")
    return _reduce(100.0 * (err[..., idx] < threshold).mean(axis=-1), reduce, "pck")


def auc(pred, gt, joints: str | Sequence[int] = "all", joint_order: str = "h36m", max_threshold: float = 0.150,
        num_thresholds: int = 31, reduce: str = "mean"):
    """Area under the PCK curve: 100 * mean PCK fraction over thresholds linspace(0, max_threshold, 31).

    The official definition (thresholds 0:5:150 mm, 31 values including 0, strict ``<``). Arguments as ``pck``;
    ``max_threshold`` in the input's units.
    """
    err = joint_errors(*_pair(pred, gt, "auc"))
    idx = _select_joints(joints, joint_order, err.shape[-1], "auc")
    if num_thresholds < 1:
        raise ValueError(f"auc: num_thresholds must be >= 1, got {num_thresholds}")
    th = np.linspace(0.0, max_threshold, num_thresholds)
    hit = err[..., idx][..., None] < th
    return _reduce(100.0 * hit.mean(axis=(-2, -1)), reduce, "auc")


# ---------------------------------------------------------------------------------- multi-hypothesis

def _hypotheses(hypotheses, gt, axis: int, fn: str) -> tuple[np.ndarray, np.ndarray]:
    h = _to_numpy(hypotheses, "hypotheses", fn)
    if h.ndim < 3:
        raise ValueError(f"{fn}: hypotheses must have shape [N, ..., J, 3], got {tuple(h.shape)}")
    h = np.moveaxis(h, axis, 0)
    g = _poses(gt, "gt", fn)
    if h.shape[1:] != g.shape or h.shape[-1] != 3:
        raise ValueError(f"{fn}: hypotheses must have shape [N, *gt.shape] = [N, {', '.join(map(str, g.shape))}] "
                         f"(hypothesis axis {axis}), got {tuple(np.moveaxis(h, 0, axis).shape)}")
    if h.shape[0] == 0:
        raise ValueError(f"{fn}: hypotheses has no hypotheses (N = 0)")
    return h, g


def p_best(hypotheses, gt, axis: int = 0, reduce: str = "mean"):
    """P-Best (oracle): per frame, the MPJPE of the single hypothesis closest to gt.

    Args:
        hypotheses: [N, ..., J, 3] (``axis`` says where N is). gt: [..., J, 3].
        reduce: ``"mean"`` or ``"none"`` (per-frame [...]).
    Selection is per frame (D3DP selects per 243-frame clip in its video protocol).
    """
    h, g = _hypotheses(hypotheses, gt, axis, "p_best")
    per = np.linalg.norm(h - g, axis=-1).mean(axis=-1)
    return _reduce(per.min(axis=0), reduce, "p_best")


def j_best(hypotheses, gt, axis: int = 0, reduce: str = "mean"):
    """J-Best (oracle): per frame and joint, the error of the hypothesis closest to gt, averaged over joints."""
    h, g = _hypotheses(hypotheses, gt, axis, "j_best")
    return _reduce(np.linalg.norm(h - g, axis=-1).min(axis=0).mean(axis=-1), reduce, "j_best")


def p_agg(hypotheses, gt, axis: int = 0, reduce: str = "mean"):
    """P-Agg: MPJPE of the mean of the hypotheses (DiffPose's own aggregation)."""
    h, g = _hypotheses(hypotheses, gt, axis, "p_agg")
    return mpjpe(h.mean(axis=0), g, reduce=reduce)


def _project_with_camera(points: np.ndarray, camera) -> np.ndarray:
    method = getattr(camera, "project", None)
    if callable(method):
        return method(points)
    from .data.camera import project

    return project(points, camera)


def joint_reprojection_select(hypotheses, keypoints_2d, project: Callable | None = None, camera=None,
                              root_trajectory=None, axis: int = 0) -> np.ndarray:
    """Joint-wise reprojection aggregation (D3DP's JPMA, used by J-Agg): for every joint, keep the hypothesis whose
    2D reprojection is closest to the input 2D keypoint, and assemble the pose joint by joint.

    Args:
        hypotheses: [N, ..., J, 3] camera-frame metres (root-relative if ``root_trajectory`` is given).
        keypoints_2d: [..., J, 2] input 2D keypoints in the units ``project`` returns (pixels).
        project: callable mapping points [N, ..., J, 3] (float64 numpy) to [N, ..., J, 2]. Either this or
            ``camera`` is required.
        camera: a Camera (``data.camera``) used to project when ``project`` is not given.
        root_trajectory: optional [..., 3] or [..., 1, 3] root position added to every hypothesis before
            projecting (D3DP uses the ground-truth root here).
        axis: position of N in ``hypotheses``.
    Returns:
        the aggregated pose [..., J, 3] float64 (without the trajectory).
    """
    fn = "joint_reprojection_select"
    h = np.moveaxis(_to_numpy(hypotheses, "hypotheses", fn), axis, 0)
    kp = _poses(keypoints_2d, "keypoints_2d", fn, coords=2)
    if h.ndim < 3 or h.shape[-1] != 3 or h.shape[1:-1] != kp.shape[:-1]:
        raise ValueError(f"{fn}: hypotheses must have shape [N, ..., J, 3] matching keypoints_2d "
                         f"{tuple(kp.shape)} = [..., J, 2], got {tuple(h.shape)} (after moving axis {axis} first)")
    points = h
    if root_trajectory is not None:
        traj = _to_numpy(root_trajectory, "root_trajectory", fn)
        if traj.shape == kp.shape[:-2] + (3,):
            traj = traj[..., None, :]
        if traj.shape != kp.shape[:-2] + (1, 3):
            raise ValueError(f"{fn}: root_trajectory must have shape [..., 3] or [..., 1, 3] with leading dims "
                             f"{kp.shape[:-2]}, got {tuple(traj.shape)}")
        points = h + traj
    if project is not None:
        proj = project(points)
    elif camera is not None:
        proj = _project_with_camera(points, camera)
    else:
        raise ValueError(f"{fn}: give either project (a callable) or camera")
    proj = _to_numpy(proj, "project(points)", fn)
    if proj.shape != h.shape[:-1] + (2,):
        raise ValueError(f"{fn}: project must return shape {h.shape[:-1] + (2,)}, got {tuple(proj.shape)}")
    best = np.linalg.norm(proj - kp, axis=-1).argmin(axis=0)          # [..., J]
    return np.take_along_axis(h, best[None, ..., None], axis=0)[0]


def j_agg(hypotheses, gt, keypoints_2d, project: Callable | None = None, camera=None, root_trajectory=None,
          axis: int = 0, reduce: str = "mean"):
    """J-Agg: MPJPE of the pose assembled by ``joint_reprojection_select`` (needs a camera, no ground truth
    except what the caller passes as ``root_trajectory``)."""
    h, g = _hypotheses(hypotheses, gt, axis, "j_agg")
    pose = joint_reprojection_select(h, keypoints_2d, project=project, camera=camera,
                                     root_trajectory=root_trajectory)
    return mpjpe(pose, g, reduce=reduce)


# ---------------------------------------------------------------------------------------- aggregation

def errors_by_group(errors, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Split per-frame errors [F] by per-frame labels (e.g. action groups) into {label: [F_label]}."""
    e = _to_numpy(errors, "errors", "errors_by_group").reshape(-1)
    labels = list(labels)
    if len(labels) != e.shape[0]:
        raise ValueError(f"errors_by_group: got {e.shape[0]} errors but {len(labels)} labels")
    out: dict[str, list[float]] = {}
    for value, label in zip(e.tolist(), labels):
        out.setdefault(label, []).append(value)
    return {k: np.asarray(v) for k, v in out.items()}


def _per_group(errors_by_action: Mapping[str, object], fn: str) -> dict[str, np.ndarray]:
    if not errors_by_action:
        raise ValueError(f"{fn}: errors_by_action is empty")
    out = {}
    for action, errs in errors_by_action.items():
        e = _to_numpy(errs, f"errors_by_action[{action!r}]", fn).reshape(-1)
        if e.size == 0:
            raise ValueError(f"{fn}: action {action!r} has no frames")
        out[action] = e
    return out


def action_wise_mean(errors_by_action: Mapping[str, object]) -> float:
    """**Action-wise average** (the paper's number): the unweighted mean over actions of each action's mean
    per-frame error. ``errors_by_action`` maps action -> per-frame errors (any shape) or a scalar mean."""
    groups = _per_group(errors_by_action, "action_wise_mean")
    return float(np.mean([e.mean() for e in groups.values()]))


def frame_wise_mean(errors_by_action: Mapping[str, object]) -> float:
    """**Frame-wise average** (MMPose's number): the mean over every frame of every action, so long actions
    weigh more. ``errors_by_action`` maps action -> per-frame errors."""
    groups = _per_group(errors_by_action, "frame_wise_mean")
    return float(np.concatenate(list(groups.values())).mean())


@dataclass(frozen=True)
class ActionSummary:
    """Per-action means and both averages, in the errors' units. ``frames`` counts frames per action."""

    per_action: dict[str, float]
    frames: dict[str, int]
    action_wise: float
    frame_wise: float

    def as_rows(self, scale: float = 1.0) -> list[tuple[str, float]]:
        """(label, value * scale) rows: one per action, then 'Average (action-wise)' and 'Average (frame-wise)'."""
        rows = [(a, v * scale) for a, v in self.per_action.items()]
        return rows + [("Average (action-wise)", self.action_wise * scale),
                       ("Average (frame-wise)", self.frame_wise * scale)]


def summarize_by_action(errors_by_action: Mapping[str, object]) -> ActionSummary:
    """Per-action mean errors plus the action-wise and frame-wise averages, clearly labelled."""
    groups = _per_group(errors_by_action, "summarize_by_action")
    return ActionSummary(per_action={a: float(e.mean()) for a, e in groups.items()},
                         frames={a: int(e.size) for a, e in groups.items()},
                         action_wise=action_wise_mean(groups), frame_wise=frame_wise_mean(groups))
