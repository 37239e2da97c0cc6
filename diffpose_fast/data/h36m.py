"""Human3.6M from the VideoPose3D / DiffPose ``.npz`` files.

Files (all read with the safe loader ``safe_npz.load_npz``):

    data_3d_h36m.npz              positions_3d -> {subject: {action: [T, 32, 3]}}  world frame, metres, 50 fps
    data_2d_h36m_<source>.npz     positions_2d -> {subject: {action: [cam0..cam3]}}, each [T, J, 2] pixels,
                                  metadata -> {'layout_name', 'num_joints', 'keypoints_symmetry', ...}
    data_2d_h36m_*_gmm.npz        DiffPose "GMM format": positions_2d as above but each [T, 17, M, 5] =
                                  (weight, mean u, mean v, spread u, spread v) per joint and kernel

Action names keep their sub-action suffix (``"Directions 1"``) with the canonical renames
``TakingPhoto -> Photo`` and ``WalkingDog -> WalkDog``; ``action_group`` gives one of the 15 ``ACTIONS``.
Camera order is fixed (index 0..3 = ids ``CAMERA_IDS``); images are 1000x1002 for cameras 0 and 3 and
1000x1000 for cameras 1 and 2.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "H36M_32_TO_17", "ACTIONS", "TRAIN_SUBJECTS", "TEST_SUBJECTS", "UNLABELED_SUBJECTS", "CAMERA_IDS",
    "IMAGE_SIZES", "normalize_action_name", "action_group", "load_positions_3d", "Positions2D",
    "load_positions_2d", "GMM2D", "gmm_components", "gmm_keypoints", "gmm_keypoint_sigma", "truncate_to_mocap",
    "downsample",
    "build_sequences",
]

# Index into the 32-joint mocap skeleton of each of the 17 joints (skeleton.JOINT_NAMES order).
H36M_32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
UNLABELED_SUBJECTS: tuple[str, ...] = ("S2", "S3", "S4")   # only in 2D detection files: no 3D, no extrinsics
CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002))

_RENAMES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
# VideoPose3D's suggest_metadata: the 2D layout from a substring of the file name, in this order.
_LAYOUT_HINTS = ("mpii", "coco", "h36m", "humaneva15", "humaneva20")


def normalize_action_name(name: str) -> str:
    """Canonical action name, keeping the sub-action: ``"TakingPhoto 1"`` -> ``"Photo 1"``."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"normalize_action_name: name must be a non-empty str, got {name!r}")
    base, sep, rest = name.strip().partition(" ")
    return _RENAMES.get(base, base) + sep + rest


def action_group(name: str) -> str:
    """The evaluation group of an action (one of ``ACTIONS``): ``"Directions 1"`` -> ``"Directions"``."""
    group = normalize_action_name(name).split(" ")[0]
    if group not in ACTIONS:
        raise ValueError(f"action_group: {name!r} is not a Human3.6M action; expected a name starting with one of "
                         f"{list(ACTIONS)}")
    return group


def _load_key(path, key: str, fn: str) -> tuple[dict, dict]:
    from .safe_npz import load_npz

    content = load_npz(path)
    value = content.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{fn}: {os.fspath(path)!r} has no {key!r} dict (keys: {sorted(content)})")
    return value, content


def load_positions_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read ``data_3d_h36m.npz``: {subject: {action: [T, 17, 3]}} float32, world frame, metres.

    The 32-joint mocap arrays are reduced to the 17 joints with ``H36M_32_TO_17``; arrays that already have 17
    joints are kept. Action names are normalised (``normalize_action_name``).
    """
    raw, _ = _load_key(path, "positions_3d", "load_positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in raw.items():
        if not isinstance(actions, dict):
            raise ValueError(f"load_positions_3d: positions_3d[{subject!r}] must be a dict of actions")
        out[subject] = {}
        for action, pose in actions.items():
            pose = np.asarray(pose, dtype=np.float32)
            if pose.ndim != 3 or pose.shape[-1] != 3 or pose.shape[1] not in (32, 17):
                raise ValueError(f"load_positions_3d: positions_3d[{subject!r}][{action!r}] must have shape "
                                 f"[T, 32, 3] (or [T, 17, 3]), got {pose.shape}")
            out[subject][normalize_action_name(action)] = pose[:, H36M_32_TO_17] if pose.shape[1] == 32 else pose
    return out


@dataclass(frozen=True)
class Positions2D:
    """The content of a 2D file.

    positions: {subject: {action: [array per camera]}}; arrays are [T, J, 2] pixels, or [T, 17, M, 5] in the
        GMM format (``gmm`` True).
    metadata: the file's metadata dict ({} when absent).
    layout: joint layout of the keypoints ('h36m', 'coco', ...): ``metadata['layout_name']`` or guessed from
        the file name as VideoPose3D does; 'h36m' when neither says.
    """

    positions: dict
    metadata: dict = field(default_factory=dict)
    layout: str = "h36m"
    gmm: bool = False


def load_positions_2d(path: str | os.PathLike) -> Positions2D:
    """Read a ``data_2d_h36m_<source>.npz`` file (plain keypoints or DiffPose GMM format).

    Arrays are float32. Plain files hold [T, J, 2] pixels per camera; GMM files [T, 17, M, 5]
    (see ``gmm_components``). A file mixing the two is refused.
    """
    raw, content = _load_key(path, "positions_2d", "load_positions_2d")
    metadata = content.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"load_positions_2d: metadata must be a dict, got {type(metadata).__name__}")
    kinds = set()
    positions: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in raw.items():
        if not isinstance(actions, dict):
            raise ValueError(f"load_positions_2d: positions_2d[{subject!r}] must be a dict of actions")
        positions[subject] = {}
        for action, cams in actions.items():
            if not isinstance(cams, (list, tuple)) or len(cams) == 0:
                raise ValueError(f"load_positions_2d: positions_2d[{subject!r}][{action!r}] must be a non-empty "
                                 f"list of per-camera arrays, got {type(cams).__name__}")
            arrays = []
            for c, kp in enumerate(cams):
                kp = np.asarray(kp, dtype=np.float32)
                if kp.ndim == 3 and kp.shape[-1] == 2:
                    kinds.add("points")
                elif kp.ndim == 4 and kp.shape[-1] == 5:
                    kinds.add("gmm")
                else:
                    raise ValueError(f"load_positions_2d: positions_2d[{subject!r}][{action!r}][{c}] must have "
                                     f"shape [T, J, 2] or [T, J, M, 5] (GMM), got {kp.shape}")
                arrays.append(kp)
            positions[subject][normalize_action_name(action)] = arrays
    if len(kinds) > 1:
        raise ValueError(f"load_positions_2d: {os.fspath(path)!r} mixes [T, J, 2] and GMM [T, J, M, 5] arrays")
    layout = metadata.get("layout_name")
    if layout is None:
        name = os.path.basename(os.fspath(path))
        layout = next((hint for hint in _LAYOUT_HINTS if hint in name), "h36m")
    return Positions2D(positions=positions, metadata=metadata, layout=str(layout), gmm=kinds == {"gmm"})


@dataclass(frozen=True)
class GMM2D:
    """Per-joint 2D Gaussian mixtures: weights [..., M], means [..., M, 2] pixels, spreads [..., M, 2].

    ``spreads`` are per-axis standard deviations in the file's units: the official code multiplies unit noise
    by them *after* screen normalisation, so for the released files they are normalised-screen units.
    """

    weights: np.ndarray
    means: np.ndarray
    spreads: np.ndarray


def gmm_components(array) -> GMM2D:
    """Split a GMM-format array [..., M, 5] = (weight, mean u, mean v, spread u, spread v) into its parts.

    Raises ValueError for a wrong last dimension, negative weights or spreads, or weights whose sum is not
    positive.
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != 5:
        raise ValueError(f"gmm_components: array must have shape [..., M, 5], got {a.shape}")
    weights, means, spreads = a[..., 0], a[..., 1:3], a[..., 3:5]
    if (weights < 0).any() or (spreads < 0).any():
        raise ValueError("gmm_components: weights and spreads must be non-negative")
    if (weights.sum(axis=-1) <= 0).any():
        raise ValueError("gmm_components: every joint needs a positive total mixture weight")
    return GMM2D(weights=weights, means=means, spreads=spreads)


def gmm_keypoints(array, mode: str = "max_weight") -> np.ndarray:
    """2D keypoints [..., 2] from a GMM-format array [..., M, 5].

    mode: ``"max_weight"`` (the mean of the heaviest kernel; with the released files' weights (1, 0, 0) this is
    kernel 0) or ``"weighted_mean"`` (the mixture mean).
    """
    gmm = gmm_components(array)
    if mode == "max_weight":
        k = gmm.weights.argmax(axis=-1)
        return np.take_along_axis(gmm.means, k[..., None, None], axis=-2)[..., 0, :]
    if mode == "weighted_mean":
        w = gmm.weights / gmm.weights.sum(axis=-1, keepdims=True)
        return (w[..., None] * gmm.means).sum(axis=-2)
    raise ValueError(f"gmm_keypoints: mode must be 'max_weight' or 'weighted_mean', got {mode!r}")


GMM_SPREAD_UNITS = ("normalized", "pixels")


def gmm_keypoint_sigma(array, image_width: float, mode: str = "max_weight",
                       units: str = "normalized") -> np.ndarray:
    """The per-joint, per-axis 2D spread [..., 2] in pixels that goes with ``gmm_keypoints(array, mode)``.

    mode "max_weight": the heaviest kernel's spreads; "weighted_mean": the standard deviation of the whole
    mixture per axis (sum_m w_m (s_m^2 + mu_m^2) - mu_bar^2, weights normalised), so the distance between
    kernels widens it. units: "normalized" (the released files: screen-normalised units, x / w * 2 - 1, so a
    pixel is 2 / w of them) or "pixels".
    """
    if units not in GMM_SPREAD_UNITS:
        raise ValueError(f"gmm_keypoint_sigma: units must be one of {list(GMM_SPREAD_UNITS)}, got {units!r}")
    gmm = gmm_components(array)
    if mode == "max_weight":
        k = gmm.weights.argmax(axis=-1)
        sigma = np.take_along_axis(gmm.spreads, k[..., None, None], axis=-2)[..., 0, :]
    elif mode == "weighted_mean":
        w = (gmm.weights / gmm.weights.sum(axis=-1, keepdims=True))[..., None]
        mean = (w * gmm.means).sum(axis=-2)
        second = (w * (gmm.spreads ** 2 + gmm.means ** 2)).sum(axis=-2)
        sigma = np.sqrt(np.maximum(second - mean ** 2, 0.0))
    else:
        raise ValueError(f"gmm_keypoint_sigma: mode must be 'max_weight' or 'weighted_mean', got {mode!r}")
    return sigma * (image_width / 2.0) if units == "normalized" else sigma


def truncate_to_mocap(keypoints: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut 2D detections [T2, ...] to the mocap length ``num_frames`` (detections may be longer, never shorter)."""
    if keypoints.shape[0] < num_frames:
        raise ValueError(f"truncate_to_mocap: 2D sequence has {keypoints.shape[0]} frames, fewer than the "
                         f"{num_frames} mocap frames")
    return keypoints[:num_frames]


def downsample(array: np.ndarray, factor: int) -> np.ndarray:
    """Frame-rate subsampling ``array[::factor]`` (VideoPose3D ``--downsample``)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"downsample: factor must be an int >= 1, got {factor!r}")
    return array[::factor]


_downsample = downsample   # build_sequences' argument is also called ``downsample``


def _plain_keypoints(kp: np.ndarray, layout: str, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    if layout == "h36m":
        if kp.shape[1] != 17:
            raise ValueError(f"build_sequences: {where} has {kp.shape[1]} joints; the h36m layout has 17")
        return kp, None
    if layout == "coco":
        from .keypoint_formats import convert_keypoints

        return convert_keypoints(kp, "coco")
    raise ValueError(f"build_sequences: {where}: 2D layout {layout!r} is not supported (h36m or coco)")


def build_sequences(positions_3d: Mapping[str, Mapping[str, np.ndarray]], positions_2d, subjects: Iterable[str],
                    downsample: int = 1, actions: Sequence[str] | None = None,
                    cameras: Sequence[int] = (0, 1, 2, 3), gmm_mode: str = "max_weight",
                    gmm_spread_units: str = "normalized") -> list:
    """One ``PoseSequence`` per (subject, action, camera), in that sorted order.

    Args:
        positions_3d: ``load_positions_3d`` output, world frame, metres.
        positions_2d: ``load_positions_2d`` output (or its ``positions`` dict, taken as h36m-layout keypoints).
        subjects: e.g. ``TRAIN_SUBJECTS`` or ``TEST_SUBJECTS``.
        downsample: keep every ``downsample``-th frame (after truncating 2D to the mocap length).
        actions: action groups to keep (e.g. ``["Walking"]``); None keeps all.
        cameras: camera indices 0..3.
        gmm_mode: how GMM-format 2D becomes keypoints (``gmm_keypoints``); their spreads become each
            sequence's ``keypoint_sigma`` (``gmm_keypoint_sigma``), which H_K's x, y then use, as the paper's
            pipeline builds H_K from the detector's per-joint uncertainty.
        gmm_spread_units: the GMM files' spread units, "normalized" (the released files) or "pixels".

    Returns:
        PoseSequence list: keypoints_2d [T, 17, 2] px, poses_3d [T, 17, 3] camera frame metres (absolute, not
        root-relative, so the trajectory stays available), image_size per camera, camera = ``h36m_camera``,
        subject, action (with sub-action, e.g. ``"Walking 1"``).
    """
    from .camera import world_to_camera
    from .h36m_cameras import h36m_camera, h36m_extrinsics
    from .sequence import PoseSequence

    layout, gmm, pos2d = "h36m", False, positions_2d
    if isinstance(positions_2d, Positions2D):
        layout, gmm, pos2d = positions_2d.layout, positions_2d.gmm, positions_2d.positions
    wanted = None if actions is None else {action_group(a) for a in actions}
    out = []
    for subject in subjects:
        if subject not in positions_3d:
            raise ValueError(f"build_sequences: subject {subject!r} not in positions_3d "
                             f"(has {sorted(positions_3d)})")
        if subject not in pos2d:
            raise ValueError(f"build_sequences: subject {subject!r} not in positions_2d (has {sorted(pos2d)})")
        for action in sorted(positions_3d[subject]):
            if wanted is not None and action_group(action) not in wanted:
                continue
            if action not in pos2d[subject]:
                raise ValueError(f"build_sequences: no 2D keypoints for {subject} / {action!r}")
            world = np.asarray(positions_3d[subject][action], dtype=np.float64)
            cams_2d = pos2d[subject][action]
            for cam in cameras:
                if not 0 <= cam < len(cams_2d):
                    raise ValueError(f"build_sequences: camera {cam} missing for {subject} / {action!r} "
                                     f"({len(cams_2d)} cameras in the 2D file)")
                where = f"positions_2d[{subject!r}][{action!r}][{cam}]"
                kp = truncate_to_mocap(np.asarray(cams_2d[cam]), world.shape[0])
                conf = sigma = None
                if gmm:
                    # zero spreads (a kernel the file left empty) carry no information: NaN lets H_K fall back
                    sigma = gmm_keypoint_sigma(kp, IMAGE_SIZES[cam][0], gmm_mode, gmm_spread_units)
                    sigma = np.where(sigma > 0, sigma, np.nan)
                    kp = gmm_keypoints(kp, gmm_mode)
                else:
                    kp, conf = _plain_keypoints(kp, layout, where)
                quat, trans = h36m_extrinsics(subject, cam)
                poses = world_to_camera(world, quat, trans)
                out.append(PoseSequence(
                    keypoints_2d=_downsample(kp, downsample), poses_3d=_downsample(poses, downsample),
                    confidence=None if conf is None else _downsample(conf, downsample),
                    image_size=IMAGE_SIZES[cam], camera=h36m_camera(cam), subject=subject, action=action,
                    keypoint_sigma=None if sigma is None else _downsample(sigma, downsample)))
    return out

