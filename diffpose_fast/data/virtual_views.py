"""Virtual views: a training sequence seen from another side, with the detector errors it already has.

    extra = virtual_views(train, copies=1, seed=0)      # one more sequence per sequence that can be re-seen

A sequence of captured motion is usually seen by few cameras, so a lifter learns few relations between a body's
orientation to the camera and its depth: on real motion the encoder's error is mostly depth. A virtual view
turns the whole sequence about the vertical axis through its mean root position (camera frame: the camera's y
axis, so the root and its distance stay where they are) by one angle drawn uniformly in [-180, 180) degrees, and
projects it again through the sequence's own camera. The 2D detector error is carried over: each keypoint's
offset from the projection of its ground truth (noise, outliers, swaps as they fell) is added to the new
projection, and the confidence is kept, so the new 2D is as noisy as the old and its confidence still says how
wrong it is. A joint that lands outside the image or less than 0.1 m in front of the camera is missing (NaN,
confidence 0), as a detector would miss it.

The camera's y axis is the vertical only for a level camera; a camera pitched by a few degrees (Human3.6M's
are) turns the body about an axis that leans by as much, and the virtual view sees the body leaning by up to
twice that: still a rigid pose seen by a real camera, so the 2D-3D relation stays exact.

A sequence can be re-seen (``can_view``) when it has a camera, absolute camera-frame 3D poses (root at least
``MIN_ROOT_DEPTH_M`` in front of the camera on every frame) and no heatmaps (heatmaps cannot be re-rendered from
keypoints). Units: metres (camera frame) and pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .sequence import PoseSequence

__all__ = ["MIN_ROOT_DEPTH_M", "can_view", "virtual_view", "virtual_views"]

MIN_ROOT_DEPTH_M = 1.0   # roots nearer than this are not absolute poses from a camera at a capture distance
_MIN_DEPTH_M = 0.1       # a joint less than this in front of the camera is missing, as in data.mocap


def can_view(seq: PoseSequence) -> bool:
    """Whether ``virtual_view`` can re-see ``seq``: camera, absolute 3D poses, no heatmaps (module docstring)."""
    if not isinstance(seq, PoseSequence):
        raise TypeError(f"can_view: seq must be a PoseSequence, got {type(seq).__name__}")
    if seq.camera is None or seq.poses_3d is None or seq.heatmaps is not None:
        return False
    return bool((np.asarray(seq.poses_3d)[:, 0, 2] >= MIN_ROOT_DEPTH_M).all())


def _yaw(angle: float) -> np.ndarray:
    """[3, 3] rotation about the camera frame's y axis by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def virtual_view(seq: PoseSequence, angle_rad: float) -> PoseSequence:
    """``seq`` turned by ``angle_rad`` about the vertical through its mean root and seen by its own camera.

    Returns a PoseSequence: poses_3d [T, 17, 3] metres in the same camera frame, keypoints_2d [T, 17, 2] pixels
    (new projection + the old detector error), confidence [T, 17] (the old one, 0 where a joint is now unseen);
    camera, image size, keypoint_sigma, valid and labels as ``seq``'s (the action gains " (virtual view)").
    Raises ValueError when ``can_view(seq)`` is false.
    """
    if not can_view(seq):
        raise ValueError(f"virtual_view: the sequence (action {seq.action!r}) needs a camera, absolute camera-frame "
                         f"poses_3d (root >= {MIN_ROOT_DEPTH_M} m deep on every frame) and no heatmaps")
    if not np.isfinite(angle_rad):
        raise ValueError(f"virtual_view: angle_rad must be finite, got {angle_rad!r}")
    poses = np.asarray(seq.poses_3d, np.float64)
    camera = seq.camera
    old_2d = np.asarray(seq.keypoints_2d, np.float64)
    error_2d = old_2d - np.asarray(camera.project(poses), np.float64)   # NaN where the detector missed the joint
    centre = poses[:, 0].mean(0)
    turned = (poses - centre) @ _yaw(float(angle_rad)).T + centre
    in_front = turned[..., 2] > _MIN_DEPTH_M
    clean = np.asarray(camera.project(np.where(in_front[..., None], turned, np.array([0.0, 0.0, 1.0]))), np.float64)
    w, h = seq.image_size
    seen = (in_front & (clean[..., 0] >= 0) & (clean[..., 0] <= w) & (clean[..., 1] >= 0) & (clean[..., 1] <= h)
            & np.isfinite(error_2d).all(-1))
    keypoints = np.where(seen[..., None], clean + np.nan_to_num(error_2d), np.nan)
    # the carried error may push a keypoint past the image's edge by as much as it did before: keep it in the
    # margin PoseSequence accepts, as a detector's output would be
    keypoints = np.clip(keypoints, [-w, -h], [2 * w, 2 * h])
    old_conf = np.ones(seen.shape) if seq.confidence is None else np.asarray(seq.confidence, np.float64)
    confidence = np.where(seen, old_conf, 0.0)
    action = None if seq.action is None else f"{seq.action} (virtual view)"
    return PoseSequence(keypoints.astype(np.float32), turned.astype(np.float32), seq.image_size,
                        confidence.astype(np.float32), camera=camera, subject=seq.subject, action=action,
                        valid=seq.valid, keypoint_sigma=seq.keypoint_sigma)


def virtual_views(sequences: Sequence[PoseSequence], copies: int, seed: int) -> tuple[list[PoseSequence], list[int]]:
    """``copies`` virtual views of every sequence that ``can_view``, each at its own uniform angle.

    Deterministic for (sequences, copies, seed). Returns (the new sequences, the index in ``sequences`` each came
    from): a caller that splits data by sequence (cross-fitting) keeps a view with its source.
    """
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 0:
        raise ValueError(f"virtual_views: copies must be an int >= 0, got {copies!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"virtual_views: seed must be a non-negative int, got {seed!r}")
    out: list[PoseSequence] = []
    sources: list[int] = []
    for index, seq in enumerate(sequences):
        if not can_view(seq):
            continue
        rng = np.random.default_rng([int(seed), index])
        for angle in rng.uniform(-np.pi, np.pi, size=int(copies)):
            out.append(virtual_view(seq, float(angle)))
            sources.append(index)
    return out, sources
