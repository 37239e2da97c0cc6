"""All the randomness of one training step, drawn for the whole global batch and then sliced by sample.

Why: with DistributedDataParallel each rank trains on a slice of the step's global batch. If every rank drew
its own noise from one generator, the draws of a sample would depend on how the batch is split. Instead every
rank draws the noise of the *whole* global batch from ``derived_generator(seed, stage, step)`` in a fixed order
and with shapes that depend only on the batch size and the config (never on data), and keeps the rows of its
own samples. Sample p of step s therefore gets the same noise in a one-process run, on any number of ranks,
and after a resume. (The cost, drawing B_global rows of noise on every rank, is a few milliseconds.)

The H_K, EM-seeding and path draws are ``distribution.noise.HKNoise``, consumed by the same functions as at
inference (``distribution.initial``); a step adds the mirror decision and the diffusion step of each sample.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from ..distribution.noise import HKNoise, draw_hk_noise


@dataclasses.dataclass
class StepNoise(HKNoise):
    """HKNoise plus flip_u [B] (mirror when < 0.5) and k [B, H] (diffusion steps in 1..K)."""

    flip_u: Optional[torch.Tensor] = None
    k: Optional[torch.Tensor] = None


def context_noise(batch: int, generator: torch.Generator) -> StepNoise:
    """Stage 1 draws only the mirror decision of each sample."""
    return StepNoise(flip_u=torch.rand(batch, generator=generator))


def diffusion_noise(batch: int, config, num_joints: int, heatmaps: bool, generator: torch.Generator) -> StepNoise:
    """Stage 2's draws for a global batch of ``batch`` samples, in a fixed order (see the module doc)."""
    out = StepNoise(flip_u=torch.rand(batch, generator=generator))
    draw_hk_noise(batch, config, num_joints, config.train_hypotheses, heatmaps, generator, out=out)
    out.k = torch.randint(1, config.num_diffusion_steps + 1, (batch, config.train_hypotheses), generator=generator)
    return out
