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
  exactly on the data it is fitted on); the calibration of models saved before ``SpreadCalibration``.
- ``SpreadCalibration``: the per-joint map from (std, confidence) to a calibrated std that ``DiffPoseLifter.fit``
  fits on held-out sequences and ``LiftResult.calibrated_std`` applies.
- ``expected_calibration_error`` and ``coverage_curve``: observed against expected coverage of the central
  p-regions of the calibrated spread read as an isotropic Gaussian (the regression form of a reliability diagram).
- ``per_joint_report``: the measures per joint.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

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


# ------------------------------------------------------------------------------------- calibrated spread
MIN_CALIBRATION_FRAMES = 10     # fewer held-out frames: no calibration (fit warns; calibrate_spread refuses)
PER_JOINT_MIN_FRAMES = 50       # fewer: one map shared by all joints instead of one per joint
TERMS = ("floor", "spread", "confidence")   # the parts of SpreadCalibration's map
STD_FLOOR_M = 1e-3              # a calibrated std is never below 1 mm (a joint whose hypotheses coincide)


def _nnls_small(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative least squares for a handful of columns, exactly: the best of the unconstrained fits on every
    subset of the columns whose coefficients are all >= 0 (2^P - 1 small solves, P <= 3 here)."""
    p = features.shape[1]
    best, best_res = np.zeros(p), float(np.sum(target ** 2))
    for mask in range(1, 2 ** p):
        cols = [i for i in range(p) if mask >> i & 1]
        a = features[:, cols]
        if np.linalg.matrix_rank(a) < len(cols):
            continue
        coef = np.linalg.lstsq(a, target, rcond=None)[0]
        if (coef < 0).any():
            continue
        res = float(np.sum((a @ coef - target) ** 2))
        if res < best_res * (1 - 1e-9):   # a bigger subset must be strictly better
            best, best_res = np.zeros(p), res
            best[cols] = coef
    return best


@dataclasses.dataclass(frozen=True)
class SpreadCalibration:
    """A per-joint map from the hypotheses' spread and the 2D confidence to a calibrated spread (metres).

        v[t, j]   = std[t, j]^2 * N / (N - 1) * (N_fit - 1) / N_fit       (0 when N < 2 or num_samples == 1)
        calibrated_std[t, j] = factor[j] * sqrt(floor[j]^2 + gain[j]^2 v[t, j] + confidence_gain[j]^2 (1 - c[t, j])^2)

    Why this form: the hypotheses' spread ranks joints by error within a joint but is too narrow, and it misses
    the error the encoder makes whatever the noise (a wrist's depth): ``floor`` is that part per joint, ``gain``
    rescales the spread, ``confidence_gain`` lets a low 2D confidence widen the answer where the measurements
    show it does (non-negative least squares on squared errors leaves it 0 where it does not). ``factor`` then
    makes each joint's share within one calibrated std 60.8 % on the fitting data (an isotropic Gaussian's).
    The N / (N - 1) term makes the map hold for other N than the fitted one (the spread of N draws around their
    mean is sqrt((N - 1) / N) of the distribution's). ``num_samples == 1``: the map for sampler "context" (no
    spread: floor and confidence only). The root joint (0) is 0 by construction.

    Arrays are [17] float64; ``frames`` the held-out frames it was fitted on; ``per_joint`` False when there were
    fewer than PER_JOINT_MIN_FRAMES and one map serves every joint.
    """

    num_samples: int
    floor: np.ndarray
    gain: np.ndarray
    confidence_gain: np.ndarray
    factor: np.ndarray
    frames: int
    per_joint: bool

    @classmethod
    def fit(cls, std, error, confidence, num_samples: int, *, terms=TERMS,
            per_joint: Optional[bool] = None) -> "SpreadCalibration":
        """Fit on held-out frames: std, error, confidence [F, J] (metres, metres, [0, 1]; joint 0 the root).

        terms: which of "floor", "spread", "confidence" the map may use (the others stay 0; the default all,
        fewer for ablations); per_joint: None: one map per joint from PER_JOINT_MIN_FRAMES frames on."""
        std = np.asarray(std, np.float64)
        error = np.asarray(error, np.float64)
        conf = np.asarray(confidence, np.float64)
        if std.ndim != 2 or std.shape[1] < 2 or error.shape != std.shape or conf.shape != std.shape:
            raise ValueError(f"SpreadCalibration.fit: std, error and confidence must be [F, J] of one shape, got "
                             f"{list(std.shape)}, {list(error.shape)}, {list(conf.shape)}")
        for name, a in (("std", std), ("error", error), ("confidence", conf)):
            if not np.isfinite(a).all():
                raise ValueError(f"SpreadCalibration.fit: {name} must be finite")
        if (std < 0).any() or (error < 0).any():
            raise ValueError("SpreadCalibration.fit: std and error must be >= 0 (distances)")
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"SpreadCalibration.fit: num_samples must be an int >= 1, got {num_samples!r}")
        frames, joints = std.shape
        if frames < MIN_CALIBRATION_FRAMES:
            raise ValueError(f"SpreadCalibration.fit: needs at least {MIN_CALIBRATION_FRAMES} held-out frames, got "
                             f"{frames}")
        var = std ** 2 if num_samples > 1 else np.zeros_like(std)
        low = (1.0 - np.clip(conf, 0.0, 1.0)) ** 2
        unknown = set(terms) - set(TERMS)
        if unknown or not terms:
            raise ValueError(f"SpreadCalibration.fit: terms must be a non-empty subset of {list(TERMS)}, got "
                             f"{list(terms)}")
        per_joint = frames >= PER_JOINT_MIN_FRAMES if per_joint is None else bool(per_joint)
        use = np.array([t in terms for t in TERMS])
        out = {k: np.zeros(joints) for k in ("floor", "gain", "confidence_gain", "factor")}
        groups = [[j] for j in range(1, joints)] if per_joint else [list(range(1, joints))]
        for cols in groups:
            v, c, e2 = var[:, cols].reshape(-1), low[:, cols].reshape(-1), error[:, cols].reshape(-1) ** 2
            active = use & np.array([True, num_samples > 1, True])   # no spread term without a spread
            if not active.any():   # "spread" alone for N = 1: nothing to scale, the floor stands in
                active = np.array([True, False, False])
            feats = np.stack([np.ones_like(v), v, c], 1)[:, active]
            coef = np.zeros(3)
            coef[active] = _nnls_small(feats, e2)
            a2, b2, c2 = (max(float(x), 0.0) for x in coef)
            model = np.sqrt(np.maximum(a2 + b2 * v + c2 * c, STD_FLOOR_M ** 2))
            q = float(np.quantile(np.sqrt(e2) / model, CALIBRATED_WITHIN[1]))
            q = q if q > 0 else 1.0   # every error 0 (a perfect slice): keep the model as it is
            for j in cols:
                out["floor"][j], out["gain"][j], out["confidence_gain"][j] = math.sqrt(a2), math.sqrt(b2), math.sqrt(c2)
                out["factor"][j] = q
        return cls(int(num_samples), out["floor"], out["gain"], out["confidence_gain"], out["factor"], int(frames),
                   bool(per_joint))

    @classmethod
    def from_scale(cls, scale: float, num_samples: int, joints: int = 17) -> "SpreadCalibration":
        """The one global factor of a model saved by an older version (``fit_spread_scale``): std x scale."""
        ones = np.ones(joints)
        ones[0] = 0.0
        return cls(int(num_samples), np.zeros(joints), ones.copy(), np.zeros(joints), ones * scale, 0, False)

    def apply(self, std, num_samples: int, confidence=None) -> np.ndarray:
        """Calibrated std [T, J] (metres, float64) of a result with spread std [T, J] from num_samples hypotheses
        and 2D confidence [T, J] in [0, 1] (None: 1, a confident detection)."""
        std = np.asarray(std, np.float64)
        if std.ndim != 2 or std.shape[1] != self.floor.size:
            raise ValueError(f"SpreadCalibration.apply: std must be [T, {self.floor.size}], got {list(std.shape)}")
        if num_samples > 1 and self.num_samples > 1:
            var = std ** 2 * (num_samples / (num_samples - 1)) * ((self.num_samples - 1) / self.num_samples)
        else:
            var = np.zeros_like(std)
        low = 0.0 if confidence is None else (1.0 - np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)) ** 2
        model = self.floor ** 2 + self.gain ** 2 * var + self.confidence_gain ** 2 * low
        out = self.factor * np.sqrt(np.maximum(model, STD_FLOOR_M ** 2))
        out[:, 0] = 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "frames": self.frames, "per_joint": self.per_joint,
                **{k: [float(x) for x in getattr(self, k)] for k in ("floor", "gain", "confidence_gain", "factor")}}

    @classmethod
    def from_dict(cls, values: dict, joints: int = 17) -> "SpreadCalibration":
        """Inverse of ``to_dict``; raises ValueError naming the bad field."""
        if not isinstance(values, dict):
            raise ValueError(f"calibration must be a JSON object, got {type(values).__name__}")
        arrays = {}
        for k in ("floor", "gain", "confidence_gain", "factor"):
            v = values.get(k)
            try:
                a = np.asarray(v, np.float64)
            except (TypeError, ValueError):
                a = np.zeros(0)
            if a.shape != (joints,) or not np.isfinite(a).all() or (a < 0).any():
                raise ValueError(f"calibration.{k} must be {joints} finite numbers >= 0, got {v!r:.80}")
            arrays[k] = a
        n, frames = values.get("num_samples"), values.get("frames", 0)
        for name, v in (("num_samples", n), ("frames", frames)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "num_samples" else 0):
                raise ValueError(f"calibration.{name} must be a non-negative int (num_samples >= 1), got {v!r}")
        if not isinstance(values.get("per_joint", False), bool):
            raise ValueError(f"calibration.per_joint must be true or false, got {values.get('per_joint')!r}")
        return cls(n, arrays["floor"], arrays["gain"], arrays["confidence_gain"], arrays["factor"], frames,
                   values.get("per_joint", False))


# ------------------------------------------------------------------------------------ reliability measures
def coverage_curve(calibrated_std, error, levels=None) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed) coverage: for each level p, the share of joints whose error lies inside the central
    p-region of an isotropic 3D Gaussian whose RMS 3D radius is the calibrated std (per-axis sigma = std / sqrt 3;
    radius r_p = sigma * chi_3 quantile p). A calibrated spread lies on the diagonal. Levels default to
    0.05, 0.10, ..., 0.95."""
    s, e = _flat("calibrated_std", calibrated_std), _flat("error", error)
    if s.size != e.size:
        raise ValueError(f"calibrated_std and error must have the same number of elements, got {s.size} and {e.size}")
    levels = np.arange(1, 20) / 20.0 if levels is None else np.asarray(levels, np.float64)
    z = np.divide(e, s / math.sqrt(3.0), out=np.full_like(e, np.inf), where=s > 0)   # error in per-axis sigmas
    cdf = _chi3_cdf(z)    # the level at which each error first falls inside
    observed = np.array([float(np.mean(cdf <= p)) for p in levels])
    return levels, observed


def _chi3_cdf(x: np.ndarray) -> np.ndarray:
    """CDF of the chi distribution with 3 degrees of freedom (the length of a standard 3D Gaussian vector)."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    out = np.ones_like(x)
    xf = x[finite]
    erf = np.vectorize(math.erf)(xf / math.sqrt(2.0)) if xf.size else xf
    out[finite] = erf - np.sqrt(2.0 / math.pi) * xf * np.exp(-xf * xf / 2.0)
    return out


def expected_calibration_error(calibrated_std, error, levels=None) -> float:
    """Mean |observed - expected| coverage over the levels of ``coverage_curve`` (0: calibrated; 0.5: useless)."""
    expected, observed = coverage_curve(calibrated_std, error, levels)
    return float(np.mean(np.abs(observed - expected)))


def per_joint_report(std, error) -> dict[str, list[float]]:
    """Spearman, within 1 / 2 std per joint of std, error [F, J] (the root's entries are NaN)."""
    std, error = np.asarray(std, np.float64), np.asarray(error, np.float64)
    out: dict[str, list[float]] = {"spearman": [], "within_1std": [], "within_2std": []}
    for j in range(std.shape[1]):
        if j == 0:
            for k in out:
                out[k].append(float("nan"))
            continue
        out["spearman"].append(spearman(std[:, j], error[:, j]))
        out["within_1std"].append(within(std[:, j], error[:, j], 1.0))
        out["within_2std"].append(within(std[:, j], error[:, j], 2.0))
    return out


def uncertainty_report(std, error, bins: int = 10) -> dict:
    """``calibration_report`` over the non-root joints of std, error [F, J], plus the expected calibration error,
    the coverage curve and the per-joint measures. Use the calibrated std to judge what a user reads."""
    std, error = np.asarray(std, np.float64), np.asarray(error, np.float64)
    if std.ndim != 2 or std.shape != error.shape or std.shape[1] < 2:
        raise ValueError(f"uncertainty_report: std and error must be [F, J] of one shape, got {list(std.shape)} and "
                         f"{list(error.shape)}")
    s, e = std[:, 1:], error[:, 1:]
    report = calibration_report(s, e, bins)
    levels, observed = coverage_curve(s, e)
    report["ece"] = float(np.mean(np.abs(observed - levels)))
    report["coverage_expected"] = levels.tolist()
    report["coverage_observed"] = observed.tolist()
    report["per_joint"] = per_joint_report(std, error)
    return report


LEFT_ARM = (12, 13)   # Human3.6M-17 left elbow, left wrist


def noise_response(lifter, sequences, joints=LEFT_ARM, noise_px: float = 20.0, confidence: float = 0.3,
                   seed: int = 0, **predict_kwargs) -> dict[str, float]:
    """How the spread answers a detector's trouble on some joints: Gaussian 2D noise of ``noise_px`` (px per axis)
    added to ``joints`` of every frame, with their confidence lowered to at most ``confidence`` (as a detector
    reports a joint it is unsure of). ``lifter`` is anything with ``DiffPoseLifter.predict``; each sequence is
    lifted clean and noisy with the same draws (predict's default generator).

    Returns the mean std over the frames (mm) of those joints and of the other non-root joints, clean and noisy,
    their ratios noisy / clean ("joints_ratio", "others_ratio"), and which std was read ("calibrated" when the
    lifter has a calibration, else "raw").
    """
    from .data.sequence import PoseSequence

    joints = [int(j) for j in joints]
    if not joints or any(not 1 <= j < 17 for j in joints):
        raise ValueError(f"noise_response: joints must be non-root joint indices in 1..16, got {joints}")
    others = [j for j in range(1, 17) if j not in joints]
    rng = np.random.default_rng(seed)
    sums = {k: [] for k in ("joints_clean", "joints_noisy", "others_clean", "others_noisy")}
    which = "raw"
    for seq in ([sequences] if isinstance(sequences, PoseSequence) else list(sequences)):
        kp = np.array(seq.keypoints_2d, np.float64)
        conf = (np.ones(kp.shape[:2]) if seq.confidence is None else np.array(seq.confidence, np.float64))
        kp[:, joints] += rng.normal(scale=noise_px, size=(kp.shape[0], len(joints), 2))
        conf[:, joints] = np.minimum(conf[:, joints], confidence)
        noisy = PoseSequence(kp, seq.poses_3d, seq.image_size, conf, camera=seq.camera, subject=seq.subject,
                             action=seq.action, valid=seq.valid)
        for tag, s in (("clean", seq), ("noisy", noisy)):
            res = lifter.predict(s, **predict_kwargs)
            std = res.std if res.calibrated_std is None else res.calibrated_std
            which = "raw" if res.calibrated_std is None else "calibrated"
            std = np.asarray(std, np.float64)
            sums[f"joints_{tag}"].append(std[:, joints].mean())
            sums[f"others_{tag}"].append(std[:, others].mean())
    out = {f"{k}_mm": float(np.mean(v) * 1000) for k, v in sums.items()}
    out["joints_ratio"] = out["joints_noisy_mm"] / out["joints_clean_mm"]
    out["others_ratio"] = out["others_noisy_mm"] / out["others_clean_mm"]
    out["std"] = which
    return out
