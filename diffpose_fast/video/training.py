"""The two training stages for the video model (paper Sec. 4.4, 5; MixSTE's recipe for stage 1).

stage 1  the VideoContextEncoder learns x, y, z on windows of F frames, seq2seq, with MixSTE's losses:
         position (MPJPE) + velocity (MPJVE, weight 2.0) + temporal consistency (MixSTE's TCLoss: the mean
         squared frame-to-frame change of the prediction, weight 0.5; a smoothness prior), plus the frame model's
         depth likelihood for log sigma_z; its EMA weights are then frozen.
stage 2  windows -> frozen encoder (with flip TTA, as at test time) -> every frame's f_ST, pose, log sigma_z ->
         exactly the frame model's per-frame step: H_K -> GMM (Eq. 6) -> Eq. 7 at a uniform k -> g predicts h_0 ->
         Eq. 9 (x0 form). The denoiser stays per frame (Fig. 2); time enters only through f_ST.

A step draws ``max(1, round(batch_size / F))`` windows: a sequence with probability proportional to its length,
a start uniform in [0, T - F] (a sequence shorter than F is one edge-padded window whose padded frames are left out
of every loss). Flip augmentation mirrors whole windows. Randomness comes from (seed, stage, step) as in the
frame trainer, so a run is reproducible step by step.
"""
from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..data.skeleton import NUM_JOINTS
from ..distribution.depth import DepthHistogram
from ..training.ema import EMA
from ..data.frames import FrameSet
from ..training.losses import depth_nll_loss
from ..training.step_noise import diffusion_noise
from ..training.trainer import cosine_lr, derived_generator, diffusion_batch_loss, ema_decay_at
from .inference import encode_windows

VELOCITY_WEIGHT = 2.0      # MixSTE
CONSISTENCY_WEIGHT = 0.5   # MixSTE


# ----------------------------------------------------------------------------------------------- losses
def masked_mpjpe(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean per-joint distance over the valid frames. pred, target [B, T, J, 3]; valid [B, T] bool."""
    err = (pred - target).norm(dim=-1).mean(-1)  # [B, T]
    return (err * valid).sum() / valid.sum().clamp(min=1)


def velocity_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """MPJVE: mean_j || (p_t+1 - p_t) - (g_t+1 - g_t) || over consecutive valid frame pairs."""
    pair = valid[:, 1:] & valid[:, :-1]
    dv = (pred.diff(dim=1) - target.diff(dim=1)).norm(dim=-1).mean(-1)  # [B, T-1]
    return (dv * pair).sum() / pair.sum().clamp(min=1)


def temporal_consistency_loss(pred: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """MixSTE's TCLoss: the mean squared frame-to-frame change of the prediction (metres^2 per frame^2)."""
    pair = valid[:, 1:] & valid[:, :-1]
    sq = pred.diff(dim=1).pow(2).sum(-1).mean(-1)  # [B, T-1]
    return (sq * pair).sum() / pair.sum().clamp(min=1)


# --------------------------------------------------------------------------------------------- windows
def sample_windows(lengths: Sequence[int], frames: int, count: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random training windows: (global frame indices [count, F], valid [count, F] bool).

    Global indices address the concatenation of the sequences (``frames_from_sequences`` order).
    """
    lengths_t = torch.as_tensor(list(lengths), dtype=torch.float64)
    offsets = torch.cumsum(lengths_t, 0).long() - lengths_t.long()
    seq = torch.multinomial(lengths_t, count, replacement=True, generator=generator)
    t = lengths_t.long()[seq]
    span = (t - frames).clamp(min=0) + 1
    start = (torch.rand(count, generator=generator, dtype=torch.float64) * span).long()
    local = start[:, None] + torch.arange(frames)[None, :]
    valid = local < t[:, None]
    local = torch.minimum(local, t[:, None] - 1)  # right edge padding
    return offsets[seq][:, None] + local, valid


def _mirror_windows(frames: FrameSet, flip: torch.Tensor) -> FrameSet:
    """Mirror the frames of the windows where ``flip`` [W] is True (frames is W x F frames, window-major)."""
    if not bool(flip.any()):
        return frames
    per_frame = flip.repeat_interleave(len(frames) // flip.numel())
    mirrored = frames.flipped()
    fields = []
    for a, b in zip((frames.inputs, frames.keypoints, frames.confidence, frames.image_size, frames.poses,
                     frames.heatmaps, frames.boxes),
                    (mirrored.inputs, mirrored.keypoints, mirrored.confidence, mirrored.image_size,
                     mirrored.poses, mirrored.heatmaps, mirrored.boxes)):
        fields.append(None if a is None else
                      torch.where(per_frame.view(-1, *[1] * (a.dim() - 1)).to(a.device), b, a))
    return FrameSet(*fields)


class VideoTrainer:
    """Runs the two stages on a DiffPoseModel with a VideoContextEncoder; ``ema`` covers the whole model.

    Args:
        model: DiffPoseModel built with config.mode == "video".
        seed: derives every random draw.
        device: where training runs.
        progress: progress bars.
        lengths: frames of each training sequence, in the order of the FrameSet passed to the stages.
        velocity_weight, consistency_weight: stage 1's loss weights (MixSTE's 2.0 and 0.5).
        flip_test: condition stage 2 on flip-averaged encoder outputs (as inference does by default).
    """

    def __init__(self, model, seed: int, device: torch.device, progress: bool = True, *,
                 lengths: Sequence[int], velocity_weight: float = VELOCITY_WEIGHT,
                 consistency_weight: float = CONSISTENCY_WEIGHT, flip_test: bool = True):
        if model.config.mode != "video":
            raise ValueError(f"VideoTrainer: the model's config.mode must be 'video', got {model.config.mode!r}")
        self.model = model
        self.config = model.config
        self.seed = seed
        self.device = device
        self.progress = progress
        self.lengths = [int(n) for n in lengths]
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"VideoTrainer: lengths must be positive frame counts, got {list(lengths)[:5]}")
        self.velocity_weight = float(velocity_weight)
        self.consistency_weight = float(consistency_weight)
        self.flip_test = bool(flip_test)
        self.ema = EMA(model, self.config.ema_decay)
        self.raw_encoders: dict[str, torch.Tensor] = {}  # the encoder's raw weights once its EMA is frozen in

    def fit(self, frames: FrameSet, context_steps: int, diffusion_steps: int, batch_size: int,
            resume=None) -> dict[str, list[float]]:
        """Stage 1 then stage 2: {"context": [loss per step], "diffusion": [loss per step]}."""
        if resume is not None:
            raise NotImplementedError("VideoTrainer: resuming a video training run is not supported yet; "
                                      "train without resume")
        history = {"context": self.train_context(frames, context_steps, batch_size)}
        history["diffusion"] = self.train_diffusion(frames, diffusion_steps, batch_size)
        return history

    def _check(self, frames: FrameSet) -> None:
        if len(frames) != sum(self.lengths):
            raise ValueError(f"VideoTrainer: the FrameSet has {len(frames)} frames but lengths sum to "
                             f"{sum(self.lengths)}")

    def _windows_per_step(self, batch_size: int) -> int:
        return max(1, round(batch_size / self.config.frames))

    def _batch(self, frames: FrameSet, stage: str, step: int, batch_size: int):
        gen = derived_generator(self.seed, stage, step)
        w, f = self._windows_per_step(batch_size), self.config.frames
        idx, valid = sample_windows(self.lengths, f, w, gen)
        batch = frames.index(idx.reshape(-1))
        if self.config.flip_augment:
            batch = _mirror_windows(batch, torch.rand(w, generator=gen) < 0.5)
        return gen, batch.to(self.device), valid.to(self.device), w, f

    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=not self.progress, leave=False, dynamic_ncols=True)

    # ------------------------------------------------------------------------------------------ stage 1
    def train_context(self, frames: FrameSet, total_steps: int, batch_size: int) -> list[float]:
        self._check(frames)
        cfg, model = self.config, self.model
        model.depth_histogram = DepthHistogram.fit(frames.poses, cfg.z_histogram_bins)
        params = list(model.encoder.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.context_lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lr(total_steps))
        model.encoder.train()
        losses: list[float] = []
        with self._bar(total_steps, "stage 1: video context encoder") as bar:
            for step in range(total_steps):
                _, batch, valid, w, f = self._batch(frames, "context", step, batch_size)
                out = model.encoder(batch.inputs.view(w, f, NUM_JOINTS, -1))
                target = batch.poses.view(w, f, NUM_JOINTS, 3)
                loss = masked_mpjpe(out.pose, target, valid)
                if f > 1:
                    loss = loss + self.velocity_weight * velocity_loss(out.pose, target, valid)
                    loss = loss + self.consistency_weight * temporal_consistency_loss(out.pose, valid)
                if cfg.z_nll_weight > 0:
                    keep = valid.reshape(-1)
                    loss = loss + cfg.z_nll_weight * depth_nll_loss(
                        out.pose[..., 2].reshape(-1, NUM_JOINTS)[keep],
                        out.log_sigma_z.reshape(-1, NUM_JOINTS)[keep], batch.poses[..., 2][keep])
                losses.append(self._optimise(step, loss, params, opt, sched))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                bar.update(1)
        self.raw_encoders = {f"encoder.{k}": v.detach().clone() for k, v in model.encoder.state_dict().items()}
        encoder_state = {k[len("encoder."):]: v for k, v in self.ema.shadow.items() if k.startswith("encoder.")}
        model.encoder.load_state_dict(encoder_state)
        model.encoder.eval()
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        return losses

    def _optimise(self, step: int, loss: torch.Tensor, params, opt, sched) -> float:
        """One optimiser step (clipped gradients, LR schedule) and the EMA update; returns the loss."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        opt.step()
        sched.step()
        self.ema.decay = ema_decay_at(step, self.config.ema_decay)
        self.ema.update(self.model)
        return loss.item()

    # ------------------------------------------------------------------------------------------ stage 2
    def train_diffusion(self, frames: FrameSet, total_steps: int, batch_size: int,
                        backend: str = "auto") -> list[float]:
        self._check(frames)
        cfg, model = self.config, self.model
        params = list(model.denoiser.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.diffusion_lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lr(total_steps))
        model.encoder.eval()
        model.denoiser.train()
        losses: list[float] = []
        with self._bar(total_steps, "stage 2: diffusion model (video)") as bar:
            for step in range(total_steps):
                gen, batch, valid, w, f = self._batch(frames, "diffusion", step, batch_size)
                keep = valid.reshape(-1)
                with torch.no_grad():
                    ctx = encode_windows(model.encoder, batch.inputs.view(w, f, NUM_JOINTS, -1), self.flip_test)
                    ctx = type(ctx)(*(c.reshape(w * f, *c.shape[2:])[keep] for c in ctx))  # real frames only
                    part = batch.index(keep.nonzero().squeeze(1))
                    noise = diffusion_noise(len(part), cfg, NUM_JOINTS, part.heatmaps is not None, gen)
                loss = diffusion_batch_loss(model, model.denoiser, part, ctx, noise, backend, self.device)
                losses.append(self._optimise(step, loss, params, opt, sched))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                bar.update(1)
        model.denoiser.eval()
        return losses
