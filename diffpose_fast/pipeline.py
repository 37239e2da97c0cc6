"""The DiffPose method on a batch of frames (paper Fig. 2), independent of training and of the public facade.

    frames -> context encoder phi_ST -> f_ST [B, J, C], initial pose p [B, J, 3], depth spread
           -> H_K samples -> GMM fit (Eq. 6) -> N hypotheses (mu^G, h_K = mu^G + eps^G)
           -> reverse diffusion with g(h_k, f_ST, f_D^k) (Eq. 8, all K steps or DDIM)
           -> h_0 [B, N, J, 3]; the answer is their mean.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import LifterConfig
from .fast.sampler import gmm_backend, reverse_diffusion
from .diffusion.schedule import DiffusionSchedule
from .distribution.depth import DepthHistogram
from .distribution.initial import InitialDistribution, fit_initial_distribution, hk_samples
from .distribution.noise import HKNoise, draw_hk_noise
from .models.context_frame import ContextOutput, FrameContextEncoder
from .models.context_video import VideoContextEncoder
from .models.denoiser import GCNAttentionDenoiser
from .training.frames import FrameSet

ENCODER_INPUT_FEATURES = 3  # normalised x, y and confidence


class DiffPoseModel(nn.Module):
    """Context encoder + denoiser + schedule: everything the method needs besides data.

    ``depth_histogram`` (the training set's per-joint z histogram) is set by training and saved with the
    weights; it is only used when ``config.z_source == "histogram"``.
    """

    def __init__(self, config: LifterConfig):
        super().__init__()
        self.config = config
        if config.mode == "video":  # MixSTE-style seq2seq encoder over windows of config.frames frames
            self.encoder = VideoContextEncoder(in_features=ENCODER_INPUT_FEATURES, hidden=config.context_dim,
                                               depth=config.encoder_layers, heads=config.encoder_heads,
                                               frames=config.frames, causal=config.causal, dropout=config.dropout)
        else:
            self.encoder = FrameContextEncoder(in_features=ENCODER_INPUT_FEATURES, hidden=config.context_dim,
                                               num_layers=config.encoder_layers, heads=config.encoder_heads,
                                               dropout=config.dropout)
        self.denoiser = GCNAttentionDenoiser(context_dim=config.context_dim, hidden=config.hidden_dim,
                                             embed_dim=config.embed_dim, num_blocks=config.denoiser_blocks,
                                             heads=config.denoiser_heads, dropout=config.dropout)
        self.schedule = DiffusionSchedule(config.num_diffusion_steps, config.schedule)
        self.depth_histogram: DepthHistogram | None = None

    # ------------------------------------------------------------------------------------------- pieces
    def encode(self, frames: FrameSet) -> ContextOutput:
        return self.encoder(frames.inputs)

    def initial_distribution(self, frames: FrameSet, context: ContextOutput, noise: HKNoise,
                             backend: str = "auto") -> InitialDistribution:
        """H_K for every frame, fitted (or the standard Gaussian for Stand-Diff), from the draws in ``noise``."""
        cfg = self.config
        b, j = context.pose.shape[:2]
        if cfg.forward_process == "standard":
            return InitialDistribution(batch=b, num_joints=j, scope="standard")
        histogram = self.depth_histogram if cfg.z_source == "histogram" else None
        if cfg.z_source == "histogram" and histogram is None:
            raise RuntimeError("z_source='histogram' needs the training depth histogram; train the model first")
        samples = hk_samples(context.pose.detach().float(), context.log_sigma_z.detach().float(), frames.keypoints,
                             frames.confidence, noise, sigma_min=cfg.keypoint_sigma_min,
                             sigma_max=cfg.keypoint_sigma_max, heatmaps=frames.heatmaps,
                             heatmap_boxes=frames.boxes, depth_histogram=histogram)
        return fit_initial_distribution(samples, noise.seed_u, scope=cfg.gmm_scope, num_components=cfg.gmm_components,
                                        covariance=cfg.gmm_covariance, max_iter=cfg.gmm_max_iter, tol=cfg.gmm_tol,
                                        reg_covar=cfg.gmm_reg_covar, backend=backend)

    def draw_noise(self, batch: int, num_sets: int, heatmaps: bool, generator: torch.Generator | None) -> HKNoise:
        """Fresh draws for ``batch`` frames and ``num_sets`` hypotheses (see ``distribution.noise``)."""
        return draw_hk_noise(batch, self.config, self.encoder.num_joints, num_sets, heatmaps, generator)

    # ------------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, frames: FrameSet, num_samples: int, steps: int | None, sampler: str,
               generator: torch.Generator | None, backend: str = "auto",
               context: ContextOutput | None = None, noise: HKNoise | None = None) -> torch.Tensor:
        """N hypotheses per frame: [B, N, J, 3] root-relative metres (sampler "context": [B, 1, J, 3]).

        ``context``: the frames' encoder outputs when already computed (the video path encodes windows and
        passes each frame's f_ST [B, J, C], pose [B, J, 3], log_sigma_z [B, J]); None: ``encode(frames)``.
        ``noise``: the draws of H_K and the hypotheses ([B] rows, ``num_samples`` sets), e.g. one sequence's row
        shared by all its frames; None: fresh draws per frame from ``generator``.
        """
        context = self.encode(frames) if context is None else context
        if sampler == "context":
            return context.pose[:, None]
        b, j = context.pose.shape[:2]
        if noise is None:
            noise = self.draw_noise(b, num_samples, frames.heatmaps is not None, generator)
        hk = self.initial_distribution(frames, context, noise, gmm_backend(backend))
        mu, eps = hk.draw(noise, device=context.pose.device, dtype=context.pose.dtype)
        mu = mu.reshape(b * num_samples, j, 3)
        h_k = mu + eps.reshape(b * num_samples, j, 3)
        features = context.features.repeat_interleave(num_samples, 0)  # N hypotheses batched with the frames
        k_steps = self.schedule.num_steps if sampler == "ddpm" else steps
        # backend "reference": DDIMSampler + the reference denoiser; "auto"/"fast"/"native": the fast path (issue 9)
        h0 = reverse_diffusion(self.denoiser, self.schedule, features, h_k, mu, k_steps, backend)
        h0 = h0.reshape(b, num_samples, j, 3)
        return h0 - h0[:, :, :1]  # root-relative: the root is exactly zero
