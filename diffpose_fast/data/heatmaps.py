"""Detector-like 2D heatmaps: render them, read keypoints back, and sample pixel positions from them.

A heatmap here is a probability mass function over a grid of Hh x Wh cells laid over an image box
(x0, y0, x1, y1) in pixels, as a top-down detector produces for its person crop. The cell grid is:

    cell (i, j), row i in 0..Hh-1 (down), column j in 0..Wh-1 (right), covers
        x in [x0 + j (x1 - x0) / Wh,  x0 + (j + 1) (x1 - x0) / Wh)
        y in [y0 + i (y1 - y0) / Hh,  y0 + (i + 1) (y1 - y0) / Hh)
    and its centre is (x0 + (j + 0.5) (x1 - x0) / Wh,  y0 + (i + 0.5) (y1 - y0) / Hh).

Rendering gives each cell the probability mass that an isotropic Gaussian (std sigma_px pixels, centred on the
keypoint) puts on the cell's rectangle, renormalised to the box. Integrating over cells, rather than sampling
the density at cell centres, keeps the map exact for any sigma, also for sigma smaller than a cell.
Sampling picks a cell by its mass and a uniform point inside it: the samples follow the piecewise-uniform
density whose cell masses are the heatmap: for a Gaussian well inside the box its mean is the keypoint and
its variance per axis is about sigma^2 + cell^2/6 (binning adds cell^2/12, Sheppard's correction, and the
uniform jitter another cell^2/12).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["render_heatmaps", "heatmap_to_keypoints", "sample_heatmaps", "auto_boxes", "cell_centers"]

_CHUNK_FRAMES = 256  # frames rendered at once: bounds the float64 temporaries


def _np64(x, name: str, fn: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        x = np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{fn}: {name} must be an array or tensor, got {type(x).__name__}") from exc
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {x.dtype}")
    return x.astype(np.float64)


def _check_size(size, fn: str) -> tuple[int, int]:
    try:
        hh, wh = (int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: size must be a pair (Hh, Wh) of ints, got {size!r}") from None
    if hh < 1 or wh < 1:
        raise ValueError(f"{fn}: size must be positive, got {size!r}")
    return hh, wh


def _check_boxes(boxes: np.ndarray, t: int, fn: str) -> None:
    if boxes.shape != (t, 4):
        raise ValueError(f"{fn}: boxes must have shape [T={t}, 4] (x0, y0, x1, y1 pixels), got {boxes.shape}")
    if not np.isfinite(boxes).all() or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
        raise ValueError(f"{fn}: boxes must be finite with x1 > x0 and y1 > y0")


def auto_boxes(keypoints, size: Sequence[int] = (64, 64), margin: float = 0.25,
               min_side_px: Union[float, np.ndarray] = 1.0) -> np.ndarray:
    """Boxes [T, 4] (x0, y0, x1, y1 px) around each frame's finite keypoints [T, J, 2], like a person detector's.

    The box is centred on the keypoints' bounding box, grown by ``margin`` of its size on every side, and
    given the aspect ratio Wh / Hh of the heatmap so that cells are square; its width is at least
    ``min_side_px`` (scalar or [T]). A frame without any finite keypoint raises ValueError.
    """
    kp = _np64(keypoints, "keypoints", "auto_boxes")
    hh, wh = _check_size(size, "auto_boxes")
    if kp.ndim != 3 or kp.shape[-1] != 2:
        raise ValueError(f"auto_boxes: keypoints must have shape [T, J, 2], got {kp.shape}")
    finite = np.isfinite(kp).all(axis=-1)
    empty = ~finite.any(axis=1)
    if empty.any():
        raise ValueError(f"auto_boxes: frame {int(np.argmax(empty))} has no finite keypoint; pass boxes explicitly")
    lo = np.where(finite[..., None], kp, np.inf).min(axis=1)
    hi = np.where(finite[..., None], kp, -np.inf).max(axis=1)
    centre = (lo + hi) / 2
    extent = hi - lo
    aspect = wh / hh  # box width / box height
    width = np.maximum(extent[:, 0], extent[:, 1] * aspect) * (1 + 2 * margin)
    width = np.maximum(width, min_side_px)
    height = width / aspect
    return np.stack([centre[:, 0] - width / 2, centre[:, 1] - height / 2,
                     centre[:, 0] + width / 2, centre[:, 1] + height / 2], axis=1)


def _axis_masses(mu: np.ndarray, sigma: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Gaussian masses of the n equal cells of [lo, hi] along one axis, renormalised: [T, J, n] float64.

    mu, sigma: [T, J]; lo, hi: [T]. NaN mu gives a uniform row (no information).
    """
    edges = lo[:, None] + (hi - lo)[:, None] * (np.arange(n + 1) / n)[None, :]          # [T, n+1]
    z = torch.from_numpy((edges[:, None, :] - mu[..., None]) / sigma[..., None])      # [T, J, n+1]
    za, zb = z[..., :-1], z[..., 1:]
    # Differences of the upper tail right of the mean, of the lower tail left of it: no cancellation far out.
    right = torch.special.ndtr(-za) - torch.special.ndtr(-zb)
    left = torch.special.ndtr(zb) - torch.special.ndtr(za)
    mass = torch.where(za > 0, right, left).clamp_min(0).numpy()
    total = mass.sum(axis=-1, keepdims=True)
    # Beyond ~37 sigma every mass underflows: the limit of the renormalised Gaussian is the nearest cell.
    nearest = np.clip(np.floor((mu - lo[:, None]) / (hi - lo)[:, None] * n), 0, n - 1)
    one_hot = (np.arange(n) == np.nan_to_num(nearest)[..., None]).astype(np.float64)
    mass = np.where(total > 0, mass / np.where(total > 0, total, 1.0), one_hot)
    return np.where(np.isnan(mu)[..., None], 1.0 / n, mass)


def render_heatmaps(keypoints, sigma_px, box=None, size: Sequence[int] = (64, 64),
                    second_mode: Optional[tuple] = None, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Render detector-like heatmaps: one Gaussian pmf per joint, optionally mixed with a second mode.

    Args:
        keypoints: [T, J, 2] pixels, the mode of each map; a NaN keypoint gives a uniform map.
        sigma_px: scalar or [T, J] (anything broadcastable to it), the Gaussian's std in pixels, > 0.
        box: [T, 4] (x0, y0, x1, y1) pixels, or None for ``auto_boxes`` around the keypoints (and the second
            mode's) with ``margin`` and a width of at least 6 sigma.
        size: (Hh, Wh) cells.
        second_mode: None or (weight, keypoints_alt): weight scalar or [T, J] in [0, 1], keypoints_alt
            [T, J, 2] pixels; the map is (1 - weight) G(keypoints) + weight G(keypoints_alt), with the same
            sigma. Models a detector's left/right confusion. A NaN alternate keypoint drops the second mode.
    Returns:
        heatmaps [T, J, Hh, Wh] float32, non-negative, each summing to 1 (up to float32 rounding);
        boxes [T, 4] float64 pixels, the boxes used.
    """
    fn = "render_heatmaps"
    kp = _np64(keypoints, "keypoints", fn)
    if kp.ndim != 3 or kp.shape[-1] != 2 or kp.shape[0] < 1:
        raise ValueError(f"{fn}: keypoints must have shape [T, J, 2] with T >= 1, got {kp.shape}")
    t, j = kp.shape[:2]
    hh, wh = _check_size(size, fn)
    sigma = _np64(sigma_px, "sigma_px", fn)
    try:
        sigma = np.broadcast_to(sigma, (t, j))
    except ValueError:
        raise ValueError(f"{fn}: sigma_px must be a scalar or broadcastable to [T={t}, J={j}], got {sigma.shape}") from None
    if not (np.isfinite(sigma).all() and (sigma > 0).all()):
        raise ValueError(f"{fn}: sigma_px must be positive and finite")
    if np.isinf(kp).any():
        raise ValueError(f"{fn}: keypoints must be finite or NaN, got inf")

    alt = weight = None
    if second_mode is not None:
        try:
            weight, alt = second_mode
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: second_mode must be None or a pair (weight, keypoints_alt)") from None
        alt = _np64(alt, "second_mode keypoints_alt", fn)
        if alt.shape != kp.shape:
            raise ValueError(f"{fn}: second_mode keypoints_alt must have the shape of keypoints {kp.shape}, got {alt.shape}")
        weight = _np64(weight, "second_mode weight", fn)
        try:
            weight = np.broadcast_to(weight, (t, j)).copy()
        except ValueError:
            raise ValueError(f"{fn}: second_mode weight must be a scalar or [T={t}, J={j}], got {weight.shape}") from None
        if not (np.isfinite(weight).all() and (weight >= 0).all() and (weight <= 1).all()):
            raise ValueError(f"{fn}: second_mode weight must lie in [0, 1]")
        weight[np.isnan(alt).any(axis=-1)] = 0.0

    if box is None:
        pts = kp if alt is None else np.concatenate([kp, alt], axis=1)
        min_side = 6.0 * sigma.max(axis=1)
        boxes = auto_boxes(pts, (hh, wh), margin, min_side)
    else:
        boxes = _np64(box, "box", fn)
        _check_boxes(boxes, t, fn)

    out = np.empty((t, j, hh, wh), dtype=np.float32)
    for s in range(0, t, _CHUNK_FRAMES):
        e = min(s + _CHUNK_FRAMES, t)
        b = boxes[s:e]

        def pmf(points):
            px = _axis_masses(points[..., 0], sigma[s:e], b[:, 0], b[:, 2], wh)
            py = _axis_masses(points[..., 1], sigma[s:e], b[:, 1], b[:, 3], hh)
            return py[..., :, None] * px[..., None, :]   # separable: the isotropic Gaussian factorises

        # A keypoint NaN in one coordinate only is treated as missing in both.
        maps = pmf(np.where(np.isnan(kp[s:e]).any(-1, keepdims=True), np.nan, kp[s:e]))
        if alt is not None:
            w = weight[s:e, :, None, None]
            maps = (1 - w) * maps + w * pmf(np.where(np.isnan(alt[s:e]), 0.0, alt[s:e]))
        out[s:e] = maps
    return out, boxes


def cell_centers(boxes, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of the grid cells: xs [T, Wh] and ys [T, Hh] (float64) for boxes [T, 4]."""
    hh, wh = _check_size(size, "cell_centers")
    b = _np64(boxes, "boxes", "cell_centers")
    xs = b[:, :1] + (b[:, 2:3] - b[:, :1]) * ((np.arange(wh) + 0.5) / wh)[None]
    ys = b[:, 1:2] + (b[:, 3:4] - b[:, 1:2]) * ((np.arange(hh) + 0.5) / hh)[None]
    return xs, ys


def heatmap_to_keypoints(heatmaps, boxes, method: str = "soft_argmax") -> tuple[np.ndarray, np.ndarray]:
    """Read keypoints and confidences back from heatmaps [T, J, Hh, Wh] laid over boxes [T, 4] (pixels).

    method "soft_argmax": the argmax cell, refined by the mass-weighted mean of the cell centres in its 3 x 3
    neighbourhood (the usual sub-cell refinement; biased towards the argmax cell's centre by at most half a
    cell); "mean": the mean of the whole pmf (unbiased for a unimodal map, pulled between modes otherwise).
    Maps are normalised by their total mass first (an all-zero map is read as uniform).

    Returns keypoints [T, J, 2] pixels (float32) and confidence [T, J] in [0, 1] (float32): the fraction of
    the mass inside the 3 x 3 neighbourhood of the argmax, high for a sharp peak, low for a broad or split map.
    """
    fn = "heatmap_to_keypoints"
    hm = _np64(heatmaps, "heatmaps", fn)
    if hm.ndim != 4:
        raise ValueError(f"{fn}: heatmaps must have shape [T, J, Hh, Wh], got {hm.shape}")
    if method not in ("soft_argmax", "mean"):
        raise ValueError(f"{fn}: method must be 'soft_argmax' or 'mean', got {method!r}")
    t, j, hh, wh = hm.shape
    b = _np64(boxes, "boxes", fn)
    _check_boxes(b, t, fn)
    total = hm.sum(axis=(2, 3), keepdims=True)
    hm = np.where(total > 0, hm / np.where(total > 0, total, 1.0), 1.0 / (hh * wh))
    xs, ys = cell_centers(b, (hh, wh))

    flat = hm.reshape(t, j, -1).argmax(axis=-1)
    ai, aj = flat // wh, flat % wh
    padded = np.pad(hm, ((0, 0), (0, 0), (1, 1), (1, 1)))
    off = np.arange(-1, 2)
    rows = ai[..., None, None] + off[:, None]            # [T, J, 3, 1], unpadded row index
    cols = aj[..., None, None] + off[None, :]            # [T, J, 1, 3]
    ti = np.arange(t)[:, None, None, None]
    ji = np.arange(j)[None, :, None, None]
    window = padded[ti, ji, rows + 1, cols + 1]          # [T, J, 3, 3]; outside the grid: 0
    conf = window.sum(axis=(2, 3))

    if method == "soft_argmax":
        cw = ((b[:, 2] - b[:, 0]) / wh)[:, None, None, None]
        ch = ((b[:, 3] - b[:, 1]) / hh)[:, None, None, None]
        cx = b[:, 0, None, None, None] + (cols + 0.5) * cw   # valid formula also just outside the grid
        cy = b[:, 1, None, None, None] + (rows + 0.5) * ch
        x = (window * cx).sum(axis=(2, 3)) / conf
        y = (window * cy).sum(axis=(2, 3)) / conf
    else:
        x = (hm.sum(axis=2) * xs[:, None, :]).sum(axis=-1)
        y = (hm.sum(axis=3) * ys[:, None, :]).sum(axis=-1)
    return np.stack([x, y], axis=-1).astype(np.float32), np.clip(conf, 0, 1).astype(np.float32)


def sample_heatmaps(heatmaps, boxes, num_samples: int,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw pixel positions from heatmaps [T, J, Hh, Wh] over boxes [T, 4]: [T, J, S, 2] float32 tensor.

    Each sample picks cell (i, j) with probability proportional to its mass, then a uniform point inside the
    cell, and maps it to pixels: x = x0 + (j + U) (x1 - x0) / Wh, y = y0 + (i + V) (y1 - y0) / Hh, U, V ~ U[0, 1).
    Runs on the device of ``heatmaps`` if it is a tensor (CPU for numpy input); ``generator`` makes it
    reproducible and must live on that device.
    """
    fn = "sample_heatmaps"
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise TypeError(f"{fn}: num_samples must be an int, got {type(num_samples).__name__}")
    if num_samples < 1:
        raise ValueError(f"{fn}: num_samples must be >= 1, got {num_samples}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{fn}: generator must be a torch.Generator or None, got {type(generator).__name__}")
    hm = heatmaps if isinstance(heatmaps, torch.Tensor) else torch.from_numpy(_np64(heatmaps, "heatmaps", fn))
    if hm.ndim != 4:
        raise ValueError(f"{fn}: heatmaps must have shape [T, J, Hh, Wh], got {tuple(hm.shape)}")
    t, j, hh, wh = hm.shape
    b = _np64(boxes, "boxes", fn)
    _check_boxes(b, t, fn)
    probs = hm.reshape(t * j, hh * wh).to(torch.float64)
    if not torch.isfinite(probs).all() or (probs < 0).any() or (probs.sum(-1) <= 0).any():
        raise ValueError(f"{fn}: heatmaps must be finite, non-negative, with positive mass per map")
    idx = torch.multinomial(probs, int(num_samples), replacement=True, generator=generator)   # [T*J, S]
    jitter = torch.rand((t * j, int(num_samples), 2), generator=generator, dtype=torch.float64, device=hm.device)
    col = (idx % wh).to(torch.float64) + jitter[..., 0]
    row = torch.div(idx, wh, rounding_mode="floor").to(torch.float64) + jitter[..., 1]
    bt = torch.from_numpy(b).to(hm.device).repeat_interleave(j, dim=0)                      # [T*J, 4]
    x = bt[:, :1] + col * ((bt[:, 2:3] - bt[:, :1]) / wh)
    y = bt[:, 1:2] + row * ((bt[:, 3:4] - bt[:, 1:2]) / hh)
    return torch.stack([x, y], dim=-1).reshape(t, j, int(num_samples), 2).to(torch.float32)
