"""The person's position in the camera frame: the root translation that puts a lifted pose onto its 2D keypoints.

A lifter answers root-relative poses P_j (metres, camera frame, pelvis at 0). With a known pinhole camera
(fx, fy, cx, cy) the root's position T = (tx, ty, tz) follows from the 2D keypoints u_j, v_j: it is the
translation whose projection of P_j + T best matches them,

    min_T  sum_j w_j [ (fx (X_j + tx) / (Z_j + tz) + cx - u_j)^2 + (fy (Y_j + ty) / (Z_j + tz) + cy - v_j)^2 ],

weighted by the keypoints' confidence. Multiplying each residual by the depth Z_j + tz makes it linear in T,
which gives the start (the same linear system as the direct linear transform); a few Gauss-Newton steps on
the true reprojection error then refine it. The camera's lens distortion is ignored (Human3.6M's moves a
keypoint by a few pixels at the image border). Frames with fewer than MIN_JOINTS usable joints get NaN.

This is geometry only, no learning: its accuracy is the lifted pose's (a pose too small or too large puts the
person too near or too far by the same factor) and the keypoints'.
"""
from __future__ import annotations


import numpy as np

from .data.camera import Camera

__all__ = ["MIN_JOINTS", "MIN_DEPTH_M", "root_trajectory", "reprojection_error_px"]

MIN_JOINTS = 3          # usable joints (finite keypoint, confidence > 0) a frame needs for a translation
MIN_DEPTH_M = 0.1       # every joint stays at least this far in front of the camera


def _inputs(poses_3d, keypoints_2d, confidence):
    poses = np.asarray(poses_3d, np.float64)
    kp = np.asarray(keypoints_2d, np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3:
        raise ValueError(f"root_trajectory: poses_3d must be [T, J, 3] metres, got {list(poses.shape)}")
    if kp.shape != poses.shape[:2] + (2,):
        raise ValueError(f"root_trajectory: keypoints_2d must be [T, J, 2] = {list(poses.shape[:2]) + [2]} pixels, "
                         f"got {list(kp.shape)}")
    w = np.ones(poses.shape[:2]) if confidence is None else np.asarray(confidence, np.float64)
    if w.shape != poses.shape[:2]:
        raise ValueError(f"root_trajectory: confidence must be [T, J] = {list(poses.shape[:2])}, got {list(w.shape)}")
    usable = np.isfinite(kp).all(-1) & np.isfinite(poses).all(-1) & np.isfinite(w) & (w > 0)
    w = np.where(usable, w, 0.0)
    return np.nan_to_num(poses), np.nan_to_num(kp), w, usable


def root_trajectory(poses_3d, keypoints_2d, camera: Camera, confidence=None, iterations: int = 10) -> np.ndarray:
    """Root positions [T, 3] (metres, camera frame; NaN where a frame has < MIN_JOINTS usable joints).

    Args:
        poses_3d: [T, J, 3] root-relative poses (metres, camera frame), e.g. ``LiftResult.poses_3d``.
        keypoints_2d: [T, J, 2] the 2D keypoints they were lifted from (pixels; NaN where missing).
        camera: the pinhole intrinsics (``data.camera.Camera``); distortion ignored.
        confidence: [T, J] weights in [0, 1] (None: 1); joints with 0 are left out.
        iterations: Gauss-Newton steps after the linear start.
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"root_trajectory: camera must be a data.camera.Camera, got {type(camera).__name__}")
    poses, kp, w, usable = _inputs(poses_3d, keypoints_2d, confidence)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    x, y, z = poses[..., 0], poses[..., 1], poses[..., 2]
    du, dv = kp[..., 0] - cx, kp[..., 1] - cy
    # linear start: fx tx - du tz = du z - fx x ;  fy ty - dv tz = dv z - fy y   (each row weighted by w)
    zeros = np.zeros_like(du)
    rows_u = np.stack([np.full_like(du, fx), zeros, -du], -1)
    rows_v = np.stack([zeros, np.full_like(dv, fy), -dv], -1)
    a = np.concatenate([rows_u, rows_v], axis=1)                       # [T, 2J, 3]
    b = np.concatenate([du * z - fx * x, dv * z - fy * y], axis=1)     # [T, 2J]
    ww = np.concatenate([w, w], axis=1)
    t = _weighted_solve(a, b, ww)
    floor = MIN_DEPTH_M - np.where(usable, z, np.inf).min(axis=1)      # tz keeps every usable joint in front
    t[:, 2] = np.maximum(t[:, 2], np.where(np.isfinite(floor), floor, MIN_DEPTH_M))
    for _ in range(int(iterations)):
        # unusable joints (weight 0) may sit behind the camera for this t: give them a harmless depth, so that
        # 0 x inf never turns the normal equations into NaN
        depth = np.where(usable, z + t[:, None, 2], 1.0)
        ru = fx * (x + t[:, None, 0]) / depth + cx - kp[..., 0]
        rv = fy * (y + t[:, None, 1]) / depth + cy - kp[..., 1]
        ju = np.stack([fx / depth, zeros, -fx * (x + t[:, None, 0]) / depth ** 2], -1)
        jv = np.stack([zeros, fy / depth, -fy * (y + t[:, None, 1]) / depth ** 2], -1)
        jac = np.concatenate([ju, jv], axis=1)
        res = np.concatenate([ru, rv], axis=1)
        step = _weighted_solve(jac, -res, ww)
        t = t + step
        t[:, 2] = np.maximum(t[:, 2], np.where(np.isfinite(floor), floor, MIN_DEPTH_M))
    t[usable.sum(axis=1) < MIN_JOINTS] = np.nan
    return t


def _weighted_solve(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per frame argmin_t sum_r w_r (a_r . t - b_r)^2 for a [T, R, 3], b [T, R], w [T, R]. A ridge relative to
    the system's scale keeps frames with too little data solvable (the caller sets them to NaN); a frame whose
    system is not finite gets 0."""
    ata = np.einsum("tr,tri,trj->tij", w, a, a)
    atb = np.einsum("tr,tri,tr->ti", w, a, b)
    bad = ~(np.isfinite(ata).all(axis=(1, 2)) & np.isfinite(atb).all(axis=1))
    ata[bad], atb[bad] = np.eye(3), 0.0
    scale = np.trace(ata, axis1=1, axis2=2)[:, None, None] / 3.0
    ata = ata + (1e-12 * scale + 1e-12) * np.eye(3)
    return np.linalg.solve(ata, atb[..., None])[..., 0]


def reprojection_error_px(poses_3d, trajectory, keypoints_2d, camera: Camera, confidence=None) -> np.ndarray:
    """[T] mean distance (pixels) between the projection of pose + trajectory and the usable keypoints
    (NaN where the trajectory is NaN or no joint is usable)."""
    poses, kp, w, usable = _inputs(poses_3d, keypoints_2d, confidence)
    pts = poses + np.asarray(trajectory, np.float64)[:, None, :]
    uv = np.stack([camera.fx * pts[..., 0] / pts[..., 2] + camera.cx,
                   camera.fy * pts[..., 1] / pts[..., 2] + camera.cy], -1)
    dist = np.linalg.norm(uv - kp, axis=-1)
    n = usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(usable, dist, 0.0).sum(axis=1) / n, np.nan)
