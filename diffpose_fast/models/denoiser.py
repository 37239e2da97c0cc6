"""The diffusion model g of DiffPose (Sec. 4.5): a GCN-Attention network that predicts x0_hat from (h_k, f_ST, k).

g predicts the clean pose x0_hat; the samplers turn it into h_{k-1} (Eq. 8) in closed form (DESIGN.md item 6),
so this module knows nothing about schedules or samplers.

    c = condition(f_ST, x_2d) = f_ST + joint embedding [J, C] (+ Linear(x_2d) [B, J, C] when inputs_2d > 0)
    h_k [B, J, 3] --GraphConv(3 -> E)--> [B, J, E]
                   concat c [B, J, C]                             -> v [B, J, E + C]   (E = C = 128: 256)
                   + f_D^k [B, 1, E + C]  (sinusoidal(k, E) -> Linear -> SiLU -> Linear, broadcast over joints)
                   3 x GCNAttentionBlock(E + C)
                   LayerNorm -> GraphConv(E + C -> 3)              -> out [B, J, 3]
    x0_hat = h_k + out       (residual=True, the default: g predicts the correction to h_k)
    x0_hat = out             (residual=False: g predicts x0 itself)

``condition`` is computed once per batch of frames (it does not depend on k or h_k) and passed to ``forward`` as
``context``; the fused kernels (``ops.denoiser``) take the same conditioned context, so they need no change
for it. Joint identity enters through c: with f_ST alone the GCN-attention blocks are equivariant to the
skeleton's left/right symmetry wherever the encoder's features are (docs/design.md, "Joint identity").
``x_2d`` are the encoder's own inputs (normalised screen x, y and confidence, [B, J, inputs_2d]): the 2D evidence
itself, next to what the encoder made of it.

The output GraphConv is zero-initialised, so an untrained g returns x0_hat = h_k (or 0 with residual=False):
the first updates start from a well-defined output instead of a random pose of metre scale.

Why residual by default: H_K is centred on the context encoder's pose, so h_k is already close to h_0 at every
k and the correction is small (0 at k = 0), whereas a direct x0 output must rebuild the whole metre-scale pose
through the network. On a toy lifting problem (synthetic 8-D pose manifold, per-joint Gaussian H_K around a
perturbed pose, a 64-wide 2-block denoiser, unweighted x0 loss, 1500 Adam steps, batch 64, one seed) the
mean-of-5 MPJPE from an initial 67.4 mm was 28.5 / 29.5 / 32.2 mm (S = 1 / 5 / 50 steps) with the residual
output and 42.0 / 45.0 / 47.7 mm with the direct one. One toy and one seed: re-check on real data.

Size with the paper's widths (J = 17, E = C = 128, hidden 256, 3 blocks, 8 heads), measured with
``torch.utils.flop_counter.FlopCounterMode`` (2 FLOP per multiply-add; LayerNorm, softmax, GELU and the
embedding's sin/cos are not counted) by ``measure_cost`` below:

    parameters   1,682,307   (input GraphConv 896, step MLP 98,816, 3 blocks x 526,848, final LN + GraphConv 2,051)
    FLOPs        55.6 MFLOP per pose per denoiser call (55,603,654 for B = 1; exactly linear in B).
                 Per block 18.4 MFLOP: graph convolutions 9.2 (weights 8.9, A_hat products 0.3), attention
                 9.2 (qkv 6.7, scores and weighted sum 0.3, output projection 2.2).

For comparison, the official GCNdiff is 1,025,674 parameters and 26.0 MFLOP per pose per call; a paper-setting
inference (N = 5 hypotheses, DDIM S = 5) costs 25 calls = 1.39 GFLOP per frame here, 50 K-steps 13.9 GFLOP.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from ..diffusion.embedding import sinusoidal_embedding
from .graph import AdjacencyLike, GCNAttentionBlock, GraphConv, as_adjacency


class GCNAttentionDenoiser(nn.Module):
    """g(h_k, f_ST, f_D^k) -> x0_hat.

    Args:
        num_joints: J (must match the adjacency).
        context_dim: C, width of the context features f_ST (128 in the paper).
        hidden: width of the GCN-Attention blocks; must equal embed_dim + context_dim (the paper concatenates
            E and f_ST, then adds f_D^k of the same width).
        embed_dim: E, width of the input pose embedding and of the sinusoidal step embedding (128).
        num_blocks: number of GCN-Attention blocks (3).
        heads: attention heads per block (8; hidden % heads == 0).
        dropout: in the blocks.
        adjacency: A_hat [J, J]; None for the H36M skeleton.
        residual: predict the correction to h_k (x0_hat = h_k + out, the default) instead of x0 itself.
        joint_embedding: add a learned per-joint vector [J, context_dim] to the conditioning (``condition``).
        inputs_2d: width of the 2D input features projected into the conditioning (0: none).
    """

    def __init__(self, num_joints: int = 17, context_dim: int = 128, hidden: int = 256, embed_dim: int = 128,
                 num_blocks: int = 3, heads: int = 8, dropout: float = 0.0, adjacency: AdjacencyLike = None,
                 residual: bool = True, joint_embedding: bool = False, inputs_2d: int = 0):
        super().__init__()
        if hidden != embed_dim + context_dim:
            raise ValueError(f"GCNAttentionDenoiser: hidden must equal embed_dim + context_dim "
                             f"({embed_dim} + {context_dim} = {embed_dim + context_dim}), got {hidden}")
        if num_blocks < 1:
            raise ValueError(f"GCNAttentionDenoiser: num_blocks must be >= 1, got {num_blocks}")
        a = as_adjacency(adjacency)
        if a.shape[0] != num_joints:
            raise ValueError(f"GCNAttentionDenoiser: adjacency is {tuple(a.shape)} but num_joints={num_joints}")
        self.num_joints = num_joints
        self.context_dim = context_dim
        self.hidden = hidden
        self.embed_dim = embed_dim
        self.residual = residual

        self.input_conv = GraphConv(3, embed_dim, a)
        self.step_mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(GCNAttentionBlock(hidden, heads, a, dropout) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(hidden)
        self.output_conv = GraphConv(hidden, 3, a)
        for p in self.output_conv.parameters():
            nn.init.zeros_(p)
        self.joint_embed = nn.Parameter(0.02 * torch.randn(num_joints, context_dim)) if joint_embedding else None
        self.inputs_2d = int(inputs_2d)
        self.input_2d_proj = nn.Linear(inputs_2d, context_dim) if inputs_2d > 0 else None

    def condition(self, features: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The conditioning c [B, J, context_dim] from f_ST [B, J, context_dim] and, when the denoiser reads the 2D
        input (inputs_2d > 0), inputs [B, J, inputs_2d]; f_ST itself when neither option is on."""
        c = features
        if self.joint_embed is not None:
            c = c + self.joint_embed.to(c.dtype)
        if self.input_2d_proj is not None:
            if inputs is None or inputs.shape != (*features.shape[:-1], self.inputs_2d):
                raise ValueError(f"GCNAttentionDenoiser.condition: inputs must have shape "
                                 f"[{', '.join(map(str, features.shape[:-1]))}, {self.inputs_2d}], got "
                                 f"{None if inputs is None else tuple(inputs.shape)}")
            c = c + self.input_2d_proj(inputs.to(c.dtype))
        return c

    def step_embedding(self, k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """f_D^k [B, 1, hidden] for steps k [B]."""
        return self.step_mlp(sinusoidal_embedding(k, self.embed_dim, dtype=dtype))[:, None, :]

    def forward(self, h_k: torch.Tensor, context: torch.Tensor, k: Union[torch.Tensor, int]) -> torch.Tensor:
        """x0_hat from the noisy pose, the context and the step.

        Args:
            h_k: [B, J, 3] noisy poses at step k (metres, root-relative).
            context: [B, J, context_dim] the conditioning ``condition(f_ST, x_2d)`` (f_ST from the frozen context
                encoder).
            k: [B] integer steps, or an int for the whole batch.

        Returns:
            x0_hat [B, J, 3] (metres).
        """
        if h_k.ndim != 3 or h_k.shape[1:] != (self.num_joints, 3):
            raise ValueError(f"GCNAttentionDenoiser: h_k must have shape [B, {self.num_joints}, 3], "
                             f"got {tuple(h_k.shape)}")
        B = h_k.shape[0]
        if context.shape != (B, self.num_joints, self.context_dim):
            raise ValueError(f"GCNAttentionDenoiser: context must have shape [{B}, {self.num_joints}, "
                             f"{self.context_dim}], got {tuple(context.shape)}")
        if not isinstance(k, torch.Tensor):
            k = torch.full((B,), int(k), device=h_k.device, dtype=torch.long)
        elif k.ndim == 0:
            k = k.expand(B)
        if k.shape != (B,):
            raise ValueError(f"GCNAttentionDenoiser: k must have shape [{B}], got {tuple(k.shape)}")

        v = torch.cat([self.input_conv(h_k), context.to(h_k.dtype)], dim=-1)  # [B, J, hidden]
        v = v + self.step_embedding(k, h_k.dtype)                              # f_D^k broadcast over joints
        for block in self.blocks:
            v = block(v)
        out = self.output_conv(self.norm(v))
        return h_k + out if self.residual else out


def measure_cost(model: nn.Module, batch: int = 2) -> tuple[int, int]:
    """(parameters, FLOPs of one forward call for ``batch`` poses) of a denoiser, by FlopCounterMode.

    Reproduce the numbers in the module docstring with::

        python -c "from diffpose_fast.models.denoiser import *; print(measure_cost(GCNAttentionDenoiser()))"
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    J = model.num_joints
    h = torch.zeros(batch, J, 3)
    ctx = torch.zeros(batch, J, model.context_dim)
    k = torch.zeros(batch, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(h, ctx, k)
    return params, counter.get_total_flops()
