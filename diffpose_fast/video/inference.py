"""Video inference: windows -> VideoContextEncoder (with flip test-time augmentation) -> per-frame f_ST ->
the per-frame DiffPose sampler (H_K, GMM, reverse diffusion with g conditioned on each frame's f_ST).

Memory is bounded by the window, not the sequence: windows are encoded a group at a time, each group's owned
frames are sampled at once and written into the output, and nothing of size T x C is ever held. What grows with T
is only the input FrameSet and the output samples [N, T, J, 3].
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.skeleton import NUM_JOINTS
from ..models.context_frame import ContextOutput
from ..models.flip_test import encode_with_flip_test
from ..data.frames import FrameSet
from .windows import WindowPlan, plan_windows

# Encoder positions per forward pass (windows x frames); bounds the encoder's activations.
DEFAULT_ENCODER_POSITIONS = 4096


def _group_windows(plan: WindowPlan, positions: int) -> list[np.ndarray]:
    per = max(1, positions // plan.frames)
    ids = np.arange(plan.num_windows)
    return [ids[i:i + per] for i in range(0, plan.num_windows, per)]


@torch.no_grad()
def sample_video(model, frames: FrameSet, num_samples: int, steps: int | None, sampler: str,
                 generator: torch.Generator | None, backend: str = "auto", *, hop: int | None = None,
                 flip_test: bool = True, encoder_positions: int = DEFAULT_ENCODER_POSITIONS,
                 batch_size: int | None = None, device: torch.device | str = "cpu",
                 shared_noise=None, return_context: bool = False):
    """N hypotheses for every frame of one sequence: [N, T, J, 3] root-relative metres (float32, CPU).

    Args:
        model: a DiffPoseModel whose encoder is a VideoContextEncoder (config.mode == "video").
        frames: the sequence's T frames in order (``frames_from_sequences([seq], ...)``), on the CPU.
        num_samples, steps, sampler, generator, backend: as ``DiffPoseModel.sample`` (sampler "context" gives the
            encoder's pose, N = 1).
        hop: window hop (``plan_windows``); None: F offline, 1 causal.
        flip_test: flip test-time augmentation of the encoder.
        encoder_positions: windows x F per encoder pass (memory bound).
        batch_size: frames per sampler pass (None: about 4096 hypotheses per pass, as the frame model).
        device: where the model runs.
        shared_noise: one row of ``distribution.noise.HKNoise`` used by every frame (temporally shared draws);
            None: fresh draws per frame from ``generator``.
        return_context: also return the encoder's pose of every frame, [T, J, 3] (what H_K is centred on).

    Returns:
        the hypotheses, or (hypotheses, encoder pose) with return_context.
    """
    enc = model.encoder
    plan = plan_windows(len(frames), enc.frames, hop, causal=enc.causal)
    n = 1 if sampler == "context" else num_samples
    batch_size = max(1, 4096 // n) if batch_size is None else int(batch_size)
    out = torch.empty(n, len(frames), NUM_JOINTS, 3)
    anchor = torch.empty(len(frames), NUM_JOINTS, 3)
    for group in _group_windows(plan, encoder_positions):
        idx = torch.from_numpy(plan.indices(group))  # [G, F]
        inputs = frames.inputs[idx].to(device)  # [G, F, J, in]
        context = encode_with_flip_test(enc, inputs, flip_test)
        take_w, take_p, take_t = [], [], []
        for gi, w in enumerate(group):
            owned, pos = plan.owned(int(w))
            take_w.append(np.full(owned.shape, gi))
            take_p.append(pos)
            take_t.append(owned)
        wi, pi = torch.from_numpy(np.concatenate(take_w)), torch.from_numpy(np.concatenate(take_p))
        tt = torch.from_numpy(np.concatenate(take_t))
        if tt.numel() == 0:
            continue
        per_frame = ContextOutput(*(c[wi.to(c.device), pi.to(c.device)] for c in context))  # [n_owned, J, ...]
        anchor[tt] = per_frame.pose.float().cpu()
        for lo in range(0, tt.numel(), batch_size):
            sel = slice(lo, lo + batch_size)
            part = frames.index(tt[sel]).to(device)
            ctx = ContextOutput(*(c[sel] for c in per_frame))
            noise = None if shared_noise is None else shared_noise.expand(len(part))
            h0 = model.sample(part, n, steps, sampler, generator, backend, context=ctx, noise=noise)  # [b, N, J, 3]
            out[:, tt[sel]] = h0.float().cpu().permute(1, 0, 2, 3)
    return (out, anchor) if return_context else out
