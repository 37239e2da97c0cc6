"""The two training stages of the paper (Sec. 4.4, 5):

stage 1  the context encoder phi_ST learns x, y, z (MPJPE) and its own depth spread (Gaussian likelihood);
         its EMA weights are then frozen.
stage 2  per batch: H_K from the frozen encoder -> GMM by EM (Eq. 6) -> one component and one eps^G per
         hypothesis set -> h_k by Eq. 7 at a uniformly drawn k -> g predicts h_0 -> Eq. 9 (x0 form).

Randomness is derived from (seed, stage, epoch) for the order of samples and from (seed, stage, step) for
everything drawn inside a step, never from one global stream: a run resumed at any step replays the same draws.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..distribution.depth import DepthHistogram
from ..pipeline import DiffPoseModel
from .ema import EMA
from .frames import FrameSet
from .losses import depth_nll_loss, diffusion_loss, mpjpe_loss

STAGES = {"context": 1, "diffusion": 2}


def derived_generator(seed: int, stage: str, counter: int) -> torch.Generator:
    """A CPU generator whose state depends only on (seed, stage, counter)."""
    mixed = (seed * 1_000_003 + STAGES[stage] * 7_919 + counter * 2_654_435_761) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def batch_indices(num_frames: int, batch_size: int, seed: int, stage: str, start_step: int,
                  total_steps: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(step, frame indices) for steps start_step..total_steps-1; epochs are seeded permutations."""
    per_epoch = max(1, math.ceil(num_frames / batch_size))
    for step in range(start_step, total_steps):
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(num_frames, generator=derived_generator(seed, stage, -1 - epoch))
        yield step, perm[pos * batch_size:(pos + 1) * batch_size]


def steps_for(epochs: int, num_frames: int, batch_size: int) -> int:
    return epochs * max(1, math.ceil(num_frames / batch_size))


def _cosine_lr(total_steps: int) -> Callable[[int], float]:
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


def _augment(frames: FrameSet, generator: torch.Generator, enabled: bool) -> FrameSet:
    """Mirror a random half of the batch (conventions 1.7)."""
    if not enabled:
        return frames
    flip = torch.rand(len(frames), generator=generator) < 0.5
    if not bool(flip.any()):
        return frames
    mirrored = frames.flipped()
    out = FrameSet(*(None if a is None else torch.where(flip.view(-1, *[1] * (a.dim() - 1)).to(a.device), b, a)
                     for a, b in zip((frames.inputs, frames.keypoints, frames.confidence, frames.image_size,
                                      frames.poses, frames.heatmaps, frames.boxes),
                                     (mirrored.inputs, mirrored.keypoints, mirrored.confidence, mirrored.image_size,
                                      mirrored.poses, mirrored.heatmaps, mirrored.boxes))))
    return out


class Trainer:
    """Runs the two stages on a DiffPoseModel. ``ema`` covers the whole model (encoder and denoiser)."""

    def __init__(self, model: DiffPoseModel, seed: int, device: torch.device, progress: bool = True):
        self.model = model
        self.config = model.config
        self.seed = seed
        self.device = device
        self.progress = progress
        self.ema = EMA(model, self.config.ema_decay)

    def _bar(self, total: int, initial: int, desc: str):
        return tqdm(total=total, initial=initial, desc=desc, disable=not self.progress, leave=False,
                    dynamic_ncols=True)

    # ------------------------------------------------------------------------------------------ stage 1
    def train_context(self, frames: FrameSet, total_steps: int, batch_size: int) -> list[float]:
        cfg = self.config
        model = self.model
        model.depth_histogram = DepthHistogram.fit(frames.poses, cfg.z_histogram_bins)
        params = list(model.encoder.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.context_lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_lr(total_steps))
        model.encoder.train()
        losses: list[float] = []
        with self._bar(total_steps, 0, "stage 1: context encoder") as bar:
            for step, idx in batch_indices(len(frames), batch_size, self.seed, "context", 0, total_steps):
                gen = derived_generator(self.seed, "context", step)
                batch = _augment(frames.index(idx), gen, cfg.flip_augment).to(self.device)
                out = model.encoder(batch.inputs)
                loss = mpjpe_loss(out.pose, batch.poses)
                if cfg.z_nll_weight > 0:
                    loss = loss + cfg.z_nll_weight * depth_nll_loss(out.pose[..., 2], out.log_sigma_z,
                                                                    batch.poses[..., 2])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                self.ema.decay = ema_decay_at(step, cfg.ema_decay)
                self.ema.update(model)
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                bar.update(1)
        # Freeze the averaged encoder: stage 2 and inference condition on it.
        encoder_state = {k[len("encoder."):]: v for k, v in self.ema.shadow.items() if k.startswith("encoder.")}
        model.encoder.load_state_dict(encoder_state)
        model.encoder.eval()
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        return losses

    # ------------------------------------------------------------------------------------------ stage 2
    def train_diffusion(self, frames: FrameSet, total_steps: int, batch_size: int,
                        backend: str = "auto") -> list[float]:
        cfg = self.config
        model = self.model
        schedule = model.schedule
        params = list(model.denoiser.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.diffusion_lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_lr(total_steps))
        model.encoder.eval()
        model.denoiser.train()
        losses: list[float] = []
        sets = cfg.train_hypotheses
        with self._bar(total_steps, 0, "stage 2: diffusion model") as bar:
            for step, idx in batch_indices(len(frames), batch_size, self.seed, "diffusion", 0, total_steps):
                gen = derived_generator(self.seed, "diffusion", step)
                batch = _augment(frames.index(idx), gen, cfg.flip_augment).to(self.device)
                with torch.no_grad():
                    context = model.encode(batch)
                    hk = model.initial_distribution(batch, context, gen, backend)
                    mu, eps = hk.draw(sets, gen, device=self.device, dtype=batch.poses.dtype)  # [B, S, J, 3]
                    b, _, j, _ = mu.shape
                    h0 = batch.poses[:, None].expand(b, sets, j, 3).reshape(b * sets, j, 3)
                    mu = mu.reshape(b * sets, j, 3)
                    eps = eps.reshape(b * sets, j, 3)
                    k = torch.randint(1, schedule.num_steps + 1, (b * sets,), generator=gen).to(self.device)
                    a, bk = schedule.coefficients(k, h0)
                    h_k = mu + a * (h0 - mu) + bk * eps  # Eq. 7, one path per set
                    features = context.features.repeat_interleave(sets, 0)
                x0_hat = model.denoiser(h_k, features, k)
                loss = diffusion_loss(x0_hat, h0, k, schedule, cfg.loss_weighting)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                self.ema.decay = ema_decay_at(step, cfg.ema_decay)
                self.ema.update(model)
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                bar.update(1)
        model.denoiser.eval()
        return losses
