"""Schedules, the forward process (Eq. 4, 7), Eq. 9's targets and weights, and the step embedding."""
from __future__ import annotations

import math

import pytest
import torch

from diffpose_fast.diffusion.embedding import sinusoidal_embedding
from diffpose_fast.diffusion.forward import eq9_weight, gmm_forward, posterior_target, standard_forward
from diffpose_fast.diffusion.schedule import DiffusionSchedule

KINDS = ["cosine", "linear"]


def _pose_batch(B=6, J=17, seed=0):
    """h0 of pose scale (~0.5 m), a component mean mu nearby and its noise eps, float64."""
    g = torch.Generator().manual_seed(seed)
    h0 = 0.5 * torch.randn(B, J, 3, generator=g, dtype=torch.float64)
    mu = h0 + 0.1 * torch.randn(B, J, 3, generator=g, dtype=torch.float64)
    eps = 0.05 * torch.randn(B, J, 3, generator=g, dtype=torch.float64)
    return h0, mu, eps


# ----------------------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("K", [1, 5, 50, 1000])
def test_schedule_endpoints_and_monotone(kind, K):
    s = DiffusionSchedule(K, kind)
    ab = s.alpha_bar
    assert ab.dtype == torch.float64 and ab.shape == (K + 1,)
    assert ab[0].item() == 1.0 and ab[-1].item() == 0.0
    assert bool(torch.all(ab[1:] < ab[:-1]))
    torch.testing.assert_close(s.a, ab.sqrt(), rtol=0, atol=0)
    torch.testing.assert_close(s.a ** 2 + s.b ** 2, torch.ones_like(ab), rtol=0, atol=1e-15)
    assert s.b[0].item() == 0.0 and s.b[-1].item() == 1.0


def test_cosine_matches_nichol_dhariwal_formula():
    K, s0 = 50, 0.008
    s = DiffusionSchedule(K, "cosine")
    f = [math.cos((k / K + s0) / (1 + s0) * math.pi / 2) ** 2 for k in range(K + 1)]
    for k in range(1, K):  # endpoints are exact by construction
        assert s.alpha_bar[k].item() == pytest.approx(f[k] / f[0], rel=1e-12)


def test_linear_is_linear_in_noise_variance():
    s = DiffusionSchedule(50, "linear")
    torch.testing.assert_close(1 - s.alpha_bar, torch.arange(51, dtype=torch.float64) / 50)


def test_official_schedule_never_reaches_hk():
    s = DiffusionSchedule.official()
    assert s.num_steps == 51
    assert s.alpha_bar[-1].item() == pytest.approx(0.97233, abs=5e-5)
    # alpha_bar[k] = the official code's alpha_bar at t = k - 1
    betas = torch.linspace(1e-4, 1e-3, 51, dtype=torch.float64)
    torch.testing.assert_close(s.alpha_bar[1:], torch.cumprod(1 - betas, 0))
    assert s.alpha_bar[1].item() == pytest.approx(0.9999)


def test_schedule_config_round_trip_and_validation():
    s = DiffusionSchedule(20, "linear")
    assert torch.equal(DiffusionSchedule(**s.config()).alpha_bar, s.alpha_bar)
    with pytest.raises(ValueError, match="num_steps"):
        DiffusionSchedule(0)
    with pytest.raises(ValueError, match="kind"):
        DiffusionSchedule(50, "quadratic")
    with pytest.raises(ValueError, match="k must lie"):
        s.check_step(21)
    with pytest.raises(ValueError, match="integer"):
        s.check_step(torch.tensor([1.0]))


# ------------------------------------------------------------------------------------------------ forward


@pytest.mark.parametrize("kind", KINDS)
def test_gmm_forward_endpoints(kind):
    s = DiffusionSchedule(50, kind)
    h0, mu, eps = _pose_batch()
    assert torch.equal(gmm_forward(h0, mu, eps, 0, s), h0)
    # alpha_bar_K = 0: h_K = mu + eps, a sample of the component, with no trace of h0
    torch.testing.assert_close(gmm_forward(h0, mu, eps, 50, s), mu + eps, rtol=0, atol=1e-15)
    torch.testing.assert_close(gmm_forward(h0 + 1.0, mu, eps, 50, s), mu + eps, rtol=0, atol=1e-15)


def test_gmm_forward_matches_eq7_per_step_and_per_sample_k():
    s = DiffusionSchedule(50)
    h0, mu, eps = _pose_batch()
    k = torch.tensor([0, 1, 7, 25, 49, 50])
    out = gmm_forward(h0, mu, eps, k, s)
    for i, ki in enumerate(k.tolist()):
        ab = s.alpha_bar[ki].item()
        expect = mu[i] + math.sqrt(ab) * (h0[i] - mu[i]) + math.sqrt(1 - ab) * eps[i]
        torch.testing.assert_close(out[i], expect, rtol=0, atol=1e-14)
        torch.testing.assert_close(gmm_forward(h0, mu, eps, ki, s)[i], expect, rtol=0, atol=1e-14)


def test_gmm_forward_marginal_is_the_gmm_component_at_k_and_interpolates():
    # h_k | h0 ~ N(mu + a_k (h0 - mu), b_k^2 s^2): check mean and std from many eps draws
    s = DiffusionSchedule(50)
    g = torch.Generator().manual_seed(1)
    h0 = torch.full((20000, 1, 3), 0.3, dtype=torch.float64)
    mu = torch.full_like(h0, -0.2)
    eps = 0.1 * torch.randn(h0.shape, generator=g, dtype=torch.float64)
    for k in (10, 30, 50):
        hk = gmm_forward(h0, mu, eps, k, s)
        a, b = s.a[k].item(), s.b[k].item()
        assert hk.mean().item() == pytest.approx(-0.2 + a * 0.5, abs=3e-3)
        assert hk.std().item() == pytest.approx(0.1 * b, rel=2e-2)


def test_standard_forward_is_eq4():
    s = DiffusionSchedule(50)
    h0, _, eps = _pose_batch()
    out = standard_forward(h0, eps, 20, s)
    torch.testing.assert_close(out, s.a[20].item() * h0 + s.b[20].item() * eps, rtol=0, atol=1e-15)


def test_forward_validates_inputs():
    s = DiffusionSchedule(50)
    h0, mu, eps = _pose_batch()
    with pytest.raises(ValueError, match="same shape"):
        gmm_forward(h0, mu[:, :5], eps, 3, s)
    with pytest.raises(ValueError, match=r"\[0, 50\]"):
        gmm_forward(h0, mu, eps, 51, s)
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        gmm_forward(h0, mu, eps, torch.tensor([1, 2]), s)
    with pytest.raises(ValueError, match=r"k must lie in \[1"):
        posterior_target(h0, h0, mu, 0, None, s)
    with pytest.raises(ValueError, match="smaller"):
        posterior_target(h0, h0, mu, 5, 5, s)


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_target_with_true_h0_is_the_same_path(kind):
    s = DiffusionSchedule(50, kind)
    h0, mu, eps = _pose_batch()
    for k in range(1, 51):
        hk = gmm_forward(h0, mu, eps, k, s)
        for k_prev in {k - 1, k // 2, 0}:
            got = posterior_target(h0, hk, mu, k, k_prev, s)
            torch.testing.assert_close(got, gmm_forward(h0, mu, eps, k_prev, s), rtol=0, atol=1e-13)
    assert torch.equal(posterior_target(h0, hk, mu, 50, 0, s), h0)


def test_posterior_target_per_sample_steps():
    s = DiffusionSchedule(50)
    h0, mu, eps = _pose_batch()
    k = torch.tensor([1, 2, 10, 33, 49, 50])
    hk = gmm_forward(h0, mu, eps, k, s)
    got = posterior_target(h0, hk, mu, k, None, s)
    torch.testing.assert_close(got, gmm_forward(h0, mu, eps, k - 1, s), rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_eq9_weight_identity(kind):
    # ||h_{k-1}(x0_hat) - h_{k-1}(h0)||^2 = w_k ||x0_hat - h0||^2 for any x0_hat
    s = DiffusionSchedule(50, kind)
    h0, mu, eps = _pose_batch()
    x0_hat = h0 + 0.07 * torch.randn(h0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for k in range(1, 51):
        hk = gmm_forward(h0, mu, eps, k, s)
        lhs = (posterior_target(x0_hat, hk, mu, k, None, s)
               - posterior_target(h0, hk, mu, k, None, s)).pow(2).sum()
        rhs = eq9_weight(k, s) * (x0_hat - h0).pow(2).sum()
        assert lhs.item() == pytest.approx(rhs.item(), rel=1e-9)
    assert eq9_weight(1, s).item() == pytest.approx(1.0)
    assert eq9_weight(50, s).item() == pytest.approx(s.alpha_bar[49].item())
    w = eq9_weight(torch.arange(1, 51), s)
    assert w.shape == (50,) and bool(torch.all(w >= 0)) and w[0] == eq9_weight(1, s)


# ---------------------------------------------------------------------------------------------- embedding


def test_sinusoidal_embedding_values():
    k = torch.tensor([0, 1, 7, 50])
    e = sinusoidal_embedding(k, 16, dtype=torch.float64)
    assert e.shape == (4, 16) and e.dtype == torch.float64
    assert torch.equal(e[0, :8], torch.zeros(8, dtype=torch.float64))
    assert torch.equal(e[0, 8:], torch.ones(8, dtype=torch.float64))
    # frequencies 10000^(-i/7): the first is 1, the last 1e-4
    assert e[1, 0].item() == pytest.approx(math.sin(1.0))
    assert e[2, 7].item() == pytest.approx(math.sin(7 * 1e-4))
    assert e[3, 8 + 3].item() == pytest.approx(math.cos(50 * 10000 ** (-3 / 7)))
    # distinct steps get distinct embeddings; int and float steps agree
    all_k = sinusoidal_embedding(torch.arange(51), 128)
    assert torch.cdist(all_k, all_k).add(torch.eye(51)).min().item() > 0.1
    torch.testing.assert_close(sinusoidal_embedding(k.double(), 16), sinusoidal_embedding(k, 16))


def test_sinusoidal_embedding_validation():
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding(torch.tensor([1]), 7)
    with pytest.raises(ValueError, match="1-D"):
        sinusoidal_embedding(torch.tensor(3), 8)
