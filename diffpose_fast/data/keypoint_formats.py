"""Converters from common 2D detector layouts to the H36M-17 order (skeleton.JOINT_NAMES).

Every H36M joint is the mean of one or more source keypoints; its confidence is the minimum of their
confidences. A source keypoint is *missing* when its confidence is <= ``min_confidence`` (default 0) or any
of its values is NaN; a joint built from a missing source is missing too: NaN position, confidence 0.
Nothing is invented. Coordinates keep their units (pixels, or MediaPipe's normalised [0, 1]).

Mapping tables (source indices; "mid(a, b)" = mean; pelvis = mid hips, thorax = mid shoulders,
spine = mid(pelvis, thorax) = mean of both hips and both shoulders):

    H36M          COCO-17        Halpe-26        BODY_25          BODY_25B          BlazePose-33
    0  Hip        mid(11,12)     19 (hip)        8 (MidHip)       mid(11,12)        mid(23,24)
    1  RHip       12             12              9                12                24
    2  RKnee      14             14              10               14                26
    3  RFoot      16             16              11               16                28
    4  LHip       11             11              12               11                23
    5  LKnee      13             13              13               13                25
    6  LFoot      15             15              14               15                27
    7  Spine      mid(5,6,11,12) mid(18,19)      mid(1,8)         mid(5,6,11,12)    mid(11,12,23,24)
    8  Thorax     mid(5,6)       18 (neck)       1 (Neck)         mid(5,6)          mid(11,12)
    9  Neck/Nose  0 (nose)       0 (nose)        0 (Nose)         0 (Nose)          0 (nose)
    10 Head       mid(1,2) eyes  17 (head)       mid(15,16) eyes  18 (HeadTop)      mid(2,5) eyes
    11 LShoulder  5              5               5                5                 11
    12 LElbow     7              7               6                7                 13
    13 LWrist     9              9               7                9                 15
    14 RShoulder  6              6               2                6                 12
    15 RElbow     8              8               3                8                 14
    16 RWrist     10             10              4                10                16

COCO and Halpe follow MMPose's / MotionBERT's conversions. For the formats without a
head-top keypoint the H36M Head is the mid-eye point, as in those conversions; BODY_25B has a true HeadTop.
OpenPose's Neck (BODY_25 1) is the mid-shoulder point, i.e. H36M's Thorax.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KeypointFormat", "FORMATS", "convert_keypoints", "get_format"]


@dataclass(frozen=True)
class KeypointFormat:
    """A 2D keypoint layout: its keypoint names and, per H36M-17 joint, the source indices averaged."""

    name: str
    keypoint_names: tuple[str, ...]
    to_h36m: tuple[tuple[int, ...], ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)


_COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
               "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
               "right_knee", "left_ankle", "right_ankle")
_FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")

_COCO_TO_H36M = ((11, 12), (12,), (14,), (16,), (11,), (13,), (15,), (5, 6, 11, 12), (5, 6), (0,), (1, 2),
                 (5,), (7,), (9,), (6,), (8,), (10,))

FORMATS: dict[str, KeypointFormat] = {
    "h36m": KeypointFormat(
        "h36m", ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax", "Neck/Nose", "Head",
                 "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist"),
        tuple((i,) for i in range(17))),
    "coco": KeypointFormat("coco", _COCO_NAMES, _COCO_TO_H36M),
    "halpe26": KeypointFormat(
        "halpe26", _COCO_NAMES + ("head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe",
                                  "right_small_toe", "left_heel", "right_heel"),
        ((19,), (12,), (14,), (16,), (11,), (13,), (15,), (18, 19), (18,), (0,), (17,),
         (5,), (7,), (9,), (6,), (8,), (10,))),
    "body25": KeypointFormat(
        "body25", ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                   "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
                   "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear") + _FEET,
        ((8,), (9,), (10,), (11,), (12,), (13,), (14,), (1, 8), (1,), (0,), (15, 16),
         (5,), (6,), (7,), (2,), (3,), (4,))),
    "body25b": KeypointFormat(
        "body25b", _COCO_NAMES + ("upper_neck", "head_top") + _FEET,
        _COCO_TO_H36M[:10] + ((18,),) + _COCO_TO_H36M[11:]),
    "blazepose33": KeypointFormat(
        "blazepose33", ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
                        "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
                        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
                        "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
                        "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
                        "right_heel", "left_foot_index", "right_foot_index"),
        ((23, 24), (24,), (26,), (28,), (23,), (25,), (27,), (11, 12, 23, 24), (11, 12), (0,), (2, 5),
         (11,), (13,), (15,), (12,), (14,), (16,))),
}
_ALIASES = {"coco17": "coco", "halpe": "halpe26", "alphapose": "halpe26", "openpose": "body25",
            "body_25": "body25", "openpose_body25": "body25", "body_25b": "body25b", "openpose_body25b": "body25b",
            "mediapipe": "blazepose33", "blazepose": "blazepose33", "h36m17": "h36m"}


def get_format(fmt: str | KeypointFormat) -> KeypointFormat:
    """Look a format up by name (``FORMATS`` keys or an alias such as 'openpose', 'mediapipe', 'alphapose')."""
    if isinstance(fmt, KeypointFormat):
        return fmt
    key = str(fmt).lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown keypoint format {fmt!r}; expected one of {sorted(FORMATS)} "
                         f"(aliases {sorted(_ALIASES)})")
    return FORMATS[key]


def convert_keypoints(keypoints, fmt: str | KeypointFormat, min_confidence: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Convert keypoints of a detector layout to H36M-17.

    Args:
        keypoints: [..., K, 2] (x, y) or [..., K, 3] (x, y, confidence); K must match the format. Without a
            confidence channel every finite keypoint has confidence 1.
        fmt: format name (see ``FORMATS``) or a ``KeypointFormat``.
        min_confidence: source keypoints with confidence <= this are missing.

    Returns:
        (keypoints [..., 17, 2] float64, NaN where missing; confidence [..., 17] float64 in [0, 1], 0 where
        missing). Confidences above 1 (some detectors' heatmap maxima) are clipped to 1.
    """
    spec = get_format(fmt)
    try:
        kps = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"convert_keypoints: keypoints must be numeric, got {type(keypoints).__name__}") from exc
    if kps.ndim < 2 or kps.shape[-1] not in (2, 3) or kps.shape[-2] != spec.num_keypoints:
        raise ValueError(f"convert_keypoints: keypoints for format {spec.name!r} must have shape "
                         f"[..., {spec.num_keypoints}, 2 or 3], got {kps.shape}")
    xy = kps[..., :2]
    conf = kps[..., 2] if kps.shape[-1] == 3 else np.ones(kps.shape[:-1])
    missing = ~np.isfinite(xy).all(axis=-1) | ~np.isfinite(conf) | (conf <= min_confidence)
    conf = np.where(missing, 0.0, np.clip(np.nan_to_num(conf), 0.0, 1.0))
    xy = np.where(missing[..., None], np.nan, xy)
    out_xy = np.empty(kps.shape[:-2] + (17, 2))
    out_conf = np.empty(kps.shape[:-2] + (17,))
    for j, src in enumerate(spec.to_h36m):
        out_xy[..., j, :] = xy[..., list(src), :].mean(axis=-2)
        out_conf[..., j] = conf[..., list(src)].min(axis=-1)
    out_xy[out_conf <= 0] = np.nan
    return out_xy, out_conf
