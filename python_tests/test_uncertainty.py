"""Calibration measures of the hypotheses' spread, against cases whose answer is known."""
import numpy as np
import pytest
from scipy import stats

from diffpose_fast.uncertainty import (CALIBRATED_WITHIN, calibration_report, fit_spread_scale, reliability_curve,
                                      spearman, within)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 20, size=500).astype(float)  # many ties
    e = s + rng.normal(size=500) * 5
    assert spearman(s, e) == pytest.approx(stats.spearmanr(s, e).statistic, abs=1e-12)
    assert spearman(s, -s) == pytest.approx(-1.0)


def test_a_calibrated_gaussian_spread_hits_the_textbook_fractions():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.005, 0.05, size=200_000)             # per-axis sigma of each joint's error
    err = np.linalg.norm(rng.normal(size=(200_000, 3)) * sigma[:, None], axis=1)
    std = np.sqrt(3) * sigma                                   # RMS 3D distance, what LiftResult.std measures
    assert within(std, err, 1) == pytest.approx(CALIBRATED_WITHIN[1], abs=0.005)
    assert within(std, err, 2) == pytest.approx(CALIBRATED_WITHIN[2], abs=0.005)
    mean_std, rms, counts = reliability_curve(std, err, bins=8)
    np.testing.assert_allclose(rms, mean_std, rtol=0.03)       # on the diagonal
    assert counts.sum() == 200_000
    assert spearman(std, err) > 0.3


def test_an_overconfident_spread_is_exposed():
    rng = np.random.default_rng(2)
    sigma = rng.uniform(0.01, 0.02, size=50_000)
    err = np.linalg.norm(rng.normal(size=(50_000, 3)) * sigma[:, None], axis=1)
    report = calibration_report(np.sqrt(3) * sigma / 4, err)   # spread 4x too small
    assert report["within_1std"] < 0.05
    assert all(r > 3 * s for r, s in zip(report["curve_rms_error_mm"], report["curve_std_mm"]))


def test_bad_input():
    with pytest.raises(ValueError, match="std"):
        spearman([], [])
    with pytest.raises(ValueError, match="same number"):
        spearman([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        within([np.nan], [1.0], 1)


def test_fit_spread_scale_recovers_the_missing_factor_from_held_out_data():
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.005, 0.05, size=100_000)
    err = np.linalg.norm(rng.normal(size=(100_000, 3)) * sigma[:, None], axis=1)
    spread = np.sqrt(3) * sigma / 4                            # 4x overconfident, as a collapsed sampler is
    fit, check = slice(0, None, 2), slice(1, None, 2)
    scale = fit_spread_scale(spread[fit], err[fit])
    assert scale == pytest.approx(4.0, rel=0.02)
    assert within(spread[fit] * scale, err[fit], 1) == pytest.approx(CALIBRATED_WITHIN[1], abs=1e-4)  # by construction
    assert within(spread[check] * scale, err[check], 1) == pytest.approx(CALIBRATED_WITHIN[1], abs=0.01)
    assert within(spread[check] * scale, err[check], 2) == pytest.approx(CALIBRATED_WITHIN[2], abs=0.01)


def test_fit_spread_scale_refuses_bad_input():
    with pytest.raises(ValueError, match="std must be > 0"):
        fit_spread_scale([0.0, 0.1], [0.1, 0.1])
    with pytest.raises(ValueError, match="error must be >= 0"):
        fit_spread_scale([0.1, 0.1], [0.1, -0.1])
    with pytest.raises(ValueError, match="same number"):
        fit_spread_scale([0.1, 0.1], [0.1])
    with pytest.raises(ValueError, match="finite"):
        fit_spread_scale([0.1, np.inf], [0.1, 0.1])
