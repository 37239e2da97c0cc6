"""The reference EM (the oracle of every backend) against scikit-learn's GaussianMixture, step by step.

float64 throughout: one E step and one M step must agree to ~1e-10 relative; whole fits started from the same
parameters must end at the same log-likelihood.
"""
import warnings

import numpy as np
import pytest
import torch

sklearn_gm = pytest.importorskip("sklearn.mixture._gaussian_mixture")
from sklearn.mixture import GaussianMixture  # noqa: E402

from diffpose_fast.ops.gmm import reference  # noqa: E402

CASES = [  # (M, D, n, covariance)
    (1, 1, 20, "full"), (3, 2, 60, "full"), (5, 7, 200, "full"), (5, 51, 600, "full"),
    (2, 1, 30, "diag"), (5, 3, 256, "diag"), (9, 20, 300, "diag"), (4, 48, 500, "diag"),
]


def _clustered(rng, m, d, n):
    """n points from m well-separated anisotropic clusters in d dimensions (float64)."""
    centres = rng.normal(scale=4.0, size=(m, d))
    labels = rng.integers(0, m, size=n)
    mix = rng.normal(size=(m, d, d)) * 0.3 + np.eye(d)
    return centres[labels] + np.einsum("nij,nj->ni", mix[labels], rng.normal(size=(n, d)))


def _random_resp(rng, n, m):
    r = rng.random((n, m)) + 0.05
    return r / r.sum(1, keepdims=True)


def _rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("m,d,n,cov", CASES)
def test_m_step_matches_sklearn(m, d, n, cov):
    rng = np.random.default_rng(1000 + m * 100 + d)
    x = _clustered(rng, m, d, n)
    resp = _random_resp(rng, n, m)
    reg = 1e-4
    nk, means_sk, cov_sk = sklearn_gm._estimate_gaussian_parameters(x, resp, reg, cov)
    weights_sk = nk / nk.sum()
    w, mu, c = reference.m_step(torch.from_numpy(x)[None], torch.from_numpy(resp)[None],
                                torch.tensor([reg], dtype=torch.float64), cov)
    assert _rel_err(w[0], weights_sk) < 1e-12
    assert _rel_err(mu[0], means_sk) < 1e-10
    assert _rel_err(c[0], cov_sk) < 1e-10


@pytest.mark.parametrize("m,d,n,cov", CASES)
def test_e_step_matches_sklearn(m, d, n, cov):
    rng = np.random.default_rng(2000 + m * 100 + d)
    x = _clustered(rng, m, d, n)
    nk, means, covs = sklearn_gm._estimate_gaussian_parameters(x, _random_resp(rng, n, m), 1e-3, cov)
    weights = nk / nk.sum()
    prec_chol = sklearn_gm._compute_precision_cholesky(covs, cov)
    weighted = sklearn_gm._estimate_log_gaussian_prob(x, means, prec_chol, cov) + np.log(weights)
    log_norm = np.logaddexp.reduce(weighted, axis=1)
    log_resp_sk = weighted - log_norm[:, None]

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None]  # noqa: E731
    log_resp, ll = reference.e_step(t(x), t(weights), t(means), t(covs), cov)
    assert _rel_err(ll[0].item(), log_norm.mean()) < 1e-10
    # Compare responsibilities (not their logs, which are -inf-ish for far components).
    assert np.max(np.abs(log_resp[0].exp().numpy() - np.exp(log_resp_sk))) < 1e-10
    assert _rel_err(reference.mixture_log_prob(t(x), t(weights), t(means), t(covs), cov)[0], log_norm) < 1e-10


@pytest.mark.parametrize("m,d,n,cov", [(3, 2, 200, "full"), (5, 6, 400, "full"), (4, 5, 300, "diag")])
def test_whole_fit_matches_sklearn_from_the_same_start(m, d, n, cov):
    rng = np.random.default_rng(3000 + m + d)
    x = _clustered(rng, m, d, n)
    resp0 = _random_resp(rng, n, m)
    reg, tol, max_iter = 1e-6, 1e-9, 200
    w0, mu0, c0 = reference.m_step(torch.from_numpy(x)[None], torch.from_numpy(resp0)[None],
                                   torch.tensor([reg], dtype=torch.float64), cov)
    precisions = np.linalg.inv(c0[0].numpy()) if cov == "full" else 1.0 / c0[0].numpy()
    gm = GaussianMixture(m, covariance_type=cov, tol=tol, reg_covar=reg, max_iter=max_iter,
                         weights_init=w0[0].numpy(), means_init=mu0[0].numpy(), precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x)

    w, mu, c, ll, n_iter, converged = reference.fit(
        torch.from_numpy(x)[None], torch.from_numpy(resp0)[None], torch.tensor([reg], dtype=torch.float64),
        cov, max_iter, tol)
    assert abs(ll.item() - gm.score(x)) < 1e-8 * abs(gm.score(x))
    assert bool(converged[0]) == bool(gm.converged_)
    assert abs(int(n_iter[0]) - gm.n_iter_) <= 1  # the same path up to round-off at the stopping test
    order = np.argsort(gm.means_[:, 0])
    assert _rel_err(mu[0].numpy()[np.argsort(mu[0].numpy()[:, 0])], gm.means_[order]) < 1e-6


def test_mixtures_in_a_batch_are_independent():
    """Fitting B mixtures together gives each the result it gets alone, including its own stopping step."""
    rng = np.random.default_rng(7)
    xs = [_clustered(rng, 3, 4, 150) for _ in range(4)]
    xs[2] = xs[2] * 1e-3  # a very different scale in the same batch
    resps = [_random_resp(rng, 150, 3) for _ in range(4)]
    x = torch.from_numpy(np.stack(xs))
    r = torch.from_numpy(np.stack(resps))
    reg = torch.full((4,), 1e-9, dtype=torch.float64)
    batched = reference.fit(x, r, reg, "full", 100, 1e-6)
    for b in range(4):
        alone = reference.fit(x[b:b + 1], r[b:b + 1], reg[b:b + 1], "full", 100, 1e-6)
        for got, want in zip(batched, alone):
            assert torch.equal(got[b:b + 1], want) or torch.allclose(got[b:b + 1].double(), want.double(),
                                                                     rtol=1e-12, atol=0)


def test_log_likelihood_never_decreases():
    """EM's monotonicity: the per-iteration mean log-likelihood is non-decreasing (up to round-off)."""
    rng = np.random.default_rng(11)
    x = torch.from_numpy(_clustered(rng, 5, 3, 400))[None]
    resp = torch.from_numpy(_random_resp(rng, 400, 5))[None]
    reg = torch.tensor([1e-6], dtype=torch.float64)
    w, mu, c = reference.m_step(x, resp, reg, "full")
    previous = -np.inf
    for _ in range(30):
        log_resp, ll = reference.e_step(x, w, mu, c, "full")
        assert ll.item() >= previous - 1e-10
        previous = ll.item()
        w, mu, c = reference.m_step(x, log_resp.exp(), reg, "full")
