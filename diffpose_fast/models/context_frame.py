"""The frame context encoder phi_ST (Sec. 4.3, 4.5): GraFormer-style graph attention + graph convolutions.

It reads one frame's 2D pose and returns (i) the per-joint context features f_ST [B, J, hidden] that condition
the denoiser g, (ii) a root-relative 3D pose that centres H_K, and (iii) a per-joint spread of that pose's
depth, log sigma_z, that gives H_K its z extent (DESIGN.md "one coherent reading"). It is pretrained on these
outputs and then frozen; losses belong to training, not here.

    x [B, J, F] --GraphConv(F -> D)--> + joint embedding [J, D] --> num_layers x [ x + MHA(LN(x)) ; x + GraphFFN(LN(x)) ]
                --LN--> f_ST [B, J, D]
    f_ST --GraphConv(D -> 3)--> pose (root forced to 0)      f_ST --Linear(D -> 1)--> log_sigma_z

Why the joint embedding: graph convolutions whose weights are shared over the nodes and self-attention without a
positional term are equivariant to the skeleton's symmetries (left <-> right, and any automorphism of the graph),
so without it the network tells a left wrist from a right one, or a wrist from an ankle, only through the input
coordinates. On real motion that left the encoder under-fitting (docs/design.md, "Joint identity"); GraFormer and
MixSTE carry such an embedding too. ``joint_embedding=False`` gives the equivariant network.

Size with the defaults (J = 17, F = 3, D = 128, 4 layers, 4 heads, FFN width 2D): 796,293 parameters (2,176 of
them the joint embedding) and 28.3 MFLOP per pose (FlopCounterMode, 2 FLOP per multiply-add), against the
official GCNpose's 654,344 used parameters and 25.2 MFLOP.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .graph import AdjacencyLike, GraphConv, GraphFeedForward, JointSelfAttention, as_adjacency


class ContextOutput(NamedTuple):
    """What the frame context encoder returns.

    features: [B, J, hidden] f_ST, the denoiser's conditioning.
    pose: [B, J, 3] root-relative camera-frame pose in metres; pose[:, 0] is exactly 0.
    log_sigma_z: [B, J] natural log of the predicted std (metres) of each joint's root-relative depth z
        (the root's entry is unconstrained: its depth is 0 by definition).
    """

    features: torch.Tensor
    pose: torch.Tensor
    log_sigma_z: torch.Tensor


class _GraFormerLayer(nn.Module):
    """x = x + drop(MHA(LN1(x))); x = x + drop(GraphFFN(LN2(x))) (attention first, as in GraFormer)."""

    def __init__(self, dim: int, heads: int, adjacency: torch.Tensor, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = JointSelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = GraphFeedForward(dim, adjacency, mult=2, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x)))
        x = x + self.dropout(self.ffn(self.ln2(x)))
        return x


class FrameContextEncoder(nn.Module):
    """phi_ST for single frames.

    Args:
        num_joints: J (must match the adjacency).
        in_features: 2 for normalised screen coordinates (VideoPose3D ``normalize_screen_coordinates``:
            u / w * 2 - [1, h / w]), 3 to append a per-joint detector confidence in [0, 1].
        hidden: feature width D (= the denoiser's context_dim, 128).
        num_layers: GraFormer layers.
        heads: attention heads (hidden % heads == 0).
        dropout: in the layers.
        adjacency: A_hat [J, J]; None for the H36M skeleton.
        joint_embedding: add a learned per-joint vector [J, hidden] after the input convolution (module docstring).
    """

    def __init__(self, num_joints: int = 17, in_features: int = 2, hidden: int = 128, num_layers: int = 4,
                 heads: int = 4, dropout: float = 0.0, adjacency: AdjacencyLike = None, joint_embedding: bool = False):
        super().__init__()
        a = as_adjacency(adjacency)
        if a.shape[0] != num_joints:
            raise ValueError(f"FrameContextEncoder: adjacency is {tuple(a.shape)} but num_joints={num_joints}")
        if in_features < 1:
            raise ValueError(f"FrameContextEncoder: in_features must be >= 1, got {in_features}")
        self.num_joints = num_joints
        self.in_features = in_features
        self.hidden = hidden
        self.input_conv = GraphConv(in_features, hidden, a)
        # Small random start (ViT-style): breaks the symmetry from the first step without swamping the input.
        self.joint_embed = nn.Parameter(0.02 * torch.randn(num_joints, hidden)) if joint_embedding else None
        self.layers = nn.ModuleList(_GraFormerLayer(hidden, heads, a, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden)
        self.pose_head = GraphConv(hidden, 3, a)
        self.log_sigma_head = nn.Linear(hidden, 1)
        # multiplying by this mask (rather than writing pose[:, 0] = 0 in place) keeps the root exactly 0 and
        # autograd-friendly
        root_mask = torch.ones(num_joints, 1)
        root_mask[0] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def forward(self, x: torch.Tensor) -> ContextOutput:
        """Encode a batch of 2D poses.

        Args:
            x: [B, J, in_features] normalised screen coordinates (and confidence, if in_features = 3).

        Returns:
            ContextOutput(features [B, J, hidden], pose [B, J, 3] metres with pose[:, 0] = 0, log_sigma_z [B, J]).
        """
        if x.ndim != 3 or x.shape[1:] != (self.num_joints, self.in_features):
            raise ValueError(f"FrameContextEncoder: x must have shape [B, {self.num_joints}, {self.in_features}], "
                             f"got {tuple(x.shape)}")
        f = self.input_conv(x)
        if self.joint_embed is not None:
            f = f + self.joint_embed
        for layer in self.layers:
            f = layer(f)
        f = self.norm(f)
        pose = self.pose_head(f) * self.root_mask
        log_sigma_z = self.log_sigma_head(f).squeeze(-1)
        return ContextOutput(f, pose, log_sigma_z)
