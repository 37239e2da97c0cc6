"""Batched Gaussian-mixture EM in plain PyTorch: the specification, the test oracle and the fallback.

B independent mixtures of M components in D dimensions are fitted at once to samples [B, n, D] (paper Eq. 6).
The steps are written to agree with scikit-learn's ``GaussianMixture`` step for step (same E step, same M step,
same stopping rule), so that this file can be checked against it in float64 to ~1e-10:

E step   log N(x | mu_m, Sigma_m) = -1/2 (D log 2 pi + log det Sigma_m + |L_m^-1 (x - mu_m)|^2),  Sigma_m = L_m L_m^T
         log_resp[i, m] = log pi_m + log N(x_i | m) - logsumexp_m'(...);   ll = mean_i logsumexp_m(...)
M step   n_m = sum_i resp[i, m] + 10 eps;  pi_m = n_m / sum_m' n_m';  mu_m = sum_i resp[i, m] x_i / n_m
         Sigma_m = sum_i resp[i, m] (x_i - mu_m)(x_i - mu_m)^T / n_m + reg I      (full)
         sigma2_m = sum_i resp[i, m] (x_i - mu_m)^2 / n_m + reg                    (diag)
Loop     params = M(resp0); for it in 1..max_iter: ll, resp = E(params); params = M(resp);
         stop when |ll - ll_prev| < tol. The reported log-likelihood is E(final params), as ``score``.

The two-pass covariance (deviations from the new mean) is used instead of scikit-learn's E[x^2] - mu^2 for the
diagonal case: the same value in exact arithmetic, without the cancellation that breaks data far from the origin.
Every function accepts any floating dtype; float64 is the oracle.
"""
from __future__ import annotations

import math

import torch

# Work in chunks over B so that the [chunk, M, n, D] deviations stay around 64 MB in float64.
_CHUNK_ELEMENTS = 1 << 23


def _chunks(batch: int, per_item: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    for start in range(0, batch, step):
        yield slice(start, min(batch, start + step))


def safe_cholesky(cov: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    """Lower Cholesky factors [..., D, D] of symmetric covariances, robust to rounding.

    Where the factorisation fails (a covariance that rounding made indefinite, e.g. float32 with a tiny
    ``reg_covar``), its eigenvalues are clamped to at least ``floor`` and the factorisation is retried:
    the fit continues with the nearest admissible covariance instead of producing NaN.
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    bad = info != 0
    if bool(bad.any()):
        floor_t = torch.as_tensor(floor, dtype=cov.dtype, device=cov.device)
        floor_t = floor_t.expand(cov.shape[:-2])[bad] if floor_t.dim() else floor_t.expand(int(bad.sum()))
        sym = 0.5 * (cov[bad] + cov[bad].transpose(-1, -2))
        evals, evecs = torch.linalg.eigh(sym)
        tiny = torch.finfo(cov.dtype).tiny
        evals = torch.maximum(evals, torch.clamp(floor_t, min=tiny)[..., None])
        fixed = (evecs * evals[..., None, :]) @ evecs.transpose(-1, -2)
        fixed_chol, _ = torch.linalg.cholesky_ex(fixed)
        chol = chol.clone()
        chol[bad] = fixed_chol
    return chol


def component_log_prob(samples: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
                       covariance_type: str) -> torch.Tensor:
    """log N(x_i | mu_m, Sigma_m) [B, n, M] for samples [B, n, D], means [B, M, D],
    covariances [B, M, D, D] (full) or [B, M, D] (diag)."""
    b, n, d = samples.shape
    m = means.shape[1]
    out = samples.new_empty((b, n, m))
    log_2pi = d * math.log(2.0 * math.pi)
    if covariance_type == "diag":
        for sl in _chunks(b, m * n * d):
            diff = samples[sl, :, None, :] - means[sl, None, :, :]  # [b, n, M, D]
            var = covariances[sl, None, :, :]
            maha = (diff * diff / var).sum(-1)
            log_det = torch.log(covariances[sl]).sum(-1)[:, None, :]
            out[sl] = -0.5 * (log_2pi + log_det + maha)
        return out
    chol = safe_cholesky(covariances, 0.0)
    for sl in _chunks(b, m * n * d):
        diff = samples[sl, None, :, :] - means[sl, :, None, :]  # [b, M, n, D]
        # Solve L y = diff^T for every component: y = L^-1 (x - mu).
        y = torch.linalg.solve_triangular(chol[sl], diff.transpose(-1, -2), upper=False)  # [b, M, D, n]
        maha = (y * y).sum(-2)  # [b, M, n]
        log_det = 2.0 * torch.log(torch.diagonal(chol[sl], dim1=-2, dim2=-1)).sum(-1)  # [b, M]
        out[sl] = (-0.5 * (log_2pi + log_det[..., None] + maha)).transpose(1, 2)
    return out


def e_step(samples: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
           covariance_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One E step. Returns log responsibilities [B, n, M] and the mean log-likelihood per mixture [B]."""
    weighted = component_log_prob(samples, means, covariances, covariance_type) + torch.log(weights)[:, None, :]
    log_norm = torch.logsumexp(weighted, dim=-1)  # [B, n]
    return weighted - log_norm[..., None], log_norm.mean(-1)


def m_step(samples: torch.Tensor, resp: torch.Tensor, reg_covar: torch.Tensor,
           covariance_type: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One M step from responsibilities [B, n, M] with per-mixture regularisation reg_covar [B].

    Returns weights [B, M], means [B, M, D], covariances [B, M, D, D] (full) or [B, M, D] (diag).
    """
    b, n, d = samples.shape
    m = resp.shape[-1]
    nk = resp.sum(1) + 10.0 * torch.finfo(resp.dtype).eps  # [B, M]
    means = torch.einsum("bnm,bnd->bmd", resp, samples) / nk[..., None]
    weights = nk / nk.sum(-1, keepdim=True)
    reg = reg_covar.to(samples.dtype)
    if covariance_type == "diag":
        cov = samples.new_empty((b, m, d))
    else:
        cov = samples.new_empty((b, m, d, d))
    for sl in _chunks(b, m * n * d):
        diff = samples[sl, None, :, :] - means[sl, :, None, :]  # [b, M, n, D]
        weighted = diff * resp[sl].transpose(1, 2)[..., None]
        if covariance_type == "diag":
            cov[sl] = (weighted * diff).sum(2) / nk[sl, :, None] + reg[sl, None, None]
        else:
            c = weighted.transpose(-1, -2) @ diff / nk[sl, :, None, None]
            cov[sl] = c + reg[sl, None, None, None] * torch.eye(d, dtype=samples.dtype, device=samples.device)
    return weights, means, cov


def fit(samples: torch.Tensor, resp0: torch.Tensor, reg_covar: torch.Tensor, covariance_type: str,
        max_iter: int, tol: float):
    """EM from initial responsibilities [B, n, M]; each mixture stops on its own.

    Returns (weights, means, covariances, log_likelihood [B], n_iter [B] int32, converged [B] bool).
    """
    b = samples.shape[0]
    weights, means, cov = m_step(samples, resp0, reg_covar, covariance_type)
    lower = torch.full((b,), -math.inf, dtype=samples.dtype, device=samples.device)
    n_iter = torch.zeros(b, dtype=torch.int32, device=samples.device)
    converged = torch.zeros(b, dtype=torch.bool, device=samples.device)
    for it in range(1, max_iter + 1):
        active = ~converged
        if not bool(active.any()):
            break
        # Only the mixtures still running are stepped (gathered, so the cost shrinks as they converge).
        idx = active.nonzero().squeeze(1)
        log_resp, ll = e_step(samples[idx], weights[idx], means[idx], cov[idx], covariance_type)
        w_new, mu_new, cov_new = m_step(samples[idx], log_resp.exp(), reg_covar[idx], covariance_type)
        weights[idx], means[idx], cov[idx] = w_new, mu_new, cov_new
        change = ll - lower[idx]
        lower[idx] = ll
        n_iter[idx] = it
        converged[idx] = change.abs() < tol
    _, final_ll = e_step(samples, weights, means, cov, covariance_type)
    return weights, means, cov, final_ll, n_iter, converged


def mixture_log_prob(samples: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
                     covariance_type: str) -> torch.Tensor:
    """log p(x) [B, n] of samples [B, n, D] under each mixture."""
    weighted = component_log_prob(samples, means, covariances, covariance_type) + torch.log(weights)[:, None, :]
    return torch.logsumexp(weighted, dim=-1)
