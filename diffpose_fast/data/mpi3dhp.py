"""MPI-INF-3DHP from the P-STMO / MixSTE ``.npz`` files, and its joint order.

The 17-joint 3DHP order (``mpii_get_joints('relevant')``; root = joint 14):

    idx  3DHP name        H36M-17 joint it is mapped to (``MPI3DHP_TO_H36M``)
    0    head_top         10 Head        (H36M "Head" is the top of the head)
    1    neck             8  Thorax      (3DHP neck = base of the neck, between the shoulders)
    2    right_shoulder   14 RShoulder
    3    right_elbow      15 RElbow
    4    right_wrist      16 RWrist
    5    left_shoulder    11 LShoulder
    6    left_elbow       12 LElbow
    7    left_wrist       13 LWrist
    8    right_hip        1  RHip
    9    right_knee       2  RKnee
    10   right_ankle      3  RFoot
    11   left_hip         4  LHip
    12   left_knee        5  LKnee
    13   left_ankle       6  LFoot
    14   root (pelvis)    0  Hip
    15   spine            7  Spine
    16   head             9  Neck/Nose   (3DHP head = centre of the head, the nearest H36M joint)

The map is a bijection, so ``to_h36m_order`` / ``to_mpi3dhp_order`` round-trip exactly. The official PCK/AUC
(``mpii_get_pck_auc_joint_groups.m``) uses 14 joints: 3DHP indices 0..13, i.e. it excludes root (14), spine (15)
and head (16) — note: head_top (0) is *included*. In H36M order the same 14 joints are every joint except
0 (Hip), 7 (Spine) and 9 (Neck/Nose).

File layouts (P-STMO ``common/data_to_npz_3dhp*.py``):

    data_train_3dhp.npz  data -> {"S<k> Seq<n>": [{cam: {'data_2d': [T,17,2] px, 'data_3d': [T,17,3] mm}}, fps]}
    data_test_3dhp.npz   data -> {"TS1".."TS6": {'data_2d': [T,17,2] px, 'data_3d': [T,17,3] mm, 'valid': [T]}}

3D is ``univ_annot3`` (scaled to the H36M universal skeleton), camera frame, millimetres; the loaders return
metres. Train images are 2048x2048; test TS1-TS4 2048x2048 (studio), TS5-TS6 1920x1080 (outdoor).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "MPI3DHP_JOINT_NAMES", "MPI3DHP_ROOT", "MPI3DHP_LEFT_JOINTS", "MPI3DHP_RIGHT_JOINTS",
    "H36M_TO_MPI3DHP", "MPI3DHP_TO_H36M", "PCK14_JOINTS_MPI3DHP", "PCK14_JOINTS_H36M",
    "TRAIN_IMAGE_SIZE", "TEST_IMAGE_SIZES", "TEST_SEQUENCES", "TEST_VALID_FRAMES",
    "to_h36m_order", "to_mpi3dhp_order", "load_train", "load_test",
]

MPI3DHP_JOINT_NAMES: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "root", "spine", "head",
)
MPI3DHP_ROOT = 14
MPI3DHP_LEFT_JOINTS: tuple[int, ...] = (5, 6, 7, 11, 12, 13)
MPI3DHP_RIGHT_JOINTS: tuple[int, ...] = (2, 3, 4, 8, 9, 10)

# MPI3DHP_TO_H36M[i] = the H36M-17 index of 3DHP joint i; H36M_TO_MPI3DHP[h] = the 3DHP index of H36M joint h.
# Index with them to reorder: x_h36m = x_3dhp[..., H36M_TO_MPI3DHP, :]; x_3dhp = x_h36m[..., MPI3DHP_TO_H36M, :].
MPI3DHP_TO_H36M: tuple[int, ...] = (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 0, 7, 9)
H36M_TO_MPI3DHP: tuple[int, ...] = tuple(int(i) for i in np.argsort(MPI3DHP_TO_H36M))

# The official 14-joint PCK/AUC set, in both orders.
PCK14_JOINTS_MPI3DHP: tuple[int, ...] = tuple(range(14))
PCK14_JOINTS_H36M: tuple[int, ...] = tuple(sorted(MPI3DHP_TO_H36M[i] for i in PCK14_JOINTS_MPI3DHP))

TRAIN_IMAGE_SIZE: tuple[int, int] = (2048, 2048)
TEST_SEQUENCES: tuple[str, ...] = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")
TEST_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048), "TS4": (2048, 2048),
    "TS5": (1920, 1080), "TS6": (1920, 1080),
}
# Number of frames with valid_frame == 1 per test sequence (official README); 2,929 in total.
TEST_VALID_FRAMES: dict[str, int] = {"TS1": 603, "TS2": 540, "TS3": 505, "TS4": 553, "TS5": 276, "TS6": 452}


def to_h36m_order(joints: np.ndarray) -> np.ndarray:
    """Reorder [..., 17, C] from 3DHP order to H36M-17 order (the root moves from 14 to 0)."""
    joints = np.asarray(joints)
    _check_joints(joints, "to_h36m_order")
    return joints[..., H36M_TO_MPI3DHP, :]


def to_mpi3dhp_order(joints: np.ndarray) -> np.ndarray:
    """Reorder [..., 17, C] from H36M-17 order to 3DHP order (the root moves from 0 to 14)."""
    joints = np.asarray(joints)
    _check_joints(joints, "to_mpi3dhp_order")
    return joints[..., MPI3DHP_TO_H36M, :]


def _check_joints(joints: np.ndarray, fn: str) -> None:
    if joints.ndim < 2 or joints.shape[-2] != 17:
        raise ValueError(f"{fn}: joints must have shape [..., 17, C], got {tuple(joints.shape)}")


def _order(joints: np.ndarray, joint_order: str, fn: str) -> np.ndarray:
    if joint_order == "h36m":
        return to_h36m_order(joints)
    if joint_order == "mpi3dhp":
        return joints
    raise ValueError(f"{fn}: joint_order must be 'h36m' or 'mpi3dhp', got {joint_order!r}")


def _load_data(path: str | os.PathLike, fn: str) -> dict:
    from .safe_npz import load_npz

    content = load_npz(path)
    data = content.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"{fn}: {os.fspath(path)!r} has no 'data' dict (keys: {sorted(content)}); "
                         "expected the P-STMO 3DHP npz layout")
    return data


def _arrays(entry: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(entry, dict) or "data_2d" not in entry or "data_3d" not in entry:
        raise ValueError(f"{where}: expected a dict with 'data_2d' and 'data_3d'")
    kp = np.asarray(entry["data_2d"], dtype=np.float64)
    p3 = np.asarray(entry["data_3d"], dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 2):
        raise ValueError(f"{where}: data_2d must have shape [T, 17, 2], got {kp.shape}")
    if p3.shape != kp.shape[:1] + (17, 3):
        raise ValueError(f"{where}: data_3d must have shape [{kp.shape[0]}, 17, 3], got {p3.shape}")
    return kp, p3


def load_train(path: str | os.PathLike, joint_order: str = "h36m") -> list:
    """Load ``data_train_3dhp.npz`` as one ``PoseSequence`` per (subject sequence, camera).

    Args:
        path: the P-STMO training file.
        joint_order: ``"h36m"`` (default; the library's order, root at 0) or ``"mpi3dhp"`` (root at 14).

    Returns:
        list of PoseSequence, sorted by (sequence, camera): keypoints_2d [T,17,2] px, poses_3d [T,17,3] metres
        (camera frame, not root-relative), image_size (2048, 2048), subject ``"S1"``, action ``"Seq1/cam0"``.
        The frame rate of each sequence is in the file (``fps``) and ignored here.
    """
    from .sequence import PoseSequence

    data = _load_data(path, "load_train")
    out = []
    for seq in sorted(data):
        entry = data[seq]
        if not isinstance(entry, (list, tuple)) or not entry or not isinstance(entry[0], dict):
            raise ValueError(f"load_train: data[{seq!r}] must be [ {{camera: arrays}}, fps ]")
        subject, _, seq_name = str(seq).partition(" ")
        for cam in sorted(entry[0], key=str):
            kp, p3 = _arrays(entry[0][cam], f"load_train: data[{seq!r}][0][{cam!r}]")
            out.append(PoseSequence(
                keypoints_2d=_order(kp, joint_order, "load_train"),
                poses_3d=_order(p3, joint_order, "load_train") / 1000.0,
                image_size=TRAIN_IMAGE_SIZE, subject=subject, action=f"{seq_name}/cam{cam}"))
    return out


def load_test(path: str | os.PathLike, joint_order: str = "h36m") -> list:
    """Load ``data_test_3dhp.npz`` as one ``PoseSequence`` per test sequence TS1..TS6.

    Args:
        path: the P-STMO test file.
        joint_order: ``"h36m"`` (default) or ``"mpi3dhp"``.

    Returns:
        list of PoseSequence in TS order: keypoints_2d [T,17,2] px, poses_3d [T,17,3] metres (camera frame),
        valid [T] bool (only these frames are evaluated), image_size from ``TEST_IMAGE_SIZES``,
        subject = action = ``"TS<k>"``.
    """
    from .sequence import PoseSequence

    data = _load_data(path, "load_test")
    out = []
    for seq in sorted(data):
        if seq not in TEST_IMAGE_SIZES:
            raise ValueError(f"load_test: unknown test sequence {seq!r}; expected one of {TEST_SEQUENCES}")
        kp, p3 = _arrays(data[seq], f"load_test: data[{seq!r}]")
        if "valid" not in data[seq]:
            raise ValueError(f"load_test: data[{seq!r}] has no 'valid' frame mask")
        valid = np.asarray(data[seq]["valid"]).reshape(-1)
        if valid.shape[0] != kp.shape[0]:
            raise ValueError(f"load_test: data[{seq!r}]['valid'] has {valid.shape[0]} entries for "
                             f"{kp.shape[0]} frames")
        out.append(PoseSequence(
            keypoints_2d=_order(kp, joint_order, "load_test"),
            poses_3d=_order(p3, joint_order, "load_test") / 1000.0,
            image_size=TEST_IMAGE_SIZES[seq], subject=seq, action=seq, valid=valid.astype(bool)))
    return out
