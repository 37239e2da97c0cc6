"""A straightforward eager re-implementation of the official DiffPose denoiser GCNdiff ("what people use
today"), written from the layer description in shared/reference/official_code.md section 2.4; random weights.

hidden 96, 5 layers, 4 heads, 5 input channels (u, v, x, y, z), H36M skeleton: ChebConv(K=2) input/output
convolutions with L = I - A_rownorm rebuilt on every forward; 5 x (GraAttenLayer: custom LayerNorm with
unbiased std, 4-head attention with Q/K/V/out Linears and an all-True mask, GraphNet with a learnable A_hat
renormalised and repeated per batch element on every call; then _ResChebGC_diff with the step embedding
96 -> 384 -> 384 added after its first ChebConv). Inference only: dropout layers are present but eval().
1,025,674 parameters and 26.0 MFLOP per pose per call, as measured on the official code.
Only the structure and the per-call work matter here: it is the speed baseline, not a model anyone trains.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffpose_fast.data.skeleton import NUM_JOINTS, PARENTS




def rownorm_adjacency(num_joints: int = NUM_JOINTS) -> torch.Tensor:
    """Symmetric A + I over the 16 bones, row-normalised (``adj_mx_from_edges``)."""
    a = torch.eye(num_joints)
    for child, parent in enumerate(PARENTS):
        if parent >= 0:
            a[child, parent] = a[parent, child] = 1.0
    return a / a.sum(1, keepdim=True)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ChebConv(nn.Module):
    def __init__(self, cin: int, cout: int, K: int = 2):
        super().__init__()
        self.K = K
        self.weight = nn.Parameter(torch.empty(K + 1, 1, cin, cout))
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(1, 1, cout))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        n = adj.shape[0]
        eye = torch.eye(n, device=x.device, dtype=x.dtype)
        deg = torch.sum(adj, dim=-1) ** (-0.5)
        lap = eye - deg[:, None] * adj * deg[None, :]             # rebuilt every call, as the official code does
        terms = [eye, lap]
        for _ in range(2, self.K + 1):
            terms.append(2 * lap @ terms[-1] - terms[-2])
        t = torch.stack(terms[: self.K + 1])                      # [K+1, J, J]
        out = torch.matmul(t.unsqueeze(1), x.unsqueeze(0))         # [K+1, B, J, Cin]
        out = torch.matmul(out, self.weight)                      # [K+1, B, J, Cout]
        return out.sum(0) + self.bias


class GraFormerLayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.a = nn.Parameter(torch.ones(dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        return self.a * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps) + self.b


class MultiHeadedAttention(nn.Module):
    def __init__(self, heads: int, dim: int, dropout: float = 0.1):
        super().__init__()
        self.h, self.d_k = heads, dim // heads
        self.linears = nn.ModuleList(nn.Linear(dim, dim) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask):
        B = x.shape[0]
        q, k, v = (lin(x).view(B, -1, self.h, self.d_k).transpose(1, 2) for lin in self.linears[:3])
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        scores = scores.masked_fill(mask == 0, -1e9)
        p = self.dropout(F.softmax(scores, dim=-1))
        out = torch.matmul(p, v).transpose(1, 2).contiguous().view(B, -1, self.h * self.d_k)
        return self.linears[-1](out)


class LAMGconv(nn.Module):
    def __init__(self, cin, cout, activation=True):
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.activation = activation

    def forward(self, x, a_hat):
        B, n = x.shape[0], a_hat.shape[0]
        a = a_hat.unsqueeze(0).repeat(B, 1, 1)
        d = (torch.sum(a, 1) + 1e-5) ** (-0.5)
        lap = d.view(B, n, 1) * a * d.view(B, 1, n)
        x = self.fc(torch.bmm(lap, x))
        return F.relu(x) if self.activation else x


class GraphNet(nn.Module):
    def __init__(self, dim, n_pts):
        super().__init__()
        self.A_hat = nn.Parameter(torch.eye(n_pts))
        self.gconv1 = LAMGconv(dim, 2 * dim)
        self.gconv2 = LAMGconv(2 * dim, dim, activation=False)

    def forward(self, x):
        return self.gconv2(self.gconv1(x, self.A_hat), self.A_hat)


class GraAttenLayer(nn.Module):
    def __init__(self, dim, heads, n_pts, dropout=0.25):
        super().__init__()
        self.attn = MultiHeadedAttention(heads, dim)
        self.gcn = GraphNet(dim, n_pts)
        self.norm1, self.norm2 = GraFormerLayerNorm(dim), GraFormerLayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.gcn(self.norm2(x)))


class ChebGraphConv(nn.Module):
    def __init__(self, cin, cout, dropout=0.1):
        super().__init__()
        self.conv = ChebConv(cin, cout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, adj):
        return F.relu(self.drop(F.relu(self.conv(x, adj))))


class ResChebGCDiff(nn.Module):
    def __init__(self, dim, emb_dim):
        super().__init__()
        self.gconv1, self.gconv2 = ChebGraphConv(dim, dim), ChebGraphConv(dim, dim)
        self.temb_proj = nn.Linear(emb_dim, dim)

    def forward(self, x, adj, temb):
        out = self.gconv1(x, adj) + self.temb_proj(F.silu(temb))[:, None, :]
        return x + self.gconv2(out, adj)


class OfficialGCNdiff(nn.Module):
    """GCNdiff(x [B, 17, 5], t [B]) -> eps_hat [B, 17, 5]."""

    def __init__(self, hidden: int = 96, layers: int = 5, heads: int = 4, coords: int = 5, n_pts: int = NUM_JOINTS):
        super().__init__()
        self.register_buffer("adj", rownorm_adjacency(n_pts))
        self.hidden, emb = hidden, 4 * hidden
        self.dense = nn.ModuleList([nn.Linear(hidden, emb), nn.Linear(emb, emb)])
        self.gconv_input = ChebConv(coords, hidden)
        self.atten_layers = nn.ModuleList(GraAttenLayer(hidden, heads, n_pts) for _ in range(layers))
        self.gconv_layers = nn.ModuleList(ResChebGCDiff(hidden, emb) for _ in range(layers))
        self.gconv_output = ChebConv(hidden, coords)

    def forward(self, x, t):
        temb = self.dense[1](F.silu(self.dense[0](timestep_embedding(t, self.hidden))))
        mask = torch.ones(x.shape[0], 1, x.shape[1], device=x.device, dtype=torch.bool)[:, None]
        out = self.gconv_input(x, self.adj)
        for attn, gconv in zip(self.atten_layers, self.gconv_layers):
            out = attn(out, mask)
            out = gconv(out, self.adj, temb)
        return self.gconv_output(out, self.adj)


def official_sample(model: OfficialGCNdiff, x: torch.Tensor, seq: list, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The official ``generalized_steps`` at eta = 0 (eps-prediction DDIM), one model call per step."""
    B = x.shape[0]
    for t, t_next in zip(reversed(seq), reversed([-1] + seq[:-1])):
        at = alpha_bar[t]
        at_next = alpha_bar[t_next] if t_next >= 0 else torch.tensor(1.0)
        eps = model(x, torch.full((B,), float(t)))
        x0 = (x - eps * (1 - at).sqrt()) / at.sqrt()
        x = at_next.sqrt() * x0 + (1 - at_next).sqrt() * eps
    return x


if __name__ == "__main__":
    from torch.utils.flop_counter import FlopCounterMode

    m = OfficialGCNdiff().eval()
    fc = FlopCounterMode(display=False)
    with torch.no_grad(), fc:
        m(torch.randn(4, NUM_JOINTS, 5), torch.zeros(4))
    print(f"parameters {sum(p.numel() for p in m.parameters()):,}; {fc.get_total_flops() / 4 / 1e6:.2f} MFLOP per pose")
