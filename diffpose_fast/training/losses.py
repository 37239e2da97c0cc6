"""Training losses of the two stages. Poses are root-relative metres [B, J, 3]."""
from __future__ import annotations

import torch

from ..diffusion.forward import eq9_weight
from ..diffusion.schedule import DiffusionSchedule


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint Euclidean distance (metres): stage 1's pose loss."""
    return (pred - target).norm(dim=-1).mean()


def depth_nll_loss(pred_z: torch.Tensor, log_sigma_z: torch.Tensor, target_z: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of the true depth under N(pred_z, sigma^2), excluding the root.

    The mean is detached: this term only teaches the encoder *how wrong* its depth is, never moves the depth
    itself (the MPJPE term does that). log sigma is clamped to [-7, 1] (1 mm to 2.7 m) for stability.
    """
    log_sigma = log_sigma_z[:, 1:].clamp(-7.0, 1.0)
    err = (target_z[:, 1:] - pred_z[:, 1:].detach()) * torch.exp(-log_sigma)
    return (0.5 * err * err + log_sigma).mean()


def diffusion_loss(x0_hat: torch.Tensor, h0: torch.Tensor, k: torch.Tensor, schedule: DiffusionSchedule,
                   weighting: str) -> torch.Tensor:
    """Eq. 9 through the x0 parameterisation.

    With g returning h_{k-1} in closed form from x0_hat, || g(h_k) - h_{k-1} ||^2 = w_k || x0_hat - h0 ||^2
    exactly (``eq9_weight``). "eq9" uses those weights; "x0" drops them (every step weighted equally), the
    usual better-conditioned choice. The sum over k and i of Eq. 9 is estimated without bias (up to the constant
    factor K) by one uniformly drawn k per (training sample, hypothesis set): the mean over the batch.
    """
    sq = ((x0_hat - h0) ** 2).sum(dim=(-1, -2))  # [B]
    if weighting == "eq9":
        sq = sq * eq9_weight(k, schedule).to(sq.dtype)
    return sq.mean()
