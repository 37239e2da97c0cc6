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


# ------------------------------------------------------------------------------ SpreadCalibration and ECE
from diffpose_fast.uncertainty import (PER_JOINT_MIN_FRAMES, SpreadCalibration, coverage_curve,  # noqa: E402
                                      expected_calibration_error, noise_response, per_joint_report,
                                      uncertainty_report)


def _simulated(frames, seed, floor, gain, conf_gain, n=5):
    """Held-out-like data whose true per-joint error scale is known: per-axis sigma_t,j with
    3 sigma^2 = floor_j^2 + gain_j^2 v + conf_gain_j^2 (1 - c)^2, v the squared spread of n draws."""
    rng = np.random.default_rng(seed)
    true_spread = rng.uniform(0.01, 0.06, size=(frames, 17))
    draws = rng.normal(size=(n, frames, 17, 3)) * (true_spread / np.sqrt(3))[..., None]
    std = np.sqrt(((draws - draws.mean(0)) ** 2).sum(-1).mean(0))      # what LiftResult.std measures
    conf = rng.uniform(0.2, 1.0, size=(frames, 17))
    var3 = floor ** 2 + gain ** 2 * true_spread ** 2 + conf_gain ** 2 * (1 - conf) ** 2
    err = np.linalg.norm(rng.normal(size=(frames, 17, 3)) * np.sqrt(var3 / 3)[..., None], axis=-1)
    std[:, 0] = err[:, 0] = 0.0
    return std, err, conf, np.sqrt(var3)


def test_chi3_coverage_of_a_calibrated_gaussian_is_the_diagonal():
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.01, 0.05, size=100_000)
    err = np.linalg.norm(rng.normal(size=(100_000, 3)) * sigma[:, None], axis=1)
    levels, observed = coverage_curve(np.sqrt(3) * sigma, err)
    np.testing.assert_allclose(observed, levels, atol=0.006)
    assert expected_calibration_error(np.sqrt(3) * sigma, err) < 0.004
    # the chi_3 CDF itself against scipy
    from diffpose_fast.uncertainty import _chi3_cdf

    x = rng.uniform(0, 5, size=50)
    np.testing.assert_allclose(_chi3_cdf(x), stats.chi.cdf(x, 3), atol=1e-12)
    # too narrow by 2: everything falls outside the small regions; ECE large
    assert expected_calibration_error(np.sqrt(3) * sigma / 2, err) > 0.2


def test_spread_calibration_recovers_a_per_joint_map():
    floor = np.r_[0.0, np.linspace(0.02, 0.09, 16)]
    gain = np.r_[0.0, np.linspace(3.0, 1.0, 16)]
    conf_gain = np.r_[0.0, np.where(np.arange(16) % 2 == 0, 0.1, 0.0)]
    std, err, conf, truth = _simulated(4000, 0, floor, gain, conf_gain)
    cal = SpreadCalibration.fit(std, err, conf, num_samples=5)
    assert cal.per_joint and cal.frames == 4000
    # The spread of 5 draws is a noisy measure of the true spread, so least squares moves part of the spread
    # term into the floor (errors in variables): the floors keep their order, not their values. The confidence
    # is measured exactly, so its gain comes back where it is and stays near 0 where it is not.
    assert np.corrcoef(cal.floor[1:], floor[1:])[0, 1] > 0.8
    assert np.all(cal.confidence_gain[1::2] > 0.07) and np.all(cal.confidence_gain[2::2] < 0.04)
    # fresh data: the calibrated std tracks the true error scale and holds 61 % / 99 % of the errors
    std2, err2, conf2, truth2 = _simulated(4000, 1, floor, gain, conf_gain)
    calibrated = cal.apply(std2, 5, conf2)
    assert calibrated.shape == (4000, 17) and np.all(calibrated[:, 0] == 0)
    assert np.median(np.abs(calibrated[:, 1:] / truth2[:, 1:] - 1)) < 0.15
    report = uncertainty_report(calibrated, err2)
    assert report["within_1std"] == pytest.approx(CALIBRATED_WITHIN[1], abs=0.02)
    assert report["within_2std"] > 0.97 and report["ece"] < 0.02
    assert report["spearman"] > uncertainty_report(std2, err2)["spearman"]  # the raw spread knows no floors
    per = per_joint_report(calibrated, err2)
    assert np.isnan(per["spearman"][0]) and all(0.55 < w < 0.67 for w in per["within_1std"][1:])


def test_spread_calibration_small_degenerate_and_bad_input():
    floor, gain, cg = np.r_[0, np.full(16, 0.05)], np.r_[0, np.full(16, 2.0)], np.zeros(17)
    std, err, conf, _ = _simulated(PER_JOINT_MIN_FRAMES - 1, 4, floor, gain, cg)
    shared = SpreadCalibration.fit(std, err, conf, 5)
    assert not shared.per_joint and len(set(shared.factor[1:])) == 1   # one map for every joint
    assert abs(np.mean(err[:, 1:] <= shared.apply(std, 5, conf)[:, 1:] * (1 + 1e-9)) - 0.6084) < 2 / err[:, 1:].size
    # zero spread (all hypotheses equal): the floor carries the map, nothing divides by zero
    zero = SpreadCalibration.fit(np.zeros_like(std), err, conf, 5)
    assert np.all(zero.gain == 0) and np.all(np.isfinite(zero.apply(np.zeros_like(std), 5, conf)))
    # N = 1 (the context map): no spread term even when std is given
    ctx = SpreadCalibration.fit(std, err, conf, 1)
    np.testing.assert_array_equal(ctx.apply(std, 1, conf), ctx.apply(np.zeros_like(std), 1, conf))
    # every error 0: the 1 mm floor, never NaN
    assert np.all(SpreadCalibration.fit(std, np.zeros_like(err), conf, 5).apply(std, 5)[:, 1:] == pytest.approx(1e-3))
    with pytest.raises(ValueError, match="at least 10 held-out frames"):
        SpreadCalibration.fit(std[:9], err[:9], conf[:9], 5)
    with pytest.raises(ValueError, match="one shape"):
        SpreadCalibration.fit(std, err[:, :5], conf, 5)
    with pytest.raises(ValueError, match="finite"):
        SpreadCalibration.fit(np.where(std > 0.03, np.nan, std), err, conf, 5)
    with pytest.raises(ValueError, match="terms"):
        SpreadCalibration.fit(std, err, conf, 5, terms=("depth",))
    with pytest.raises(ValueError, match=r"std must be \[T, 17\]"):
        shared.apply(std[:, :3], 5)


def test_spread_calibration_carries_over_to_other_n_and_round_trips():
    floor, gain, cg = np.r_[0, np.full(16, 0.0)], np.r_[0, np.full(16, 2.0)], np.zeros(17)
    std, err, conf, _ = _simulated(3000, 5, floor, gain, cg, n=5)
    cal = SpreadCalibration.fit(std, err, conf, 5)
    std20, err20, conf20, _ = _simulated(3000, 6, floor, gain, cg, n=20)   # more draws: a wider raw spread
    assert within(cal.apply(std20, 20, conf20)[:, 1:], err20[:, 1:], 1) == pytest.approx(0.608, abs=0.03)
    back = SpreadCalibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(back.apply(std, 5, conf), cal.apply(std, 5, conf))
    bad = cal.to_dict()
    bad["gain"] = bad["gain"][:3]
    with pytest.raises(ValueError, match="calibration.gain"):
        SpreadCalibration.from_dict(bad)
    bad = cal.to_dict()
    bad["num_samples"] = 0
    with pytest.raises(ValueError, match="calibration.num_samples"):
        SpreadCalibration.from_dict(bad)


class _ArmLifter:
    """A stand-in whose calibrated spread grows with each joint's distance from a reference 2D pose."""

    def __init__(self, reference):
        self.reference = reference

    def predict(self, seq, **kwargs):
        from diffpose_fast.lifter import LiftResult

        move = np.linalg.norm(np.nan_to_num(seq.keypoints_2d - self.reference), axis=-1)   # [T, 17] px
        std = 0.02 + 0.001 * move
        std[:, 0] = 0
        zeros = np.zeros(seq.keypoints_2d.shape[:2] + (3,), np.float32)
        return LiftResult(zeros, zeros[None], std, std)


def test_noise_response_sees_the_noisy_joints_only():
    from diffpose_fast.data.sequence import PoseSequence

    rng = np.random.default_rng(7)
    kp = rng.uniform(100, 900, size=(30, 17, 2))
    seq = PoseSequence(kp, image_size=(1000, 1000), confidence=np.full((30, 17), 0.9))
    out = noise_response(_ArmLifter(kp), [seq], joints=(12, 13), noise_px=20.0)
    assert out["std"] == "calibrated" and out["others_ratio"] == pytest.approx(1.0)
    # E|N(0, 20^2 I_2)| = 20 sqrt(pi / 2) = 25 px -> +25 mm on a 20 mm std
    assert out["joints_noisy_mm"] - out["joints_clean_mm"] == pytest.approx(25.07, rel=0.15)
    with pytest.raises(ValueError, match="joints"):
        noise_response(_ArmLifter(kp), [seq], joints=(0,))
