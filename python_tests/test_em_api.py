"""The public GMM ops: validation, initialisation, degenerate data, sampling and scoring (every backend)."""
import math

import numpy as np
import pytest
import torch

from diffpose_fast.ops import BackendUnavailableError, em_fit, force_backend, gmm_log_prob, gmm_sample
from diffpose_fast.ops.gmm import api

BACKENDS = ["reference", "native"]


def _usable(backend, samples, m=2, cov="full"):
    reasons = dict(api._BACKENDS)[backend](samples=samples, num_components=m, covariance=cov)
    if reasons:
        pytest.skip(f"{backend} backend cannot run here: {reasons}")


def _two_blobs(gen, b=3, n=400, d=2, dtype=torch.float64):
    x = torch.randn((b, n, d), generator=gen, dtype=dtype)
    x[:, : n // 4] += 8.0  # a quarter of the points in a far blob
    return x


# ------------------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs,exc,needle", [
    (dict(samples=torch.randn(4, 10)), ValueError, "samples"),
    (dict(samples=np.zeros((2, 10, 3))), TypeError, "samples"),
    (dict(samples=torch.zeros(2, 10, 3, dtype=torch.int64)), TypeError, "samples"),
    (dict(samples=torch.randn(2, 10, 3, dtype=torch.float16)), TypeError, "samples"),
    (dict(samples=torch.randn(2, 3, 3), num_components=5), ValueError, "n >= num_components"),
    (dict(samples=torch.randn(2, 10, 3), num_components=0), ValueError, "num_components"),
    (dict(samples=torch.randn(2, 10, 3), num_components=2.0), TypeError, "num_components"),
    (dict(samples=torch.randn(2, 10, 3), reg_covar=-1.0), ValueError, "reg_covar"),
    (dict(samples=torch.randn(2, 10, 3), reg_covar_mode="scaled"), ValueError, "reg_covar_mode"),
    (dict(samples=torch.randn(2, 10, 3), covariance="tied"), ValueError, "covariance"),
    (dict(samples=torch.randn(2, 10, 3), max_iter=-1), ValueError, "max_iter"),
    (dict(samples=torch.randn(2, 10, 3), tol=float("nan")), ValueError, "tol"),
    (dict(samples=torch.randn(2, 10, 3), init="kmeans||"), ValueError, "init"),
    (dict(samples=torch.randn(2, 10, 3), init=torch.randn(2, 3, 3)), ValueError, "init"),
    (dict(samples=torch.randn(2, 10, 3), init_resp=torch.rand(2, 10, 2)), ValueError, "init_resp"),
    (dict(samples=torch.randn(2, 10, 3), backend="cuda"), ValueError, "backend"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, exc, needle):
    kwargs.setdefault("num_components", 2)
    with pytest.raises(exc, match=needle):
        em_fit(**kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_samples_are_refused(bad):
    x = torch.randn(2, 10, 3)
    x[1, 4, 2] = bad
    with pytest.raises(ValueError, match="samples must be finite"):
        em_fit(x, 2)


def test_explicit_backend_that_cannot_run_lists_its_reasons(monkeypatch):
    monkeypatch.setattr(api, "_BACKENDS", (("native", lambda **_: ["pretend: not built"]),
                                           ("reference", api._reference_why_not)))
    with pytest.raises(BackendUnavailableError, match="pretend: not built"):
        em_fit(torch.randn(2, 10, 3), 2, backend="native")
    assert em_fit(torch.randn(2, 10, 3), 2).backend == "reference"  # auto falls through, with no error
    with force_backend("native"), pytest.raises(BackendUnavailableError, match="pretend"):
        em_fit(torch.randn(2, 10, 3), 2)


# ------------------------------------------------------------------------------------------ behaviour

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cov", ["full", "diag"])
def test_fit_recovers_two_blobs(backend, cov):
    gen = torch.Generator().manual_seed(0)
    x = _two_blobs(gen)
    _usable(backend, x, 2, cov)
    fit = em_fit(x, 2, covariance=cov, generator=gen, backend=backend, tol=1e-8, max_iter=200)
    assert fit.backend == backend
    big = fit.weights.argmax(-1)
    for b in range(3):
        assert fit.weights[b, big[b]].item() == pytest.approx(0.75, abs=0.05)
        assert fit.means[b, 1 - big[b]].mean().item() == pytest.approx(8.0, abs=0.3)
        assert fit.means[b, big[b]].abs().max().item() < 0.3
    assert bool(fit.converged.all())
    assert fit.covariances.shape == ((3, 2, 2, 2) if cov == "full" else (3, 2, 2))
    assert torch.allclose(fit.weights.sum(-1), torch.ones(3, dtype=torch.float64))


def test_kmeans_plusplus_is_seeded():
    x = _two_blobs(torch.Generator().manual_seed(1))
    a = em_fit(x, 3, generator=torch.Generator().manual_seed(5), backend="reference")
    b = em_fit(x, 3, generator=torch.Generator().manual_seed(5), backend="reference")
    assert torch.equal(a.means, b.means)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cov", ["full", "diag"])
@pytest.mark.parametrize("case", ["identical", "n_equals_m", "collinear", "huge", "tiny"])
def test_degenerate_inputs_stay_finite(backend, dtype, cov, case):
    gen = torch.Generator().manual_seed(3)
    m, d = 4, 5
    if case == "identical":
        x = torch.full((3, 50, d), 2.5, dtype=dtype)
    elif case == "n_equals_m":
        x = torch.randn((3, m, d), generator=gen, dtype=dtype)
    elif case == "collinear":
        t = torch.randn((3, 60, 1), generator=gen, dtype=dtype)
        x = t * torch.arange(1, d + 1, dtype=dtype)
    elif case == "huge":
        x = torch.randn((3, 80, d), generator=gen, dtype=dtype) * 1e6 + 1e6
    else:
        x = torch.randn((3, 80, d), generator=gen, dtype=dtype) * 1e-6
    _usable(backend, x, m, cov)
    fit = em_fit(x, m, covariance=cov, generator=gen, backend=backend, reg_covar=1e-6, reg_covar_mode="relative")
    for name in ("weights", "means", "covariances", "log_likelihood"):
        value = getattr(fit, name)
        assert bool(torch.isfinite(value).all()), f"{name} not finite for {case}"
    samples, _ = gmm_sample(fit, 16, gen)
    assert bool(torch.isfinite(samples).all())


def test_relative_regularisation_scales_with_the_data():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn((2, 200, 3), generator=gen, dtype=torch.float64)
    x[1] *= 1000.0
    reg = api.regularisation(x, 1e-3, "relative")
    assert reg[1].item() / reg[0].item() == pytest.approx(1e6 * x[1].var(0, unbiased=False).mean().item()
                                                          / 1e6 / x[0].var(0, unbiased=False).mean().item(),
                                                          rel=1e-9)
    identical = torch.full((1, 10, 3), 3.0, dtype=torch.float64)
    assert api.regularisation(identical, 1e-3, "relative").item() == pytest.approx(9e-3)


def test_given_means_and_responsibilities_start_the_fit():
    x = _two_blobs(torch.Generator().manual_seed(6), b=1)
    means = torch.tensor([[[8.0, 8.0], [0.0, 0.0]]], dtype=torch.float64)
    fit = em_fit(x, 2, init=means, max_iter=0, backend="reference")
    assert fit.weights[0, 0].item() == pytest.approx(0.25, abs=0.02)  # the far blob is component 0
    resp = torch.zeros(1, 400, 2, dtype=torch.float64)
    resp[..., 1] = 1.0
    fit = em_fit(x, 2, init_resp=resp, max_iter=0, backend="reference")
    assert fit.weights[0, 1].item() == pytest.approx(1.0, abs=1e-9)  # max_iter=0: the initial M step only


def test_gmm_sample_follows_the_mixture():
    fit = api.GMMFit(
        weights=torch.tensor([[0.2, 0.8]], dtype=torch.float64),
        means=torch.tensor([[[-5.0, 0.0], [5.0, 1.0]]], dtype=torch.float64),
        covariances=torch.tensor([[[[1.0, 0.6], [0.6, 2.0]], [[0.5, 0.0], [0.0, 0.1]]]], dtype=torch.float64),
        log_likelihood=torch.zeros(1), n_iter=torch.zeros(1), converged=torch.ones(1, dtype=torch.bool),
        covariance_type="full")
    s, comp = gmm_sample(fit, 40000, torch.Generator().manual_seed(0))
    frac = (comp == 1).double().mean().item()
    assert frac == pytest.approx(0.8, abs=4 * math.sqrt(0.16 / 40000))
    first = s[0, comp[0] == 0]
    assert torch.allclose(first.mean(0), fit.means[0, 0], atol=0.05)
    assert torch.allclose(torch.cov(first.T), fit.covariances[0, 0], atol=0.08)
    # log_prob integrates to a proper density: compare with a direct two-component evaluation at a point.
    p = torch.tensor([[[0.3, -0.2]]], dtype=torch.float64)
    direct = 0.0
    for k in range(2):
        dist = torch.distributions.MultivariateNormal(fit.means[0, k], fit.covariances[0, k])
        direct += fit.weights[0, k].item() * dist.log_prob(p[0, 0]).exp().item()
    assert gmm_log_prob(fit, p).item() == pytest.approx(math.log(direct), rel=1e-12)


def test_gmm_sample_and_log_prob_validate():
    fit = em_fit(torch.randn(2, 20, 3), 2, backend="reference")
    with pytest.raises(ValueError, match="num_samples"):
        gmm_sample(fit, 0)
    with pytest.raises(TypeError, match="fit"):
        gmm_sample("not a fit", 3)
    with pytest.raises(ValueError, match="x must have shape"):
        gmm_log_prob(fit, torch.randn(2, 5, 4))


def _separated_mixtures(b=6, m=5, d=12, n=300, seed=0):
    """B datasets, each drawn from M well-separated full-covariance Gaussians (some nearly flat directions)."""
    rng = np.random.default_rng(seed)
    out = np.empty((b, n, d))
    for i in range(b):
        means = rng.normal(0, 4, (m, d))
        comp = rng.choice(m, n, p=rng.dirichlet(np.ones(m) * 3))
        a = rng.normal(0, 1, (m, d, d)) / np.sqrt(d)
        out[i] = means[comp] + np.einsum("nij,nj->ni", a[comp], rng.normal(size=(n, d)))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fit_quality_matches_scikit_learn_on_separated_mixtures(backend, dtype):
    """Mean log-likelihood per sample at most 1% below scikit-learn's (its default k-means init, float64),
    averaged over the datasets; init "kmeans" (greedy k-means++ seeds, then Lloyd) as scikit-learn."""
    from sklearn.mixture import GaussianMixture

    x = _separated_mixtures()
    _usable(backend, torch.tensor(x, dtype=dtype), 5, "full")
    theirs = np.mean([GaussianMixture(5, covariance_type="full", max_iter=50, random_state=i, reg_covar=1e-6)
                      .fit(x[i]).score(x[i]) for i in range(len(x))])
    fit = em_fit(torch.tensor(x, dtype=dtype), 5, max_iter=50, reg_covar=1e-6, init="kmeans", backend=backend,
                 generator=torch.Generator().manual_seed(0))
    ours = fit.log_likelihood.double().mean().item()
    assert ours >= theirs - 0.01 * abs(theirs), (ours, theirs)
    assert torch.isfinite(fit.weights).all() and (fit.weights > 1e-3).all()   # no dead component


def test_lloyd_refines_kmeans_plusplus_seeds():
    """Lloyd's iterations never raise the k-means potential of the seeds, and reach a fixed point."""
    x = torch.tensor(_separated_mixtures(b=4, seed=2))
    seeds = api.kmeans_plusplus_centres(x, 5, torch.Generator().manual_seed(1))

    def potential(c):
        return (torch.cdist(x, c) ** 2).min(-1).values.sum(-1)

    refined = api.lloyd_centres(x, seeds)
    assert (potential(refined) <= potential(seeds) + 1e-9).all()
    torch.testing.assert_close(api.lloyd_centres(x, refined, max_iter=1), refined)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dead_component_is_reseeded(backend):
    """Three blobs, a start that gives component 2 no sample: EM alone leaves it dead; the re-seed revives it and
    the fit is better."""
    gen = torch.Generator().manual_seed(9)
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], dtype=torch.float64)
    x = (centres[torch.arange(300) % 3] + 0.5 * torch.randn(300, 2, generator=gen, dtype=torch.float64))[None]
    resp = torch.zeros(1, 300, 3, dtype=torch.float64)
    resp[0, :, 0] = (torch.arange(300) % 3 != 1).double()
    resp[0, :, 1] = (torch.arange(300) % 3 == 1).double()
    _usable(backend, x, 3)
    stuck = em_fit(x, 3, init_resp=resp, backend=backend, reseed_dead=False)
    fixed = em_fit(x, 3, init_resp=resp, backend=backend)
    assert stuck.weights[0, 2] * 300 < 1.0
    assert (fixed.weights[0] > 0.25).all()
    assert fixed.log_likelihood[0] > stuck.log_likelihood[0] + 0.1


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_a_single_denormal_sample_fits_in_float32(backend):
    """Found by the property test: one sample at 3.7e-44 (a float32 denormal) gave a relative regulariser of
    1e-91 and variances that underflowed to zero; the regulariser now has a floor the dtype can hold."""
    x = torch.tensor([[[3.7e-44]]], dtype=torch.float32)
    fit = em_fit(x, 1, covariance="full", max_iter=20, reg_covar=1e-3, reg_covar_mode="relative",
                 generator=torch.Generator().manual_seed(0), backend=backend)
    assert torch.isfinite(fit.log_likelihood).all() and (fit.covariances > 0).all()
    assert fit.means.item() == pytest.approx(3.7e-44, rel=0.05)
