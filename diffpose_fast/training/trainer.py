"""The two training stages of the paper (Sec. 4.4, 5):

stage 1  the context encoder phi_ST learns x, y, z (MPJPE) and its own depth spread (Gaussian likelihood);
         its EMA weights are then frozen. With K = config.context_folds > 1, K encoders are trained one after
         the other, encoder k on the frames outside fold k (``folds``), then a per-joint factor on the depth
         sigma is fitted on their out-of-fold residuals (``calibrate_depth_sigma``).
stage 2  per batch: H_K from the frozen encoder (for K > 1: each frame's out-of-fold encoder) -> GMM by EM (Eq. 6) -> one component and one eps^G per
         hypothesis set -> h_k by Eq. 7 at a uniformly drawn k -> g predicts h_0 -> Eq. 9 (x0 form).

Randomness never comes from one global stream. The order of samples is derived from (seed, stage, epoch); every
draw inside step s comes from ``derived_generator(seed, stage, s)``, drawn for the whole global batch and sliced
per sample (``step_noise``); dropout, the only user of torch's global RNG, is re-seeded from (seed, stage, s,
rank) at every step inside ``torch.random.fork_rng`` (the caller's global RNG state is left as it was). So a run
resumed from a checkpoint at any step replays the same draws (bit-exact on CPU with the same thread count and
backend), and W DistributedDataParallel processes draw what one process draws (``distributed``).
"""
from __future__ import annotations

import math
import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from tqdm.auto import tqdm

from ..diffusion.forward import gmm_forward
from ..distribution.depth import DepthHistogram
from ..inference.model import DiffPoseModel
from . import distributed as dist_utils
from .checkpoint import TrainingCheckpoint, data_sha256, save_checkpoint
from .ema import EMA
from ..data.frames import FrameSet
from .losses import depth_nll_loss, diffusion_loss, mpjpe_loss
from .step_noise import StepNoise, context_noise, diffusion_noise

STAGES = {"context": 1, "diffusion": 2}


def derived_seed(seed: int, stage: str, counter: int) -> int:
    """A 63-bit seed that depends only on (seed, stage, counter)."""
    return (seed * 1_000_003 + STAGES[stage] * 7_919 + counter * 2_654_435_761) % (2**63 - 1)


def derived_generator(seed: int, stage: str, counter: int) -> torch.Generator:
    """A CPU generator whose state depends only on (seed, stage, counter)."""
    return torch.Generator().manual_seed(derived_seed(seed, stage, counter))


def dropout_seed(seed: int, stage: str, step: int, rank: int) -> int:
    """Seed of torch's global RNG (dropout) at a step of a stage, per rank."""
    return derived_seed(seed, stage, 1_000_000_007 + step * 4_099 + rank)


def batch_indices(num_frames: int, batch_size: int, seed: int, stage: str, start_step: int,
                  total_steps: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(step, frame indices) for steps start_step..total_steps-1; epochs are seeded permutations."""
    per_epoch = max(1, math.ceil(num_frames / batch_size))
    perm, perm_epoch = None, None
    for step in range(start_step, total_steps):
        epoch, pos = divmod(step, per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = torch.randperm(num_frames, generator=derived_generator(seed, stage, -1 - epoch)), epoch
        yield step, perm[pos * batch_size:(pos + 1) * batch_size]


def steps_for(epochs: int, num_frames: int, batch_size: int) -> int:
    return epochs * max(1, math.ceil(num_frames / batch_size))


def cosine_lr(total_steps: int) -> Callable[[int], float]:
    """Linear warm-up over 2% of the steps, then cosine decay to 5% of the base rate."""
    warm = max(1, total_steps // 50)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return factor


def ema_decay_at(step: int, decay: float) -> float:
    """EMA warm-up: short runs are not dominated by the initial weights."""
    return min(decay, (1.0 + step) / (10.0 + step))


def _augment(frames: FrameSet, flip_u: torch.Tensor, enabled: bool) -> FrameSet:
    """Mirror the samples whose uniform flip_u [B] is below 1/2."""
    if not enabled:
        return frames
    flip = flip_u < 0.5
    if not bool(flip.any()):
        return frames
    return frames.where(flip, frames.flipped())


def run_description(config, seed: int, frames: FrameSet, context_steps: int, diffusion_steps: int,
                    batch_size: int, folds: Optional[torch.Tensor] = None) -> dict[str, Any]:
    """What must be equal for a checkpoint to continue a run (checked field by field on resume)."""
    run = {"config": config.to_dict(), "seed": int(seed), "batch_size": int(batch_size),
           "context_steps": int(context_steps), "diffusion_steps": int(diffusion_steps), "frames": len(frames),
           "data_sha256": data_sha256(frames.inputs, frames.keypoints, frames.confidence, frames.image_size,
                                      frames.poses, frames.heatmaps, frames.boxes)}
    if folds is not None and config.context_folds > 1:
        run["folds_sha256"] = data_sha256(folds)
    return run


def encoder_prefix(fold: int) -> str:
    """The state-dict prefix of fold ``fold``'s encoder in a DiffPoseModel."""
    return "encoder." if fold == 0 else f"extra_encoders.{fold - 1}."


@torch.no_grad()
def calibrate_depth_sigma(model: DiffPoseModel, frames: FrameSet, folds: torch.Tensor, device,
                          chunk: int = 2048) -> torch.Tensor:
    """Per-joint factor [J] on the encoders' depth sigma: the RMS of the out-of-fold standardised depth residual
    (z_hat - z) / sigma over every training frame, each seen by the encoder that did not train on it (so the
    factor measures how over-confident the in-sample likelihood made sigma on new frames). Root: 1."""
    from ..inference.model import LOG_SIGMA_Z_RANGE

    j = frames.poses.shape[1]
    total = torch.zeros(j, dtype=torch.float64)
    count = 0
    for lo in range(0, len(frames), chunk):
        idx = torch.arange(lo, min(len(frames), lo + chunk))
        batch = frames.index(idx).to(device)
        ctx = model.encode_out_of_fold(batch, folds[idx])
        sigma = ctx.log_sigma_z.clamp(*LOG_SIGMA_Z_RANGE).exp()
        r = (ctx.pose[..., 2] - batch.poses[..., 2]) / sigma
        total += (r.double() ** 2).sum(0).cpu()
        count += len(idx)
    scale = (total / max(count, 1)).sqrt()
    scale[0] = 1.0
    return torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale)).float()


def diffusion_batch_loss(model: DiffPoseModel, denoiser, batch: FrameSet, context, noise: StepNoise, backend: str,
                         device) -> torch.Tensor:
    """Stage 2's loss on one batch (frame and video training alike).

    H_K from the frozen encoder's ``context`` -> its GMM (Eq. 6) -> one component and one eps^G per hypothesis
    set (noise rows) -> h_k by Eq. 7 at the drawn step k (noise.k) -> g predicts h_0 -> Eq. 9 in x0 form.
    ``denoiser`` is model.denoiser or its DDP wrapper.
    """
    cfg = model.config
    sets = noise.k.shape[1]
    with torch.no_grad():
        hk = model.initial_distribution(batch, context, noise, backend)
        mu, eps = hk.draw(noise, device=device, dtype=batch.poses.dtype)  # [B, H, J, 3]
        b, _, j, _ = mu.shape
        h0 = batch.poses[:, None].expand(b, sets, j, 3).reshape(b * sets, j, 3)
        k = noise.k.reshape(-1).to(device)
        h_k = gmm_forward(h0, mu.reshape(b * sets, j, 3), eps.reshape(b * sets, j, 3), k, model.schedule)
    features = model.conditioning(batch, context).repeat_interleave(sets, 0)  # trains the denoiser's embedding
    x0_hat = denoiser(h_k, features, k)
    return diffusion_loss(x0_hat, h0, k, model.schedule, cfg.loss_weighting)


class FrameStages:
    """What a step of each stage computes for the frame model: batches of single frames (epoch permutations),
    MPJPE + depth likelihood in stage 1, the diffusion loss on each frame's out-of-fold context in stage 2.

    ``Trainer`` owns everything around a step (optimiser, schedule, EMA, folds, checkpoints, resume, DDP); a
    stages object only turns a step number into the step's loss. ``video.training.VideoStages`` is the other one.
    Each ``*_steps`` method yields (step, loss, weight) for steps start..total-1, where weight is this rank's
    share of the global batch (1 in one process), computing each step's loss when it is asked for.
    """

    name = "frame"

    def describe(self) -> dict[str, Any]:
        """What else a checkpoint's run must match to be resumed by these stages (nothing for frames)."""
        return {}

    def context_steps(self, trainer: "Trainer", frames: FrameSet, encoder, subset: torch.Tensor, batch_size: int,
                      order_seed: int, offset: int, start: int, total: int):
        """Stage 1 on the frames ``subset`` (encoder k's training frames); ``offset`` = k x total, the steps of
        the encoders before this one (their draws are distinct)."""
        cfg = trainer.config
        for step, idx in batch_indices(len(subset), batch_size, order_seed, "context", start, total):
            lo, hi, gen = trainer._step_begin("context", offset + step, idx)
            idx = subset[idx]
            noise = context_noise(len(idx), gen)
            weight = (hi - lo) / len(idx)
            if hi == lo:  # more ranks than samples: take part in the gradient average with zero weight
                lo, hi, weight = 0, 1, 0.0
            batch = _augment(frames.index(idx[lo:hi]), noise.flip_u[lo:hi], cfg.flip_augment).to(trainer.device)
            out = encoder(batch.inputs)
            loss = mpjpe_loss(out.pose, batch.poses)
            if cfg.z_nll_weight > 0:
                loss = loss + cfg.z_nll_weight * depth_nll_loss(out.pose[..., 2], out.log_sigma_z,
                                                                batch.poses[..., 2])
            yield step, loss, weight

    def diffusion_steps(self, trainer: "Trainer", frames: FrameSet, denoiser, batch_size: int, backend: str,
                        start: int, total: int):
        """Stage 2: each frame conditioned on the frozen encoder that did not see it (fold 0's when K = 1)."""
        cfg, model = trainer.config, trainer.model
        num_joints = frames.inputs.shape[1]
        for step, idx in batch_indices(len(frames), batch_size, trainer.seed, "diffusion", start, total):
            lo, hi, gen = trainer._step_begin("diffusion", step, idx)
            noise = diffusion_noise(len(idx), cfg, num_joints, frames.heatmaps is not None, gen)
            weight = (hi - lo) / len(idx)
            if hi == lo:
                lo, hi, weight = 0, 1, 0.0
            noise = noise.rows(lo, hi)
            batch = _augment(frames.index(idx[lo:hi]), noise.flip_u, cfg.flip_augment).to(trainer.device)
            with torch.no_grad():
                context = model.encode_out_of_fold(batch, trainer.folds[idx[lo:hi]] if trainer.folds is not None
                                                   else torch.zeros(hi - lo, dtype=torch.long))
            yield step, diffusion_batch_loss(model, denoiser, batch, context, noise, backend, trainer.device), weight


class Trainer:
    """Runs the two stages on a DiffPoseModel. ``ema`` covers the whole model (encoder and denoiser).

    dist: the distributed context (None: one process). checkpoint_dir / checkpoint_every: write a checkpoint
    (rank 0 only) every that many optimiser steps, counted over both stages, and at the end of each stage.
    stages: what one step of each stage computes (``FrameStages``, the default, or ``video.training.VideoStages``).
    """

    def __init__(self, model: DiffPoseModel, seed: int, device: torch.device, progress: bool = True, *,
                 dist: Optional[dist_utils.DistContext] = None, backend: str = "auto",
                 checkpoint_dir: Optional[str | Path] = None, checkpoint_every: Optional[int] = None,
                 keep_checkpoints: Optional[int] = None, stages: Optional[FrameStages] = None):
        self.model = model
        self.stages = FrameStages() if stages is None else stages
        self.config = model.config
        self.seed = seed
        self.device = device
        self.dist = dist or dist_utils.DistContext(device=torch.device(device))
        self.progress = progress and self.dist.is_main
        self.backend = backend
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.ema = EMA(model, self.config.ema_decay)
        self.losses: dict[str, list[float]] = {"context": [], "diffusion": []}
        # the raw (non-EMA) weights of frozen encoders, by state-dict name: the encoder modules hold the EMA
        # weights from the end of stage 1 on, and the raw ones are saved beside them ("weights")
        self.raw_encoders: dict[str, torch.Tensor] = {}
        self.folds: Optional[torch.Tensor] = None
        self.run: Optional[dict[str, Any]] = None
        self._steps = {"context": 0, "diffusion": 0}
        self._run_bar = None
        self._last_saved: Optional[int] = None

    def _bar(self, total: int, initial: int, desc: str):
        """The progress bar of a stage: within ``fit`` one bar runs over both stages (its time left is the whole
        run's), with the stage in its description and the latest loss beside it."""
        if self._run_bar is not None:
            self._run_bar.set_description(desc)
            return contextlib.nullcontext(self._run_bar)
        return tqdm(total=total, initial=initial, desc=desc, disable=not self.progress, leave=False,
                    dynamic_ncols=True)

    # ------------------------------------------------------------------------------------------- driver
    def fit(self, frames: FrameSet, context_steps: int, diffusion_steps: int, batch_size: int,
            resume: Optional[TrainingCheckpoint] = None, folds: Optional[torch.Tensor] = None) -> dict[str, list[float]]:
        """Both stages, from the start or from ``resume``; returns the per-step losses of each stage.

        context_steps: optimiser steps per context encoder (stage 1 runs K x context_steps for K folds);
        folds: [F] fold of every frame (``training.folds.assign_folds``; None: all in fold 0, needs K = 1).
        """
        k_folds = len(self.model.encoders)
        if folds is None:
            if k_folds > 1:
                raise ValueError("Trainer.fit: context_folds > 1 needs the folds of the frames")
            folds = torch.zeros(len(frames), dtype=torch.long)
        self.folds = folds
        self._steps = {"context": k_folds * context_steps, "diffusion": diffusion_steps}
        if self.checkpoint_dir is not None or resume is not None:
            self.run = run_description(self.config, self.seed, frames, context_steps, diffusion_steps, batch_size,
                                       folds)
            self.run.update(self.stages.describe())
        stage, start = "context", 0
        if resume is not None:
            resume.check_run(self.run)
            self._restore(resume)
            stage, start = resume.stage, resume.next_step
            self.losses = resume.losses
            self._last_saved = resume.global_step
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        done = start if stage == "context" else self._steps["context"] + start
        total = self._steps["context"] + diffusion_steps
        with torch.random.fork_rng(devices=devices), tqdm(total=total, initial=done, disable=not self.progress,
                                                          leave=False, dynamic_ncols=True, unit="step") as bar:
            self._run_bar = bar
            if stage == "context":
                self.train_context(frames, context_steps, batch_size, start, resume)
                start, resume = 0, None
            self.train_diffusion(frames, diffusion_steps, batch_size, self.backend, start, resume)
        self._run_bar = None
        return self.losses

    def _restore(self, ckpt: TrainingCheckpoint) -> None:
        """Model (raw), EMA and histogram from a verified checkpoint; everything is checked before copying."""
        model_state = ckpt.check_state("model", self.model.state_dict())
        ema_state = ckpt.check_state("ema", self.ema.shadow)
        hist = ckpt.group("hk")
        histogram = DepthHistogram.from_state_dict(hist) if hist else None
        self.model.load_state_dict(model_state)
        self.ema.load_state_dict(ema_state)
        self.model.depth_histogram = histogram
        self.raw_encoders = {k: v.clone() for k, v in ckpt.group("raw").items()}

    def _restore_optimizer(self, ckpt: TrainingCheckpoint, opt, sched) -> None:
        from ..persistence import CheckpointError

        state = ckpt.optimizer_state(opt)
        try:
            opt.load_state_dict(state)
            sched.load_state_dict(dict(ckpt.meta["scheduler"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"resume: the optimiser state in {str(ckpt.path)!r} does not fit ({exc})") from None

    def _global_step(self, stage: str, done: int) -> int:
        return done if stage == "context" else self._steps["context"] + done

    def _maybe_save(self, stage: str, done: int, opt, sched, stage_end: bool) -> None:
        if self.checkpoint_dir is None or not self.dist.is_main:
            return
        g = self._global_step(stage, done)
        due = stage_end or (self.checkpoint_every is not None and g % self.checkpoint_every == 0)
        if not due or g == self._last_saved:
            return
        hist = self.model.depth_histogram
        save_checkpoint(self.checkpoint_dir, stage=stage, next_step=done, global_step=g, run=self.run,
                        model_state=self.model.state_dict(), ema_state=self.ema.state_dict(), optimizer=opt,
                        scheduler=sched, losses=self.losses, histogram=None if hist is None else hist.state_dict(),
                        keep=self.keep_checkpoints, raw_state=self.raw_encoders)
        self._last_saved = g

    def _step_begin(self, stage: str, step: int, idx: torch.Tensor) -> tuple[int, int, torch.Generator]:
        """Seed dropout for this step and rank; this rank's slice [lo, hi) of the global batch; the step generator."""
        torch.manual_seed(dropout_seed(self.seed, stage, step, self.dist.rank))
        lo, hi = dist_utils.shard(len(idx), self.dist.rank, self.dist.world_size)
        return lo, hi, derived_generator(self.seed, stage, step)

    def _optimise(self, stage: str, step: int, loss: torch.Tensor, weight: float, params, opt, sched) -> float:
        """Backward of the local loss scaled so DDP's average is the global mean; clip, step, EMA; the global loss.

        step: the step within the network being trained (the EMA warm-up restarts for every network)."""
        cfg = self.config
        scaled = loss if not self.dist.enabled else loss * (weight * self.dist.world_size)
        opt.zero_grad(set_to_none=True)
        scaled.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        self.ema.decay = ema_decay_at(step, cfg.ema_decay)
        self.ema.update(self.model)
        value = loss.detach() if not self.dist.enabled else dist_utils.all_reduce_sum(
            loss.detach().double() * weight, self.dist)
        return float(value)

    # ------------------------------------------------------------------------------------------ stage 1
    def train_context(self, frames: FrameSet, total_steps: int, batch_size: int, start_step: int = 0,
                      resume: Optional[TrainingCheckpoint] = None) -> list[float]:
        """Stage 1. total_steps: steps of each of the K encoders; ``start_step`` counts over all of them (encoder
        k runs stage steps [k n, (k + 1) n))."""
        cfg = self.config
        model = self.model
        k_folds = len(model.encoders)
        folds = self.folds if self.folds is not None else torch.zeros(len(frames), dtype=torch.long)
        if resume is None:
            model.depth_histogram = DepthHistogram.fit(frames.poses, cfg.z_histogram_bins)
        n = total_steps
        first = min(start_step // n, k_folds) if n > 0 else k_folds
        for k in range(first):  # finished before the checkpoint: frozen (their EMA weights) in the saved model
            self._freeze_encoder(k)
        losses = self.losses["context"]
        with self._bar(k_folds * n, start_step, "stage 1: context encoder") as bar:
            for k in range(first, k_folds):
                encoder = model.encoders[k]
                subset = (torch.arange(len(frames)) if k_folds == 1
                          else torch.nonzero(folds != k).flatten())
                params = list(encoder.parameters())
                for p in params:  # a second fit() continues training an encoder that the first one froze
                    p.requires_grad_(True)
                opt = torch.optim.AdamW(params, lr=cfg.context_lr, weight_decay=cfg.weight_decay)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lr(n))
                local_start = start_step - k * n if k == first else 0
                if resume is not None and k == first and local_start > 0:
                    self._restore_optimizer(resume, opt, sched)
                encoder.train()
                wrapped = dist_utils.wrap(encoder, self.dist, find_unused_parameters=cfg.z_nll_weight == 0)
                # fold 0 draws the batch order of the single-encoder run; fold k > 0 a stream of its own
                order_seed = self.seed if k == 0 else derived_seed(self.seed, "context", -7_000_003 * k)
                steps = self.stages.context_steps(self, frames, wrapped, subset, batch_size, order_seed, k * n,
                                                  local_start, n)
                for step, loss, weight in steps:
                    g = k * n + step
                    losses.append(self._optimise("context", step, loss, weight, params, opt, sched))
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", encoder=f"{k + 1}/{k_folds}")
                    bar.update(1)
                    if step + 1 < n:
                        self._maybe_save("context", g + 1, opt, sched, stage_end=False)
                # Freeze the averaged encoder (stage 2 and inference condition on it), keeping its raw weights.
                prefix = encoder_prefix(k)
                self.raw_encoders.update({prefix + name: v.detach().clone() for name, v in encoder.state_dict().items()})
                self._freeze_encoder(k)
                self._maybe_save("context", (k + 1) * n, opt, sched, stage_end=k == k_folds - 1)
        if k_folds > 1:
            scale = calibrate_depth_sigma(model, frames, folds, self.device)
            model.depth_sigma_scale.copy_(scale.to(model.depth_sigma_scale.device))
            self.ema.shadow["depth_sigma_scale"].copy_(model.depth_sigma_scale)
        return losses

    def _freeze_encoder(self, fold: Optional[int] = None) -> None:
        """Load encoder ``fold``'s EMA weights into it and freeze it; None: freeze every encoder as it is."""
        folds = range(len(self.model.encoders)) if fold is None else [fold]
        for k in folds:
            encoder = self.model.encoders[k]
            if fold is not None:
                prefix = encoder_prefix(k)
                encoder.load_state_dict({name[len(prefix):]: v for name, v in self.ema.shadow.items()
                                         if name.startswith(prefix)})
            encoder.eval()
            for p in encoder.parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------------------------------------ stage 2
    def train_diffusion(self, frames: FrameSet, total_steps: int, batch_size: int, backend: str = "auto",
                        start_step: int = 0, resume: Optional[TrainingCheckpoint] = None) -> list[float]:
        cfg = self.config
        model = self.model
        self._freeze_encoder()
        params = list(model.denoiser.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.diffusion_lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lr(total_steps))
        if resume is not None:
            self._restore_optimizer(resume, opt, sched)
        model.denoiser.train()
        denoiser = dist_utils.wrap(model.denoiser, self.dist)
        losses = self.losses["diffusion"]
        with self._bar(total_steps, start_step, "stage 2: diffusion model") as bar:
            for step, loss, weight in self.stages.diffusion_steps(self, frames, denoiser, batch_size, backend,
                                                                  start_step, total_steps):
                losses.append(self._optimise("diffusion", step, loss, weight, params, opt, sched))
                self._maybe_save("diffusion", step + 1, opt, sched, stage_end=False)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                bar.update(1)
        self._maybe_save("diffusion", total_steps, opt, sched, stage_end=True)
        model.denoiser.eval()
        return losses
