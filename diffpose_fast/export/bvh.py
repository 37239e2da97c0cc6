"""Writing lifted poses as BVH motion.

BVH (``write_bvh``)
-------------------
The hierarchy is the H36M-17 tree of ``PARENTS``: the pelvis (Hip) is the ROOT, every joint with children is
a JOINT, and the five leaves (RFoot, LFoot, Head, LWrist, RWrist) are End Sites of their parents. BVH is Y up;
camera coordinates map to it by (X, Y, Z) = (x, -y, -z) (a proper rotation: the person stands upright when
the camera is level). Lengths are centimetres by default (``scale=100``).

Rest pose: each bone's OFFSET is its mean direction times its mean length, the mean taken after rotating every
frame's pose onto the average one (Procrustes, rotation only), so the rest pose is the average posture, not a
T-pose, and bone lengths are constant (BVH cannot change them per frame).

Per-frame rotations, from the bone directions only, top-down (each joint's global rotation G_j is known once
its parent's G_p is):
  * a joint with one child c: the *minimal* rotation (about the axis d0 x d1) taking the direction the child
    would have if the joint kept its parent's orientation, d0 = G_p o_c, to the observed one, d1; then
    G_j = R_min G_p. The twist about the bone, which the positions do not determine, is inherited from the
    parent unchanged (minimal twist).
  * a joint with several children (pelvis: hips and spine; thorax: neck and shoulders): the rotation that best
    maps the children's rest offsets onto the observed bone vectors (Kabsch / orthogonal Procrustes). The
    triangle these bones form is rigid in BVH, so when it changes shape in the data the fit spreads the error.
The local rotation L_j = G_p^T G_j is written as Euler angles in the channel order Zrotation Xrotation
Yrotation (R = Rz Rx Ry, intrinsic, the most common BVH order), in degrees. The root also has
X/Y/Z position channels (the pelvis; 0 for root-relative poses unless a trajectory is given).

``write_bvh`` returns the largest distance between the input joints and the joints recomputed from the file by
forward kinematics, so a caller can report how faithful the export is. ``read_bvh`` and
``bvh_forward_kinematics`` read any BVH file with the usual channel names.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

from ..data.bvh import BvhMotion, bvh_forward_kinematics, read_bvh
from ..data.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

__all__ = ["write_bvh", "read_bvh", "BvhMotion", "bvh_forward_kinematics", "euler_zxy_to_matrix",
           "matrix_to_euler_zxy"]

_CAM_TO_BVH = np.diag([1.0, -1.0, -1.0])  # (x, y, z) camera -> (X, Y, Z) BVH, Y up; det = +1


def euler_zxy_to_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """[..., 3] (z, x, y) degrees -> [..., 3, 3] rotation R = Rz Rx Ry."""
    a, b, c = np.moveaxis(np.radians(np.asarray(angles_deg, np.float64)), -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    r = np.stack([ca * cc - sa * sb * sc, -sa * cb, ca * sc + sa * sb * cc,
                  sa * cc + ca * sb * sc, ca * cb, sa * sc - ca * sb * cc,
                  -cb * sc, sb, cb * cc], -1)
    return r.reshape(r.shape[:-1] + (3, 3))


def matrix_to_euler_zxy(r: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation -> [..., 3] (z, x, y) degrees with R = Rz Rx Ry; x in [-90, 90]."""
    r = np.asarray(r, np.float64)
    cb = np.hypot(r[..., 0, 1], r[..., 1, 1])
    b = np.arctan2(r[..., 2, 1], cb)
    regular = cb > 1e-9
    a = np.where(regular, np.arctan2(-r[..., 0, 1], r[..., 1, 1]), np.arctan2(r[..., 1, 0], r[..., 0, 0]))
    c = np.where(regular, np.arctan2(-r[..., 2, 0], r[..., 2, 2]), 0.0)
    return np.degrees(np.stack([a, b, c], -1))


def _min_rotation(d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """[F, 3, 3]: the smallest rotation taking unit d0 [F, 3] to unit d1 [F, 3] (Rodrigues about d0 x d1)."""
    v = np.cross(d0, d1)
    c = np.einsum("fi,fi->f", d0, d1)
    s = np.linalg.norm(v, axis=-1)
    out = np.tile(np.eye(3), (len(d0), 1, 1))
    for f in range(len(d0)):
        if s[f] < 1e-12:
            if c[f] < 0:  # opposite: half turn about any axis perpendicular to d0
                perp = np.cross(d0[f], [1.0, 0.0, 0.0])
                if np.linalg.norm(perp) < 1e-6:
                    perp = np.cross(d0[f], [0.0, 1.0, 0.0])
                k = perp / np.linalg.norm(perp)
                out[f] = 2.0 * np.outer(k, k) - np.eye(3)
            continue
        k = v[f] / s[f]
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        out[f] = np.eye(3) + s[f] * kx + (1 - c[f]) * kx @ kx
    return out


def _kabsch(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """[F, 3, 3]: rotations R minimising sum_c |R rest_c - observed_fc|^2 (rest [C, 3], observed [F, C, 3])."""
    h = np.einsum("ci,fcj->fij", rest, observed)  # sum_c rest_c observed_c^T
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("fij,fjk->fik", vt.transpose(0, 2, 1), u.transpose(0, 2, 1))))
    fix = np.tile(np.eye(3), (len(h), 1, 1))
    fix[:, 2, 2] = d
    return vt.transpose(0, 2, 1) @ fix @ u.transpose(0, 2, 1)


# ------------------------------------------------------------------------------------------------ BVH write

def _children() -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in range(NUM_JOINTS)]
    for j, p in enumerate(PARENTS):
        if p >= 0:
            kids[p].append(j)
    return kids


def _bvh_name(j: int) -> str:
    return JOINT_NAMES[j].replace("/", "_")


def _fill_gaps(poses: np.ndarray) -> np.ndarray:
    """Frames with any non-finite value are replaced by linear interpolation in time (held at the ends)."""
    ok = np.isfinite(poses).all(axis=(1, 2))
    if ok.all():
        return poses
    if not ok.any():
        raise ValueError("write_bvh: no frame has finite joint positions")
    idx = np.flatnonzero(ok)
    t = np.arange(len(poses))
    flat = poses[ok].reshape(len(idx), -1)
    filled = np.stack([np.interp(t, idx, flat[:, k]) for k in range(flat.shape[1])], -1)
    return filled.reshape(poses.shape)


def _aligned_mean_bones(rel: np.ndarray) -> np.ndarray:
    """Mean bone vectors [J, 3] of root-relative poses [T, J, 3] after rotating every frame onto the mean
    (two Procrustes passes, rotation only): a turning person's bones do not average out."""
    ref = rel[0]
    for _ in range(2):
        rot = _kabsch(ref, rel.transpose(0, 1, 2))          # R_f maps ref onto frame f
        aligned = np.einsum("fji,fkj->fki", rot, rel)        # R_f^T applied to frame f
        ref = aligned.mean(0)
    parents = [max(p, 0) for p in PARENTS]
    return (aligned - aligned[:, parents]).mean(0)


def write_bvh(path: str | os.PathLike, poses: np.ndarray, fps: float = 30.0,
              root_positions: Optional[np.ndarray] = None, scale: float = 100.0) -> float:
    """Write poses [T, 17, 3] (metres, camera frame) as a BVH file; see the module docstring for the method.

    Args:
        poses: joint positions; root-relative or absolute (the root joint's own position is used for the
            root channels unless ``root_positions`` is given). Frames with NaN are interpolated in time.
        fps: frame rate written as "Frame Time: 1/fps".
        root_positions: optional [T, 3] pelvis trajectory (metres, camera frame) added to the poses.
        scale: file units per metre (100: centimetres).

    Returns:
        the largest distance (metres) between a joint of ``poses`` (+ trajectory) and the same joint recomputed
        from the written file by forward kinematics: 0 up to rounding when bone lengths and the pelvis/thorax
        triangles are constant, otherwise the size of their variation.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or poses.shape[0] < 1:
        raise ValueError(f"write_bvh: poses must have shape [T, {NUM_JOINTS}, 3] with T >= 1, got {list(poses.shape)}")
    if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 10_000):
        raise ValueError(f"write_bvh: fps must be a finite number in (0, 10000] frames per second, got {fps!r}")
    poses = _fill_gaps(poses)
    if root_positions is not None:
        root_positions = np.asarray(root_positions, np.float64)
        if root_positions.shape != (poses.shape[0], 3):
            raise ValueError(f"write_bvh: root_positions must have shape [{poses.shape[0]}, 3], "
                             f"got {list(root_positions.shape)}")
        poses = poses - poses[:, :1] + _fill_gaps(root_positions[:, None])
    pts = poses @ _CAM_TO_BVH.T * scale  # [T, J, 3] BVH frame, file units
    kids = _children()
    bones = pts - pts[:, list(max(p, 0) for p in PARENTS)]  # bone vector ending at each joint (root: 0)
    lengths = np.linalg.norm(bones, axis=-1).mean(0)
    mean_dir = _aligned_mean_bones(pts - pts[:, :1])
    offsets = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        n = np.linalg.norm(mean_dir[j])
        offsets[j] = mean_dir[j] / n * lengths[j] if n > 1e-9 else [0.0, lengths[j], 0.0]

    t = pts.shape[0]
    glob = np.zeros((NUM_JOINTS, t, 3, 3))
    local = np.zeros((NUM_JOINTS, t, 3, 3))
    for j in range(NUM_JOINTS):  # PARENTS is topologically sorted (parent index < child index)
        if not kids[j]:
            continue
        parent_g = glob[PARENTS[j]] if PARENTS[j] >= 0 else np.tile(np.eye(3), (t, 1, 1))
        if len(kids[j]) == 1:
            c = kids[j][0]
            d0 = np.einsum("fij,j->fi", parent_g, offsets[c])
            d0 /= np.linalg.norm(d0, axis=-1, keepdims=True)
            d1 = bones[:, c] / np.maximum(np.linalg.norm(bones[:, c], axis=-1, keepdims=True), 1e-12)
            glob[j] = _min_rotation(d0, d1) @ parent_g
        else:
            glob[j] = _kabsch(offsets[kids[j]], bones[:, kids[j]])
        local[j] = parent_g.transpose(0, 2, 1) @ glob[j]

    path = os.fspath(path)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        head = "ROOT" if PARENTS[j] < 0 else "JOINT"
        lines.append(f"{pad}{head} {_bvh_name(j)}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offsets[j, 0]:.6f} {offsets[j, 1]:.6f} {offsets[j, 2]:.6f}")
        if PARENTS[j] < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        for c in kids[j]:
            if kids[c]:
                emit(c, depth + 1)
            else:
                lines.append(f"{pad}  End Site")
                lines.append(f"{pad}  {{")
                lines.append(f"{pad}    OFFSET {offsets[c, 0]:.6f} {offsets[c, 1]:.6f} {offsets[c, 2]:.6f}")
                lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    preorder: list[int] = []  # joints with channels, in the order they appear in the file

    def walk(j: int) -> None:
        preorder.append(j)
        for c in kids[j]:
            if kids[c]:
                walk(c)

    walk(0)
    euler = {j: matrix_to_euler_zxy(local[j]) for j in preorder}
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.8f}"]
    for f in range(t):
        vals = list(pts[f, 0]) + [v for j in preorder for v in euler[j][f]]
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")

    motion = read_bvh(path)
    back = bvh_forward_kinematics(motion)
    names = [_bvh_name(j) if kids[j] else f"{_bvh_name(PARENTS[j])}/End" for j in range(NUM_JOINTS)]
    # End Sites are named after their parent; a parent has at most one End Site in this skeleton.
    got = np.stack([back[:, motion.names.index(n)] for n in names], 1)
    return float(np.linalg.norm(got - pts, axis=-1).max() / scale)


# ------------------------------------------------------------------------------------------------ BVH read
# Reading lives in data.bvh (one parser for the whole package); re-exported here for callers of this module.
