"""The x, y part of H_K (paper Sec. 4.1): the 2D detector's uncertainty as pixel offsets around each joint.
(The draws themselves happen in ``distribution.initial.hk_samples`` from explicit noise.)

Two sources, one output: offsets [B, J, S, 2] in pixels, zero-mean per joint (the location itself comes from the
context encoder; these offsets give H_K the *shape* of the 2D uncertainty).

- Heatmaps [B, J, Hh, Wh] over pixel boxes [B, 4] (what the paper uses): samples drawn from each heatmap as a pmf
  over its cells, uniform inside the cell, minus the heatmap's own mean position (``heatmap_mean_px``).
  Multi-modal maps (left/right confusion) stay multi-modal.
- Keypoints with confidence c in [0, 1] (what most users have): an isotropic Gaussian whose standard deviation,
  as a fraction of the pose's 2D size, is linear in 1 - c:

      sigma_px(c) = size_px * (sigma_min + (sigma_max - sigma_min) * (1 - c))

  with size_px the diagonal of the bounding box of the confident keypoints. c = 1 gives sigma_min (1% of the
  pose size by default, about a CPN error on Human3.6M), c = 0 (missing) gives sigma_max (10%). When the input
  has no confidence, every joint gets ``default_confidence``.
"""
from __future__ import annotations

import torch


def pose_size_px(keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Diagonal of the 2D bounding box of joints with confidence > 0: [B] pixels (at least 1 px).

    keypoints [B, J, 2] pixels (NaN allowed where confidence is 0), confidence [B, J].
    """
    valid = (confidence > 0) & torch.isfinite(keypoints).all(-1)
    big = torch.finfo(keypoints.dtype).max
    lo = torch.where(valid[..., None], keypoints, torch.full_like(keypoints, big)).amin(1)
    hi = torch.where(valid[..., None], keypoints, torch.full_like(keypoints, -big)).amax(1)
    any_valid = valid.any(1)
    diag = torch.where(any_valid, (hi - lo).norm(dim=-1), torch.ones_like(lo[:, 0]))
    return diag.clamp_min(1.0)


def confidence_to_sigma_px(confidence: torch.Tensor, size_px: torch.Tensor, sigma_min: float,
                           sigma_max: float) -> torch.Tensor:
    """Per-joint 2D standard deviation [B, J] in pixels from confidence [B, J] and pose size [B] (see module doc)."""
    frac = sigma_min + (sigma_max - sigma_min) * (1.0 - confidence.clamp(0.0, 1.0))
    return frac * size_px[:, None]


def heatmap_mean_px(heatmaps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Mean position [B, J, 2] (pixels) of heatmaps [B, J, Hh, Wh] read as pmfs over cells of boxes [B, 4]."""
    b, j, hh, wh = heatmaps.shape
    p = heatmaps / heatmaps.sum(dim=(-1, -2), keepdim=True)
    cols = torch.arange(wh, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5
    rows = torch.arange(hh, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5
    mean_col = (p.sum(-2) * cols).sum(-1)  # [B, J], in cells
    mean_row = (p.sum(-1) * rows).sum(-1)
    x0, y0, x1, y1 = (boxes[:, i, None] for i in range(4))
    return torch.stack([x0 + mean_col * (x1 - x0) / wh, y0 + mean_row * (y1 - y0) / hh], dim=-1)
