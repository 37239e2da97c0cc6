"""Frames as tensors: what the frame model trains and predicts on, gathered from PoseSequences.

A ``FrameSet`` holds F frames side by side (every tensor's first dimension is F):
    inputs      [F, J, 3]  the encoder's input: normalised screen x, y (VideoPose3D convention) and confidence
    keypoints   [F, J, 2]  pixels (missing joints filled with the frame's mean, confidence 0)
    confidence  [F, J]     in [0, 1]
    image_size  [F, 2]     (w, h) pixels
    poses       [F, J, 3]  root-relative metres, camera frame (None at inference)
    heatmaps    [F, J, Hh, Wh] and boxes [F, 4] (optional)
    keypoint_sigma [F, J, 2] pixels (optional): the detector's per-joint, per-axis spread; NaN where H_K derives
                the spread from the confidence
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Optional, Sequence

import numpy as np
import torch

from .skeleton import NUM_JOINTS, flip_permutation


@dataclasses.dataclass
class FrameSet:
    inputs: torch.Tensor
    keypoints: torch.Tensor
    confidence: torch.Tensor
    image_size: torch.Tensor
    poses: Optional[torch.Tensor] = None
    heatmaps: Optional[torch.Tensor] = None
    boxes: Optional[torch.Tensor] = None
    keypoint_sigma: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def index(self, idx: torch.Tensor) -> "FrameSet":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return FrameSet(*(pick(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def to(self, device) -> "FrameSet":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return FrameSet(*(move(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def flipped(self) -> "FrameSet":
        """Horizontal mirror: normalised x negated, u -> w - u, 3D x negated, left <-> right."""
        perm = torch.as_tensor(flip_permutation(NUM_JOINTS), device=self.inputs.device)
        inputs = self.inputs[:, perm].clone()
        inputs[..., 0] = -inputs[..., 0]
        kp = self.keypoints[:, perm].clone()
        kp[..., 0] = self.image_size[:, None, 0] - kp[..., 0]
        poses = None
        if self.poses is not None:
            poses = self.poses[:, perm].clone()
            poses[..., 0] = -poses[..., 0]
        heatmaps = boxes = None
        if self.heatmaps is not None:
            heatmaps = self.heatmaps[:, perm].flip(-1)
            w = self.image_size[:, 0]
            boxes = torch.stack([w - self.boxes[:, 2], self.boxes[:, 1], w - self.boxes[:, 0], self.boxes[:, 3]], 1)
        sigma = None if self.keypoint_sigma is None else self.keypoint_sigma[:, perm]
        return FrameSet(inputs, kp, self.confidence[:, perm], self.image_size, poses, heatmaps, boxes, sigma)

    def where(self, mask: torch.Tensor, other: "FrameSet") -> "FrameSet":
        """Frame by frame: ``other``'s frame where mask [F] is True, this one's elsewhere (e.g. the mirrored
        frames of an augmentation); every field the two share."""
        def pick(a, b):
            if a is None or b is None:
                return None
            return torch.where(mask.view(-1, *[1] * (a.dim() - 1)).to(a.device), b, a)

        return FrameSet(*(pick(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)))


def encoder_inputs(keypoints: np.ndarray, confidence: np.ndarray, image_size) -> np.ndarray:
    """[T, J, 3] float32: screen-normalised x, y (x in [-1, 1], y scaled by the same factor) and confidence.

    Missing joints (confidence 0) get the mean of the frame's other joints, so the network sees a neutral
    position rather than NaN; the confidence channel tells it the joint is missing.
    """
    w, h = image_size
    kp = keypoints.astype(np.float64) / w * 2.0 - np.array([1.0, h / w])
    return np.concatenate([kp, confidence[..., None]], axis=-1).astype(np.float32)


def fill_missing(keypoints: np.ndarray, confidence: np.ndarray, image_size=None) -> np.ndarray:
    """keypoints [T, J, 2] with NaN / zero-confidence joints replaced by the frame's mean confident joint.

    A frame with no confident joint at all gets the image centre (w/2, h/2) (the origin without image_size).
    The confidence of a filled joint stays 0, which gives it the widest 2D spread in H_K (``keypoint_sigma_max``).
    """
    kp = keypoints.astype(np.float64).copy()
    missing = (confidence <= 0) | ~np.isfinite(kp).all(-1)
    if missing.any():
        present = ~missing[..., None]
        count = present.sum(axis=1, keepdims=True)  # [T, 1, 1]
        total = np.where(present, kp, 0.0).sum(axis=1, keepdims=True)
        centre = np.zeros(2) if image_size is None else np.asarray(image_size, dtype=np.float64) / 2.0
        mean = np.where(count > 0, total / np.maximum(count, 1), centre)  # [T, 1, 2]
        kp = np.where(missing[..., None], mean, kp)
    return kp


def heatmap_std_px(heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per-axis standard deviation [T, J, 2] (pixels) of heatmaps [T, J, Hh, Wh] read as pmfs over the cells of
    boxes [T, 4], a point uniform inside its cell (what H_K draws from a map): var = sum p (c - mean)^2 + cell^2/12."""
    t, j, hh, wh = heatmaps.shape
    p = heatmaps / heatmaps.sum(axis=(-1, -2), keepdims=True)
    cw = (boxes[:, 2] - boxes[:, 0]) / wh                    # [T] cell width, px
    ch = (boxes[:, 3] - boxes[:, 1]) / hh
    xs = (np.arange(wh) + 0.5)[None, None, :] * cw[:, None, None]      # [T, 1, Wh] cell centres from x0
    ys = (np.arange(hh) + 0.5)[None, None, :] * ch[:, None, None]
    px, py = p.sum(-2), p.sum(-1)                            # [T, J, Wh], [T, J, Hh] marginals
    mx, my = (px * xs).sum(-1, keepdims=True), (py * ys).sum(-1, keepdims=True)
    vx = (px * (xs - mx) ** 2).sum(-1) + (cw ** 2 / 12.0)[:, None]
    vy = (py * (ys - my) ** 2).sum(-1) + (ch ** 2 / 12.0)[:, None]
    return np.sqrt(np.stack([vx, vy], axis=-1)).astype(np.float32)


def frames_from_sequences(sequences: Sequence, default_confidence: float, require_poses: bool) -> FrameSet:
    """Concatenate the frames of PoseSequences into one FrameSet (float32, CPU)."""
    parts: dict[str, list] = {k: [] for k in ("inputs", "keypoints", "confidence", "image_size", "poses",
                                              "heatmaps", "boxes", "keypoint_sigma")}
    with_heatmaps = all(s.heatmaps is not None for s in sequences)
    some = sum(s.heatmaps is not None for s in sequences)
    if 0 < some < len(sequences):
        # one FrameSet holds one kind of H_K: keep what the maps say about the spread, and say so
        warnings.warn(f"{some} of {len(sequences)} sequences carry heatmaps and {len(sequences) - some} do not: "
                      "H_K uses the Gaussian for all of them, with the heatmaps' own per-joint, per-axis spread as "
                      "keypoint_sigma where there are heatmaps (their second modes are not kept; heatmaps are used "
                      "as maps only when every sequence has them)", UserWarning, stacklevel=3)
    # the detector's own keypoint spreads, where sequences have them (or heatmaps, in a mix); the others' frames
    # get NaN, which H_K reads as "derive it from the confidence" (each frame says which it has)
    with_sigma = any(getattr(s, "keypoint_sigma", None) is not None for s in sequences) or 0 < some < len(sequences)
    for i, seq in enumerate(sequences):
        t = seq.num_frames
        conf = (seq.confidence if seq.confidence is not None
                else np.full((t, NUM_JOINTS), default_confidence, dtype=np.float32))
        kp = fill_missing(seq.keypoints_2d, conf, seq.image_size)
        parts["inputs"].append(encoder_inputs(kp, conf, seq.image_size))
        parts["keypoints"].append(kp.astype(np.float32))
        parts["confidence"].append(conf.astype(np.float32))
        parts["image_size"].append(np.tile(np.asarray(seq.image_size, dtype=np.float32), (t, 1)))
        if require_poses:
            if seq.poses_3d is None:
                raise ValueError(f"train: sequence {i} has no poses_3d; training needs 3D ground truth "
                                 "(PoseSequence(..., poses_3d=[T, 17, 3] metres))")
            parts["poses"].append(seq.root_relative_poses().astype(np.float32))
        if with_heatmaps:
            parts["heatmaps"].append(np.asarray(seq.heatmaps, dtype=np.float32))
            parts["boxes"].append(np.asarray(seq.heatmap_boxes, dtype=np.float32))
        if with_sigma:
            sigma = getattr(seq, "keypoint_sigma", None)
            if sigma is None and seq.heatmaps is not None and not with_heatmaps:
                sigma = heatmap_std_px(np.asarray(seq.heatmaps, np.float64), np.asarray(seq.heatmap_boxes, np.float64))
            parts["keypoint_sigma"].append(np.full((t, NUM_JOINTS, 2), np.nan, np.float32) if sigma is None
                                           else np.asarray(sigma, dtype=np.float32))
    cat = lambda k: torch.from_numpy(np.concatenate(parts[k])) if parts[k] else None  # noqa: E731
    return FrameSet(cat("inputs"), cat("keypoints"), cat("confidence"), cat("image_size"), cat("poses"),
                    cat("heatmaps"), cat("boxes"), cat("keypoint_sigma"))
