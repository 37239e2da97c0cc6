"""Public batched GMM ops: ``em_fit``, ``gmm_sample``, ``gmm_log_prob``.

Validation happens here, once, with messages that name the argument; the backends assume valid inputs.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Union

import torch

from .._dispatch import select_backend
from . import reference

COVARIANCE_TYPES = ("full", "diag")
MAX_DRAW_ELEMENTS = 1 << 28          # values gmm_sample returns per call (1 GiB of float32)
INIT_METHODS = ("kmeans", "kmeans++", "random")
VARIANCE_FLOOR_EPS = 3.0   # variances at least 3 eps of the dtype times each fit's squared spread: lower lets float32
#                            rounding of nearly flat directions show (collinear data), higher costs fit quality
KMEANS_MAX_ITER = 100   # Lloyd iterations of init="kmeans" at most (scikit-learn's KMeans default is 300)


@dataclasses.dataclass(frozen=True)
class GMMFit:
    """B fitted Gaussian mixtures of M components in D dimensions.

    weights [B, M] (rows sum to 1), means [B, M, D], covariances [B, M, D, D] (``full``) or [B, M, D] (``diag``,
    the variances), log_likelihood [B] (mean log-density of the fitted samples, as scikit-learn's ``score``),
    n_iter [B] (EM iterations run), converged [B] (stopped on ``tol`` before ``max_iter``), and the backend used.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    log_likelihood: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor
    covariance_type: str
    backend: str = "reference"

    @property
    def num_components(self) -> int:
        return self.weights.shape[1]

    @property
    def dim(self) -> int:
        return self.means.shape[2]

    def sample(self, num_samples: int, generator: torch.Generator | None = None):
        return gmm_sample(self, num_samples, generator)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return gmm_log_prob(self, x)

    def cholesky(self) -> torch.Tensor:
        """Per-component factors: lower Cholesky [B, M, D, D] (full) or standard deviations [B, M, D] (diag)."""
        if self.covariance_type == "diag":
            return self.covariances.sqrt()
        return reference.safe_cholesky(self.covariances, 0.0)


# ----------------------------------------------------------------------------------------------- validation

def _check_tensor(name: str, value, op: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating-point tensor (float32 or float64), got {value.dtype}")
    return value


def _check_finite(name: str, value: torch.Tensor, op: str) -> None:
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{op}: {name} must be finite, got {bad} NaN/inf value(s)")


def _check_int(name: str, value, op: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return value


def _check_nonneg_float(name: str, value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{op}: {name} must be a finite number >= 0, got {value}")
    return float(value)


# --------------------------------------------------------------------------------------- initialisation

def _hard_assignment(samples: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """One-hot responsibilities [B, n, M] assigning each sample to its nearest centre (ties: lowest index)."""
    dist = torch.cdist(samples, centres)  # [B, n, M]
    labels = dist.argmin(-1)
    return torch.nn.functional.one_hot(labels, centres.shape[1]).to(samples.dtype)


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Indices [..., S] drawn from unnormalised non-negative ``weights`` [..., n] by uniforms u [..., S] in [0, 1)."""
    cdf = weights.to(torch.float64).cumsum(-1)
    idx = torch.searchsorted(cdf, u.to(cdf.device, torch.float64) * cdf[..., -1:], right=True)
    return idx.clamp_(max=weights.shape[-1] - 1)


def kmeans_plusplus_from_uniforms(samples: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """k-means++ seeding (D^2 sampling) of every mixture at once: centres [B, M, D] drawn from samples [B, n, D]
    by uniforms [B, M] in [0, 1) (one per centre).

    The first centre is uniform over the samples; each next one is drawn with probability proportional to the
    squared distance to the nearest centre so far; when every distance is zero (e.g. all samples identical) it is
    drawn uniformly instead, so identical samples need no special case and nothing divides by zero.
    """
    b, n, _ = samples.shape
    u = uniforms.to(samples.device)
    rows = torch.arange(b, device=samples.device)
    uniform = torch.ones((b, n), dtype=torch.float64, device=samples.device)
    centres = [samples[rows, inverse_cdf(uniform, u[:, :1]).squeeze(1)]]
    d2 = ((samples - centres[0][:, None, :]) ** 2).sum(-1).to(torch.float64)
    for m in range(1, u.shape[1]):
        w = torch.where(d2.sum(-1, keepdim=True) > 0, d2, uniform)
        centres.append(samples[rows, inverse_cdf(w, u[:, m:m + 1]).squeeze(1)])
        d2 = torch.minimum(d2, ((samples - centres[-1][:, None, :]) ** 2).sum(-1).to(torch.float64))
    return torch.stack(centres, 1)


def lloyd_centres(samples: torch.Tensor, centres: torch.Tensor, max_iter: int = KMEANS_MAX_ITER) -> torch.Tensor:
    """k-means (Lloyd) from initial centres [B, M, D] on samples [B, n, D], every mixture at once, in float64:
    assign each sample to its nearest centre, move each centre to its samples' mean (a centre left without
    samples stays where it was), until no assignment changes or ``max_iter``. Returns centres [B, M, D]."""
    x = samples.double()
    c = centres.double().clone()
    b, n, _ = x.shape
    m = c.shape[1]
    labels = None
    for _ in range(max_iter):
        new = torch.cdist(x, c).argmin(-1)                                   # [B, n]
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        one_hot = torch.nn.functional.one_hot(labels, m).double()            # [B, n, M]
        counts = one_hot.sum(1)                                              # [B, M]
        sums = one_hot.transpose(1, 2) @ x                                   # [B, M, D]
        c = torch.where(counts[..., None] > 0, sums / counts.clamp_min(1)[..., None], c)
    return c.to(samples.dtype)


def kmeans_plusplus_centres(samples: torch.Tensor, num_components: int,
                            generator: torch.Generator | None) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii's D^2 sampling with 2 + log M candidates per centre, the
    one that lowers the k-means potential most kept, as scikit-learn does) with uniforms drawn from
    ``generator``: centres [B, M, D]."""
    b, n, _ = samples.shape
    trials = 2 + int(math.log(num_components)) if num_components > 1 else 1
    u = torch.rand((b, num_components, trials), generator=generator, dtype=torch.float64).to(samples.device)
    x = samples.double()
    rows = torch.arange(b, device=samples.device)
    uniform = torch.ones((b, n), dtype=torch.float64, device=samples.device)
    centres = [x[rows, inverse_cdf(uniform, u[:, 0, :1]).squeeze(1)]]
    d2 = ((x - centres[0][:, None, :]) ** 2).sum(-1)                                   # [B, n]
    for m in range(1, num_components):
        w = torch.where(d2.sum(-1, keepdim=True) > 0, d2, uniform)
        cand = inverse_cdf(w, u[:, m])                                                  # [B, L]
        cand_x = torch.gather(x, 1, cand[..., None].expand(-1, -1, x.shape[-1]))       # [B, L, D]
        cand_d2 = torch.minimum(d2[:, None, :], torch.cdist(cand_x, x) ** 2)           # [B, L, n]
        best = cand_d2.sum(-1).argmin(-1)                                              # [B]
        centres.append(cand_x[rows, best])
        d2 = cand_d2[rows, best]
    return torch.stack(centres, 1).to(samples.dtype)


def initial_responsibilities(samples: torch.Tensor, num_components: int, init, init_resp,
                             generator: torch.Generator | None, op: str = "em_fit") -> torch.Tensor:
    """Responsibilities [B, n, M] to start EM from, validated (see ``em_fit``)."""
    b, n, d = samples.shape
    m = num_components
    if init_resp is not None:
        init_resp = _check_tensor("init_resp", init_resp, op)
        if tuple(init_resp.shape) != (b, n, m):
            raise ValueError(f"{op}: init_resp must have shape [B, n, M] = {[b, n, m]}, got {list(init_resp.shape)}")
        _check_finite("init_resp", init_resp, op)
        if bool((init_resp < 0).any()) or not torch.allclose(init_resp.sum(-1).double(),
                                                              torch.ones((b, n), dtype=torch.float64,
                                                                         device=init_resp.device), atol=1e-5):
            raise ValueError(f"{op}: init_resp must be non-negative with rows summing to 1 over the M components")
        return init_resp.to(device=samples.device, dtype=samples.dtype)
    if isinstance(init, torch.Tensor):
        means = _check_tensor("init", init, op)
        if tuple(means.shape) != (b, m, d):
            raise ValueError(f"{op}: init given as means must have shape [B, M, D] = {[b, m, d]}, got {list(means.shape)}")
        _check_finite("init", means, op)
        return _hard_assignment(samples, means.to(device=samples.device, dtype=samples.dtype))
    if init == "kmeans++":
        return _hard_assignment(samples, kmeans_plusplus_centres(samples, m, generator))
    if init == "kmeans":
        return _hard_assignment(samples, lloyd_centres(samples, kmeans_plusplus_centres(samples, m, generator)))
    if init == "random":
        # scikit-learn's "random": uniform draws normalised over components.
        r = torch.rand((b, n, m), generator=generator, dtype=torch.float64)
        return (r / r.sum(-1, keepdim=True)).to(device=samples.device, dtype=samples.dtype)
    raise ValueError(f"{op}: init must be one of {list(INIT_METHODS)} or a means tensor [B, M, D], got {init!r}")


def regularisation(samples: torch.Tensor, reg_covar: float, reg_covar_mode: str) -> torch.Tensor:
    """Per-mixture diagonal regulariser [B] (float64 for precision, cast by the backends).

    ``absolute``: reg_covar as is (scikit-learn's meaning). ``relative``: reg_covar times the mixture's data
    scale, the mean per-dimension variance of its samples; when that is zero (all samples identical) the mean
    squared value is used, and 1 when that is zero too, so the covariances stay positive definite; and never below
    1024 times the samples' dtype's smallest normal number, so that a variance cannot underflow to zero in that
    dtype (a single sample at 1e-44 in float32 has a mean square of 1e-88).
    """
    b = samples.shape[0]
    if reg_covar_mode == "absolute":
        return torch.full((b,), reg_covar, dtype=torch.float64, device=samples.device)
    x = samples.double()
    scale = x.var(dim=1, unbiased=False).mean(-1) if samples.shape[1] > 1 else torch.zeros(b, dtype=torch.float64,
                                                                                          device=samples.device)
    fallback = (x * x).mean(dim=(1, 2))
    scale = torch.where(scale > 0, scale, torch.where(fallback > 0, fallback, torch.ones_like(fallback)))
    floor = 1024.0 * float(torch.finfo(samples.dtype).tiny) if samples.dtype.is_floating_point else 0.0
    return torch.clamp(reg_covar * scale, min=floor)


# ------------------------------------------------------------------------------------------------ backends

def _reference_why_not(samples: torch.Tensor, num_components: int, covariance: str) -> list:
    return []


def _native_why_not(samples: torch.Tensor, num_components: int, covariance: str) -> list:
    try:
        from . import native
    except ImportError as exc:
        return [f"native wrapper unavailable: {exc}"]
    return native.why_not(samples, num_components, covariance)


_BACKENDS = (("native", _native_why_not), ("reference", _reference_why_not))


def _backend_module(name: str):
    if name == "native":
        from . import native

        return native
    return reference


def em_fit(samples: torch.Tensor, num_components: int = 5, *, covariance: str = "full", max_iter: int = 100,
           tol: float = 1e-3, reg_covar: float = 1e-6, reg_covar_mode: str = "absolute",
           init: Union[str, torch.Tensor] = "kmeans", init_resp: torch.Tensor | None = None,
           generator: torch.Generator | None = None, backend: str = "auto", reseed_dead: bool = True) -> GMMFit:
    """Fit B independent Gaussian mixtures by EM (paper Eq. 6), one per row of ``samples``.

    Args:
        samples: [B, n, D] float32/float64, finite, n >= num_components (e.g. N_GMM poses drawn from H_K per
            training sample: D = 48 whole-pose, or D = 3 per joint with B = batch x joints).
        num_components: M >= 1.
        covariance: "full" ([B, M, D, D]) or "diag" ([B, M, D]).
        max_iter: EM iterations at most (>= 0; 0 returns the initial M step).
        tol: stop a mixture when its mean log-likelihood changes by less than this (scikit-learn's rule).
        reg_covar: added to every covariance diagonal; ``reg_covar_mode`` "absolute" (as is) or "relative"
            (times the data's scale, see ``regularisation``).
        init: "kmeans" (k-means++ seeds refined by Lloyd's k-means, then each sample to its nearest centre:
            scikit-learn's default), "kmeans++" (seeded D^2 sampling, then each sample to its nearest seed),
            "random" (random soft responsibilities), or initial means [B, M, D] (each sample to its nearest).
        init_resp: initial responsibilities [B, n, M] (rows sum to 1); overrides ``init``. With these, the fit
            starts exactly where scikit-learn does from the same responsibilities.
        generator: torch.Generator for the initialisation (CPU generator).
        backend: "auto", "native" (C++/OpenMP on CPU, CUDA on GPU) or "reference" (plain PyTorch).
        reseed_dead: fit a mixture again, once, when a component ends with less than one sample's worth of
            responsibility, its dead components restarted at the worst-explained samples; kept if better
            (not with max_iter=0, which returns the initial M step as it is).

    Returns:
        GMMFit with parameters in the dtype and on the device of ``samples``.
    """
    op = "em_fit"
    samples = _check_tensor("samples", samples, op)
    if samples.dim() != 3:
        raise ValueError(f"{op}: samples must have shape [B, n, D], got {samples.dim()} dimension(s) "
                         f"{list(samples.shape)}")
    if samples.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: samples must be float32 or float64, got {samples.dtype}")
    m = _check_int("num_components", num_components, op, 1)
    b, n, d = samples.shape
    if b < 1 or d < 1:
        raise ValueError(f"{op}: samples must have B >= 1 and D >= 1, got shape {list(samples.shape)}")
    if n < m:
        raise ValueError(f"{op}: samples must have n >= num_components={m} samples per mixture, "
                         f"got shape {list(samples.shape)}")
    _check_finite("samples", samples, op)
    if covariance not in COVARIANCE_TYPES:
        raise ValueError(f"{op}: covariance must be one of {list(COVARIANCE_TYPES)}, got {covariance!r}")
    max_iter = _check_int("max_iter", max_iter, op, 0)
    tol = _check_nonneg_float("tol", tol, op)
    reg_covar = _check_nonneg_float("reg_covar", reg_covar, op)
    if reg_covar_mode not in ("absolute", "relative"):
        raise ValueError(f"{op}: reg_covar_mode must be 'absolute' or 'relative', got {reg_covar_mode!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{op}: generator must be a torch.Generator or None, got {type(generator).__name__}")

    samples = samples.contiguous()
    name = select_backend(op, backend, _BACKENDS, samples=samples, num_components=m, covariance=covariance)
    reg = regularisation(samples, reg_covar, reg_covar_mode)
    # EM is affine-equivariant: fit each mixture's data centred and scaled to unit RMS spread (no cancellation far
    # from the origin, no overflow or underflow of squares), then map the parameters back.
    x, centre, scale = standardise(samples, reg)
    if isinstance(init, torch.Tensor) and init.is_floating_point() and tuple(init.shape) == (b, m, d):
        init = ((init.to(samples.device, torch.float64) - centre) / scale[:, None, None]).to(samples.dtype)
    resp0 = initial_responsibilities(x, m, init, init_resp, generator, op)
    # the regulariser in the scaled units, floored at VARIANCE_FLOOR_EPS of the dtype so no variance collapses to zero
    reg_x = torch.clamp(reg / scale ** 2, min=VARIANCE_FLOOR_EPS * torch.finfo(samples.dtype).eps)
    backend_fit = _backend_module(name).fit
    with torch.no_grad():
        weights, means, cov, ll, n_iter, converged = backend_fit(x, resp0.contiguous(), reg_x, covariance,
                                                                 max_iter, tol)
        if reseed_dead and m > 1 and max_iter > 0:
            weights, means, cov, ll, n_iter, converged = _reseed_dead(
                backend_fit, x, reg_x, covariance, max_iter, tol, (weights, means, cov, ll, n_iter, converged))
    means, cov, ll = _unstandardise(means, cov, ll, centre, scale, op)
    return GMMFit(weights, means, cov, ll, n_iter, converged, covariance, name)


def _reseed_dead(backend_fit, x, reg, covariance, max_iter, tol, result):
    """Mixtures left with a dead component (responsibility worth less than one sample) are fitted again once: each
    dead component restarts at one of the worst-explained samples, the others at their fitted means, and the new
    fit replaces the old where its log-likelihood is higher. EM cannot revive a component by itself (its
    responsibilities stay zero), so this is the only way back from a bad start."""
    weights, means, cov, ll, n_iter, converged = result
    n = x.shape[1]
    dead = weights * n < 1.0                                           # [B, M]
    rows = dead.any(-1).nonzero().squeeze(1)
    if rows.numel() == 0:
        return result
    xs = x[rows]
    worst = reference.mixture_log_prob(xs, weights[rows], means[rows], cov[rows], covariance).argsort(-1)  # [R, n]
    start = means[rows].clone()
    for r in range(rows.numel()):
        for slot, comp in enumerate(dead[rows[r]].nonzero().squeeze(1).tolist()):
            start[r, comp] = xs[r, worst[r, slot % n]]
    refit = backend_fit(xs, _hard_assignment(xs, start).contiguous(), reg[rows], covariance, max_iter, tol)
    better = refit[3] > ll[rows]
    keep = rows[better]
    out = [t.clone() for t in result]
    for t, new in zip(out, refit):
        t[keep] = new[better].to(t.dtype)
    return tuple(out)


def standardise(samples: torch.Tensor, reg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each mixture's samples [B, n, D] centred and divided by their RMS spread (at least sqrt(reg) [B], so the
    regulariser stays at most 1 in the new units; 1 when both are zero). Returns (x in the samples' dtype,
    centre [B, 1, D] float64, scale [B] float64), computed in float64 with a max-abs pre-scale (no overflow)."""
    x = samples.double()
    centre = x.mean(1, keepdim=True)
    dev = x - centre
    peak = dev.abs().amax((1, 2))
    unit = torch.where(peak > 0, peak, torch.ones_like(peak))
    spread = peak * (dev / unit[:, None, None]).pow(2).mean((1, 2)).sqrt()
    scale = torch.maximum(spread, reg.to(spread).sqrt())
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (dev / scale[:, None, None]).to(samples.dtype), centre, scale


def _unstandardise(means, cov, ll, centre, scale, op):
    """Map a fit in standardised units back to the samples' units; refuse what the dtype cannot hold."""
    dtype, d = means.dtype, means.shape[-1]
    s = scale.to(means.device)
    means64 = means.double() * s[:, None, None] + centre.to(means.device)
    cov64 = cov.double() * (s ** 2).reshape(-1, *([1] * (cov.dim() - 1)))
    ll64 = ll.double() - d * torch.log(s)
    info = torch.finfo(dtype)
    diag = cov64 if cov.dim() == 3 else torch.diagonal(cov64, dim1=-2, dim2=-1)
    if bool((diag.amax((1, 2)) > info.max).any()) or bool((means64.abs().amax((1, 2)) > info.max).any()):
        raise ValueError(f"{op}: samples spread up to {float(scale.max()):.3g} give covariances beyond {dtype}'s "
                         "range; pass float64 samples or rescale them")
    cov_out, ll_out = cov64.to(dtype), ll64.to(dtype)
    diag_out = cov_out if cov.dim() == 3 else torch.diagonal(cov_out, dim1=-2, dim2=-1)
    if bool((diag_out.amin((1, 2)) <= 0).any()) or not bool(torch.isfinite(ll_out).all()):
        raise ValueError(f"{op}: samples spread as little as {float(scale.min()):.3g} give variances that round to "
                         f"zero in {dtype}; pass float64 samples, rescale them, or raise reg_covar")
    return means64.to(dtype), cov_out, ll_out


def _check_fit(fit, op: str) -> GMMFit:
    """A GMMFit whose parameters make a mixture: shapes that agree, weights >= 0 summing to 1, finite means,
    positive-definite covariances (a hand-built or altered fit is refused here, not deep in the arithmetic)."""
    if not isinstance(fit, GMMFit):
        raise TypeError(f"{op}: fit must be a GMMFit (from em_fit), got {type(fit).__name__}")
    if fit.covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"{op}: fit.covariance_type must be one of {list(COVARIANCE_TYPES)}, "
                         f"got {fit.covariance_type!r}")
    w, mu, cov = fit.weights, fit.means, fit.covariances
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in (w, mu, cov)) or mu.dim() != 3:
        raise ValueError(f"{op}: fit.weights, means and covariances must be floating tensors, means [B, M, D]")
    b, m, d = mu.shape
    want_cov = (b, m, d) if fit.covariance_type == "diag" else (b, m, d, d)
    if tuple(w.shape) != (b, m) or tuple(cov.shape) != want_cov:
        raise ValueError(f"{op}: fit shapes disagree: means {list(mu.shape)} needs weights {[b, m]} and "
                         f"covariances {list(want_cov)}, got {list(w.shape)} and {list(cov.shape)}")
    for name, t in (("weights", w), ("means", mu), ("covariances", cov)):
        _check_finite(f"fit.{name}", t, op)
    if bool((w < 0).any()) or not torch.allclose(w.double().sum(-1), torch.ones(b, dtype=torch.float64,
                                                                                 device=w.device), atol=1e-4):
        raise ValueError(f"{op}: fit.weights must be non-negative with each row summing to 1")
    if fit.covariance_type == "diag":
        positive = bool((cov > 0).all())
    else:
        size = torch.diagonal(cov, dim1=-2, dim2=-1).abs().amax(-1)                  # [B, M]
        symmetric = bool(((cov - cov.transpose(-1, -2)).abs().amax((-2, -1)) <= 1e-4 * size).all())
        positive = symmetric and bool((torch.linalg.cholesky_ex(cov.double())[1] == 0).all())
    if not positive:
        raise ValueError(f"{op}: fit.covariances must be symmetric positive definite (diag: positive variances)")
    return fit


def gmm_sample(fit: GMMFit, num_samples: int, generator: torch.Generator | None = None):
    """Draw ``num_samples`` points from each mixture.

    Returns (samples [B, S, D], components [B, S] int64: the component each sample came from). The component
    index is what Eq. 7 needs: the mean mu^G of the drawn component, and its noise eps^G = sample - mu^G.
    """
    op = "gmm_sample"
    fit = _check_fit(fit, op)
    s = _check_int("num_samples", num_samples, op, 1)
    b, _, d = fit.means.shape
    if b * s * d > MAX_DRAW_ELEMENTS:
        raise ValueError(f"{op}: num_samples={s} for {b} mixtures of dimension {d} asks for {b * s * d} values; "
                         f"at most {MAX_DRAW_ELEMENTS} per call (draw in chunks)")
    u = torch.rand((b, s), generator=generator, dtype=torch.float64)
    z = torch.randn((b, s, d), generator=generator, dtype=fit.means.dtype)
    return sample_from_draws(fit, u, z)


def sample_from_draws(fit: GMMFit, uniforms: torch.Tensor, normals: torch.Tensor):
    """``gmm_sample`` with its randomness given: component m chosen by uniforms [B, S] through the cumulative
    weights, then x = mu_m + L_m z with normals z [B, S, D]. Returns (samples [B, S, D], components [B, S])."""
    b, s, d = normals.shape
    dev = fit.means.device
    comps = inverse_cdf(fit.weights, uniforms).to(dev)
    z = normals.to(dev, fit.means.dtype)
    means = torch.gather(fit.means, 1, comps[..., None].expand(b, s, d))
    factor = fit.cholesky()
    if fit.covariance_type == "diag":
        return means + torch.gather(factor, 1, comps[..., None].expand(b, s, d)) * z, comps
    chol = torch.gather(factor, 1, comps[..., None, None].expand(b, s, d, d))
    return means + (chol @ z[..., None]).squeeze(-1), comps


def gmm_log_prob(fit: GMMFit, x: torch.Tensor) -> torch.Tensor:
    """log p(x) [B, n] of points x [B, n, D] under each of the B mixtures."""
    op = "gmm_log_prob"
    fit = _check_fit(fit, op)
    x = _check_tensor("x", x, op)
    b, m, d = fit.means.shape
    if x.dim() != 3 or x.shape[0] != b or x.shape[2] != d:
        raise ValueError(f"{op}: x must have shape [B, n, D] = [{b}, n, {d}], got {list(x.shape)}")
    _check_finite("x", x, op)
    return reference.mixture_log_prob(x.to(fit.means.dtype), fit.weights, fit.means, fit.covariances,
                                      fit.covariance_type)
