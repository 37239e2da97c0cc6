"""The video context encoder phi_ST (Sec. 4.3, 4.5, 5): a MixSTE-style seq2seq spatial-temporal transformer.

It reads a window of T 2D poses and returns, for *every* frame of the window, the same three things the frame
encoder returns for one frame: f_ST (the denoiser's per-frame conditioning), a root-relative 3D pose that centres
H_K, and a per-joint depth spread log sigma_z. Spatial blocks attend over the J joints of one frame, temporal
blocks over the T frames of one joint, alternating (MixSTE, Zhang et al. CVPR 2022):

    x [B, T, J, F] --Linear(F -> C)--> + joint position embedding [J, C]
        spatial block 0 (over J) -> LN_s -> + frame position embedding [T, C] -> temporal block 0 (over T) -> LN_t
        for i in 1..depth-1: spatial block i -> LN_s -> temporal block i -> LN_t
    -> f_ST [B, T, J, C]
    f_ST --LN -> Linear(C -> 3)--> pose (root forced to 0)      f_ST --Linear(C -> 1)--> log_sigma_z

Every block is pre-norm: x + Attn(LN(x)); x + MLP(LN(x)) with a GELU MLP of width mlp_ratio * C. The two
inter-block norms LN_s and LN_t are each *one* LayerNorm shared by all depths, as in MixSTE's released model,
so that its checkpoint maps onto this module tensor for tensor (``diffpose_fast.video.mixste``).

``causal=True`` masks temporal attention so that frame t only attends to frames <= t of its window: the output of
a frame never depends on a later frame (the online / live setting). The spatial blocks and the heads are per
frame, so the mask is enough.

Size with MixSTE's setting (C = 512, depth 8, 8 heads, MLP ratio 2, T = 243, F = 2) the parameter count is
MixSTE2's 33.78 M plus the log-sigma head (513); the defaults of LifterConfig (C = 128, depth 4, 4 heads) give
about 1.1 M parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .context_frame import ContextOutput

NORM_EPS = 1e-6  # MixSTE's LayerNorm epsilon


class _SelfAttention(nn.Module):
    """Multi-head self-attention over the second axis of x [B, N, C] (optionally causal).

    ``qkv`` = nn.Linear(C, 3C) whose output splits as [3, heads, C / heads] (q, k, v outermost), ``proj`` =
    nn.Linear(C, C): the layout of timm / MixSTE attention.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"VideoContextEncoder: width {dim} must be a positive multiple of heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj_dropout(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class _TransformerBlock(nn.Module):
    """x = x + Attn(LN1(x)); x = x + MLP(LN2(x)), MLP = Linear(C, rC) -> GELU -> Linear(rC, C)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.attn = _SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(dim, hidden))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("drop1", nn.Dropout(dropout))
        self.mlp.add_module("fc2", nn.Linear(hidden, dim))
        self.mlp.add_module("drop2", nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), causal)
        return x + self.mlp(self.norm2(x))


class VideoContextEncoder(nn.Module):
    """phi_ST for windows of frames (seq2seq: one output per input frame).

    Args:
        num_joints: J.
        in_features: 2 for normalised screen coordinates (VideoPose3D ``normalize_screen_coordinates``),
            3 to append a per-joint detector confidence in [0, 1] (what the lifter feeds).
        hidden: C, the feature width (= the denoiser's context_dim). MixSTE: 512.
        depth: number of (spatial, temporal) block pairs. MixSTE: 8.
        heads: attention heads (hidden % heads == 0). MixSTE: 8.
        frames: the window length the temporal position embedding is sized to (27, 81, 243 in the field);
            windows of fewer frames use its first T rows.
        mlp_ratio: MLP width / C (MixSTE: 2).
        causal: temporal attention sees only the current and earlier frames.
        dropout: after the position embeddings, on attention weights, projections and MLPs.
    """

    def __init__(self, num_joints: int = 17, in_features: int = 3, hidden: int = 128, depth: int = 4,
                 heads: int = 4, frames: int = 243, mlp_ratio: float = 2.0, causal: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("num_joints", num_joints), ("in_features", in_features), ("hidden", hidden),
                            ("depth", depth), ("heads", heads), ("frames", frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VideoContextEncoder: {name} must be an int >= 1, got {value!r}")
        if hidden % heads:
            raise ValueError(f"VideoContextEncoder: hidden={hidden} must be divisible by heads={heads}")
        self.num_joints = num_joints
        self.in_features = in_features
        self.hidden = hidden
        self.frames = frames
        self.causal = bool(causal)
        self.joint_embed = nn.Linear(in_features, hidden)
        self.joint_pos = nn.Parameter(torch.randn(1, num_joints, hidden) * 0.02)
        self.frame_pos = nn.Parameter(torch.randn(1, frames, hidden) * 0.02)
        self.pos_dropout = nn.Dropout(dropout)
        self.spatial_blocks = nn.ModuleList(_TransformerBlock(hidden, heads, mlp_ratio, dropout)
                                            for _ in range(depth))
        self.temporal_blocks = nn.ModuleList(_TransformerBlock(hidden, heads, mlp_ratio, dropout)
                                             for _ in range(depth))
        self.spatial_norm = nn.LayerNorm(hidden, eps=NORM_EPS)
        self.temporal_norm = nn.LayerNorm(hidden, eps=NORM_EPS)
        self.head_norm = nn.LayerNorm(hidden)
        self.pose_head = nn.Linear(hidden, 3)
        self.log_sigma_head = nn.Linear(hidden, 1)
        root_mask = torch.ones(num_joints, 1)
        root_mask[0] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def forward(self, x: torch.Tensor) -> ContextOutput:
        """Encode windows of 2D poses.

        Args:
            x: [B, T, J, in_features] with 1 <= T <= frames: normalised screen x, y (and confidence).

        Returns:
            ContextOutput(features [B, T, J, hidden], pose [B, T, J, 3] metres with pose[..., 0, :] = 0,
            log_sigma_z [B, T, J]).
        """
        if x.ndim != 4 or x.shape[2:] != (self.num_joints, self.in_features) or not 1 <= x.shape[1] <= self.frames:
            raise ValueError(f"VideoContextEncoder: x must have shape [B, T, {self.num_joints}, {self.in_features}] "
                             f"with 1 <= T <= frames={self.frames}, got {tuple(x.shape)}")
        b, t, j, _ = x.shape
        h = self.pos_dropout(self.joint_embed(x) + self.joint_pos)  # [B, T, J, C]
        for i, (spatial, temporal) in enumerate(zip(self.spatial_blocks, self.temporal_blocks)):
            h = self.spatial_norm(spatial(h.reshape(b * t, j, -1))).view(b, t, j, -1)
            if i == 0:  # MixSTE adds the frame position embedding after the first spatial block
                h = self.pos_dropout(h + self.frame_pos[:, :t, None])
            h = h.permute(0, 2, 1, 3).reshape(b * j, t, -1)  # [B J, T, C]
            h = self.temporal_norm(temporal(h, self.causal)).view(b, j, t, -1).permute(0, 2, 1, 3)
        features = h.contiguous()
        pose = self.pose_head(self.head_norm(features)) * self.root_mask
        log_sigma_z = self.log_sigma_head(features).squeeze(-1)
        return ContextOutput(features, pose, log_sigma_z)
