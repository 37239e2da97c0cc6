"""Noise schedules: the decreasing sequence alpha_bar_0 = 1 > alpha_bar_1 > ... > alpha_bar_K of Eq. 3-4 and 7.

Notation used throughout ``diffpose_fast.diffusion`` (the paper writes alpha_k for what we call alpha_bar_k,
the *cumulative* signal fraction):

    a_k = sqrt(alpha_bar_k)          signal scale of step k
    b_k = sqrt(1 - alpha_bar_k)      noise scale of step k
    h_k = mu + a_k (h_0 - mu) + b_k eps          (Eq. 7; Eq. 4 is mu = 0, eps ~ N(0, I))

Step k = 0 is the clean pose (a_0 = 1, b_0 = 0). Eq. 7 only reaches the GMM H_K if alpha_bar_K is about 0
(DESIGN.md item 4), so the two schedules we train with end at exactly alpha_bar_K = 0, where h_K = mu + eps is
an exact sample of the fitted GMM and carries no information about h_0:

* ``"cosine"`` (Nichol & Dhariwal 2021): alpha_bar_k = f(k) / f(0), f(t) = cos^2(((t / K) + s) / (1 + s) * pi/2),
  s = 0.008; the offset s keeps the first steps small. f(K) = cos^2(pi/2) is ~1e-33 in floating point and is
  set to exactly 0.
* ``"linear"``: linear in the noise *variance*, 1 - alpha_bar_k = k / K.
* ``"official_linear_beta"``: the released DiffPose code's schedule, for comparison only: per-step betas
  ``linspace(1e-4, 1e-3, K)`` and alpha_bar_k = prod_{i <= k} (1 - beta_i). With K = 51 (``official()``) the
  values equal the code's alpha_bar_{t} at t = k - 1 (its t = -1 is the clean pose) and alpha_bar_K = 0.97233:
  the chain never leaves the neighbourhood of h_0, so h_K is *not* a sample of H_K. Do not train with it.

All tables are float64 tensors on the CPU; ``coefficients`` gathers and casts them to the state's dtype/device.
"""
from __future__ import annotations

import math
from typing import Union

import torch

Step = Union[int, torch.Tensor]

KINDS = ("cosine", "linear", "official_linear_beta")


class DiffusionSchedule:
    """A discrete schedule of ``num_steps`` = K diffusion steps.

    Args:
        num_steps: K >= 1, the number of noising steps (the paper uses K = 50).
        kind: one of ``"cosine"`` (default), ``"linear"``, ``"official_linear_beta"`` (see the module docstring).
        cosine_s: the cosine schedule's offset s (ignored by the other kinds).

    Attributes:
        alpha_bar: [K + 1] float64, alpha_bar[0] = 1, strictly decreasing; alpha_bar[K] = 0 for cosine/linear.
        a: [K + 1] float64, sqrt(alpha_bar).
        b: [K + 1] float64, sqrt(1 - alpha_bar).
    """

    def __init__(self, num_steps: int = 50, kind: str = "cosine", cosine_s: float = 0.008):
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"DiffusionSchedule: num_steps must be an int >= 1, got {num_steps!r}")
        if kind not in KINDS:
            raise ValueError(f"DiffusionSchedule: kind must be one of {KINDS}, got {kind!r}")
        if not (isinstance(cosine_s, (int, float)) and 0.0 <= cosine_s < 1.0):
            raise ValueError(f"DiffusionSchedule: cosine_s must be a float in [0, 1), got {cosine_s!r}")
        self.num_steps = num_steps
        self.kind = kind
        self.cosine_s = float(cosine_s)

        k = torch.arange(num_steps + 1, dtype=torch.float64)
        if kind == "cosine":
            f = torch.cos((k / num_steps + self.cosine_s) / (1.0 + self.cosine_s) * (math.pi / 2)) ** 2
            alpha_bar = f / f[0]
            alpha_bar[-1] = 0.0  # cos(pi/2)^2 is ~1e-33 in floating point: make the endpoint exact
        elif kind == "linear":
            alpha_bar = 1.0 - k / num_steps
            alpha_bar[-1] = 0.0
        else:
            betas = torch.linspace(1e-4, 1e-3, num_steps, dtype=torch.float64)
            alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, 0)])
        alpha_bar[0] = 1.0
        self.alpha_bar = alpha_bar
        self.a = alpha_bar.sqrt()
        # clamp: 1 - alpha_bar can round to a tiny negative number only if alpha_bar > 1, which it never is,
        # but keep sqrt away from NaN whatever a subclass puts in the table
        self.b = (1.0 - alpha_bar).clamp_min(0.0).sqrt()

    @classmethod
    def official(cls) -> "DiffusionSchedule":
        """The released DiffPose code's schedule: beta = linspace(1e-4, 1e-3, 51), K = 51, alpha_bar_K = 0.97233."""
        return cls(51, "official_linear_beta")

    def config(self) -> dict:
        """A JSON-serialisable description; ``DiffusionSchedule(**s.config())`` rebuilds the same schedule."""
        return {"num_steps": self.num_steps, "kind": self.kind, "cosine_s": self.cosine_s}

    def __repr__(self) -> str:
        return (f"DiffusionSchedule(num_steps={self.num_steps}, kind={self.kind!r}, "
                f"alpha_bar_K={float(self.alpha_bar[-1]):.4g})")

    def check_step(self, k: Step, name: str = "k", low: int = 0) -> None:
        """Raise ValueError unless every step in ``k`` is an integer in [low, K]."""
        if isinstance(k, torch.Tensor):
            if k.dtype.is_floating_point or k.dtype.is_complex or k.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer steps, got dtype {k.dtype}")
            if k.numel() and (int(k.min()) < low or int(k.max()) > self.num_steps):
                raise ValueError(f"{name} must lie in [{low}, {self.num_steps}], got values in "
                                 f"[{int(k.min())}, {int(k.max())}]")
        elif isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"{name} must be an int or an integer tensor, got {type(k).__name__}")
        elif not low <= k <= self.num_steps:
            raise ValueError(f"{name} must lie in [{low}, {self.num_steps}], got {k}")

    def coefficients(self, k: Step, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_k, b_k) ready to multiply a state ``like`` of shape [B, ...].

        ``k`` is an int (the same step for the whole batch: 0-d tensors are returned) or a tensor [B] of steps
        (one per batch element: tensors [B, 1, ..., 1] are returned). Both are in ``like``'s dtype and device.
        """
        return self.gather(self.a, k, like), self.gather(self.b, k, like)

    @staticmethod
    def gather(table: torch.Tensor, k: Step, like: torch.Tensor) -> torch.Tensor:
        """table[k] cast to ``like``'s dtype/device, shaped to broadcast against ``like`` [B, ...]."""
        if isinstance(k, torch.Tensor) and k.ndim > 0:
            if k.ndim != 1 or k.shape[0] != like.shape[0]:
                raise ValueError(f"per-sample steps k must have shape [B] = [{like.shape[0]}], "
                                 f"got {tuple(k.shape)}")
            values = table.to(k.device)[k.long()]
            return values.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))
        return table[int(k)].to(device=like.device, dtype=like.dtype)
