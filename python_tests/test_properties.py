"""Property-based tests (hypothesis) over the public API: random shapes and values give either a result that keeps
the contract (finite out of finite input) or a TypeError/ValueError, never a crash or a NaN."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diffpose_fast import DiffPoseLifter, PoseSequence, metrics
from diffpose_fast.ops.gmm import em_fit, gmm_log_prob, gmm_sample

from _tiny import tiny

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                derandomize=False)
TINY = tiny()
CLEAR = (TypeError, ValueError)


def _floats(allow_bad: bool, lo: float = -1e4, hi: float = 1e4):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32) if not allow_bad else st.one_of(
        st.floats(lo, hi, width=32), st.sampled_from([np.nan, np.inf, -np.inf]))


# ------------------------------------------------------------------------------------------- PoseSequence

@settings(max_examples=120, **SETTINGS)
@given(data=st.data(), t=st.integers(0, 4), j=st.sampled_from([16, 17, 18]), c=st.sampled_from([1, 2, 3]),
       bad=st.booleans(), with_conf=st.booleans(), with_3d=st.booleans(),
       size=st.tuples(st.floats(-10, 3000), st.floats(-10, 3000)))
def test_pose_sequence_accepts_or_refuses_clearly(data, t, j, c, bad, with_conf, with_3d, size):
    kp = data.draw(hnp.arrays(np.float32, (t, j, c), elements=_floats(bad, -200, 3000)))
    conf = data.draw(hnp.arrays(np.float32, (t, j), elements=st.floats(-0.5, 1.5, width=32))) if with_conf else None
    p3 = data.draw(hnp.arrays(np.float32, (t, j, 3), elements=_floats(bad, -5, 5))) if with_3d else None
    try:
        seq = PoseSequence(kp, poses_3d=p3, image_size=size, confidence=conf)
    except CLEAR:
        return
    assert (t, j, c) == (seq.num_frames, 17, 2) and seq.keypoints_2d.dtype == np.float32
    assert not seq.keypoints_2d.flags.writeable
    assert size[0] > 0 and size[1] > 0
    if conf is not None:
        assert ((seq.confidence >= 0) & (seq.confidence <= 1)).all()
        assert np.isfinite(seq.keypoints_2d[seq.confidence > 0]).all()
    else:
        assert np.isfinite(seq.keypoints_2d).all()
    if p3 is not None:
        assert np.isfinite(seq.root_relative_poses()).all() and (seq.root_relative_poses()[:, 0] == 0).all()
    flipped = seq.flipped()
    assert flipped.num_frames == seq.num_frames


# ----------------------------------------------------------------------------------------------- predict

@pytest.fixture(scope="module")
def lifter():
    return DiffPoseLifter(seed=0, **TINY)


@settings(max_examples=25, **SETTINGS)
@given(data=st.data(), t=st.integers(1, 3), w=st.floats(1.0, 4000.0), h=st.floats(1.0, 4000.0),
       missing=st.floats(0.0, 1.0), sampler=st.sampled_from(["ddim", "ddpm", "context"]), n=st.integers(1, 3))
def test_predict_is_finite_for_any_valid_input(lifter, data, t, w, h, missing, sampler, n):
    u = data.draw(hnp.arrays(np.float64, (t, 17), elements=st.floats(-0.9, 1.9))) * w  # people partly outside
    v = data.draw(hnp.arrays(np.float64, (t, 17), elements=st.floats(-0.9, 1.9))) * h
    conf = data.draw(hnp.arrays(np.float32, (t, 17), elements=st.floats(0.0, 1.0, width=32)))
    drop = data.draw(hnp.arrays(np.bool_, (t, 17), elements=st.booleans())) & (missing > 0.5)
    kp = np.stack([u, v], -1).astype(np.float32)
    kp[drop] = np.nan
    conf[drop] = 0.0
    try:
        res = lifter.predict(kp, image_size=(w, h), confidence=conf, num_samples=n, sampler=sampler,
                             steps=None if sampler == "ddpm" else 1)
    except CLEAR as exc:  # only keypoints outside the image margin may be refused
        assert "pixels of the image" in str(exc)
        return
    n_eff = 1 if sampler == "context" else n
    assert res.samples.shape == (n_eff, t, 17, 3) and res.poses_3d.shape == (t, 17, 3)
    assert np.isfinite(res.samples).all() and np.isfinite(res.std).all()
    assert (res.poses_3d[:, 0] == 0).all()


# ----------------------------------------------------------------------------------------------- GMM ops

@settings(max_examples=80, **SETTINGS)
@given(data=st.data(), b=st.integers(0, 3), n=st.integers(0, 12), d=st.integers(0, 4), m=st.integers(0, 4),
       scale=st.sampled_from([1e-4, 1.0, 1e3]), dup=st.booleans(), cov=st.sampled_from(["full", "diag"]),
       dtype=st.sampled_from([torch.float32, torch.float64]), backend=st.sampled_from(["auto", "reference"]),
       mode=st.sampled_from(["absolute", "relative"]))
def test_em_fit_and_sample_are_finite_or_refuse(data, b, n, d, m, scale, dup, cov, dtype, backend, mode):
    x = data.draw(hnp.arrays(np.float64, (b, n, d), elements=st.floats(-1, 1)))
    if dup and n > 1:
        x[:, 1:] = x[:, :1]  # all samples identical: zero variance
    samples = torch.tensor(x * scale, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    try:
        fit = em_fit(samples, m, covariance=cov, max_iter=20, reg_covar=1e-6 if mode == "absolute" else 1e-3,
                     reg_covar_mode=mode, generator=gen, backend=backend)
    except CLEAR as exc:
        assert b == 0 or n == 0 or d == 0 or m == 0 or n < m, exc
        return
    assert b >= 1 and n >= m >= 1 and d >= 1
    for value in (fit.weights, fit.means, fit.covariances, fit.log_likelihood):
        assert torch.isfinite(value).all()
    torch.testing.assert_close(fit.weights.sum(-1).double(), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-4)
    draws, comps = gmm_sample(fit, 3, torch.Generator().manual_seed(1))
    assert draws.shape == (b, 3, d) and torch.isfinite(draws).all() and ((comps >= 0) & (comps < m)).all()
    assert not torch.isnan(gmm_log_prob(fit, samples)).any()


@settings(max_examples=30, **SETTINGS)
@given(bad=st.sampled_from([np.nan, np.inf, -np.inf]), what=st.sampled_from(["samples", "init"]))
def test_em_fit_refuses_non_finite_input(bad, what):
    x = torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(0))
    init = x[:, :2].clone()
    if what == "samples":
        x[1, 3, 0] = bad
    else:
        init[0, 1, 2] = bad
    with pytest.raises(ValueError, match="finite"):
        em_fit(x, 2, init=init)


# ------------------------------------------------------------------------------------------------ metrics

@settings(max_examples=80, **SETTINGS)
@given(data=st.data(), t=st.integers(1, 4), j=st.integers(1, 17), scale=st.sampled_from([1e-3, 1.0, 1e3]),
       collapse=st.booleans())
def test_metrics_are_finite_and_non_negative(data, t, j, scale, collapse):
    pred = data.draw(hnp.arrays(np.float64, (t, j, 3), elements=st.floats(-1, 1))) * scale
    gt = data.draw(hnp.arrays(np.float64, (t, j, 3), elements=st.floats(-1, 1))) * scale
    if collapse:
        pred[:] = 0.0  # degenerate prediction: all joints in one point
    for fn in (metrics.mpjpe, metrics.p_mpjpe, metrics.n_mpjpe):
        per_frame = fn(pred, gt, reduce="none")
        assert per_frame.shape == (t,) and np.isfinite(per_frame).all() and (per_frame >= 0).all()
        assert np.isclose(fn(pred, gt), per_frame.mean())
    assert metrics.mpjpe(gt, gt) == 0
    if t >= 2:
        assert np.isfinite(metrics.mpjve(pred, gt))
    hyp = np.stack([pred, gt])
    assert metrics.p_best(hyp, gt) == 0


@settings(max_examples=40, **SETTINGS)
@given(a=st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(1, 4)),  # J = 0 gives NaN: see the report
       b=st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(1, 4)))
def test_metrics_refuse_mismatched_shapes(a, b):
    pred, gt = np.zeros(a), np.zeros(b)
    try:
        out = metrics.mpjpe(pred, gt, reduce="none")
    except CLEAR:
        return
    assert a == b and a[-1] == 3 and out.shape == (a[0],) and np.isfinite(out).all()


@settings(max_examples=200, **SETTINGS)
@given(data=st.data(), b=st.integers(1, 2), m=st.integers(1, 4), d=st.integers(1, 4), extra=st.integers(0, 10),
       spread=st.sampled_from([1e-30, 1e-6, 1.0, 1e6, 1e19]), offset=st.sampled_from([0.0, 1.0, 1e8]),
       dups=st.integers(0, 3), cov=st.sampled_from(["full", "diag"]), backend=st.sampled_from(["auto", "reference"]),
       mode=st.sampled_from(["absolute", "relative"]))
def test_em_fit_on_degenerate_data_matches_float64_or_refuses(data, b, m, d, extra, spread, offset, dups, cov,
                                                               backend, mode):
    """Small degenerate problems (few points per component, duplicates, spreads from 1e-30 to 1e19 far from the
    origin): one EM iteration in float32 gives a log-likelihood within 1e-2 (1 + |ll|) of the same iteration in
    float64 on the same data from the same responsibilities (given the variance floor float32 can hold), or
    refuses with a ValueError naming the dtype's range; a long float32 fit stays finite and normalised. (Long fits
    are not compared: on such data EM is chaotic, and rounding can lead float32 to another local optimum.)"""
    n = m + extra
    x = data.draw(hnp.arrays(np.float64, (b, n, d), elements=st.floats(-1, 1)))
    if dups:
        x[:, -dups:] = x[:, :1]            # duplicated points (all of them when dups >= n - 1)
    x32 = torch.tensor(x * spread + offset, dtype=torch.float32)
    x64 = x32.double()                    # the same data, exactly
    r = torch.rand((b, n, m), generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.05
    r = r / r.sum(-1, keepdim=True)
    from diffpose_fast.ops.gmm import api

    reg_covar = 1e-6 if mode == "absolute" else 1e-3
    kw = dict(covariance=cov, max_iter=1, tol=0.0, backend=backend, reseed_dead=False)  # the same path in both
    # float32 cannot hold variances below a few eps of the data's spread: the float64 oracle is given the same floor
    reg = api.regularisation(x32, reg_covar, mode)   # float32's own floor on the regulariser (in float64)
    _, _, scale = api.standardise(x64, reg)
    floor = torch.maximum(reg, api.VARIANCE_FLOOR_EPS * torch.finfo(torch.float32).eps * scale ** 2)
    fits = [em_fit(x64[i:i + 1], m, init_resp=r[i:i + 1], reg_covar=float(floor[i]), **kw) for i in range(b)]
    ref = type(fits[0])(*[torch.cat([getattr(f, k) for f in fits]) for k in
                          ("weights", "means", "covariances", "log_likelihood", "n_iter", "converged")], cov)
    for value in (ref.weights, ref.means, ref.covariances, ref.log_likelihood):
        assert torch.isfinite(value).all()
    try:
        fit = em_fit(x32, m, init_resp=r.float(), reg_covar=reg_covar, reg_covar_mode=mode, **kw)
    except ValueError as exc:   # only where the float64 answer itself lies outside what float32 can hold
        var = ref.covariances if cov == "diag" else torch.diagonal(ref.covariances, dim1=-2, dim2=-1)
        info = torch.finfo(torch.float32)
        assert "float32" in str(exc) and (var.min() < info.tiny or var.max() > info.max / 10), (exc, var)
        return
    for value in (fit.weights, fit.means, fit.covariances, fit.log_likelihood):
        assert torch.isfinite(value).all()
    assert (fit.weights >= 0).all()
    torch.testing.assert_close(fit.weights.sum(-1).double(), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-4)
    ll, ll64 = fit.log_likelihood.double(), ref.log_likelihood
    assert ((ll - ll64).abs() <= 1e-2 * (1 + ll64.abs())).all(), (ll, ll64)
    long = em_fit(x32, m, init_resp=r.float(), reg_covar=reg_covar, reg_covar_mode=mode,
                  **dict(kw, max_iter=20, reseed_dead=True))
    for value in (long.weights, long.means, long.covariances, long.log_likelihood):
        assert torch.isfinite(value).all()
    torch.testing.assert_close(long.weights.sum(-1).double(), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-4)
