"""The Human3.6M 17-joint skeleton (the VideoPose3D / Martinez order) and its graph.

Every pose in this library, 2D or 3D, uses this joint order unless a function says otherwise.
The root (pelvis) is joint 0; 3D poses are root-relative, camera frame, metres.

    idx  name        parent   side
    0    Hip         -        root (pelvis)
    1    RHip        0        right
    2    RKnee       1        right
    3    RFoot       2        right (ankle)
    4    LHip        0        left
    5    LKnee       4        left
    6    LFoot       5        left (ankle)
    7    Spine       0        centre
    8    Thorax      7        centre
    9    Neck/Nose   8        centre
    10   Head        9        centre
    11   LShoulder   8        left
    12   LElbow      11       left
    13   LWrist      12       left
    14   RShoulder   8        right
    15   RElbow      14       right
    16   RWrist      15       right
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

NUM_JOINTS = 17
ROOT = 0

JOINT_NAMES: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
LEFT_JOINTS: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
# The 16 bones, (parent, child), in the order DiffPose's GCN lists them.
EDGES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)


def flip_permutation(num_joints: int = NUM_JOINTS) -> np.ndarray:
    """Index array that swaps left and right joints: ``pose[..., perm, :]`` is the mirrored labelling."""
    perm = np.arange(num_joints)
    perm[list(LEFT_JOINTS)] = RIGHT_JOINTS
    perm[list(RIGHT_JOINTS)] = LEFT_JOINTS
    return perm


def mirror(values):
    """The mirror image of per-joint values [..., J, C] (numpy or torch, a new array of the same kind): left and
    right joints swapped and channel 0 negated. Channel 0 must be an x that the mirror negates: camera-frame x
    (poses), screen-normalised x (encoder inputs; VideoPose3D's normalisation is centred), not pixels (those
    mirror as w - x: ``PoseSequence.flipped``). Its own inverse."""
    perm = flip_permutation(values.shape[-2])
    if hasattr(values, "clone"):   # a torch tensor: index on its device
        import torch

        out = values[..., torch.as_tensor(perm, device=values.device), :].clone()
    else:
        out = np.array(values[..., perm, :], copy=True)
    out[..., 0] = -out[..., 0]
    return out


def adjacency(edges: Sequence[tuple[int, int]] = EDGES, num_joints: int = NUM_JOINTS,
              self_loops: bool = True) -> np.ndarray:
    """Binary symmetric adjacency [J, J] (float64) of the skeleton graph, with the identity added if asked."""
    a = np.zeros((num_joints, num_joints), dtype=np.float64)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    if self_loops:
        a += np.eye(num_joints)
    return a


def normalized_adjacency(edges: Sequence[tuple[int, int]] = EDGES, num_joints: int = NUM_JOINTS) -> np.ndarray:
    """The GCN propagation matrix D^-1/2 (A + I) D^-1/2 [J, J] (float64, symmetric, spectral radius 1).

    Kipf & Welling's symmetric normalisation: unlike the row normalisation of the official code it keeps the
    operator symmetric, so a graph convolution neither inflates nor shrinks features on average.
    """
    a = adjacency(edges, num_joints, self_loops=True)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return a * d[:, None] * d[None, :]


def bone_lengths(poses: np.ndarray) -> np.ndarray:
    """Bone lengths [..., 16] of poses [..., 17, 3], in the units of the input, in ``EDGES`` order."""
    poses = np.asarray(poses)
    parents = np.array([p for p, _ in EDGES])
    children = np.array([c for _, c in EDGES])
    return np.linalg.norm(poses[..., children, :] - poses[..., parents, :], axis=-1)
