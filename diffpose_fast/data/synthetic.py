"""Synthetic human motion seen by a real Human3.6M camera, with detector-like 2D noise. For tests and demos.

The pipeline, numpy only and deterministic for a seed:
1. ``generate_motion``: joint angles over time (an action's posture + periodic motion + smooth noise, kept
   inside joint limits) -> forward kinematics on the H36M-17 skeleton with per-subject bone lengths ->
   world-frame poses (z up, metres), the lowest ankle resting on the floor, placed and turned in the capture area.
2. World -> camera with the extrinsics of a real H36M camera, projected with its intrinsics and distortion.
3. ``add_detector_noise``: per-joint Gaussian noise (wrists and ankles noisier), occasional outliers, left/right
   swaps and missing joints, and a confidence consistent with the noise.

This is not mocap: the motions are plausible, smooth and anatomically bounded, not a model of real behaviour.
Bone lengths are approximations of the H36M average skeleton (``BONE_LENGTHS_M``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from diffpose_fast.data.camera import world_to_camera
from diffpose_fast.data.h36m_cameras import H36M_SUBJECTS, h36m_camera, h36m_extrinsics
from diffpose_fast.data.sequence import PoseSequence
from diffpose_fast.data.skeleton import LEFT_JOINTS, NUM_JOINTS, PARENTS, RIGHT_JOINTS, flip_permutation

__all__ = ["ACTIONS", "AREA_CENTRE_M", "BONE_LENGTHS_M", "JOINT_NOISE_FACTOR", "SyntheticConfig", "DetectorNoise", "generate_motion",
           "add_detector_noise", "generate_sequences"]

ACTIONS: tuple[str, ...] = ("standing", "walking", "waving", "sitting", "squatting")

# Length (metres) of the bone ending at each joint, approximately the H36M average adult (about 1.7 m tall).
BONE_LENGTHS_M: dict[int, float] = {
    1: 0.133, 2: 0.454, 3: 0.446,      # right hip, thigh, shin
    4: 0.133, 5: 0.454, 6: 0.446,      # left
    7: 0.233, 8: 0.257,                # pelvis -> spine -> thorax
    9: 0.115, 10: 0.115,               # thorax -> neck/nose -> head top
    11: 0.151, 12: 0.278, 13: 0.252,   # left shoulder, upper arm, forearm
    14: 0.151, 15: 0.278, 16: 0.252,   # right
}

# Rest directions of each bone in its parent's frame. Body frame: x = the person's right, y = forward, z = up
# (the H36M world frame has z up too). Standing straight, arms hanging, facing +y.
_REST_DIRECTIONS = {
    1: (1.0, 0.0, 0.0), 2: (0.0, 0.0, -1.0), 3: (0.0, 0.0, -1.0),
    4: (-1.0, 0.0, 0.0), 5: (0.0, 0.0, -1.0), 6: (0.0, 0.0, -1.0),
    7: (0.0, 0.05, 1.0), 8: (0.0, 0.0, 1.0), 9: (0.0, 0.45, 0.9), 10: (0.0, -0.3, 0.95),
    11: (-1.0, 0.0, -0.15), 12: (0.0, 0.0, -1.0), 13: (0.0, 0.0, -1.0),
    14: (1.0, 0.0, -0.15), 15: (0.0, 0.0, -1.0), 16: (0.0, 0.0, -1.0),
}
_ANKLE_HEIGHT_M = 0.08
# Where the optical axes of the H36M cameras pass closest to each other (least squares over all subjects'
# extrinsics, world metres): the middle of the capture area, seen by every camera.
AREA_CENTRE_M = (0.065, 0.346)

# Degrees of freedom: (name, joint whose frame it rotates, axis 0=x 1=y 2=z, sign, lower, upper limit in degrees).
# Names are anatomical and positive in the usual sense (flexion forward, abduction outward); sign turns them into
# a rotation about the body-frame axis for a *right-side* joint; left-side joints mirror (y and z angles negate).
_DOFS = (
    ("root_lean", 0, 0, -1, -10, 30), ("root_roll", 0, 1, 1, -10, 10),
    ("r_hip_flex", 1, 0, 1, -25, 120), ("r_hip_abd", 1, 1, -1, -20, 45), ("r_hip_twist", 1, 2, 1, -30, 30),
    ("r_knee", 2, 0, -1, 0, 150),
    ("l_hip_flex", 4, 0, 1, -25, 120), ("l_hip_abd", 4, 1, -1, -20, 45), ("l_hip_twist", 4, 2, 1, -30, 30),
    ("l_knee", 5, 0, -1, 0, 150),
    ("spine_bend", 7, 0, -1, -20, 45), ("spine_side", 7, 1, 1, -20, 20), ("spine_twist", 7, 2, 1, -30, 30),
    ("thorax_bend", 8, 0, -1, -10, 20), ("thorax_side", 8, 1, 1, -10, 10), ("thorax_twist", 8, 2, 1, -15, 15),
    ("neck_nod", 9, 0, -1, -30, 40), ("neck_side", 9, 1, 1, -20, 20), ("neck_turn", 9, 2, 1, -50, 50),
    ("l_sho_flex", 11, 0, 1, -50, 170), ("l_sho_abd", 11, 1, -1, -10, 170), ("l_sho_twist", 11, 2, 1, -60, 60),
    ("l_elbow", 12, 0, 1, 0, 145),
    ("r_sho_flex", 14, 0, 1, -50, 170), ("r_sho_abd", 14, 1, -1, -10, 170), ("r_sho_twist", 14, 2, 1, -60, 60),
    ("r_elbow", 15, 0, 1, 0, 145),
)
_DOF_INDEX = {d[0]: i for i, d in enumerate(_DOFS)}
_LEFT = set(LEFT_JOINTS)

# Per action: the mean posture (degrees; unlisted DoFs 0) and the amplitude (degrees) of the smooth noise on
# every DoF group. Periodic motions (gait, waving) are added in _action_angles.
_POSTURES = {
    "standing": {"r_hip_abd": 4, "l_hip_abd": 4, "r_knee": 5, "l_knee": 5, "r_sho_abd": 8, "l_sho_abd": 8,
                 "r_elbow": 25, "l_elbow": 25},
    "walking": {"r_hip_abd": 3, "l_hip_abd": 3, "r_sho_abd": 8, "l_sho_abd": 8, "root_lean": 4},
    "waving": {"r_hip_abd": 5, "l_hip_abd": 5, "r_knee": 5, "l_knee": 5, "l_sho_abd": 8, "l_elbow": 15},
    "sitting": {"r_hip_flex": 85, "l_hip_flex": 85, "r_knee": 90, "l_knee": 90, "r_hip_abd": 8, "l_hip_abd": 8,
                "spine_bend": 10, "r_sho_flex": 30, "l_sho_flex": 30, "r_elbow": 70, "l_elbow": 70},
    "squatting": {"r_hip_abd": 10, "l_hip_abd": 10, "spine_bend": 20, "r_sho_flex": 40, "l_sho_flex": 40,
                  "r_elbow": 30, "l_elbow": 30},
}
_NOISE_AMPLITUDE = {  # degrees, (legs, torso, head, arms)
    "standing": (4, 5, 12, 20), "walking": (3, 3, 8, 6), "waving": (3, 4, 10, 8),
    "sitting": (4, 6, 15, 20), "squatting": (4, 5, 10, 12),
}

# Detector noise std multipliers per joint (wrists and ankles are hard, the nose and shoulders easy).
JOINT_NOISE_FACTOR = np.array([1.2, 1.3, 1.0, 1.5, 1.3, 1.0, 1.5, 1.5, 1.0, 0.6, 1.0,
                               0.9, 1.2, 1.8, 0.9, 1.2, 1.8])
_SWAP_PAIRS = tuple(zip(LEFT_JOINTS, RIGHT_JOINTS))


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic data; every length in metres, every 2D quantity in pixels.

    fps: frame rate (H36M: 50).
    actions: the actions to draw from (subset of ``ACTIONS``); sequence i gets actions[i % len(actions)].
    scale_range: per-subject uniform scale of the whole skeleton; bone_jitter: extra per-bone relative jitter
        (the same for left and right).
    area_radius_m: the person stays within this distance of the capture area's centre.
    facing: "random" (any heading) or "camera" (turned towards the camera, within yaw_jitter_deg).
    yaw_jitter_deg: amplitude of the slow heading changes (actions other than walking).
    noise_px: base 2D noise std (px) before the per-joint factors ``JOINT_NOISE_FACTOR``;
    noise_spread: std of the log of the per-(frame, joint) noise multiplier (lognormal "difficulty").
    outlier_prob / outlier_px: probability per joint and frame of a gross error, and its std.
    swap_prob: probability per left/right pair and frame that the detector swaps the two.
    missing_prob: probability per joint and frame of a missing keypoint (NaN, confidence 0).
    confidence_scale_px: noise std at which confidence is 0.5 (confidence = 1 / (1 + (sigma / scale)^2)).
    heatmap_size: None, or (Hh, Wh) to also render heatmaps (memory: T x 17 x Hh x Wh float32);
        heatmap_min_sigma_px: floor on their std; heatmap_confusion: weight of the opposite side's joint as
        a second mode of every limb joint (a swapped joint gets 0.4: its truth).
    occlusion_prob: probability per joint and frame that the joint is occluded: its noise and heatmap widen by
        occlusion_spread, its confidence drops (x U(0.2, 0.5)), and half of the occluded maps split into two
        equal peaks 2-4 (widened) sigma apart, the keypoint on one of them.
    double_prob: probability per joint and frame of a double detection: a second peak 30-120 px away in a random
        direction with weight U(0.3, 0.7); the keypoint is the heavier peak's (so in some frames the wrong one),
        confidence x U(0.5, 0.9). Both default to 0 (the data of earlier versions, draw for draw);
        ``SyntheticConfig.ambiguous()`` turns them on with heatmaps.
    """

    fps: float = 50.0
    actions: tuple[str, ...] = ACTIONS
    scale_range: tuple[float, float] = (0.9, 1.1)
    bone_jitter: float = 0.03
    area_radius_m: float = 0.8
    facing: str = "random"
    yaw_jitter_deg: float = 30.0
    noise_px: float = 3.0
    noise_spread: float = 0.3
    outlier_prob: float = 0.01
    outlier_px: float = 40.0
    swap_prob: float = 0.005
    missing_prob: float = 0.0
    confidence_scale_px: float = 8.0
    heatmap_size: Optional[tuple[int, int]] = None
    heatmap_min_sigma_px: float = 2.0
    heatmap_confusion: float = 0.05
    occlusion_prob: float = 0.0
    occlusion_spread: float = 3.0
    double_prob: float = 0.0

    @classmethod
    def ambiguous(cls, **changes) -> "SyntheticConfig":
        """2D with failure modes a GMM has to model: left/right swaps 4x the default rate (0.02 per pair and
        frame, a second heatmap peak at the truth), occlusions (5 % of joints: wide or split maps), double
        detections (2 %), left/right confusion 0.1 on every limb map, heatmaps of 48 x 36 cells. The rates are
        this project's choice, of the order of the error kinds that Ronchi & Perona's taxonomy (ICCV 2017:
        jitter, inversion, swap, miss) names; their measured rates were not available here."""
        base = dict(swap_prob=0.02, occlusion_prob=0.05, double_prob=0.02, heatmap_confusion=0.1,
                    heatmap_size=(48, 36))
        return cls(**{**base, **changes})

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        unknown = [a for a in self.actions if a not in ACTIONS]
        if not self.actions or unknown:
            raise ValueError(f"SyntheticConfig: actions must be a non-empty subset of {ACTIONS}, got {self.actions}")
        if self.facing not in ("random", "camera"):
            raise ValueError(f"SyntheticConfig: facing must be 'random' or 'camera', got {self.facing!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"SyntheticConfig: scale_range must be (lo, hi) with 0 < lo <= hi, got {self.scale_range}")
        for name in ("fps", "confidence_scale_px", "heatmap_min_sigma_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SyntheticConfig: {name} must be positive, got {getattr(self, name)}")
        for name in ("bone_jitter", "area_radius_m", "yaw_jitter_deg", "noise_px", "noise_spread", "outlier_px"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SyntheticConfig: {name} must be >= 0, got {getattr(self, name)}")
        if not self.occlusion_spread >= 1:
            raise ValueError(f"SyntheticConfig: occlusion_spread must be >= 1, got {self.occlusion_spread}")
        for name in ("outlier_prob", "swap_prob", "missing_prob", "heatmap_confusion", "occlusion_prob",
                     "double_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SyntheticConfig: {name} must lie in [0, 1], got {getattr(self, name)}")
        if self.heatmap_size is not None:
            size = tuple(int(s) for s in self.heatmap_size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"SyntheticConfig: heatmap_size must be None or (Hh, Wh) >= 1, got {self.heatmap_size}")
            object.__setattr__(self, "heatmap_size", size)

    def replace(self, **changes) -> "SyntheticConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


class DetectorNoise(NamedTuple):
    """What ``add_detector_noise`` did. keypoints [T, J, 2] px (NaN where missing); confidence [T, J] in [0, 1];
    sigma_px [T, J] the Gaussian std used per joint; outlier, swapped, missing [T, J] bool masks; occluded,
    doubled [T, J] bool (None when those modes are off); second_px [T, J, 2] and second_weight [T, J]: the second
    heatmap peak of occluded-split and double-detected joints (NaN / 0 elsewhere; None when off)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    sigma_px: np.ndarray
    outlier: np.ndarray
    swapped: np.ndarray
    missing: np.ndarray
    occluded: Optional[np.ndarray] = None
    doubled: Optional[np.ndarray] = None
    second_px: Optional[np.ndarray] = None
    second_weight: Optional[np.ndarray] = None


def _smooth_noise(rng: np.random.Generator, frames: int, count: int, fps: float,
                  max_hz: float = 0.5, terms: int = 4) -> np.ndarray:
    """[frames, count] smooth signals with unit std: sums of sinusoids of random low frequencies and phases.

    A sum of few sinusoids is band-limited, so velocities are bounded by 2 pi max_hz times the amplitude.
    """
    t = np.arange(frames) / fps
    freq = rng.uniform(0.05, max_hz, size=(terms, count))
    phase = rng.uniform(0, 2 * np.pi, size=(terms, count))
    amp = rng.normal(size=(terms, count))
    amp /= np.sqrt((amp ** 2).sum(axis=0) / 2) + 1e-12   # unit std over a long window
    return np.einsum("kc,tkc->tc", amp, np.sin(2 * np.pi * t[:, None, None] * freq + phase))


def _soft_limit(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, softness: float = 4.0) -> np.ndarray:
    """Identity well inside [lo, hi], smoothly saturating at the limits (two softplus), then a strict clip."""
    def softplus(v):
        return softness * np.logaddexp(0.0, v / softness)
    y = lo + softplus(x - lo)
    y = hi - softplus(hi - y)
    return np.clip(y, lo, hi)


def _action_angles(action: str, frames: int, rng: np.random.Generator, fps: float) -> np.ndarray:
    """Anatomical DoF values [frames, len(_DOFS)] in degrees, within the joint limits."""
    n = len(_DOFS)
    angles = np.zeros((frames, n))
    for name, value in _POSTURES[action].items():
        angles[:, _DOF_INDEX[name]] = value
    legs, torso, head, arms = _NOISE_AMPLITUDE[action]
    amp = np.array([legs if d[1] in (1, 2, 4, 5) else torso if d[1] in (0, 7, 8) else head if d[1] == 9 else arms
                    for d in _DOFS], dtype=np.float64)
    angles += amp * _smooth_noise(rng, frames, n, fps)
    t = np.arange(frames) / fps

    def add(name, values):
        angles[:, _DOF_INDEX[name]] += values

    if action == "walking":
        phase = 2 * np.pi * rng.uniform(0.8, 1.0) * t + rng.uniform(0, 2 * np.pi)
        for side, offset in (("r", 0.0), ("l", np.pi)):
            p = phase + offset
            add(f"{side}_hip_flex", 8 + 25 * np.sin(p))
            # The knee bends most in swing, just after the hip passes the vertical going forward.
            add(f"{side}_knee", 5 + 55 * ((1 + np.cos(p - 0.6 * np.pi)) / 2) ** 2)
            # Arms swing against the leg of the same side.
            add(f"{side}_sho_flex", -20 * np.sin(p))
            add(f"{side}_elbow", 20 + 10 * (1 - np.sin(p)))
    elif action == "waving":
        side = "r" if rng.random() < 0.5 else "l"
        freq = rng.uniform(1.2, 2.0)
        add(f"{side}_sho_abd", 120 + 15 * np.sin(2 * np.pi * 0.2 * t))
        add(f"{side}_sho_flex", 20)
        add(f"{side}_elbow", 55 + 30 * np.sin(2 * np.pi * freq * t))
    elif action == "squatting":
        depth = (1 - np.cos(2 * np.pi * rng.uniform(0.15, 0.3) * t + rng.uniform(0, 2 * np.pi))) / 2
        for side in ("r", "l"):
            add(f"{side}_hip_flex", 10 + 80 * depth)
            add(f"{side}_knee", 10 + 110 * depth)
        add("root_lean", 25 * depth)

    lo = np.array([d[4] for d in _DOFS], dtype=np.float64)
    hi = np.array([d[5] for d in _DOFS], dtype=np.float64)
    return _soft_limit(angles, lo, hi)


def _rotations(angles_deg: np.ndarray) -> np.ndarray:
    """Local rotation matrices [T, 17, 3, 3] of each joint's frame from the DoF values [T, n] (degrees).

    R = Ry(abduction) Rx(flexion) Rz(twist): the twist about the bone's rest axis first, then flexion, then
    abduction. Left-side joints mirror the right side's convention (the y and z angles negate).
    """
    frames = angles_deg.shape[0]
    euler = np.zeros((frames, NUM_JOINTS, 3))
    for k, (_, joint, axis, sign, _, _) in enumerate(_DOFS):
        mirror = -1.0 if (joint in _LEFT and axis != 0) else 1.0
        euler[:, joint, axis] += np.deg2rad(angles_deg[:, k]) * sign * mirror
    c, s = np.cos(euler), np.sin(euler)
    one, zero = np.ones_like(c[..., 0]), np.zeros_like(c[..., 0])
    rx = np.stack([one, zero, zero, zero, c[..., 0], -s[..., 0], zero, s[..., 0], c[..., 0]], -1)
    ry = np.stack([c[..., 1], zero, s[..., 1], zero, one, zero, -s[..., 1], zero, c[..., 1]], -1)
    rz = np.stack([c[..., 2], -s[..., 2], zero, s[..., 2], c[..., 2], zero, zero, zero, one], -1)
    shape = (frames, NUM_JOINTS, 3, 3)
    return ry.reshape(shape) @ rx.reshape(shape) @ rz.reshape(shape)


def _bone_offsets(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Rest offsets [17, 3] (metres) of each joint from its parent for one random subject."""
    scale = rng.uniform(*config.scale_range)
    offsets = np.zeros((NUM_JOINTS, 3))
    jitter = {}
    for j in range(1, NUM_JOINTS):
        key = min(j, int(flip_permutation()[j]))   # one jitter per left/right pair: subjects are symmetric
        jitter.setdefault(key, rng.uniform(1 - config.bone_jitter, 1 + config.bone_jitter))
        d = np.array(_REST_DIRECTIONS[j])
        offsets[j] = d / np.linalg.norm(d) * BONE_LENGTHS_M[j] * scale * jitter[key]
    return offsets


def _forward_kinematics(local: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Positions [T, 17, 3] relative to the root: x_j = x_parent + F_parent offset_j, F_j = F_parent R_j."""
    frames = local.shape[0]
    frame = np.empty_like(local)
    pos = np.zeros((frames, NUM_JOINTS, 3))
    frame[:, 0] = local[:, 0]
    for j in range(1, NUM_JOINTS):   # parents precede children in the H36M order
        p = PARENTS[j]
        pos[:, j] = pos[:, p] + frame[:, p] @ offsets[j]
        frame[:, j] = frame[:, p] @ local[:, j]
    return pos


def _yaw_matrix(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).reshape(yaw.shape + (3, 3))


def generate_motion(frames: int, rng: np.random.Generator, action: Optional[str] = None,
                    config: Optional[SyntheticConfig] = None,
                    face_towards: Optional[np.ndarray] = None) -> np.ndarray:
    """One subject performing one action: world-frame poses [frames, 17, 3] in metres (float64), z up.

    action: one of ``ACTIONS`` (None: drawn from config.actions). The lowest ankle rests on the floor
    (z = 0.08 m); the person stays within about config.area_radius_m of ``AREA_CENTRE_M``, the middle of the
    H36M capture area. face_towards: a world point [2 or 3] (e.g. a camera position) the person turns to,
    within config.yaw_jitter_deg; None: a random heading. Walking goes round a circle and ignores it.
    """
    config = config if config is not None else SyntheticConfig()
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"generate_motion: frames must be a positive int, got {frames!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"generate_motion: rng must be a numpy Generator, got {type(rng).__name__}")
    if action is None:
        action = config.actions[int(rng.integers(len(config.actions)))]
    if action not in ACTIONS:
        raise ValueError(f"generate_motion: action must be one of {ACTIONS}, got {action!r}")

    offsets = _bone_offsets(rng, config)
    local = _rotations(_action_angles(action, frames, rng, config.fps))
    t = np.arange(frames) / config.fps
    radius = config.area_radius_m
    if action == "walking":
        # Round a circle at about 1 m/s: bounded in space, and the heading follows the tangent.
        circle = rng.uniform(0.7, 1.0) * radius
        speed = rng.uniform(0.8, 1.2) * rng.choice([-1.0, 1.0])
        theta = rng.uniform(0, 2 * np.pi) + speed * t / max(circle, 1e-6)
        centre_xy = np.asarray(AREA_CENTRE_M) + np.stack([np.cos(theta), np.sin(theta)], -1) * circle
        forward = np.sign(speed) * np.stack([-np.sin(theta), np.cos(theta)], -1)
        yaw = np.arctan2(-forward[:, 0], forward[:, 1])   # Rz(yaw) turns +y (forward) into `forward`
    else:
        start = np.asarray(AREA_CENTRE_M) + rng.uniform(-1, 1, size=2) * radius / 2
        centre_xy = start + _smooth_noise(rng, frames, 2, config.fps, max_hz=0.1) * radius / 4
        if face_towards is not None:
            to = np.asarray(face_towards, dtype=np.float64)[:2] - centre_xy
            base = np.arctan2(-to[:, 0], to[:, 1])
        else:
            base = rng.uniform(-np.pi, np.pi)
        yaw = base + np.deg2rad(config.yaw_jitter_deg) * _smooth_noise(rng, frames, 1, config.fps, 0.15)[:, 0]
    local[:, 0] = _yaw_matrix(yaw) @ local[:, 0]
    pose = _forward_kinematics(local, offsets)
    floor = pose[:, [3, 6], 2].min(axis=1)
    root = np.concatenate([centre_xy, (_ANKLE_HEIGHT_M - floor)[:, None]], axis=-1)
    return pose + root[:, None, :]


def add_detector_noise(keypoints: np.ndarray, rng: np.random.Generator,
                       config: Optional[SyntheticConfig] = None) -> DetectorNoise:
    """Corrupt clean keypoints [T, 17, 2] (px) like a 2D detector would; see ``DetectorNoise``.

    Per joint and frame: sigma = noise_px * JOINT_NOISE_FACTOR[j] * d, d lognormal (noise_spread); Gaussian
    noise of that std on both coordinates; with outlier_prob an extra N(0, outlier_px^2) error; with swap_prob
    per left/right pair the two noisy positions trade places; with missing_prob the joint is NaN.
    Confidence = 1 / (1 + (sigma / confidence_scale_px)^2) times U(0.9, 1), times U(0.05, 0.4) for outliers and
    U(0.3, 0.8) for swapped joints, 0 for missing ones: larger errors come with lower confidence.
    """
    config = config if config is not None else SyntheticConfig()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"add_detector_noise: keypoints must have shape [T, {NUM_JOINTS}, 2], got {kp.shape}")
    t = kp.shape[0]
    sigma = config.noise_px * JOINT_NOISE_FACTOR * np.exp(config.noise_spread * rng.normal(size=(t, NUM_JOINTS)))
    noisy = kp + sigma[..., None] * rng.normal(size=kp.shape)
    outlier = rng.random((t, NUM_JOINTS)) < config.outlier_prob
    noisy += outlier[..., None] * rng.normal(scale=config.outlier_px, size=kp.shape)
    swapped = np.zeros((t, NUM_JOINTS), dtype=bool)
    for left, right in _SWAP_PAIRS:
        swap = rng.random(t) < config.swap_prob
        noisy[swap, left], noisy[swap, right] = noisy[swap, right].copy(), noisy[swap, left].copy()
        swapped[swap, left] = swapped[swap, right] = True
    confidence = 1.0 / (1.0 + (sigma / config.confidence_scale_px) ** 2) * rng.uniform(0.9, 1.0, size=sigma.shape)
    confidence = np.where(outlier, confidence * rng.uniform(0.05, 0.4, size=sigma.shape), confidence)
    confidence = np.where(swapped, confidence * rng.uniform(0.3, 0.8, size=sigma.shape), confidence)
    missing = rng.random((t, NUM_JOINTS)) < config.missing_prob
    noisy[missing] = np.nan
    confidence[missing] = 0.0
    if config.occlusion_prob == 0 and config.double_prob == 0:   # no further draws: earlier versions' data
        return DetectorNoise(noisy, np.clip(confidence, 0.0, 1.0), sigma, outlier, swapped, missing)
    second = np.full(noisy.shape, np.nan)
    second_w = np.zeros((t, NUM_JOINTS))

    def direction(shape):
        angle = rng.uniform(0.0, 2.0 * np.pi, size=shape)
        return np.stack([np.cos(angle), np.sin(angle)], axis=-1)

    occluded = (rng.random((t, NUM_JOINTS)) < config.occlusion_prob) & ~missing
    wide = sigma * config.occlusion_spread
    extra = np.sqrt(max(config.occlusion_spread ** 2 - 1.0, 0.0)) * sigma[..., None] * rng.normal(size=kp.shape)
    noisy = np.where(occluded[..., None], noisy + extra, noisy)
    sigma = np.where(occluded, wide, sigma)
    confidence = np.where(occluded, confidence * rng.uniform(0.2, 0.5, size=sigma.shape), confidence)
    split = occluded & (rng.random((t, NUM_JOINTS)) < 0.5)
    gap = rng.uniform(2.0, 4.0, size=sigma.shape) * sigma
    second = np.where(split[..., None], noisy + gap[..., None] * direction(sigma.shape), second)
    second_w = np.where(split, 0.5, second_w)

    doubled = (rng.random((t, NUM_JOINTS)) < config.double_prob) & ~missing & ~occluded
    other = noisy + rng.uniform(30.0, 120.0, size=sigma.shape)[..., None] * direction(sigma.shape)
    w = rng.uniform(0.3, 0.7, size=sigma.shape)
    heavier = doubled & (w > 0.5)            # the detector reports the heavier peak: here the wrong one
    second = np.where(doubled[..., None], np.where(heavier[..., None], noisy, other), second)
    noisy = np.where(heavier[..., None], other, noisy)
    second_w = np.where(doubled, np.where(heavier, 1.0 - w, w), second_w)
    confidence = np.where(doubled, confidence * rng.uniform(0.5, 0.9, size=sigma.shape), confidence)
    return DetectorNoise(noisy, np.clip(confidence, 0.0, 1.0), sigma, outlier, swapped, missing, occluded, doubled,
                         second, second_w)


def detector_heatmaps(noise: DetectorNoise, config: SyntheticConfig, box=None):
    """Heatmaps [T, J, Hh, Wh] and their boxes [T, 4] of config.heatmap_size cells for what ``add_detector_noise``
    did: each joint a Gaussian of its noise std (at least heatmap_min_sigma_px) at its keypoint, and its second
    peak (a swap's truth, a split occlusion, a double detection, or the opposite joint by heatmap_confusion).
    box: [T, 4] pixels, the region each frame's maps cover (None: around the keypoints, ``render_heatmaps``)."""
    # Imported here: heatmaps need torch, the rest of this module must not.
    from diffpose_fast.data.heatmaps import render_heatmaps

    perm = flip_permutation()
    limb = perm != np.arange(NUM_JOINTS)
    weight = np.where(noise.swapped, 0.4, np.where(limb, config.heatmap_confusion, 0.0))
    alt = noise.keypoints[:, perm]
    if noise.second_weight is not None:   # a split occlusion or a double detection is the joint's second peak
        own = (noise.second_weight > 0) & ~noise.swapped
        weight = np.where(own, noise.second_weight, weight)
        alt = np.where(own[..., None], noise.second_px, alt)
    return render_heatmaps(noise.keypoints, np.maximum(noise.sigma_px, config.heatmap_min_sigma_px),
                           box=box, size=config.heatmap_size, second_mode=(weight, alt))


def generate_sequences(num_sequences: int, frames: int, seed: int,
                       config: Optional[SyntheticConfig] = None) -> list[PoseSequence]:
    """``num_sequences`` synthetic ``PoseSequence``s of ``frames`` frames each, deterministic for ``seed``.

    Sequence i performs config.actions[i % len(actions)] as a fresh random subject, seen by a random H36M
    camera (with the extrinsics of a random H36M subject) and depends only on (seed, i). Each carries:
    noisy keypoints_2d (px), confidence, poses_3d (absolute camera frame, metres), the camera,
    image_size (res_w, res_h), action, subject "synth<i>", and heatmaps if config.heatmap_size is set.
    """
    config = config if config is not None else SyntheticConfig()
    for name, value in (("num_sequences", num_sequences), ("frames", frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"generate_sequences: {name} must be a positive int, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"generate_sequences: seed must be a non-negative int, got {seed!r}")
    out = []
    for i in range(int(num_sequences)):
        rng = np.random.default_rng([int(seed), i])
        cam_index = int(rng.integers(4))
        camera = h36m_camera(cam_index)
        quat, trans = h36m_extrinsics(H36M_SUBJECTS[int(rng.integers(len(H36M_SUBJECTS)))], cam_index)
        action = config.actions[i % len(config.actions)]
        face = trans if config.facing == "camera" else None
        world = generate_motion(int(frames), rng, action, config, face_towards=face)
        cam = world_to_camera(world, quat, trans)
        clean = camera.project(cam)
        noise = add_detector_noise(clean, rng, config)
        hm = boxes = None
        if config.heatmap_size is not None:
            hm, boxes = detector_heatmaps(noise, config)
        out.append(PoseSequence(noise.keypoints, cam, camera.image_size, noise.confidence, hm, boxes, camera,
                                subject=f"synth{i}", action=action))
    return out
