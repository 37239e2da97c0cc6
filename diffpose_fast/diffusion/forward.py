"""The forward (noising) process: GMM diffusion (Eq. 7), standard diffusion (Eq. 4) and the Eq. 9 targets.

State: h [B, J, 3], root-relative camera-frame poses in metres (J = 17, root = joint 0). Every function here is
elementwise in the state, so it serves any GMM layout (whole-pose or per-joint components): the caller draws,
for each hypothesis set, ONE mixture component m with probability pi_m and ONE noise eps ~ N(0, Sigma_m), and
passes its mean ``mu`` [B, J, 3] and that ``eps`` [B, J, 3]. The same (mu, eps) is used for every step k of the
set ("one path per set", DESIGN.md item 5): the path

    h_k = mu + a_k (h_0 - mu) + b_k eps,        a_k = sqrt(alpha_bar_k), b_k = sqrt(1 - alpha_bar_k)   (Eq. 7)

runs from h_0 (k = 0) to h_K = mu + eps (alpha_bar_K = 0), an exact sample of the fitted GMM. Had eps been drawn
afresh per k, h_{k-1} and h_k would be independent given h_0 and Eq. 9's regression target would carry no
information about h_k.

Step arguments ``k`` are an int (one step for the batch) or an integer tensor [B] (one per batch element, as
training draws them).
"""
from __future__ import annotations

from typing import Optional

import torch

from .schedule import DiffusionSchedule, Step


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError("tensors must have the same shape, got " +
                         ", ".join(f"{n}={s}" for n, s in shapes.items()))


def gmm_forward(h0: torch.Tensor, mu: torch.Tensor, eps: torch.Tensor, k: Step,
                schedule: DiffusionSchedule) -> torch.Tensor:
    """Eq. 7: h_k = mu + a_k (h0 - mu) + b_k eps.

    Args:
        h0: [B, J, 3] clean poses (metres).
        mu: [B, J, 3] the mean of the mixture component drawn for each hypothesis set (metres).
        eps: [B, J, 3] one draw of N(0, Sigma_m) from that component (metres), the same for every k of the set.
        k: step in [0, K], an int or an integer tensor [B].
        schedule: the noise schedule.

    Returns:
        h_k [B, J, 3]. k = 0 gives h0 exactly (a_0 = 1, b_0 = 0); k = K gives mu + eps (alpha_bar_K = 0), a sample
        of the GMM, whatever h0.
    """
    _check_same_shape(h0=h0, mu=mu, eps=eps)
    schedule.check_step(k, "k")
    if not isinstance(k, torch.Tensor) and k == 0:
        return h0.clone()  # exact: mu + (h0 - mu) would round
    a, b = schedule.coefficients(k, h0)
    return mu + a * (h0 - mu) + b * eps


def standard_forward(h0: torch.Tensor, eps: torch.Tensor, k: Step, schedule: DiffusionSchedule) -> torch.Tensor:
    """Eq. 4 (the paper's "Stand-Diff" ablation): h_k = a_k h0 + b_k eps with eps ~ N(0, I).

    It is Eq. 7 with mu = 0 and Sigma = I, so the samplers and Eq. 9's targets apply to it unchanged with mu = 0.
    """
    return gmm_forward(h0, torch.zeros_like(h0), eps, k, schedule)


def posterior_target(h0: torch.Tensor, h_k: torch.Tensor, mu: torch.Tensor, k: Step,
                     k_prev: Optional[Step], schedule: DiffusionSchedule) -> torch.Tensor:
    """The point h_{k_prev} on the same path as h_k, given the clean pose h0 (the target of Eq. 9).

    The path through h_k with end point h0 has noise eps = (h_k - mu - a_k (h0 - mu)) / b_k, hence

        h_{k_prev} = mu + a_prev (h0 - mu) + b_prev eps.

    With the true h0 this returns exactly gmm_forward(h0, mu, eps, k_prev) for the eps that made h_k. With a
    prediction x0_hat in place of h0 it is the reverse step of the samplers (DESIGN.md item 6): Eq. 8's
    h_{k-1} = g(h_k, ...) in closed form, and DDIM when k_prev < k - 1. It needs b_k > 0, i.e. k >= 1.

    Args:
        h0: [B, J, 3] the clean pose, or a prediction of it (metres).
        h_k: [B, J, 3] the state at step k.
        mu: [B, J, 3] the component mean of each hypothesis set.
        k: step in [1, K], an int or an integer tensor [B].
        k_prev: an earlier step in [0, k - 1], same kind as k; None for k - 1.
        schedule: the noise schedule.

    Returns:
        h_{k_prev} [B, J, 3]; exactly h0 when k_prev = 0 (an int).
    """
    _check_same_shape(h0=h0, h_k=h_k, mu=mu)
    schedule.check_step(k, "k", low=1)
    if k_prev is None:
        k_prev = k - 1
    schedule.check_step(k_prev, "k_prev")
    if isinstance(k, torch.Tensor) or isinstance(k_prev, torch.Tensor):
        if bool(torch.any(torch.as_tensor(k_prev) >= torch.as_tensor(k))):
            raise ValueError("k_prev must be smaller than k")
    elif k_prev >= k:
        raise ValueError(f"k_prev must be smaller than k, got k={k}, k_prev={k_prev}")
    if not isinstance(k_prev, torch.Tensor) and k_prev == 0:
        return h0.clone()  # a_0 = 1, b_0 = 0: skip the arithmetic so the result is bit-exact
    a, b = schedule.coefficients(k, h0)
    a_prev, b_prev = schedule.coefficients(k_prev, h0)
    d0 = h0 - mu
    eps = (h_k - mu - a * d0) / b
    return mu + a_prev * d0 + b_prev * eps


def eq9_weight(k: Step, schedule: DiffusionSchedule, k_prev: Optional[Step] = None) -> torch.Tensor:
    """w_k = (a_{k-1} - b_{k-1} a_k / b_k)^2: Eq. 9's loss on h_{k-1} equals w_k times an x0 loss.

    Claim: for any x0_hat, with h_{k-1}(x) := posterior_target(x, h_k, mu, k, k-1),

        || h_{k-1}(x0_hat) - h_{k-1}(h0) ||^2 = w_k || x0_hat - h0 ||^2.

    Proof: substituting eps(x) = (h_k - mu - a_k (x - mu)) / b_k,

        h_{k-1}(x) = mu + a_{k-1} (x - mu) + (b_{k-1} / b_k) (h_k - mu - a_k (x - mu))
                   = (a_{k-1} - b_{k-1} a_k / b_k) x + [terms that do not depend on x],

    so h_{k-1} is affine in x with the scalar slope c_k = a_{k-1} - b_{k-1} a_k / b_k, and the difference of two
    images is c_k (x0_hat - h0). Squaring gives w_k = c_k^2. Since the signal-to-noise ratio a / b decreases with
    k, c_k >= 0; c_1 = 1 (a_0 = 1, b_0 = 0) and, with alpha_bar_K = 0, c_K = a_{K-1}.

    So with an x0-predicting g and the closed-form step, Eq. 9 is an x0 loss weighted by w_k (the unweighted x0
    loss is the usual, better-conditioned variant; the trainer chooses). ``k_prev`` generalises to DDIM strides.

    Args:
        k: step in [1, K], an int or an integer tensor [B].
        schedule: the noise schedule.
        k_prev: default k - 1.

    Returns:
        float64 tensor on k's device: 0-d for an int k, [B] for a tensor k.
    """
    schedule.check_step(k, "k", low=1)
    if k_prev is None:
        k_prev = k - 1
    schedule.check_step(k_prev, "k_prev")
    idx = torch.as_tensor(k).long()
    idx_prev = torch.as_tensor(k_prev).long()
    if bool(torch.any(idx_prev >= idx)):
        raise ValueError("k_prev must be smaller than k")
    idx_prev = idx_prev.to(idx.device)
    a, b = schedule.a.to(idx.device), schedule.b.to(idx.device)  # tables live on the CPU; k may not
    c = a[idx_prev] - b[idx_prev] * a[idx] / b[idx]
    return c * c
