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
of every loss). Flip augmentation mirrors whole windows. The steps run inside the one ``training.Trainer``
(``VideoStages``), so video training has the frame model's optimiser, schedule, EMA, checkpoints, bit-exact
resume and torchrun: its randomness comes from (seed, stage, step) and dropout is re-seeded at every step. Under
torchrun each rank takes a contiguous share of the step's windows, weighted by its share of their real frames
(exact for the position and depth terms, whose means run over frames; the velocity and consistency terms
average over frame pairs, a share that differs from it only by the windows' padding).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..data.skeleton import NUM_JOINTS
from ..data.frames import FrameSet
from ..training.checkpoint import data_sha256
from ..training.losses import depth_nll_loss
from ..training.step_noise import diffusion_noise
from ..training.trainer import FrameStages, diffusion_batch_loss
from ..models.flip_test import encode_with_flip_test

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
    return frames.where(flip.repeat_interleave(len(frames) // flip.numel()), frames.flipped())


class VideoStages(FrameStages):
    """The video model's steps for ``training.Trainer``: windows of config.frames frames (module docstring).

    Args:
        lengths: frames of each training sequence, in the order of the FrameSet given to ``Trainer.fit``.
        velocity_weight, consistency_weight: stage 1's loss weights (MixSTE's 2.0 and 0.5).
        flip_test: condition stage 2 on flip-averaged encoder outputs (as inference does by default).
    """

    name = "video"

    def __init__(self, lengths: Sequence[int], *, velocity_weight: float = VELOCITY_WEIGHT,
                 consistency_weight: float = CONSISTENCY_WEIGHT, flip_test: bool = True):
        self.lengths = [int(n) for n in lengths]
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"VideoStages: lengths must be positive frame counts, got {list(lengths)[:5]}")
        self.velocity_weight = float(velocity_weight)
        self.consistency_weight = float(consistency_weight)
        self.flip_test = bool(flip_test)

    def describe(self) -> dict[str, Any]:
        return {"stages": self.name, "lengths_sha256": data_sha256(torch.tensor(self.lengths)),
                "velocity_weight": self.velocity_weight, "consistency_weight": self.consistency_weight,
                "flip_test": self.flip_test}

    def _check(self, trainer, frames: FrameSet) -> None:
        if trainer.config.mode != "video":
            raise ValueError(f"VideoStages: the model's config.mode must be 'video', got {trainer.config.mode!r}")
        if len(frames) != sum(self.lengths):
            raise ValueError(f"VideoStages: the FrameSet has {len(frames)} frames but lengths sum to "
                             f"{sum(self.lengths)}")

    def _batch(self, trainer, frames: FrameSet, stage: str, step: int, batch_size: int):
        """This rank's windows of the step: (generator, batch [w F frames], valid [w, F], w, F, weight, rows),
        rows = (first, end, total): this rank's real frames are rows first..end-1 of the step's ``total`` real
        frames (all windows, window-major)."""
        f = trainer.config.frames
        count = max(1, round(batch_size / f))
        lo, hi, gen = trainer._step_begin(stage, step, torch.arange(count))
        idx, valid = sample_windows(self.lengths, f, count, gen)
        flip = torch.rand(count, generator=gen) < 0.5 if trainer.config.flip_augment else None
        if hi == lo:  # more ranks than windows: take part in the gradient average with zero weight
            lo, hi, weight = 0, 1, 0.0
        else:
            weight = float(valid[lo:hi].sum()) / float(valid.sum())
        rows = (int(valid[:lo].sum()), int(valid[:hi].sum()), int(valid.sum()))
        batch = frames.index(idx[lo:hi].reshape(-1))
        if flip is not None:
            batch = _mirror_windows(batch, flip[lo:hi])
        return gen, batch.to(trainer.device), valid[lo:hi].to(trainer.device), hi - lo, f, weight, rows

    def context_steps(self, trainer, frames: FrameSet, encoder, subset: torch.Tensor, batch_size: int,
                      order_seed: int, offset: int, start: int, total: int):
        self._check(trainer, frames)
        cfg = trainer.config
        for step in range(start, total):
            _, batch, valid, w, f, weight, _ = self._batch(trainer, frames, "context", offset + step, batch_size)
            out = encoder(batch.inputs.view(w, f, NUM_JOINTS, -1))
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
            yield step, loss, weight

    def diffusion_steps(self, trainer, frames: FrameSet, denoiser, batch_size: int, backend: str,
                        start: int, total: int):
        self._check(trainer, frames)
        cfg, model = trainer.config, trainer.model
        for step in range(start, total):
            gen, batch, valid, w, f, weight, (first, end, total) = self._batch(trainer, frames, "diffusion", step,
                                                                               batch_size)
            keep = valid.reshape(-1)
            with torch.no_grad():
                ctx = encode_with_flip_test(model.encoder, batch.inputs.view(w, f, NUM_JOINTS, -1), self.flip_test)
                ctx = type(ctx)(*(c.reshape(w * f, *c.shape[2:])[keep] for c in ctx))  # real frames only
                part = batch.index(keep.nonzero().squeeze(1))
                # drawn for the real frames of all the step's windows, then this rank's rows: any number of
                # ranks draws what one process draws
                noise = diffusion_noise(total, cfg, NUM_JOINTS, part.heatmaps is not None, gen).rows(first, end)
            yield step, diffusion_batch_loss(model, denoiser, part, ctx, noise, backend, trainer.device), weight
