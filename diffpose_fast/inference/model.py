"""The DiffPose method on a batch of frames (paper Fig. 2), independent of training and of the public facade.

    frames -> context encoder phi_ST -> f_ST [B, J, C], initial pose p [B, J, 3], depth spread
           -> H_K samples -> GMM fit (Eq. 6) -> N hypotheses (mu^G, h_K = mu^G + eps^G)
           -> reverse diffusion with g(h_k, f_ST, f_D^k) (Eq. 8, all K steps or DDIM)
           -> h_0 [B, N, J, 3]; the answer is their mean.

Cross-fitted context encoders (``config.context_folds`` = K > 1, docs/design.md "Cross-fitting"): K encoders,
encoder k trained on every training frame outside fold k, so that stage 2 can condition the denoiser on contexts
of frames their encoder never saw, as at test time. At inference every encoder is out of sample; hypothesis i
uses encoder i mod K (its f_ST, its H_K), and the "context" answer is the mean of the K encoders' poses.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import LifterConfig
from ..data.frames import FrameSet
from ..diffusion.schedule import DiffusionSchedule
from ..distribution.depth import DepthHistogram
from ..distribution.initial import InitialDistribution, fit_initial_distribution, hk_samples
from ..distribution.noise import HKNoise, draw_hk_noise
from ..models.context_frame import ContextOutput, FrameContextEncoder
from ..models.context_video import VideoContextEncoder
from ..models.denoiser import GCNAttentionDenoiser
from ..models.flip_test import encode_with_flip_test
from .reverse import gmm_backend, reverse_diffusion

ENCODER_INPUT_FEATURES = 3  # normalised x, y and confidence
# H_K's depth spread: log sigma_z is bounded as in stage 1's likelihood (1 mm .. 2.7 m) before the out-of-fold
# scale; hk_samples then caps sigma at distribution.initial.MAX_DEPTH_SIGMA_M (0.5 m), so a briefly trained encoder
# cannot spread the hypotheses over metres.
LOG_SIGMA_Z_RANGE = (-7.0, 1.0)


class DiffPoseModel(nn.Module):
    """Context encoder + denoiser + schedule: everything the method needs besides data.

    ``depth_histogram`` (the training set's per-joint z histogram) is set by training and saved with the
    weights; it is only used when ``config.z_source == "histogram"``.
    """

    def __init__(self, config: LifterConfig):
        super().__init__()
        self.config = config
        self.encoder = self._make_encoder()  # fold 0 (the only one unless context_folds > 1)
        self.extra_encoders = nn.ModuleList(self._make_encoder() for _ in range(config.context_folds - 1))
        self.denoiser = GCNAttentionDenoiser(context_dim=config.context_dim, hidden=config.hidden_dim,
                                             embed_dim=config.embed_dim, num_blocks=config.denoiser_blocks,
                                             heads=config.denoiser_heads, dropout=config.dropout,
                                             joint_embedding=config.denoiser_joint_embedding,
                                             inputs_2d=ENCODER_INPUT_FEATURES if config.denoiser_2d_input else 0)
        self.schedule = DiffusionSchedule(config.num_diffusion_steps, config.schedule)
        # Per-joint factor on the encoder's depth sigma, fitted on out-of-fold residuals after stage 1 (ones
        # until then, and for K = 1 where no frame is out of fold).
        self.register_buffer("depth_sigma_scale", torch.ones(self.encoder.num_joints))
        self.depth_histogram: DepthHistogram | None = None

    def _make_encoder(self) -> nn.Module:
        cfg = self.config
        if cfg.mode == "video":  # MixSTE-style seq2seq encoder over windows of config.frames frames
            return VideoContextEncoder(in_features=ENCODER_INPUT_FEATURES, hidden=cfg.context_dim,
                                       depth=cfg.encoder_layers, heads=cfg.encoder_heads, frames=cfg.frames,
                                       causal=cfg.causal, dropout=cfg.dropout)  # has its own joint embedding
        return FrameContextEncoder(in_features=ENCODER_INPUT_FEATURES, hidden=cfg.context_dim,
                                   num_layers=cfg.encoder_layers, heads=cfg.encoder_heads, dropout=cfg.encoder_dropout,
                                   joint_embedding=cfg.encoder_joint_embedding)

    @property
    def encoders(self) -> list[nn.Module]:
        """The K context encoders, fold 0 first."""
        return [self.encoder, *self.extra_encoders]

    # ------------------------------------------------------------------------------------------- pieces
    def encode(self, frames: FrameSet, fold: int = 0, flip_test: bool | None = None) -> ContextOutput:
        """The outputs of encoder ``fold`` for ``frames``; with the flip test (None: ``config.flip_test``) their
        mean over each frame and its mirror image (``models.flip_test``)."""
        flip = self.config.flip_test if flip_test is None else bool(flip_test)
        return encode_with_flip_test(self.encoders[fold], frames.inputs, flip)

    def encode_out_of_fold(self, frames: FrameSet, folds: torch.Tensor) -> ContextOutput:
        """Each frame's outputs from the encoder that did not train on it: folds [B] (fold of each frame); the flip
        test as ``config.flip_test`` (what training conditions on is what inference gives)."""
        if len(self.encoders) == 1:
            return self.encode(frames)
        parts: list[tuple[torch.Tensor, ContextOutput]] = []
        for k in range(len(self.encoders)):
            idx = torch.nonzero(folds == k).flatten()
            if idx.numel():
                parts.append((idx, encode_with_flip_test(self.encoders[k], frames.inputs[idx.to(frames.inputs.device)],
                                                         self.config.flip_test)))
        out = []
        for field in range(3):
            like = parts[0][1][field]
            full = like.new_empty((len(frames), *like.shape[1:]))
            for idx, ctx in parts:
                full[idx.to(full.device)] = ctx[field]
            out.append(full)
        return ContextOutput(*out)

    def conditioning(self, frames: FrameSet, context: ContextOutput) -> torch.Tensor:
        """The denoiser's conditioning [B, J, C] (``GCNAttentionDenoiser.condition``) for these frames."""
        return self.denoiser.condition(context.features, frames.inputs if self.config.denoiser_2d_input else None)

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
        log_sigma_z = (context.log_sigma_z.detach().float().clamp(*LOG_SIGMA_Z_RANGE)
                       + self.depth_sigma_scale.log().to(context.log_sigma_z.device))
        samples = hk_samples(context.pose.detach().float(), log_sigma_z, frames.keypoints,
                             frames.confidence, noise, sigma_min=cfg.keypoint_sigma_min,
                             sigma_max=cfg.keypoint_sigma_max, heatmaps=frames.heatmaps,
                             heatmap_boxes=frames.boxes, depth_histogram=histogram,
                             keypoint_sigma=frames.keypoint_sigma)
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
               context: ContextOutput | None = None, noise: HKNoise | None = None,
               return_context: bool = False, flip_test: bool | None = None):
        """N hypotheses per frame: [B, N, J, 3] root-relative metres (sampler "context": [B, 1, J, 3]).

        ``context``: the frames' encoder outputs when already computed (the video path encodes windows and
        passes each frame's f_ST [B, J, C], pose [B, J, 3], log_sigma_z [B, J]); None: ``encode(frames)``.
        ``noise``: the draws of H_K and the hypotheses ([B] rows, ``num_samples`` sets), e.g. one sequence's row
        shared by all its frames; None: fresh draws per frame from ``generator``.
        ``return_context``: also return the encoders' pose [B, J, 3] (their mean when cross-fitted), what the
        "context" sampler answers, from the same encoder pass.
        ``flip_test``: as ``encode`` (None: ``config.flip_test``); unused with a precomputed ``context``.
        """
        folds = len(self.encoders)
        if context is not None and folds > 1:
            raise ValueError("DiffPoseModel.sample: a precomputed context needs context_folds = 1")
        contexts = [context] if context is not None else [self.encode(frames, k, flip_test) for k in range(folds)]
        pose = torch.stack([c.pose for c in contexts]).mean(0)   # the encoders alone (their mean when cross-fitted)
        if sampler == "context":
            return (pose[:, None], pose) if return_context else pose[:, None]
        b, j = contexts[0].pose.shape[:2]
        if noise is None:
            noise = self.draw_noise(b, num_samples, frames.heatmaps is not None, generator)
        mu = contexts[0].pose.new_empty((b, num_samples, j, 3))
        eps = torch.empty_like(mu)
        features = contexts[0].features.new_empty((b, num_samples, j, self.config.context_dim))
        for k, ctx in enumerate(contexts):  # hypothesis i follows encoder i mod K
            sets = list(range(k, num_samples, folds))
            if not sets:
                continue
            part = noise if folds == 1 else noise.sets(sets)
            hk = self.initial_distribution(frames, ctx, part, gmm_backend(backend))
            mu_k, eps_k = hk.draw(part, device=ctx.pose.device, dtype=ctx.pose.dtype)
            mu[:, sets], eps[:, sets] = mu_k, eps_k
            features[:, sets] = self.conditioning(frames, ctx)[:, None]
        mu = mu.reshape(b * num_samples, j, 3)
        h_k = mu + eps.reshape(b * num_samples, j, 3)
        features = features.reshape(b * num_samples, j, -1)  # N hypotheses batched with the frames
        k_steps = self.schedule.num_steps if sampler == "ddpm" else steps
        # backend "reference": DDIMSampler + the reference denoiser; "auto"/"fast"/"native": the fast path (fast/)
        h0 = reverse_diffusion(self.denoiser, self.schedule, features, h_k, mu, k_steps, backend)
        h0 = h0.reshape(b, num_samples, j, 3)
        h0 = h0 - h0[:, :, :1]  # root-relative: the root is exactly zero
        return (h0, pose) if return_context else h0
