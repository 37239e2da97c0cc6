"""The eager fast reverse loop: S fused denoiser calls and S fused DDIM updates, no graph.

``sampler.reverse_diffusion`` runs it on the CPU; ``cuda_graph`` captures it once per batch bucket on CUDA.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..diffusion.samplers import DDIMSampler
from ..diffusion.schedule import DiffusionSchedule
from ..ops.ddim_update import custom_op
from ..ops.denoiser import FusedDenoiser


def fast_sample(fused: FusedDenoiser, features: torch.Tensor, h_K: torch.Tensor, mu: torch.Tensor,
                schedule: DiffusionSchedule, steps: int, *, eta: float = 0.0,
                noise_std: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
                denoiser_backend: str = "auto", noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The eager fast loop: ``DDIMSampler.sample`` with the fused denoiser and the fused update plugged in (S
    fused denoiser calls, S - 1 fused updates). Returns h_0 [B, J, 3].

    noise: optional pre-drawn z [S, B, J, 3] (N(0, I), scaled by noise_std here) instead of the generator.
    """
    if eta > 0.0 and noise_std is None:
        raise ValueError("fast_sample: noise_std is required when eta > 0")
    return DDIMSampler(schedule).sample(lambda h, k: fused(h, features, k, backend=denoiser_backend), h_K, mu, steps,
                                        eta=eta, noise_std=noise_std, generator=generator, update=custom_op(),
                                        noise=noise)
