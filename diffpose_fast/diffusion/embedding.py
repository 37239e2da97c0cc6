"""The sinusoidal diffusion-step embedding (the paper's f_D^k before its MLP, Sec. 4.3 and 4.5)."""
from __future__ import annotations

import math
from typing import Optional

import torch


def sinusoidal_embedding(k: torch.Tensor, dim: int, max_period: float = 10000.0,
                         dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Transformer-style embedding of diffusion steps: [sin(k w_0), ..., sin(k w_{h-1}), cos(k w_0), ...].

    With h = dim / 2 frequencies w_i = max_period^(-i / (h - 1)), i = 0..h-1: geometric from 1 (period 2 pi
    steps) down to 1 / max_period. This is the DDPM (Ho et al.) form that the official DiffPose code also uses
    (the ``/(h - 1)`` variant, so the lowest frequency is exactly 1 / max_period), sin half first.

    Args:
        k: [B] steps (integer or float tensor); fractional steps are allowed.
        dim: embedding width, even and >= 4.
        max_period: the longest period's scale (10000 as in the Transformer).
        dtype: output dtype; default the default float dtype. The phases k w_i are computed in float64 so that
            the embedding of a step is the same on every device.

    Returns:
        [B, dim]. At k = 0 the sin half is 0 and the cos half is 1.
    """
    if not isinstance(k, torch.Tensor) or k.ndim != 1:
        raise ValueError(f"sinusoidal_embedding: k must be a 1-D tensor [B], got "
                         f"{tuple(k.shape) if isinstance(k, torch.Tensor) else type(k).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 4 or dim % 2:
        raise ValueError(f"sinusoidal_embedding: dim must be an even int >= 4, got {dim!r}")
    if not max_period > 1.0:
        raise ValueError(f"sinusoidal_embedding: max_period must be > 1, got {max_period!r}")
    half = dim // 2
    i = torch.arange(half, dtype=torch.float64, device=k.device)
    freqs = torch.exp(-math.log(max_period) * i / (half - 1))
    phase = k.to(torch.float64)[:, None] * freqs[None, :]
    out = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)
    return out.to(dtype or torch.get_default_dtype())
