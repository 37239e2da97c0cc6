"""Graph layers over the 17-joint skeleton: graph convolution, joint self-attention, the GCN-Attention block.

These modules are the *reference* implementation that fused kernels are tested against: the math is written
out plainly and every weight lives in an ``nn.Linear`` / ``nn.LayerNorm`` so a kernel can read it.

Shapes: x [B, J, C] (B poses, J joints, C features per joint).
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.skeleton import normalized_adjacency

AdjacencyLike = Union[np.ndarray, torch.Tensor, None]


def as_adjacency(adjacency: AdjacencyLike) -> torch.Tensor:
    """The propagation matrix A_hat [J, J] as a tensor of the default dtype; None gives the H36M skeleton's
    D^-1/2 (A + I) D^-1/2 (``data.skeleton.normalized_adjacency``)."""
    if adjacency is None:
        adjacency = normalized_adjacency()
    a = torch.as_tensor(np.asarray(adjacency) if not isinstance(adjacency, torch.Tensor) else adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"adjacency must be a square matrix [J, J], got shape {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("adjacency must be finite")
    return a.detach().to(dtype=torch.get_default_dtype()).clone()


class GraphConv(nn.Module):
    """y = A_hat @ x @ W + x @ W_self + b: one weight for the (normalised) neighbourhood, one for the node.

    A_hat [J, J] is fixed (a non-persistent buffer, built once: no per-call normalisation). Because A_hat is
    sparse on the skeleton, one layer mixes each joint only with its graph neighbours. The separate self weight
    lets a joint keep features its neighbours do not share (A_hat alone averages them away).

    Args:
        in_features, out_features: C_in, C_out.
        adjacency: A_hat [J, J] (numpy or torch); None for the H36M skeleton's normalised adjacency.
        bias: add b [C_out].

    Weights: ``neighbour`` = nn.Linear(C_in, C_out, bias=False) holds W^T; ``self_loop`` = nn.Linear(C_in, C_out,
    bias) holds W_self^T and b.

    Shapes: x [B, J, C_in] -> [B, J, C_out].
    """

    def __init__(self, in_features: int, out_features: int, adjacency: AdjacencyLike = None, bias: bool = True):
        super().__init__()
        a = as_adjacency(adjacency)
        self.num_joints = a.shape[0]
        self.in_features = in_features
        self.out_features = out_features
        # non-persistent: A_hat is a function of the skeleton (a constructor argument), not a learned weight, and
        # leaving it out of state_dict keeps checkpoints free of duplicated (shared) tensors
        self.register_buffer("adjacency", a, persistent=False)
        self.neighbour = nn.Linear(in_features, out_features, bias=False)
        self.self_loop = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[-2] != self.num_joints or x.shape[-1] != self.in_features:
            raise ValueError(f"GraphConv: x must have shape [..., J={self.num_joints}, C={self.in_features}], "
                             f"got {tuple(x.shape)}")
        # A_hat @ (x W): with C_out <= C_in this order is the cheaper one; the result is the same either way
        return torch.matmul(self.adjacency, self.neighbour(x)) + self.self_loop(x)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, joints={self.num_joints}"


class JointSelfAttention(nn.Module):
    """Multi-head self-attention across the J joints of each pose (no mask: every joint sees every joint).

    q, k, v = split(x W_qkv + b_qkv); per head h of width d = C / heads:
    out_h = softmax(q_h k_h^T / sqrt(d)) v_h; y = concat_h(out_h) W_proj + b_proj.

    Weights: ``qkv`` = nn.Linear(C, 3C) (rows [q; k; v], each head a contiguous block of d rows), ``proj`` =
    nn.Linear(C, C). Shapes: x [B, J, C] -> [B, J, C].
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"JointSelfAttention: dim={dim} must be a positive multiple of heads={heads}")
        self.dim = dim
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, J, C = x.shape
        d = C // self.heads
        # [B, J, 3, H, d] -> three [B, H, J, d]
        q, k, v = self.qkv(x).view(B, J, 3, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)  # [B, H, J, J]
        weights = self.attn_dropout(torch.softmax(scores, dim=-1))
        out = torch.matmul(weights, v).transpose(1, 2).reshape(B, J, C)
        return self.proj(out)


class GCNAttentionBlock(nn.Module):
    """The paper's GCN-Attention block (Sec. 4.5): two graph convolutions and one self-attention, residual.

    Pre-LayerNorm residual form:

        x = x + drop(GC2(GELU(GC1(LN1(x)))))
        x = x + drop(MHA(LN2(x)))

    The graph convolutions propagate along bones; the attention relates non-adjacent joints (e.g. wrist and
    foot) that the paper interlaces for "structural understanding of the pose as a whole".

    Args:
        dim: feature width C (256 in the denoiser).
        heads: attention heads (dim % heads == 0).
        adjacency: A_hat [J, J]; None for the H36M skeleton.
        dropout: on both residual branches and the attention probabilities.

    Shapes: x [B, J, C] -> [B, J, C].
    """

    def __init__(self, dim: int, heads: int, adjacency: AdjacencyLike = None, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.gc1 = GraphConv(dim, dim, adjacency)
        self.gc2 = GraphConv(dim, dim, adjacency)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = JointSelfAttention(dim, heads, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.gc2(F.gelu(self.gc1(self.ln1(x)))))
        x = x + self.dropout(self.attn(self.ln2(x)))
        return x


class GraphFeedForward(nn.Module):
    """Graph-convolutional feed-forward: GC2(GELU(GC1(x))), widths C -> mult C -> C (GraFormer's GraphNet role).

    Shapes: x [B, J, C] -> [B, J, C].
    """

    def __init__(self, dim: int, adjacency: AdjacencyLike = None, mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.gc1 = GraphConv(dim, mult * dim, adjacency)
        self.gc2 = GraphConv(mult * dim, dim, adjacency)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gc2(self.dropout(F.gelu(self.gc1(x))))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
