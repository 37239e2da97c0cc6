"""``PoseSequence``: the public input type, one person's 2D keypoints over T frames with what comes with them.

Everything is stored as read-only float32 numpy arrays (``valid`` as bool), converted from numpy arrays,
torch tensors or nested lists at construction, and validated there with messages that name the argument.

Coordinates: keypoints in pixels of an image of size (w, h); 3D poses in metres, camera frame (x right, y down,
z forward), absolute or root-relative; joints in the H36M-17 order of ``skeleton``.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from diffpose_fast.data.camera import Camera, normalize_screen_coordinates
from diffpose_fast.data.skeleton import NUM_JOINTS, ROOT, flip_permutation

__all__ = ["PoseSequence", "KEYPOINT_MARGIN"]

# Finite keypoints must lie in [-KEYPOINT_MARGIN * w, (1 + KEYPOINT_MARGIN) * w] (and likewise for h): wide
# enough for people partly out of frame, narrow enough to catch keypoints in the wrong units or a wrong
# image_size (normalised coordinates passed as pixels with image_size=(1, 1) of a 1000 px image, etc.).
KEYPOINT_MARGIN = 1.0
MAX_IMAGE_SIDE_PX = 1_000_000     # image_size beyond this is refused (its squares would overflow float32 downstream)
MAX_POSE_M = 1000.0               # a 3D joint farther than this from the camera (metres) is refused


def _to_numpy(value: Any, name: str, dtype) -> np.ndarray:
    """Convert numpy / torch / nested lists to a fresh array of ``dtype``; TypeError for non-numeric input."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):   # numpy has no bfloat16: widen, exactly
            value = value.float()
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged nested lists
        raise TypeError(f"PoseSequence: {name} must be an array, tensor or nested list of numbers, "
                        f"got {type(value).__name__} ({exc})") from exc
    if dtype is bool:
        if array.dtype != np.bool_ and not (array.dtype.kind in "iu" and np.isin(array, (0, 1)).all()):
            raise TypeError(f"PoseSequence: {name} must be boolean (or 0/1 integers), got dtype {array.dtype}")
        return array.astype(np.bool_)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"PoseSequence: {name} must hold real numbers, got dtype {array.dtype}")
    return array.astype(dtype)


def _check_shape(array: np.ndarray, name: str, expected: tuple, text: str) -> None:
    """expected: a tuple of ints or None (any size)."""
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        raise ValueError(f"PoseSequence: {name} must have shape {text}, got {tuple(array.shape)}")


def _freeze(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if array is not None:
        array.flags.writeable = False
    return array


class PoseSequence:
    """One person's 2D keypoints over T frames, with optional 3D poses, confidences, heatmaps and camera.

    Args:
        keypoints_2d: [T, 17, 2] pixels. NaN is allowed only where ``confidence`` is 0 (a missing joint);
            finite keypoints must lie within ``KEYPOINT_MARGIN`` image sizes of the image: u in [-w, 2w],
            v in [-h, 2h].
        poses_3d: [T, 17, 3] metres, camera frame, absolute or root-relative; finite.
        image_size: (w, h) pixels, positive; required unless ``camera`` knows its image size.
        confidence: [T, 17] in [0, 1]; 0 means missing.
        heatmaps: [T, 17, Hh, Wh], non-negative, finite, each map with positive mass (consumers normalise);
            needs ``heatmap_boxes``.
        heatmap_boxes: [T, 4] (x0, y0, x1, y1) pixels with x1 > x0, y1 > y0: the image region the heatmap grid
            covers (cell (i, j) is centred at x0 + (j + 0.5)(x1 - x0)/Wh, y0 + (i + 0.5)(y1 - y0)/Hh).
        camera: a ``Camera`` (intrinsics in pixels of this image).
        subject, action: free-form labels (str).
        valid: [T] bool, frames to use (e.g. frames with ground truth); None means all.
        keypoint_sigma: [T, 17, 2] pixels, the detector's own per-joint, per-axis standard deviation of each
            keypoint (e.g. the spreads of DiffPose's ``*_gmm.npz`` 2D files); H_K's x, y then take this spread
            instead of the one derived from the confidence. Positive where given; NaN: derive it from the
            confidence for that joint. None: from the confidence everywhere.

    Raises:
        TypeError for wrong types, ValueError for wrong shapes or values; messages name the argument.
    """

    def __init__(self, keypoints_2d, poses_3d=None, image_size=None, confidence=None, heatmaps=None,
                 heatmap_boxes=None, camera: Optional[Camera] = None, subject: Optional[str] = None,
                 action: Optional[str] = None, valid=None, *, keypoint_sigma=None) -> None:
        if camera is not None and not isinstance(camera, Camera):
            raise TypeError(f"PoseSequence: camera must be a Camera or None, got {type(camera).__name__}")
        if image_size is None:
            # Never assume a dataset's resolution silently: it sets the scale of the normalised coordinates.
            if camera is None or camera.image_size is None:
                raise ValueError("PoseSequence: image_size (w, h) in pixels is required (or a camera with "
                                 "res_w, res_h), got None")
            image_size = camera.image_size
        self.image_size = self._check_image_size(image_size)
        w, h = self.image_size

        kp = _to_numpy(keypoints_2d, "keypoints_2d", np.float32)
        _check_shape(kp, "keypoints_2d", (None, NUM_JOINTS, 2), f"[T, {NUM_JOINTS}, 2] (pixels)")
        t = kp.shape[0]
        if t < 1:
            raise ValueError("PoseSequence: keypoints_2d must have at least one frame (T >= 1), got T=0")
        if np.isinf(kp).any():
            raise ValueError("PoseSequence: keypoints_2d must not contain inf (use NaN with confidence 0 "
                             "for missing joints)")

        conf = None
        if confidence is not None:
            conf = _to_numpy(confidence, "confidence", np.float32)
            _check_shape(conf, "confidence", (t, NUM_JOINTS), f"[T={t}, {NUM_JOINTS}] like keypoints_2d")
            if not np.isfinite(conf).all() or (conf < 0).any() or (conf > 1).any():
                bad = conf[~(np.isfinite(conf) & (conf >= 0) & (conf <= 1))]
                raise ValueError(f"PoseSequence: confidence must lie in [0, 1], got values such as {bad[:3].tolist()}")
        missing = np.isnan(kp).any(axis=-1)
        if missing.any():
            if conf is None:
                raise ValueError("PoseSequence: keypoints_2d contains NaN but no confidence was given; NaN is "
                                 "allowed only for joints whose confidence is 0")
            bad = missing & (conf != 0)
            if bad.any():
                f, j = np.argwhere(bad)[0]
                raise ValueError(f"PoseSequence: keypoints_2d may be NaN only where confidence is 0, got NaN at "
                                 f"frame {f}, joint {j} with confidence {conf[f, j]:.3g} "
                                 f"({int(bad.sum())} such joints)")
        finite = kp[~missing]
        lo = -KEYPOINT_MARGIN * np.array([w, h])
        hi = (1 + KEYPOINT_MARGIN) * np.array([w, h])
        outside = (finite < lo) | (finite > hi)
        if outside.any():
            raise ValueError(f"PoseSequence: keypoints_2d must be pixels of the image_size={self.image_size} image "
                             f"(within u in [{lo[0]:g}, {hi[0]:g}], v in [{lo[1]:g}, {hi[1]:g}]), got range "
                             f"u [{finite[:, 0].min():g}, {finite[:, 0].max():g}], "
                             f"v [{finite[:, 1].min():g}, {finite[:, 1].max():g}]")

        p3 = None
        if poses_3d is not None:
            p3 = _to_numpy(poses_3d, "poses_3d", np.float32)
            _check_shape(p3, "poses_3d", (t, NUM_JOINTS, 3), f"[T={t}, {NUM_JOINTS}, 3] (metres) like keypoints_2d")
            if not np.isfinite(p3).all():
                raise ValueError("PoseSequence: poses_3d must be finite, got NaN or inf")
            if np.abs(p3).max() > MAX_POSE_M:
                raise ValueError(f"PoseSequence: poses_3d must be metres in the camera frame, within {MAX_POSE_M:g} m "
                                 f"of the camera; got a coordinate of {np.abs(p3).max():.3g}")

        hm = boxes = None
        if heatmaps is not None:
            if heatmap_boxes is None:
                raise ValueError("PoseSequence: heatmaps need heatmap_boxes [T, 4] (x0, y0, x1, y1 pixels), got None")
            hm = _to_numpy(heatmaps, "heatmaps", np.float32)
            _check_shape(hm, "heatmaps", (t, NUM_JOINTS, None, None), f"[T={t}, {NUM_JOINTS}, Hh, Wh]")
            if hm.shape[2] < 1 or hm.shape[3] < 1:
                raise ValueError(f"PoseSequence: heatmaps must have Hh, Wh >= 1, got {tuple(hm.shape)}")
            if not np.isfinite(hm).all() or (hm < 0).any():
                raise ValueError("PoseSequence: heatmaps must be finite and non-negative")
            if (hm.sum(axis=(2, 3)) <= 0).any():
                raise ValueError("PoseSequence: every heatmap must have positive total mass, got an all-zero map")
        if heatmap_boxes is not None:
            if heatmaps is None:
                raise ValueError("PoseSequence: heatmap_boxes given without heatmaps")
            boxes = _to_numpy(heatmap_boxes, "heatmap_boxes", np.float32)
            _check_shape(boxes, "heatmap_boxes", (t, 4), f"[T={t}, 4] (x0, y0, x1, y1 pixels)")
            if not np.isfinite(boxes).all() or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
                raise ValueError("PoseSequence: heatmap_boxes must be finite with x1 > x0 and y1 > y0")

        for name, label in (("subject", subject), ("action", action)):
            if label is not None and not isinstance(label, str):
                raise TypeError(f"PoseSequence: {name} must be a str or None, got {type(label).__name__}")

        val = None
        if valid is not None:
            val = _to_numpy(valid, "valid", bool)
            _check_shape(val, "valid", (t,), f"[T={t}] like keypoints_2d")

        sig = None
        if keypoint_sigma is not None:
            sig = _to_numpy(keypoint_sigma, "keypoint_sigma", np.float32)
            _check_shape(sig, "keypoint_sigma", (t, NUM_JOINTS, 2), f"[T={t}, {NUM_JOINTS}, 2] (pixels)")
            given = sig[~np.isnan(sig)]
            if not np.isfinite(given).all() or (given <= 0).any():
                raise ValueError(f"PoseSequence: keypoint_sigma must be positive pixels (NaN: from the confidence), "
                                 f"got values such as {given[~(np.isfinite(given) & (given > 0))][:3].tolist()}")

        self.keypoints_2d = _freeze(kp)
        self.keypoint_sigma = _freeze(sig)
        self.poses_3d = _freeze(p3)
        self.confidence = _freeze(conf)
        self.heatmaps = _freeze(hm)
        self.heatmap_boxes = _freeze(boxes)
        self.camera = camera
        self.subject = subject
        self.action = action
        self.valid = _freeze(val)

    @staticmethod
    def _check_image_size(image_size) -> tuple[float, float]:
        try:
            w, h = image_size
        except (TypeError, ValueError):
            raise TypeError(f"PoseSequence: image_size must be a pair (w, h) of positive numbers, got {image_size!r}") from None
        for name, value in (("w", w), ("h", h)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"PoseSequence: image_size {name} must be a number, got {type(value).__name__}")
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"PoseSequence: image_size must be positive and finite, got {image_size!r}")
            if value > MAX_IMAGE_SIDE_PX:
                raise ValueError(f"PoseSequence: image_size sides must be at most {MAX_IMAGE_SIDE_PX} px, got "
                                 f"{image_size!r}")
        # Keep ints as ints so (1000, 1002) reads back unchanged.
        return tuple(int(v) if float(v).is_integer() else float(v) for v in (w, h))

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.keypoints_2d.shape[0])

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        extras = [name for name in ("poses_3d", "confidence", "heatmaps", "keypoint_sigma", "camera", "valid")
                  if getattr(self, name) is not None]
        return (f"PoseSequence(T={self.num_frames}, image_size={self.image_size}, subject={self.subject!r}, "
                f"action={self.action!r}, with={extras})")

    def root_relative_poses(self) -> np.ndarray:
        """poses_3d [T, 17, 3] minus the root (joint 0, pelvis): the root is exactly zero. Metres, float32."""
        if self.poses_3d is None:
            raise ValueError("PoseSequence.root_relative_poses: this sequence has no poses_3d")
        return self.poses_3d - self.poses_3d[:, ROOT:ROOT + 1]

    def normalized_keypoints(self) -> np.ndarray:
        """keypoints_2d [T, 17, 2] in screen coordinates (``normalize_screen_coordinates``), float32; NaN kept."""
        w, h = self.image_size
        return normalize_screen_coordinates(self.keypoints_2d, w, h).astype(np.float32)

    def flipped(self) -> "PoseSequence":
        """The horizontally mirrored sequence.

        Negating the normalised x is u -> w - u in pixels; left and right joints swap labels; 3D x is negated
        (camera frame); confidences swap with their joints; heatmaps mirror their columns and their boxes
        (x0, x1) -> (w - x1, w - x0); keypoint spreads swap with their joints; the camera's cx -> w - cx and p1 -> -p1, so that projecting the flipped
        3D pose with the flipped camera gives the flipped 2D keypoints. Flipping twice gives back the sequence
        (up to float32 rounding of w - (w - u)).
        """
        w, _ = self.image_size
        perm = flip_permutation(NUM_JOINTS)
        # Arithmetic in float64 so that flipping twice returns the original float32 values in almost all cases.
        kp = self.keypoints_2d.astype(np.float64)[:, perm]
        kp[..., 0] = w - kp[..., 0]
        p3 = None
        if self.poses_3d is not None:
            p3 = self.poses_3d[:, perm].copy()
            p3[..., 0] = -p3[..., 0]
        conf = None if self.confidence is None else self.confidence[:, perm]
        hm = boxes = None
        if self.heatmaps is not None:
            hm = self.heatmaps[:, perm, :, ::-1]
            b = self.heatmap_boxes.astype(np.float64)
            boxes = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
        camera = None if self.camera is None else self.camera.flipped(w)
        sigma = None if self.keypoint_sigma is None else self.keypoint_sigma[:, perm]   # per axis: unchanged by u -> w - u
        return PoseSequence(kp, p3, self.image_size, conf, hm, boxes, camera, self.subject, self.action, self.valid,
                            keypoint_sigma=sigma)

    def slice(self, start: int, stop: int) -> "PoseSequence":
        """Frames [start, stop) as a new sequence (Python slice semantics; must leave at least one frame)."""
        for name, value in (("start", start), ("stop", stop)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"PoseSequence.slice: {name} must be an int, got {type(value).__name__}")
        s = slice(int(start), int(stop))
        first, last, _ = s.indices(self.num_frames)
        if last - first < 1:
            raise ValueError(f"PoseSequence.slice: [start={start}, stop={stop}) selects no frame of a "
                             f"{self.num_frames}-frame sequence")

        def cut(a):
            return None if a is None else a[s]

        return PoseSequence(self.keypoints_2d[s], cut(self.poses_3d), self.image_size, cut(self.confidence),
                            cut(self.heatmaps), cut(self.heatmap_boxes), self.camera, self.subject, self.action,
                            cut(self.valid), keypoint_sigma=cut(self.keypoint_sigma))
