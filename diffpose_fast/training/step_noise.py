"""All the randomness of one training step, drawn for the whole global batch and then sliced by sample.

Why: with DistributedDataParallel each rank trains on a slice of the step's global batch. If every rank drew
its own noise from one generator, the draws of a sample would depend on how the batch is split. Instead every
rank draws the noise of the *whole* global batch from ``derived_generator(seed, stage, step)`` in a fixed order
and with shapes that depend only on the batch size and the config (never on data), and keeps the rows of its
own samples. Sample p of step s therefore gets the same noise in a one-process run, on any number of ranks,
and after a resume. (The cost, drawing B_global rows of noise on every rank, is a few milliseconds.)

The data-dependent random choices of stage 2 are made by inverse-CDF lookups on these pre-drawn uniforms:
the k-means++ seeding of the EM fit (Eq. 6), the GMM component of each hypothesis set (Eq. 7), the heatmap
cell of each H_K sample, and the depth-histogram bin. Each is the same distribution as the library's
generator-driven version (``distribution.initial``, ``ops.gmm``) used at inference.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from ..distribution.depth import DepthHistogram
from ..distribution.initial import weak_perspective_scale
from ..distribution.spread2d import confidence_to_sigma_px, heatmap_mean_px, pose_size_px
from ..ops.gmm import GMMFit

F64 = torch.float64


@dataclasses.dataclass
class StepNoise:
    """Noise tensors whose first dimension is the sample (position in the global batch). Unused ones are None.

    flip_u [B]; offsets_z [B, J, S, 2] (keypoint Gaussian) or cell_u [B, J, S] + jitter_u [B, J, S, 2]
    (heatmaps); depth_z [B, J, S] (encoder spread) or bin_u, within_u [B, J, S] (histogram); seed_u [B, G, M]
    (k-means++, G fits per sample); comp_u [B, G, H] and path_z [B, G, H, d] (GMM draws of H hypothesis sets);
    std_eps [B, H, J, 3] (Stand-Diff); k [B, H] diffusion steps in 1..K.
    """

    flip_u: torch.Tensor
    k: Optional[torch.Tensor] = None
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

    def rows(self, lo: int, hi: int) -> "StepNoise":
        """The noise of samples lo..hi-1 of the global batch."""
        return StepNoise(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[lo:hi]
                            for f in dataclasses.fields(self)})


def context_noise(batch: int, generator: torch.Generator) -> StepNoise:
    """Stage 1 draws only the mirror decision of each sample."""
    return StepNoise(flip_u=torch.rand(batch, generator=generator))


def diffusion_noise(batch: int, config, num_joints: int, heatmaps: bool, generator: torch.Generator) -> StepNoise:
    """Stage 2's draws for a global batch of ``batch`` samples, in a fixed order (see the module doc)."""
    cfg = config
    j, s, h, m = num_joints, cfg.gmm_samples, cfg.train_hypotheses, cfg.gmm_components
    out = StepNoise(flip_u=torch.rand(batch, generator=generator))
    if cfg.forward_process == "standard":
        out.std_eps = torch.randn((batch, h, j, 3), generator=generator)
    else:
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
        fits, dim = (j - 1, 3) if cfg.gmm_scope == "per_joint" else (1, 3 * (j - 1))
        out.seed_u = torch.rand((batch, fits, m), generator=generator, dtype=F64)
        out.comp_u = torch.rand((batch, fits, h), generator=generator, dtype=F64)
        out.path_z = torch.randn((batch, fits, h, dim), generator=generator)
    out.k = torch.randint(1, cfg.num_diffusion_steps + 1, (batch, h), generator=generator)
    return out


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index drawn from unnormalised non-negative ``weights`` [..., n] by uniforms u [..., S] in [0, 1)."""
    cdf = weights.to(F64).cumsum(-1)
    idx = torch.searchsorted(cdf, u.to(cdf.device) * cdf[..., -1:], right=True)
    return idx.clamp_(max=weights.shape[-1] - 1)


def hk_samples_from_noise(pose: torch.Tensor, log_sigma_z: torch.Tensor, keypoints: torch.Tensor,
                          confidence: torch.Tensor, noise: StepNoise, *, sigma_min: float, sigma_max: float,
                          heatmaps: torch.Tensor | None = None, heatmap_boxes: torch.Tensor | None = None,
                          depth_histogram: DepthHistogram | None = None) -> torch.Tensor:
    """``distribution.initial.hk_samples`` with explicit noise: [B, S, J, 3] root-relative metres, root zero."""
    dev = pose.device
    if heatmaps is not None:
        b, j, hh, wh = heatmaps.shape
        cell = _inverse_cdf(heatmaps.detach().reshape(b, j, hh * wh), noise.cell_u)  # [B, J, S]
        jit = noise.jitter_u.to(dev)
        boxes = heatmap_boxes.to(F64)[:, None, None, :]
        x = boxes[..., 0] + ((cell % wh).to(F64) + jit[..., 0]) * (boxes[..., 2] - boxes[..., 0]) / wh
        y = boxes[..., 1] + (torch.div(cell, wh, rounding_mode="floor").to(F64) + jit[..., 1]) * \
            (boxes[..., 3] - boxes[..., 1]) / hh
        px = torch.stack([x, y], -1).to(torch.float32)
        offsets = px - heatmap_mean_px(heatmaps, heatmap_boxes)[:, :, None, :]
    else:
        sigma = confidence_to_sigma_px(confidence, pose_size_px(keypoints, confidence), sigma_min, sigma_max)
        offsets = noise.offsets_z.to(dev, confidence.dtype) * sigma[..., None, None]
    scale = weak_perspective_scale(pose[..., :2], keypoints, confidence)  # px per metre
    xy = pose[:, :, None, :2] + offsets.to(pose.dtype) / scale[:, None, None, None]  # [B, J, S, 2]
    if depth_histogram is not None:
        b, j = pose.shape[:2]
        n = noise.bin_u.shape[-1]
        u = noise.bin_u.permute(1, 0, 2).reshape(j, b * n)
        bins = _inverse_cdf(depth_histogram.pmf, u)  # [J, B S]
        lo = torch.gather(depth_histogram.edges, 1, bins).reshape(j, b, n).permute(1, 0, 2)
        hi = torch.gather(depth_histogram.edges, 1, bins + 1).reshape(j, b, n).permute(1, 0, 2)
        z = (lo + noise.within_u * (hi - lo)).to(dev, pose.dtype)
    else:
        z = pose[:, :, None, 2] + noise.depth_z.to(dev, log_sigma_z.dtype) * log_sigma_z.exp()[..., None]
    samples = torch.cat([xy, z[..., None]], dim=-1).permute(0, 2, 1, 3).contiguous()  # [B, S, J, 3]
    samples[:, :, 0, :] = 0.0
    return samples


def gmm_inputs(samples: torch.Tensor, scope: str) -> torch.Tensor:
    """The EM input of H_K samples [B, S, J, 3]: [B (J-1), S, 3] per joint, [B, S, 3 (J-1)] whole pose."""
    b, s, j, _ = samples.shape
    body = samples[:, :, 1:, :]
    if scope == "per_joint":
        return body.permute(0, 2, 1, 3).reshape(b * (j - 1), s, 3).contiguous()
    return body.reshape(b, s, (j - 1) * 3).contiguous()


def kmeanspp_from_noise(x: torch.Tensor, seed_u: torch.Tensor) -> torch.Tensor:
    """k-means++ (D^2) seeding of fits x [F, n, D] with uniforms seed_u [F, M]: centres [F, M, D].

    The first centre is uniform over the samples; each next one is drawn with probability proportional to the
    squared distance to the nearest centre so far (uniform again when every distance is zero).
    """
    f, n, _ = x.shape
    u = seed_u.to(x.device)
    rows = torch.arange(f, device=x.device)
    uniform = torch.ones((f, n), dtype=F64, device=x.device)
    first = _inverse_cdf(uniform, u[:, :1]).squeeze(1)
    centres = [x[rows, first]]
    d2 = ((x - centres[0][:, None, :]) ** 2).sum(-1).to(F64)
    for m in range(1, u.shape[1]):
        w = torch.where(d2.sum(-1, keepdim=True) > 0, d2, uniform)
        pick = _inverse_cdf(w, u[:, m:m + 1]).squeeze(1)
        centres.append(x[rows, pick])
        d2 = torch.minimum(d2, ((x - centres[-1][:, None, :]) ** 2).sum(-1).to(F64))
    return torch.stack(centres, 1)


def paths_from_noise(fit: GMMFit, noise: StepNoise, batch: int, num_joints: int, scope: str):
    """(mu, eps) [B, H, J, 3] of Eq. 7 from a fitted GMM of H_K: component by comp_u, eps = L z (root zero)."""
    b, j = batch, num_joints
    _, m, d = fit.means.shape
    h = noise.comp_u.shape[-1]
    comp_u = noise.comp_u.reshape(-1, h)  # [F, H]
    comps = _inverse_cdf(fit.weights, comp_u).to(fit.means.device)  # [F, H]
    mu = torch.gather(fit.means, 1, comps[..., None].expand(-1, -1, d))
    z = noise.path_z.reshape(-1, h, d).to(fit.means.device, fit.means.dtype)
    factor = fit.cholesky()
    if fit.covariance_type == "diag":
        eps = torch.gather(factor, 1, comps[..., None].expand(-1, -1, d)) * z
    else:
        chol = torch.gather(factor, 1, comps[..., None, None].expand(-1, -1, d, d))
        eps = (chol @ z[..., None]).squeeze(-1)
    if scope == "per_joint":  # [B (J-1), H, 3] -> [B, H, J-1, 3]
        mu = mu.reshape(b, j - 1, h, 3).permute(0, 2, 1, 3)
        eps = eps.reshape(b, j - 1, h, 3).permute(0, 2, 1, 3)
    else:
        mu = mu.reshape(b, h, j - 1, 3)
        eps = eps.reshape(b, h, j - 1, 3)
    zeros = mu.new_zeros((b, h, 1, 3))
    return torch.cat([zeros, mu], 2), torch.cat([zeros, eps], 2)
