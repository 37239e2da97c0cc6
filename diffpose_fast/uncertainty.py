"""Does the spread of the N hypotheses say where the pose is wrong? Calibration measures for ``LiftResult.std``.

Inputs are per-joint predicted spreads ``std`` [..., J] (the RMS distance of the hypotheses to their mean, metres)
and per-joint errors ``error`` [..., J] (the distance of the mean pose to the ground truth, metres), flattened over
frames and joints. All numpy, float64.

- ``spearman``: rank correlation between std and error (1: the spread orders joints exactly by their error).
- ``within(k)``: fraction of joints whose error is at most k times their std. For an isotropic 3D Gaussian error
  with per-axis sigma, std (the RMS 3D distance) is sqrt(3) sigma, and P(|e| <= std) = 0.608, P(|e| <= 2 std) = 0.993;
  these are the values a calibrated spread would give.
- ``reliability_curve``: joints binned by predicted std (quantile bins); per bin the mean std and the RMS error.
  A calibrated spread lies on the diagonal RMS error = std.
- ``fit_spread_scale``: the one factor s that makes s * std calibrated on held-out data (``within(1)`` = 0.608
  exactly on the data it is fitted on); ``DiffPoseLifter.calibrate_spread`` fits and keeps it.
"""
from __future__ import annotations

import math

import numpy as np

# P(chi_3 <= k sqrt(3)) for k = 1, 2: the fractions a perfectly calibrated isotropic Gaussian spread gives.
CALIBRATED_WITHIN = {1: 0.6084, 2: 0.9926}


def _flat(name: str, value) -> np.ndarray:
    arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return arr


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), 0-based."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty_like(x)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(std, error) -> float:
    """Spearman rank correlation between predicted spread and error (NaN if either is constant)."""
    s, e = _flat("std", std), _flat("error", error)
    if s.size != e.size:
        raise ValueError(f"std and error must have the same number of elements, got {s.size} and {e.size}")
    rs, re = _ranks(s), _ranks(e)
    rs -= rs.mean()
    re -= re.mean()
    den = math.sqrt(float((rs * rs).sum() * (re * re).sum()))
    return float((rs * re).sum() / den) if den > 0 else float("nan")


def within(std, error, k: float) -> float:
    """Fraction of joints with error <= k * std."""
    s, e = _flat("std", std), _flat("error", error)
    return float(np.mean(e <= k * s))


def reliability_curve(std, error, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean std per bin, RMS error per bin, count per bin) over ``bins`` quantile bins of the std."""
    s, e = _flat("std", std), _flat("error", error)
    edges = np.quantile(s, np.linspace(0.0, 1.0, bins + 1))
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    keep = counts > 0
    mean_std = np.bincount(idx, weights=s, minlength=bins)[keep] / counts[keep]
    rms_err = np.sqrt(np.bincount(idx, weights=e * e, minlength=bins)[keep] / counts[keep])
    return mean_std, rms_err, counts[keep]


def fit_spread_scale(std, error) -> float:
    """The factor s such that a fraction CALIBRATED_WITHIN[1] (0.608) of joints have error <= s * std.

    The N hypotheses' spread ranks joints by their error but is too small in absolute terms (benchmarks/RESULTS.md:
    12-13 % of joints within one spread instead of 61 %). One factor, fitted on held-out frames, makes "within one
    (scaled) spread" mean what it would for a calibrated isotropic Gaussian error; whether "within two" then also
    matches (0.993) tells whether the error's shape, not only its scale, is right. Matching a quantile rather than
    the mean square keeps a few joints with a tiny spread and a large error from setting the factor.

    Args:
        std: predicted per-joint spreads (metres), any shape; all finite and > 0 (leave the root joint out).
        error: per-joint errors of the mean pose (metres), the same number of elements, finite and >= 0.
    """
    s, e = _flat("std", std), _flat("error", error)
    if s.size != e.size:
        raise ValueError(f"std and error must have the same number of elements, got {s.size} and {e.size}")
    if (s <= 0).any():
        raise ValueError(f"std must be > 0 everywhere (leave out the root joint and N = 1 results), got "
                         f"{int((s <= 0).sum())} values <= 0")
    if (e < 0).any():
        raise ValueError(f"error must be >= 0 (distances), got {int((e < 0).sum())} negative values")
    return float(np.quantile(e / s, CALIBRATED_WITHIN[1]))


def calibration_report(std, error, bins: int = 10) -> dict:
    """All of the above in one dict (std and error in metres; the curve in millimetres)."""
    mean_std, rms_err, counts = reliability_curve(std, error, bins)
    return {
        "spearman": spearman(std, error),
        "within_1std": within(std, error, 1.0),
        "within_2std": within(std, error, 2.0),
        "calibrated_within_1std": CALIBRATED_WITHIN[1],
        "calibrated_within_2std": CALIBRATED_WITHIN[2],
        "curve_std_mm": (mean_std * 1000).tolist(),
        "curve_rms_error_mm": (rms_err * 1000).tolist(),
        "curve_counts": counts.tolist(),
    }
