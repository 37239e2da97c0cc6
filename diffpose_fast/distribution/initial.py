"""H_K, the uncertain initial pose distribution (paper Sec. 4.1), and its GMM (Eq. 6).

Construction (docs/design.md, "H_K"): centre on the context encoder's pose p [B, J, 3] (root-relative metres);
give x, y the shape of the 2D uncertainty, converted from pixels to metres by the weak-perspective scale fitted
between the 2D keypoints and p's x, y; give z the encoder's predicted spread or the training histogram. The root
is identically zero in the root-relative frame, so it is left out of every fit (D = 48 whole-pose, or 16 fits of
D = 3 per joint) and put back as zeros.

All randomness comes in as an ``HKNoise`` (``distribution.noise``), shared by training and inference.
"""
from __future__ import annotations

import dataclasses

import torch

from ..ops.gmm import GMMFit, em_fit
from ..ops.gmm.api import inverse_cdf, kmeans_plusplus_from_uniforms, sample_from_draws
from .depth import DepthHistogram
from .noise import F64, HKNoise
from .spread2d import confidence_to_sigma_px, heatmap_mean_px, pose_size_px


BODY_SPAN_M = (0.1, 3.0)   # the 2D bounding-box diagonal of a person seen by a camera, as metres of body
# A joint's depth relative to the pelvis lies within about +-1 m (half an arm span and a leg): a depth spread
# above 0.5 m (2 sigma = 1 m) says nothing more, and a briefly trained or off-distribution encoder can ask for
# metres. Bounds H_K's depth sigma in training and at inference alike.
MAX_DEPTH_SIGMA_M = 0.5


def weak_perspective_scale(pose_xy: torch.Tensor, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Pixels per metre [B] mapping root-relative x, y (metres) [B, J, 2] onto keypoints [B, J, 2] (pixels).

    Least squares over the joints with confidence > 0, after removing each set's centroid:
    s = sum <p - p_bar, k - k_bar> / sum |p - p_bar|^2. A degenerate fit (s <= 0, e.g. a wildly wrong encoder
    pose) falls back to the ratio of the two bounding-box diagonals, which is always positive. The result is then
    bounded so that the keypoints' bounding-box diagonal spans between BODY_SPAN_M[0] and BODY_SPAN_M[1] metres
    of body: a wrong encoder pose cannot turn the 2D spread into metres by a factor of a million.
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
    size_px = pose_size_px(keypoints, confidence)
    fallback = size_px / pose_extent
    s = torch.where(s > 1e-6, s, fallback)
    return torch.minimum(torch.maximum(s, size_px / BODY_SPAN_M[1]), size_px / BODY_SPAN_M[0])


def _heatmap_offsets(heatmaps: torch.Tensor, boxes: torch.Tensor, cell_u: torch.Tensor,
                     jitter_u: torch.Tensor) -> torch.Tensor:
    """Pixel offsets [B, J, S, 2] from heatmaps [B, J, Hh, Wh] (pmfs over the cells of boxes [B, 4]) around their
    own mean: cell by inverse CDF of cell_u [B, J, S], then uniform inside the cell by jitter_u [B, J, S, 2]."""
    b, j, hh, wh = heatmaps.shape
    cell = inverse_cdf(heatmaps.detach().reshape(b, j, hh * wh), cell_u)  # [B, J, S]
    jit = jitter_u.to(heatmaps.device)
    box = boxes.to(F64)[:, None, None, :]
    x = box[..., 0] + ((cell % wh).to(F64) + jit[..., 0]) * (box[..., 2] - box[..., 0]) / wh
    y = box[..., 1] + (torch.div(cell, wh, rounding_mode="floor").to(F64) + jit[..., 1]) * \
        (box[..., 3] - box[..., 1]) / hh
    px = torch.stack([x, y], -1).to(heatmaps.dtype)
    return px - heatmap_mean_px(heatmaps, boxes)[:, :, None, :]


def hk_samples(pose: torch.Tensor, log_sigma_z: torch.Tensor, keypoints: torch.Tensor, confidence: torch.Tensor,
               noise: HKNoise, *, sigma_min: float, sigma_max: float, heatmaps: torch.Tensor | None = None,
               heatmap_boxes: torch.Tensor | None = None, depth_histogram: DepthHistogram | None = None,
               keypoint_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Samples of H_K: [B, S, J, 3] root-relative metres, root exactly zero (S = the noise's sample count).

    pose [B, J, 3] and log_sigma_z [B, J] from the context encoder; keypoints [B, J, 2] pixels, confidence [B, J]
    in [0, 1]. x, y: heatmaps [B, J, Hh, Wh] over heatmap_boxes [B, 4] when given (noise.cell_u, jitter_u), else
    a Gaussian (noise.offsets_z) whose per-axis sigma is keypoint_sigma [B, J, 2] pixels where given (the
    detector's own spread) and the confidence's (``spread2d``) where it is None or NaN. z: the training histogram when ``depth_histogram`` is
    given (noise.bin_u, within_u), else the encoder's Gaussian (noise.depth_z), its sigma at most
    MAX_DEPTH_SIGMA_M (0.5 m).
    """
    dev = pose.device
    if heatmaps is not None:
        offsets = _heatmap_offsets(heatmaps, heatmap_boxes, noise.cell_u, noise.jitter_u)
    else:
        sigma = confidence_to_sigma_px(confidence, pose_size_px(keypoints, confidence), sigma_min, sigma_max)
        sigma = sigma[..., None].expand(*sigma.shape, 2)                      # [B, J, 2], the same on both axes
        if keypoint_sigma is not None:
            given = keypoint_sigma.to(dev, sigma.dtype)
            sigma = torch.where(torch.isnan(given), sigma, given)
        offsets = noise.offsets_z.to(dev, confidence.dtype) * sigma[:, :, None, :]
    scale = weak_perspective_scale(pose[..., :2], keypoints, confidence)  # px per metre
    xy = pose[:, :, None, :2] + offsets.to(pose.dtype) / scale[:, None, None, None]  # [B, J, S, 2]
    if depth_histogram is not None:
        z = depth_histogram.sample_from_uniforms(noise.bin_u, noise.within_u).to(dev, pose.dtype)
    else:
        sigma_z = log_sigma_z.exp().clamp(max=MAX_DEPTH_SIGMA_M)
        z = pose[:, :, None, 2] + noise.depth_z.to(dev, log_sigma_z.dtype) * sigma_z[..., None]
    samples = torch.cat([xy, z[..., None]], dim=-1).permute(0, 2, 1, 3).contiguous()  # [B, S, J, 3]
    samples[:, :, 0, :] = 0.0
    return samples


def gmm_inputs(samples: torch.Tensor, scope: str) -> torch.Tensor:
    """The EM input of H_K samples [B, S, J, 3]: [B (J-1), S, 3] per joint, [B, S, 3 (J-1)] whole pose."""
    b, s, j, _ = samples.shape
    body = samples[:, :, 1:, :]
    if scope == "per_joint":
        return body.permute(0, 2, 1, 3).reshape(b * (j - 1), s, 3).contiguous()
    if scope == "whole_pose":
        return body.reshape(b, s, (j - 1) * 3).contiguous()
    raise ValueError(f"gmm_inputs: scope must be 'per_joint' or 'whole_pose', got {scope!r}")


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

    def draw(self, noise: HKNoise, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        """(mu, eps), each [B, H, J, 3] (metres, root zero), from noise.comp_u [B, G, H] and path_z [B, G, H, d]
        (or std_eps [B, H, J, 3] for Stand-Diff)."""
        b, j = self.batch, self.num_joints
        if self.scope == "standard":
            eps = noise.std_eps.to(device, dtype).clone()
            eps[:, :, 0] = 0.0
            return torch.zeros_like(eps), eps
        h = noise.comp_u.shape[-1]
        d = self.fit.dim
        x, comps = sample_from_draws(self.fit, noise.comp_u.reshape(-1, h), noise.path_z.reshape(-1, h, d))
        mu = torch.gather(self.fit.means, 1, comps[..., None].expand(-1, -1, d))
        if self.scope == "per_joint":  # fits are [B (J-1)] of D = 3
            x = x.reshape(b, j - 1, h, 3).permute(0, 2, 1, 3)
            mu = mu.reshape(b, j - 1, h, 3).permute(0, 2, 1, 3)
        else:  # [B] fits of D = 3 (J - 1)
            x = x.reshape(b, h, j - 1, 3)
            mu = mu.reshape(b, h, j - 1, 3)
        zeros = mu.new_zeros((b, h, 1, 3))
        mu = torch.cat([zeros, mu], 2).to(device=device, dtype=dtype)
        x = torch.cat([zeros, x], 2).to(device=device, dtype=dtype)
        return mu, x - mu


def fit_initial_distribution(samples: torch.Tensor, seed_u: torch.Tensor, *, scope: str, num_components: int,
                             covariance: str, max_iter: int, tol: float, reg_covar: float,
                             backend: str = "auto") -> InitialDistribution:
    """Fit the GMM of H_K (Eq. 6) to samples [B, S, J, 3]: one mixture per input (whole_pose, D = 3(J-1))
    or one per non-root joint (per_joint, D = 3), all in one batched ``em_fit`` call, seeded by k-means++ with
    the uniforms seed_u [B, G, M]."""
    b, _, j, _ = samples.shape
    x = gmm_inputs(samples, scope)
    init = kmeans_plusplus_from_uniforms(x, seed_u.reshape(x.shape[0], -1))
    fit = em_fit(x, num_components, covariance=covariance, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                 reg_covar_mode="relative", init=init, backend=backend,
                 reseed_dead=False)   # H_K's fits start from the step's own seeds (bit-exact, no second pass)
    return InitialDistribution(batch=b, num_joints=j, scope=scope, fit=fit)
