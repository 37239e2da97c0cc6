"""Detector heatmaps in their own layouts to Human3.6M-17 maps: what a top-down 2D detector writes, made H_K's input.

A top-down detector (HRNet, SimpleBaseline, ViTPose, RTMPose ...) writes, per person crop, one map per keypoint of
its layout (COCO-17 for most; Halpe-26 for AlphaPose) over the crop's box in image pixels. ``heatmaps_to_h36m``
reorders them to the H36M-17 joints of ``keypoint_formats`` (the same source keypoints per joint). A joint that is
the mean of several source keypoints (COCO's pelvis = mid-hips, thorax = mid-shoulders, spine = the mean of both,
head = mid-eyes) gets **the distribution of that mean point**: for independent sources a, b with maps p_a, p_b the
midpoint (a + b) / 2 has the density of their convolution, shrunk by 2 about the origin. It is not the product
p_a p_b, which is the distribution of one point that is both a and b, and sharpens the map. A two-peaked hip map
thus gives a two-peaked pelvis map, half as far apart.

On the cell grid of ``heatmaps`` (cell (i, j) centred at x0 + (j + 0.5) w, y0 + (i + 0.5) h): the sum of the cell
indices of n sources runs over 0..n (H - 1); its mean s / n falls on a cell centre or between two, and its mass is
split linearly between the two nearest cells. Moments are exact up to that split (the mean exactly, the variance
plus at most a quarter cell^2).

``simcc_to_heatmaps`` turns RTMPose-style SimCC outputs (one 1-D distribution per axis and keypoint) into maps on
the same grid convention, as the outer product of the two marginals (SimCC models x and y as independent).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from .heatmaps import _check_boxes, _np64   # the heatmap module's input checks, one wording for both
from .keypoint_formats import get_format
from .skeleton import NUM_JOINTS

__all__ = ["HEATMAP_LAYOUTS", "HeatmapInput", "heatmaps_to_h36m", "mean_point_map", "read_heatmap_file",
           "simcc_to_heatmaps"]

HEATMAP_LAYOUTS = ("coco17", "halpe26", "h36m17")
MAX_HEATMAP_CELLS = 1 << 16   # cells per map (256 x 256): beyond, a map is not a heatmap but an image


def _shrink(summed: np.ndarray, n: int, size: int, axis: int) -> np.ndarray:
    """Mass at index s (a sum of n cell indices) moved to position s / n, split linearly between the two
    nearest of ``size`` cells, along ``axis``."""
    s = np.arange(summed.shape[axis], dtype=np.float64) / n
    lo = np.floor(s).astype(int)
    frac = s - lo
    hi = np.minimum(lo + 1, size - 1)
    shape = [1] * summed.ndim
    shape[axis] = -1
    out_shape = list(summed.shape)
    out_shape[axis] = size
    out = np.zeros(out_shape)
    moved = np.moveaxis(out, axis, 0)
    src = np.moveaxis(summed, axis, 0)
    w_lo = (1.0 - frac).reshape((-1,) + (1,) * (summed.ndim - 1))
    w_hi = frac.reshape((-1,) + (1,) * (summed.ndim - 1))
    np.add.at(moved, lo, src * w_lo)
    np.add.at(moved, hi, src * w_hi)
    return np.moveaxis(moved, 0, axis)


def mean_point_map(maps: np.ndarray) -> np.ndarray:
    """The map of the mean of n independent points from their maps [..., n, Hh, Wh] (each normalised to mass 1
    first; an all-zero map counts as uniform): [..., Hh, Wh], mass 1. See the module docstring."""
    maps = np.asarray(maps, np.float64)
    n, hh, wh = maps.shape[-3:]
    total = maps.sum(axis=(-2, -1), keepdims=True)
    maps = np.where(total > 0, maps / np.where(total > 0, total, 1.0), 1.0 / (hh * wh))
    if n == 1:
        return maps[..., 0, :, :]
    fh, fw = n * (hh - 1) + 1, n * (wh - 1) + 1          # the support of the sum of n cell indices
    ph, pw = 1 << int(np.ceil(np.log2(fh))), 1 << int(np.ceil(np.log2(fw)))
    spec = np.prod(np.fft.rfft2(maps, s=(ph, pw)), axis=-3)   # convolution of the n maps
    summed = np.clip(np.fft.irfft2(spec, s=(ph, pw))[..., :fh, :fw], 0.0, None)   # FFT round-off below 0
    out = _shrink(_shrink(summed, n, hh, axis=-2), n, wh, axis=-1)
    return out / out.sum(axis=(-2, -1), keepdims=True)


def heatmaps_to_h36m(heatmaps, boxes, layout: str = "coco17") -> tuple[np.ndarray, np.ndarray]:
    """A detector's heatmaps in its own layout to H36M-17 maps over the same boxes.

    Args:
        heatmaps: [T, K, Hh, Wh], non-negative, any scale (each map is normalised; an all-zero map, a keypoint
            the detector saw nothing of, is read as uniform over the box), K = 17 for "coco17" and "h36m17",
            26 for "halpe26".
        boxes: [T, 4] (x0, y0, x1, y1) pixels: the image region each frame's maps cover (the person crop).
        layout: "coco17" (MMPose / HRNet / ViTPose order, ``keypoint_formats`` "coco"), "halpe26" (AlphaPose),
            "h36m17" (already H36M order: only normalised).

    Returns:
        (heatmaps [T, 17, Hh, Wh] float32, each map summing to 1; boxes [T, 4] float64, the input boxes).
    """
    fn = "heatmaps_to_h36m"
    if layout not in HEATMAP_LAYOUTS:
        raise ValueError(f"{fn}: layout must be one of {list(HEATMAP_LAYOUTS)}, got {layout!r}")
    spec = get_format({"coco17": "coco", "halpe26": "halpe26", "h36m17": "h36m"}[layout])
    hm = _np64(heatmaps, "heatmaps", fn)
    if hm.ndim != 4 or hm.shape[1] != spec.num_keypoints:
        raise ValueError(f"{fn}: heatmaps for layout {layout!r} must have shape [T, {spec.num_keypoints}, Hh, Wh], "
                         f"got {list(hm.shape)}")
    t, _, hh, wh = hm.shape
    if hh < 2 or wh < 2 or hh * wh > MAX_HEATMAP_CELLS:
        raise ValueError(f"{fn}: heatmaps must be between 2 x 2 and {MAX_HEATMAP_CELLS} cells, got {hh} x {wh}")
    if not np.isfinite(hm).all() or (hm < 0).any():
        raise ValueError(f"{fn}: heatmaps must be finite and non-negative (probabilities or scores, not logits)")
    b = _np64(boxes, "boxes", fn)
    _check_boxes(b, t, fn)
    out = np.empty((t, NUM_JOINTS, hh, wh), np.float32)
    for j, src in enumerate(spec.to_h36m):
        if len(src) == 4:   # the mean of four = the mean of two midpoints (spine from shoulders and hips)
            pair = np.stack([mean_point_map(hm[:, list(src[:2])]), mean_point_map(hm[:, list(src[2:])])], axis=1)
            out[:, j] = mean_point_map(pair)
        else:
            out[:, j] = mean_point_map(hm[:, list(src)])
    return out, b


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def _rebin(marginal: np.ndarray, cells: int) -> np.ndarray:
    """[..., B] masses of B bins, bin b covering [b - 0.5, b + 0.5) in bin units over [-0.5, B - 0.5), to
    ``cells`` equal cells over the same interval (mass uniform within a bin): [..., cells]."""
    nb = marginal.shape[-1]
    cdf = np.concatenate([np.zeros(marginal.shape[:-1] + (1,)), np.cumsum(marginal, axis=-1)], axis=-1)
    edges = np.linspace(0.0, float(nb), cells + 1)       # bin-edge units: 0 .. B
    at = np.stack([np.interp(edges, np.arange(nb + 1, dtype=np.float64), row) for row in cdf.reshape(-1, nb + 1)])
    return np.diff(at, axis=-1).reshape(marginal.shape[:-1] + (cells,))


def simcc_to_heatmaps(simcc_x, simcc_y, boxes, split_ratio: float = 2.0, *, logits: bool = True,
                      size: Sequence[int] = (64, 48)) -> tuple[np.ndarray, np.ndarray]:
    """RTMPose-style SimCC outputs to heatmaps on this package's grid.

    Args:
        simcc_x: [T, K, W * split_ratio], simcc_y: [T, K, H * split_ratio]: per keypoint a 1-D distribution
            over sub-pixel bins of the model input (W x H, e.g. 192 x 256); bin b is input coordinate
            b / split_ratio, as RTMPose decodes it.
        boxes: [T, 4] (x0, y0, x1, y1) pixels: the image region the model input covered (input (0, 0) at
            (x0, y0), (W, H) at (x1, y1)).
        split_ratio: bins per input pixel (RTMPose: 2.0).
        logits: the outputs are logits (RTMPose's raw outputs; a softmax per axis makes them distributions),
            else non-negative masses.
        size: (Hh, Wh) of the returned maps; each bin's mass is spread uniformly over its width, then summed
            into the cells.

    Returns:
        (heatmaps [T, K, Hh, Wh] float32 in the detector's keypoint order (``heatmaps_to_h36m`` next), boxes
        [T, 4] float64: the input boxes moved by half a bin so that cell centres fall where RTMPose decodes.)
    """
    fn = "simcc_to_heatmaps"
    sx, sy = _np64(simcc_x, "simcc_x", fn), _np64(simcc_y, "simcc_y", fn)
    if sx.ndim != 3 or sy.ndim != 3 or sx.shape[:2] != sy.shape[:2]:
        raise ValueError(f"{fn}: simcc_x and simcc_y must be [T, K, bins] with the same T and K, got "
                         f"{list(sx.shape)} and {list(sy.shape)}")
    if not (isinstance(split_ratio, (int, float)) and not isinstance(split_ratio, bool) and split_ratio > 0):
        raise ValueError(f"{fn}: split_ratio must be a positive number, got {split_ratio!r}")
    hh, wh = (int(v) for v in size)
    if hh < 2 or wh < 2 or hh * wh > MAX_HEATMAP_CELLS:
        raise ValueError(f"{fn}: size must be between 2 x 2 and {MAX_HEATMAP_CELLS} cells, got {size!r}")
    t = sx.shape[0]
    b = _np64(boxes, "boxes", fn)
    _check_boxes(b, t, fn)
    for name, a in (("simcc_x", sx), ("simcc_y", sy)):
        if not np.isfinite(a).all() or (not logits and (a < 0).any()):
            raise ValueError(f"{fn}: {name} must be finite" + ("" if logits else " and non-negative (or pass "
                                                                                  "logits=True)"))
    px, py = (_softmax(a, -1) if logits else a / np.maximum(a.sum(-1, keepdims=True), 1e-300) for a in (sx, sy))
    mx, my = _rebin(px, wh), _rebin(py, hh)
    maps = (my[..., :, None] * mx[..., None, :]).astype(np.float32)
    # bin b sits at input coordinate b / r, i.e. the bins tile [-0.5 / r, (bins - 0.5) / r) in input pixels
    w_in, h_in = sx.shape[-1] / split_ratio, sy.shape[-1] / split_ratio
    sxp, syp = (b[:, 2] - b[:, 0]) / w_in, (b[:, 3] - b[:, 1]) / h_in     # image pixels per input pixel
    shift_x, shift_y = 0.5 / split_ratio * sxp, 0.5 / split_ratio * syp
    out_boxes = np.stack([b[:, 0] - shift_x, b[:, 1] - shift_y, b[:, 2] - shift_x, b[:, 3] - shift_y], axis=1)
    return maps, out_boxes


# ------------------------------------------------------------------------------------------- heatmap files
HEATMAP_FILE_KEYS = """An npz of plain arrays (read with the safe loader, no pickles), one person over T frames:
    heatmaps  [T, K, Hh, Wh]  non-negative maps in the layout named by ``layout`` (default coco17), and
    boxes     [T, 4]          (x0, y0, x1, y1) pixels: the image region each frame's maps cover;
  or, for RTMPose-style outputs, instead of heatmaps:
    simcc_x [T, K, Bx], simcc_y [T, K, By]   logits (``simcc_logits`` 0 for probabilities),
    split_ratio (scalar, default 2.0), with boxes the region the model input covered;
  optional: layout (a string: coco17 | halpe26 | h36m17), image_size [2] (w, h) pixels."""


@dataclasses.dataclass(frozen=True)
class HeatmapInput:
    """One person's 2D evidence read from a heatmap file, converted to H36M-17.

    heatmaps [T, 17, Hh, Wh] float32 (each map sums to 1) over boxes [T, 4] float64 pixels; keypoints [T, 17, 2]
    pixels and confidence [T, 17] in [0, 1] read from the maps (``heatmaps.heatmap_to_keypoints``, soft-argmax);
    image_size (w, h) pixels or None when the file does not record it.
    """

    heatmaps: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray
    image_size: Optional[tuple[float, float]]


def read_heatmap_file(path, layout: Optional[str] = None) -> HeatmapInput:
    """Read a heatmap file (keys: ``HEATMAP_FILE_KEYS``) and convert it to H36M-17 maps and keypoints.

    ``layout`` overrides the file's own "layout" entry (default coco17). Raises ValueError naming the file and
    the key for anything missing or malformed.
    """
    import os

    from .heatmaps import heatmap_to_keypoints
    from .safe_npz import load_npz

    fn = "read_heatmap_file"
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{fn}: no such file: {path!r}")
    if not path.lower().endswith(".npz"):
        raise ValueError(f"{fn}: {path!r} must be an .npz of arrays (keys: heatmaps or simcc_x/simcc_y, boxes)")
    content = load_npz(path)

    def get(key, required=True):
        if key not in content:
            if required:
                raise ValueError(f"{fn}: {path!r} has no {key!r} array; keys: {sorted(content)} (expected: "
                                 f"heatmaps or simcc_x + simcc_y, boxes; optional layout, image_size, split_ratio)")
            return None
        return np.asarray(content[key])

    if layout is None:
        saved = get("layout", required=False)
        layout = "coco17" if saved is None else str(saved.reshape(-1)[0] if saved.ndim else saved)
    boxes = get("boxes")
    try:
        if "heatmaps" in content:
            maps, boxes = get("heatmaps"), boxes
        elif "simcc_x" in content:
            ratio = get("split_ratio", required=False)
            logits = get("simcc_logits", required=False)
            maps, boxes = simcc_to_heatmaps(get("simcc_x"), get("simcc_y"), boxes,
                                            2.0 if ratio is None else float(ratio),
                                            logits=True if logits is None else bool(logits))
        else:
            raise ValueError(f"{fn}: {path!r} has neither 'heatmaps' nor 'simcc_x'/'simcc_y'; keys: "
                             f"{sorted(content)} (docs/usage.md 'Heatmaps from your detector')")
        maps, boxes = heatmaps_to_h36m(maps, boxes, layout)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{fn}: {path!r}: {exc}") from None
    if maps.shape[0] == 0:
        raise ValueError(f"{fn}: {path!r} holds no frames")
    keypoints, confidence = heatmap_to_keypoints(maps, boxes)
    size = get("image_size", required=False)
    image_size = None
    if size is not None:
        size = np.asarray(size, np.float64).reshape(-1)
        if size.shape != (2,) or not np.isfinite(size).all() or (size <= 0).any():
            raise ValueError(f"{fn}: {path!r}: image_size must be two positive numbers (w, h), got {size.tolist()}")
        image_size = (float(size[0]), float(size[1]))
    return HeatmapInput(maps, boxes, keypoints, confidence, image_size)
