"""The classic lifting baseline: the MLP of Martinez et al., "A simple yet effective baseline for 3d human pose
estimation" (ICCV 2017), trained and used on the same PoseSequences as ``DiffPoseLifter``.

    mlp = MartinezLifter(seed=0)
    mlp.fit(train_sequences)                     # 10,000 Adam steps of batch 64 by default
    poses = mlp.predict(sequence)                # [T, 17, 3] metres, root-relative, camera frame

Network (the paper's): Linear(34 -> 1024), BatchNorm, ReLU, dropout 0.5, then two residual blocks of
[Linear(1024 -> 1024), BatchNorm, ReLU, dropout 0.5] x 2 with the block's input added, then Linear(1024 -> 48)
(the 16 non-root joints). Every linear layer's weight rows are clipped to norm <= 1 after each step (max-norm),
Adam at 1e-3 decayed exponentially to 0.96^48 ~ 0.14 of it over the run (the paper's 0.96 every 100k steps over
its 4.8M), Kaiming initialisation.

Data handling (the paper's, adapted to any image size): the input is the 2D pose in the screen-normalised
coordinates of ``data.frames.encoder_inputs`` (x in [-1, 1]), missing joints filled like DiffPose's input;
inputs and outputs are standardised per coordinate with the training set's mean and std; the output is the
root-relative 3D pose in metres. Flip augmentation (``flip_augment``) mirrors half of every batch, the same
augmentation DiffPose trains with; ``predict(flip_test=True)`` averages the prediction with the un-mirrored
prediction of the mirrored input.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .data.sequence import PoseSequence
from .data.skeleton import NUM_JOINTS, mirror

__all__ = ["MartinezMLP", "MartinezLifter"]


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class MartinezMLP(nn.Module):
    """x [B, 2J] standardised 2D -> [B, 3(J-1)] standardised root-relative 3D (module docstring)."""

    def __init__(self, num_joints: int = NUM_JOINTS, width: int = 1024, blocks: int = 2, dropout: float = 0.5):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(2 * num_joints, width), nn.BatchNorm1d(width), nn.ReLU(),
                                 nn.Dropout(dropout))
        self.blocks = nn.Sequential(*[_ResidualBlock(width, dropout) for _ in range(blocks)])
        self.out = nn.Linear(width, 3 * (num_joints - 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.inp(x)))

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float = 1.0) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                norms = m.weight.norm(dim=1, keepdim=True)
                m.weight.mul_(torch.clamp(max_norm / norms.clamp_min(1e-12), max=1.0))


def _inputs(seq: PoseSequence, default_confidence: float = 0.8) -> np.ndarray:
    """[T, 17, 2] screen-normalised 2D of a sequence, missing joints filled (as DiffPose's encoder input)."""
    from .data.frames import encoder_inputs, fill_missing

    conf = (seq.confidence if seq.confidence is not None
            else np.full((seq.num_frames, NUM_JOINTS), default_confidence, np.float32))
    kp = fill_missing(seq.keypoints_2d, conf, seq.image_size)
    return encoder_inputs(kp, conf, seq.image_size)[..., :2].astype(np.float64)


class MartinezLifter:
    """Train and apply the Martinez et al. 2017 MLP on PoseSequences (module docstring).

    Args:
        seed: initial weights, batch order, dropout and flips.
        device: torch device.
        width, blocks, dropout: the network (the paper's 1024, 2, 0.5).
        lr: initial Adam learning rate (1e-3); max_norm: row-norm bound of the linear weights (1).
        flip_augment: mirror half of every training batch.
    """

    def __init__(self, seed: int = 0, device: str | torch.device = "cpu", width: int = 1024, blocks: int = 2,
                 dropout: float = 0.5, lr: float = 1e-3, max_norm: float = 1.0, flip_augment: bool = True):
        self.seed = int(seed)
        self.device = torch.device(device)
        torch.manual_seed(self.seed)
        self.model = MartinezMLP(NUM_JOINTS, width, blocks, dropout).to(self.device)
        self.lr = lr
        self.max_norm = max_norm
        self.flip_augment = flip_augment
        self.stats: Optional[dict[str, np.ndarray]] = None

    def fit(self, train: Sequence[PoseSequence], steps: int = 10_000, batch_size: int = 64,
            progress: bool = False) -> list[float]:
        """Train on sequences with poses_3d; returns the loss (MSE in standardised units) per step."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"MartinezLifter.fit: steps must be an int >= 1, got {steps!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(f"MartinezLifter.fit: batch_size must be an int >= 2 (batch norm), got {batch_size!r}")
        train = list(train)
        if not train or any(s.poses_3d is None for s in train):
            raise ValueError("MartinezLifter.fit: needs a non-empty list of PoseSequences with poses_3d")
        x = np.concatenate([_inputs(s) for s in train])                       # [F, 17, 2]
        y = np.concatenate([s.root_relative_poses() for s in train]).astype(np.float64)
        # statistics over the data as augmented (both mirror images), per coordinate
        xs = np.concatenate([x, mirror(x)]) if self.flip_augment else x
        ys = np.concatenate([y, mirror(y)]) if self.flip_augment else y
        self.stats = {"x_mean": xs.reshape(len(xs), -1).mean(0), "x_std": xs.reshape(len(xs), -1).std(0) + 1e-8,
                      "y_mean": ys[:, 1:].reshape(len(ys), -1).mean(0),
                      "y_std": ys[:, 1:].reshape(len(ys), -1).std(0) + 1e-8}
        x_t = torch.as_tensor(x, dtype=torch.float32)
        y_t = torch.as_tensor(y, dtype=torch.float32)
        xm_t = torch.as_tensor(mirror(x), dtype=torch.float32)
        ym_t = torch.as_tensor(mirror(y), dtype=torch.float32)
        st = {k: torch.as_tensor(v, dtype=torch.float32, device=self.device) for k, v in self.stats.items()}
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.96 ** (48.0 * s / steps))
        self.model.train()
        losses = []
        n = len(x_t)
        perm, pos = torch.randperm(n, generator=gen), 0
        with torch.random.fork_rng():
            torch.manual_seed(self.seed + 1)
            for step in range(steps):
                if pos + batch_size > n:
                    perm, pos = torch.randperm(n, generator=gen), 0
                idx = perm[pos:pos + batch_size]
                pos += batch_size
                flip = (torch.rand(len(idx), generator=gen) < 0.5) if self.flip_augment else torch.zeros(len(idx), dtype=torch.bool)
                xb = torch.where(flip[:, None, None], xm_t[idx], x_t[idx]).reshape(len(idx), -1).to(self.device)
                yb = torch.where(flip[:, None, None], ym_t[idx], y_t[idx])[:, 1:].reshape(len(idx), -1).to(self.device)
                out = self.model((xb - st["x_mean"]) / st["x_std"])
                loss = ((out - (yb - st["y_mean"]) / st["y_std"]) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                self.model.apply_max_norm(self.max_norm)
                losses.append(float(loss.detach()))
                if progress and (step + 1) % max(1, steps // 10) == 0:
                    print(f"  MLP step {step + 1}/{steps}: loss {np.mean(losses[-100:]):.4f}", flush=True)
        self.model.eval()
        return losses

    @torch.no_grad()
    def predict(self, sequence: PoseSequence, flip_test: bool = False) -> np.ndarray:
        """[T, 17, 3] metres, root-relative (the root is 0), camera frame."""
        if self.stats is None:
            raise RuntimeError("MartinezLifter.predict: call fit() first")
        x = _inputs(sequence)
        out = self._forward(x)
        if flip_test:
            out = (out + mirror(self._forward(mirror(x)))) / 2
        return out

    def _forward(self, x: np.ndarray) -> np.ndarray:
        st = self.stats
        xin = torch.as_tensor((x.reshape(len(x), -1) - st["x_mean"]) / st["x_std"], dtype=torch.float32,
                              device=self.device)
        self.model.eval()
        out = self.model(xin).cpu().double().numpy() * st["y_std"] + st["y_mean"]
        poses = np.zeros((len(x), NUM_JOINTS, 3))
        poses[:, 1:] = out.reshape(len(x), NUM_JOINTS - 1, 3)
        return poses

