"""Reverse-diffusion samplers: from h_K (samples of H_K) to h_0, given an x0-predicting denoiser.

The denoiser g is handed in as a callable ``denoise_fn(h [B, J, 3], k: int) -> x0_hat [B, J, 3]`` (metres); the
sampler never sees a model (layering rule), so the caller binds the context f_ST, the batch of N hypotheses and
any fast backend into that callable.

One reverse step from k to an earlier step p (DESIGN.md item 6), on the path of Eq. 7 with component mean mu:

    eps_hat = (h_k - mu - a_k (x0_hat - mu)) / b_k                (the path's noise, given x0_hat)
    h_p     = mu + a_p (x0_hat - mu) + b_p eps_hat                 (that path, evaluated at step p)

With p = k - 1 this is Eq. 8, h_{k-1} = g(h_k, f_ST, f_D^k), in closed form; with p < k - 1 it is DDIM (Song et
al. 2021) for the GMM-centred process: the path construction of Eq. 7 is exact for any stride, so a coarse grid
K = t_0 > t_1 > ... > t_S = 0 just evaluates the same family of paths at fewer points. At p = 0 (a_0 = 1,
b_0 = 0) the step returns x0_hat itself, so h_0 is the last prediction.

Because training uses one path per hypothesis set (one eps for all k), the all-K sampler of Eq. 8 is
deterministic and is exactly DDIM with S = K (``DDPMSampler``). ``eta`` > 0 gives DDIM's stochastic family:

    sigma   = eta * sqrt((1 - alpha_bar_p) / (1 - alpha_bar_k)) * sqrt(1 - alpha_bar_k / alpha_bar_p)
    h_p     = mu + a_p (x0_hat - mu) + sqrt(b_p^2 - sigma^2) eps_hat + sigma z,     z ~ N(0, Sigma_m)

which keeps the marginal N(mu + a_p (h_0 - mu), b_p^2 Sigma_m) of Eq. 7 for every eta in [0, 1] (eta = 1 is
the ancestral DDPM posterior). ``sample`` draws z as ``noise_std * N(0, I)`` with a per-hypothesis std
[B, J, 3]: exact for diagonal component covariances, a diagonal approximation otherwise.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .forward import posterior_target
from .schedule import DiffusionSchedule

DenoiseFn = Callable[[torch.Tensor, int], torch.Tensor]
# callback(i, k, k_prev, x0_hat, h_prev): called after step i (0-based) went from k to k_prev
Callback = Callable[[int, int, int, torch.Tensor, torch.Tensor], None]


class DDIMSampler:
    """Deterministic (eta = 0) or stochastic (eta > 0) DDIM over a uniform grid of steps.

    Args:
        schedule: the noise schedule the denoiser was trained with.
    """

    def __init__(self, schedule: DiffusionSchedule):
        if not isinstance(schedule, DiffusionSchedule):
            raise TypeError(f"schedule must be a DiffusionSchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    @property
    def num_steps(self) -> int:
        """K, the schedule's number of steps."""
        return self.schedule.num_steps

    def timesteps(self, steps: int) -> list[int]:
        """The grid K = t_0 > t_1 > ... > t_S = 0 for S = ``steps`` denoiser calls.

        Uniform stride K / S, rounded to the nearest integer (half up): t_i = round(K (S - i) / S). It always
        starts at K, where h_K is a sample of H_K, and ends at 0. K = 50, S = 5 gives [50, 40, 30, 20, 10, 0];
        S = K gives every step (Eq. 8). Strictly decreasing because K / S >= 1.
        """
        K = self.schedule.num_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= K:
            raise ValueError(f"steps must be an int in [1, K={K}], got {steps!r}")
        return [(2 * K * (steps - i) + steps) // (2 * steps) for i in range(steps + 1)]

    def coefficients(self, k: int, k_prev: int, eta: float = 0.0) -> tuple[float, float, float, float, float]:
        """(a, inv_b, a_p, c_eps, sigma) of the step k -> k_prev, Python floats in float64 arithmetic.

        With abar = alpha_bar: a = sqrt(abar_k), inv_b = 1 / sqrt(1 - abar_k), a_p = sqrt(abar_kprev),
        sigma = eta sqrt((1 - abar_kprev) / (1 - abar_k) (1 - abar_k / abar_kprev)) (0 at k_prev = 0),
        c_eps = sqrt(1 - abar_kprev - sigma^2). The step is then
        h_kprev = mu + a_p d0 + c_eps (h_k - mu - a d0) inv_b + sigma z with d0 = x0_hat - mu: what ``step``
        computes and the fused update (``ops.ddim_update``) consumes.
        """
        s = self.schedule
        s.check_step(k, "k", low=1)
        s.check_step(k_prev, "k_prev")
        if not k_prev < k:
            raise ValueError(f"k_prev must be smaller than k, got k={k}, k_prev={k_prev}")
        _check_eta(eta)
        ab, ab_p = float(s.alpha_bar[k]), float(s.alpha_bar[k_prev])
        a, b = math.sqrt(ab), math.sqrt(1.0 - ab)
        a_p, b_p = math.sqrt(ab_p), math.sqrt(1.0 - ab_p)
        sigma = 0.0 if k_prev == 0 else eta * math.sqrt((1.0 - ab_p) / (1.0 - ab) * (1.0 - ab / ab_p))
        c_eps = math.sqrt(max(b_p * b_p - sigma * sigma, 0.0))
        return a, 1.0 / b, a_p, c_eps, sigma

    def step(self, h_k: torch.Tensor, x0_hat: torch.Tensor, mu: torch.Tensor, k: int, k_prev: int, *,
             eta: float = 0.0, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One reverse step from step k to step k_prev < k.

        Args:
            h_k: [B, J, 3] current state (metres).
            x0_hat: [B, J, 3] the denoiser's prediction of h_0 at (h_k, k).
            mu: [B, J, 3] each hypothesis' component mean.
            k, k_prev: ints, 1 <= k <= K, 0 <= k_prev < k.
            eta: in [0, 1]; 0 is deterministic.
            noise: [B, J, 3] a draw of N(0, Sigma_m) per hypothesis; required when eta > 0 and k_prev > 0.

        Returns:
            h_{k_prev} [B, J, 3]; x0_hat itself when k_prev = 0.
        """
        _check_eta(eta)
        if eta == 0.0 or k_prev == 0:
            # at k_prev = 0, sigma = 0 for every eta: the step lands on x0_hat
            return posterior_target(x0_hat, h_k, mu, k, k_prev, self.schedule)
        if noise is None:
            raise ValueError("step: noise (a draw of N(0, Sigma_m)) is required when eta > 0")
        if noise.shape != h_k.shape:
            raise ValueError(f"step: noise must have the shape of h_k {tuple(h_k.shape)}, got {tuple(noise.shape)}")
        a, inv_b, a_p, c_eps, sigma = self.coefficients(k, k_prev, eta)
        d0 = x0_hat - mu
        eps_hat = (h_k - mu - a * d0) * inv_b
        return mu + a_p * d0 + c_eps * eps_hat + sigma * noise

    def sample(self, denoise_fn: DenoiseFn, h_K: torch.Tensor, mu: torch.Tensor, steps: int,
               callback: Optional[Callback] = None, *, eta: float = 0.0,
               noise_std: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None, update=None,
               noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run the reverse process over ``timesteps(steps)``: S denoiser calls; the one reverse loop (the fast
        path plugs in its fused denoiser and fused update).

        Args:
            denoise_fn: (h [B, J, 3], k: int) -> x0_hat [B, J, 3].
            h_K: [B, J, 3] samples of H_K (mu + eps), one per hypothesis (N hypotheses in the batch dimension).
            mu: [B, J, 3] the component mean each sample was drawn from.
            steps: S in [1, K].
            callback: optional, called as callback(i, k, k_prev, x0_hat, h_prev) after each step.
            eta: in [0, 1]; > 0 needs ``noise_std``.
            noise_std: [B, J, 3] (or broadcastable) per-hypothesis noise std, sqrt(diag Sigma_m), for eta > 0.
            generator: for the eta > 0 noise.
            update: None (``step``), or a fused step ``update(h_k, x0_hat, mu, z, a, inv_b, a_p, c_eps, sigma)``
                -> h_kprev taking ``coefficients(k, k_prev, eta)`` and z = the scaled noise (None when sigma = 0);
                the last step (k_prev = 0) lands on x0_hat either way.
            noise: optional pre-drawn standard normals [S, B, J, 3] used instead of the generator (scaled by
                noise_std here).

        Returns:
            h_0 [B, J, 3] (the last x0_hat).
        """
        if h_K.shape != mu.shape:
            raise ValueError(f"sample: h_K and mu must have the same shape, got {tuple(h_K.shape)} and "
                             f"{tuple(mu.shape)}")
        _check_eta(eta)
        if eta > 0.0 and noise_std is None:
            raise ValueError("sample: noise_std is required when eta > 0")
        grid = self.timesteps(steps)
        h = h_K
        for i, (k, k_prev) in enumerate(zip(grid[:-1], grid[1:])):
            x0_hat = denoise_fn(h, k)
            if x0_hat.shape != h.shape:
                raise ValueError(f"sample: denoise_fn returned shape {tuple(x0_hat.shape)}, expected "
                                 f"{tuple(h.shape)}")
            z = None
            if eta > 0.0 and k_prev > 0:
                draw = noise[i] if noise is not None else torch.randn(h.shape, generator=generator, dtype=h.dtype,
                                                                     device=h.device)
                z = noise_std * draw
            if update is None:
                h = self.step(h, x0_hat, mu, k, k_prev, eta=eta, noise=z)
            else:
                h = x0_hat if k_prev == 0 else update(h, x0_hat, mu, z, *self.coefficients(k, k_prev, eta))
            if callback is not None:
                callback(i, k, k_prev, x0_hat, h)
        return h


class DDPMSampler(DDIMSampler):
    """All K steps of Eq. 8 (the paper's sampler without DDIM acceleration).

    With one path per hypothesis set the step h_{k-1} = g(h_k) is the closed-form DDIM step with stride 1, so
    this is ``DDIMSampler.sample(..., steps=K)`` and is deterministic at eta = 0 (the default); eta = 1 gives
    ancestral sampling from the DDPM posterior.
    """

    def sample(self, denoise_fn: DenoiseFn, h_K: torch.Tensor, mu: torch.Tensor, steps: Optional[int] = None,
               callback: Optional[Callback] = None, *, eta: float = 0.0,
               noise_std: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """As ``DDIMSampler.sample``; ``steps`` must be None or K."""
        K = self.schedule.num_steps
        if steps is not None and steps != K:
            raise ValueError(f"DDPMSampler runs all K={K} steps: steps must be None or {K}, got {steps!r}")
        return super().sample(denoise_fn, h_K, mu, K, callback, eta=eta, noise_std=noise_std,
                              generator=generator)


def _check_eta(eta: float) -> None:
    if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a float in [0, 1], got {eta!r}")
