"""Every random number behind H_K, its GMM fit and the hypothesis paths, drawn up front as explicit tensors.

Training and inference build H_K, seed the EM fit and draw the paths of Eq. 7 with the *same* functions
(``distribution.initial``); only where these tensors come from differs:

- training draws them for the whole global batch of a step from (seed, stage, step) and keeps its rows, so a
  sample gets the same draws in one process, on any number of ranks and after a resume (``training.step_noise``);
- inference draws one row per sequence and shares it across the sequence's frames (``HKNoise.expand``): each
  frame's hypotheses are still exact draws from its own H_K, but hypothesis i of neighbouring frames uses the same
  standard normals, so the hypotheses (and their mean) move smoothly instead of jittering frame to frame;
  ``temporal_noise="independent"`` draws fresh rows per frame instead.

Data-dependent choices (heatmap cell, histogram bin, k-means++ seed, mixture component) are inverse-CDF lookups of
pre-drawn uniforms, which gives the same distributions as multinomial draws.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

F64 = torch.float64


@dataclasses.dataclass
class HKNoise:
    """Draws whose first dimension is the sample (frame). Unused ones are None.

    offsets_z [B, J, S, 2] (keypoint Gaussian) or cell_u [B, J, S] + jitter_u [B, J, S, 2] (heatmaps);
    depth_z [B, J, S] (encoder spread) or bin_u, within_u [B, J, S] (histogram); seed_u [B, G, M] (k-means++,
    G fits per sample); comp_u [B, G, H] and path_z [B, G, H, d] (the GMM draws of H hypothesis sets);
    std_eps [B, H, J, 3] (Stand-Diff).
    """

    offsets_z: Optional[torch.Tensor] = None
    cell_u: Optional[torch.Tensor] = None
    jitter_u: Optional[torch.Tensor] = None
    depth_z: Optional[torch.Tensor] = None
    bin_u: Optional[torch.Tensor] = None
    within_u: Optional[torch.Tensor] = None
    seed_u: Optional[torch.Tensor] = None
    comp_u: Optional[torch.Tensor] = None
    path_z: Optional[torch.Tensor] = None
    std_eps: Optional[torch.Tensor] = None

    def _map(self, fn) -> "HKNoise":
        return type(self)(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                             for f in dataclasses.fields(self)})

    def rows(self, lo: int, hi: int) -> "HKNoise":
        """The draws of samples lo..hi-1."""
        return self._map(lambda t: t[lo:hi])

    def expand(self, batch: int) -> "HKNoise":
        """One sample's draws repeated for ``batch`` samples (temporally shared noise)."""
        return self._map(lambda t: t[:1].expand(batch, *t.shape[1:]))

    def sets(self, index: list[int]) -> "HKNoise":
        """The draws of hypothesis sets ``index`` only (the draws behind H_K itself are kept whole)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        out = dataclasses.replace(self)
        if self.comp_u is not None:
            out.comp_u = self.comp_u[:, :, idx]
            out.path_z = self.path_z[:, :, idx]
        if self.std_eps is not None:
            out.std_eps = self.std_eps[:, idx]
        return out

    @property
    def num_sets(self) -> int:
        """H, the hypothesis sets these draws cover."""
        return self.std_eps.shape[1] if self.std_eps is not None else self.comp_u.shape[-1]


def fits_per_sample(config, num_joints: int) -> tuple[int, int]:
    """(G, d): GMM fits per sample and their dimension for the config's GMM scope."""
    return (num_joints - 1, 3) if config.gmm_scope == "per_joint" else (1, 3 * (num_joints - 1))


def draw_hk_noise(batch: int, config, num_joints: int, num_sets: int, heatmaps: bool,
                  generator: Optional[torch.Generator], out: Optional[HKNoise] = None) -> HKNoise:
    """Draw the noise of ``batch`` samples in a fixed order whose shapes depend only on the config (never on
    data). ``out``: a (sub)class instance to fill, e.g. training's StepNoise."""
    cfg = config
    j, s, h, m = num_joints, cfg.gmm_samples, num_sets, cfg.gmm_components
    out = HKNoise() if out is None else out
    if cfg.forward_process == "standard":
        out.std_eps = torch.randn((batch, h, j, 3), generator=generator)
        return out
    if heatmaps:
        out.cell_u = torch.rand((batch, j, s), generator=generator, dtype=F64)
        out.jitter_u = torch.rand((batch, j, s, 2), generator=generator, dtype=F64)
    else:
        out.offsets_z = torch.randn((batch, j, s, 2), generator=generator)
    if cfg.z_source == "histogram":
        out.bin_u = torch.rand((batch, j, s), generator=generator, dtype=F64)
        out.within_u = torch.rand((batch, j, s), generator=generator, dtype=F64)
    else:
        out.depth_z = torch.randn((batch, j, s), generator=generator)
    fits, dim = fits_per_sample(cfg, j)
    out.seed_u = torch.rand((batch, fits, m), generator=generator, dtype=F64)
    out.comp_u = torch.rand((batch, fits, h), generator=generator, dtype=F64)
    out.path_z = torch.randn((batch, fits, h, dim), generator=generator)
    return out
