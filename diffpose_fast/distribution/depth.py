"""The z part of H_K (paper Sec. 4.1): depth a 2D detector cannot see.

Two sources (both drawn in ``distribution.initial.hk_samples``):
- the context encoder's own prediction: z_j ~ N(z_hat_j, sigma_j^2) with sigma_j = exp(log_sigma_z_j), trained
  with a Gaussian likelihood in stage 1 (the paper's faster-converging choice);
- the training set's per-joint histogram of root-relative depth (``DepthHistogram``): z_j drawn from the
  histogram of joint j regardless of the input, uniform inside the drawn bin.
"""
from __future__ import annotations

import torch


class DepthHistogram:
    """Per-joint histograms of root-relative depth z (metres, camera frame) over a training set.

    edges [J, bins + 1] (ascending per joint), pmf [J, bins] (rows sum to 1).
    """

    def __init__(self, edges: torch.Tensor, pmf: torch.Tensor):
        if edges.dim() != 2 or pmf.dim() != 2 or edges.shape[0] != pmf.shape[0] or edges.shape[1] != pmf.shape[1] + 1:
            raise ValueError(f"DepthHistogram: expected edges [J, bins+1] and pmf [J, bins], got "
                             f"{list(edges.shape)} and {list(pmf.shape)}")
        if not bool(torch.isfinite(edges).all()) or not bool(torch.isfinite(pmf).all()) or bool((pmf < 0).any()):
            raise ValueError("DepthHistogram: edges and pmf must be finite and pmf non-negative")
        self.edges = edges.to(torch.float64)
        self.pmf = (pmf / pmf.sum(-1, keepdim=True).clamp_min(1e-300)).to(torch.float64)

    @classmethod
    def fit(cls, root_relative_poses: torch.Tensor, bins: int = 32) -> "DepthHistogram":
        """Histogram of z for every joint of poses [T, J, 3] (root-relative metres)."""
        z = root_relative_poses[..., 2].to(torch.float64)  # [T, J]
        lo = z.amin(0)
        hi = z.amax(0)
        # A joint that never moves in depth (the root) still gets a proper, tiny-width histogram.
        hi = torch.where(hi - lo > 1e-6, hi, lo + 1e-6)
        steps = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
        edges = lo[:, None] + (hi - lo)[:, None] * steps[None, :]
        idx = ((z - lo) / (hi - lo) * bins).floor().clamp(0, bins - 1).long()  # [T, J]
        counts = torch.zeros(z.shape[1], bins, dtype=torch.float64)
        counts.scatter_add_(1, idx.T, torch.ones_like(idx.T, dtype=torch.float64))
        return cls(edges, counts)

    def sample(self, batch: int, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Depths [B, J, S] (metres) drawn from each joint's histogram."""
        j = self.pmf.shape[0]
        bin_u = torch.rand((batch, j, num_samples), generator=generator, dtype=torch.float64)
        within_u = torch.rand((batch, j, num_samples), generator=generator, dtype=torch.float64)
        return self.sample_from_uniforms(bin_u, within_u)

    def sample_from_uniforms(self, bin_u: torch.Tensor, within_u: torch.Tensor) -> torch.Tensor:
        """Depths [B, J, S]: bin of joint j by inverse CDF of bin_u [B, J, S], uniform inside it by within_u."""
        from ..ops.gmm.api import inverse_cdf

        b, j, n = bin_u.shape
        bins = inverse_cdf(self.pmf, bin_u.permute(1, 0, 2).reshape(j, b * n))  # [J, B S]
        lo = torch.gather(self.edges, 1, bins).reshape(j, b, n).permute(1, 0, 2)
        hi = torch.gather(self.edges, 1, bins + 1).reshape(j, b, n).permute(1, 0, 2)
        return lo + within_u.to(lo.device) * (hi - lo)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"z_hist_edges": self.edges.clone(), "z_hist_pmf": self.pmf.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "DepthHistogram":
        return cls(state["z_hist_edges"], state["z_hist_pmf"])
