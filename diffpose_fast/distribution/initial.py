"""H_K, the uncertain initial pose distribution (paper Sec. 4.1), and its GMM (Eq. 6).

Construction (docs/design.md, "H_K"): centre on the context encoder's pose p [B, J, 3] (root-relative metres);
give x, y the shape of the 2D uncertainty, converted from pixels to metres by the weak-perspective scale fitted
between the 2D keypoints and p's x, y; give z the encoder's predicted spread or the training histogram. The root
is identically zero in the root-relative frame, so it is left out of every fit (D = 48 whole-pose, or 16 fits of
D = 3 per joint) and put back as zeros.
"""
from __future__ import annotations

import dataclasses

import torch

from ..ops.gmm import GMMFit, em_fit, gmm_sample
from .depth import DepthHistogram, encoder_depth_offsets
from .spread2d import heatmap_offsets, keypoint_offsets, pose_size_px


def weak_perspective_scale(pose_xy: torch.Tensor, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Pixels per metre [B] mapping root-relative x, y (metres) [B, J, 2] onto keypoints [B, J, 2] (pixels).

    Least squares over the joints with confidence > 0, after removing each set's centroid:
    s = sum <p - p_bar, k - k_bar> / sum |p - p_bar|^2. A degenerate fit (s <= 0, e.g. a wildly wrong encoder
    pose) falls back to the ratio of the two bounding-box diagonals, which is always positive.
    """
    w = ((confidence > 0) & torch.isfinite(keypoints).all(-1)).to(pose_xy.dtype)  # [B, J]
    k = torch.nan_to_num(keypoints)
    wsum = w.sum(1, keepdim=True).clamp_min(1.0)
    p_c = pose_xy - (pose_xy * w[..., None]).sum(1, keepdim=True) / wsum[..., None]
    k_c = k - (k * w[..., None]).sum(1, keepdim=True) / wsum[..., None]
    num = (w[..., None] * p_c * k_c).sum((1, 2))
    den = (w[..., None] * p_c * p_c).sum((1, 2))
    s = num / den.clamp_min(1e-12)
    pose_extent = (pose_xy.amax(1) - pose_xy.amin(1)).norm(dim=-1).clamp_min(1e-3)
    fallback = pose_size_px(keypoints, confidence) / pose_extent
    return torch.where(s > 1e-6, s, fallback)


def hk_samples(pose: torch.Tensor, log_sigma_z: torch.Tensor, keypoints: torch.Tensor, confidence: torch.Tensor,
               num_samples: int, *, sigma_min: float, sigma_max: float, heatmaps: torch.Tensor | None = None,
               heatmap_boxes: torch.Tensor | None = None, depth_histogram: DepthHistogram | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples of H_K: [B, S, J, 3] root-relative metres, root exactly zero.

    pose [B, J, 3] and log_sigma_z [B, J] from the context encoder; keypoints [B, J, 2] pixels, confidence [B, J]
    in [0, 1]; heatmaps [B, J, Hh, Wh] with heatmap_boxes [B, 4] replace the keypoint Gaussian when given;
    depth_histogram replaces the encoder's depth spread when given.
    """
    if heatmaps is not None:
        offsets = heatmap_offsets(heatmaps, heatmap_boxes, num_samples, generator)
    else:
        offsets = keypoint_offsets(confidence, pose_size_px(keypoints, confidence), num_samples, sigma_min,
                                   sigma_max, generator)
    scale = weak_perspective_scale(pose[..., :2], keypoints, confidence)  # px per metre
    xy = pose[:, :, None, :2] + offsets.to(pose.dtype) / scale[:, None, None, None]  # [B, J, S, 2]
    if depth_histogram is not None:
        z = depth_histogram.sample(pose.shape[0], num_samples, generator).to(pose.device, pose.dtype)
    else:
        z = pose[:, :, None, 2] + encoder_depth_offsets(log_sigma_z, num_samples, generator)
    samples = torch.cat([xy, z[..., None]], dim=-1).permute(0, 2, 1, 3).contiguous()  # [B, S, J, 3]
    samples[:, :, 0, :] = 0.0
    return samples


@dataclasses.dataclass
class InitialDistribution:
    """The fitted GMM of H_K for B inputs (or the standard Gaussian, for Stand-Diff), ready to draw paths.

    ``draw`` returns, per input and hypothesis set, the component mean mu^G and the noise eps^G of Eq. 7, so
    that h_K = mu^G + eps^G is a sample of the GMM and every step of the path uses the same (mu^G, eps^G).
    """

    batch: int
    num_joints: int
    scope: str                       # "per_joint" | "whole_pose" | "standard"
    fit: GMMFit | None = None

    def draw(self, num_sets: int, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        """(mu, eps), each [B, S, J, 3] (metres, root zero)."""
        b, j = self.batch, self.num_joints
        if self.scope == "standard":
            eps = torch.randn((b, num_sets, j, 3), generator=generator, dtype=dtype,
                              device=generator.device if generator is not None else "cpu").to(device)
            eps[:, :, 0] = 0.0
            return torch.zeros_like(eps), eps
        x, comps = gmm_sample(self.fit, num_sets, generator)
        d = self.fit.dim
        mu = torch.gather(self.fit.means, 1, comps[..., None].expand(-1, -1, d))
        if self.scope == "per_joint":  # fits are [B * (J-1)] of D = 3
            x = x.reshape(b, j - 1, num_sets, 3).permute(0, 2, 1, 3)
            mu = mu.reshape(b, j - 1, num_sets, 3).permute(0, 2, 1, 3)
        else:  # [B] fits of D = 3 (J - 1)
            x = x.reshape(b, num_sets, j - 1, 3)
            mu = mu.reshape(b, num_sets, j - 1, 3)
        zeros = torch.zeros((b, num_sets, 1, 3), dtype=x.dtype, device=x.device)
        mu = torch.cat([zeros, mu], 2).to(device=device, dtype=dtype)
        x = torch.cat([zeros, x], 2).to(device=device, dtype=dtype)
        return mu, x - mu


def fit_initial_distribution(samples: torch.Tensor, *, scope: str, num_components: int, covariance: str,
                             max_iter: int, tol: float, reg_covar: float, generator: torch.Generator | None = None,
                             backend: str = "auto") -> InitialDistribution:
    """Fit the GMM of H_K (Eq. 6) to samples [B, S, J, 3]: one mixture per input (whole_pose, D = 3(J-1))
    or one per non-root joint (per_joint, D = 3), all in one batched ``em_fit`` call."""
    b, s, j, _ = samples.shape
    body = samples[:, :, 1:, :]
    if scope == "per_joint":
        x = body.permute(0, 2, 1, 3).reshape(b * (j - 1), s, 3)
    elif scope == "whole_pose":
        x = body.reshape(b, s, (j - 1) * 3)
    else:
        raise ValueError(f"fit_initial_distribution: scope must be 'per_joint' or 'whole_pose', got {scope!r}")
    fit = em_fit(x.contiguous(), num_components, covariance=covariance, max_iter=max_iter, tol=tol,
                 reg_covar=reg_covar, reg_covar_mode="relative", generator=generator, backend=backend)
    return InitialDistribution(batch=b, num_joints=j, scope=scope, fit=fit)
