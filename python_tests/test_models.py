"""Graph layers, the denoiser g and the frame context encoder (small widths for speed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose_fast.data.skeleton import EDGES, NUM_JOINTS, normalized_adjacency
from diffpose_fast.models.context_frame import ContextOutput, FrameContextEncoder
from diffpose_fast.models.denoiser import GCNAttentionDenoiser, measure_cost
from diffpose_fast.models.graph import GCNAttentionBlock, GraphConv, JointSelfAttention

NEIGHBOURS = {j: {j} for j in range(NUM_JOINTS)}
for p, c in EDGES:
    NEIGHBOURS[p].add(c)
    NEIGHBOURS[c].add(p)


def _small_denoiser(**kw):
    torch.manual_seed(0)
    args = dict(context_dim=16, hidden=32, embed_dim=16, num_blocks=2, heads=4)
    args.update(kw)
    model = GCNAttentionDenoiser(**args)
    # the output layer starts at zero (x0_hat = h_k); give it weights so the tests can see the inputs act
    for p in model.output_conv.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def test_graphconv_adjacency_buffer():
    gc = GraphConv(3, 8)
    assert torch.equal(gc.adjacency, torch.as_tensor(normalized_adjacency(), dtype=torch.float32))
    assert "adjacency" not in gc.state_dict()  # fixed by the skeleton, not a weight
    assert gc.double().adjacency.dtype == torch.float64
    with pytest.raises(ValueError, match="square"):
        GraphConv(3, 8, np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"J=17, C=3"):
        gc.double()(torch.zeros(2, 16, 3, dtype=torch.float64))


def test_graphconv_formula():
    torch.manual_seed(0)
    gc = GraphConv(4, 5).double()
    x = torch.randn(3, NUM_JOINTS, 4, dtype=torch.float64)
    A = torch.as_tensor(normalized_adjacency())
    W, Ws, b = gc.neighbour.weight.T, gc.self_loop.weight.T, gc.self_loop.bias
    torch.testing.assert_close(gc(x), A @ x @ W + x @ Ws + b)


@pytest.mark.parametrize("joint", [3, 10, 13, 16, 0, 8])
def test_graphconv_mixes_only_neighbours(joint):
    torch.manual_seed(1)
    gc = GraphConv(3, 6).double()
    x = torch.randn(2, NUM_JOINTS, 3, dtype=torch.float64)
    dx = torch.zeros_like(x)
    dx[:, joint] = 1.0
    changed = (gc(x + dx) - gc(x)).abs().amax(dim=(0, 2)) > 1e-12
    assert set(torch.nonzero(changed).flatten().tolist()) == NEIGHBOURS[joint]


def test_attention_matches_torch_sdpa():
    torch.manual_seed(2)
    attn = JointSelfAttention(16, 4).double()
    x = torch.randn(3, NUM_JOINTS, 16, dtype=torch.float64)
    q, k, v = attn.qkv(x).view(3, NUM_JOINTS, 3, 4, 4).permute(2, 0, 3, 1, 4)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(3, NUM_JOINTS, 16)
    torch.testing.assert_close(attn(x), attn.proj(ref))


def test_gcn_attention_block_formula_and_global_reach():
    torch.manual_seed(3)
    blk = GCNAttentionBlock(16, 4).double().eval()
    x = torch.randn(2, NUM_JOINTS, 16, dtype=torch.float64)
    y = x + blk.gc2(torch.nn.functional.gelu(blk.gc1(blk.ln1(x))))
    torch.testing.assert_close(blk(x), y + blk.attn(blk.ln2(y)))
    # attention lets a leaf (RFoot) reach every joint, unlike one graph convolution (the perturbation must not
    # be constant across features: LayerNorm would remove it)
    dx = torch.zeros_like(x)
    dx[:, 3] = torch.randn(16, dtype=torch.float64)
    assert bool(((blk(x + dx) - blk(x)).abs().amax(dim=(0, 2)) > 1e-9).all())


def test_denoiser_shapes_and_validation():
    model = _small_denoiser()
    h = torch.randn(4, NUM_JOINTS, 3)
    ctx = torch.randn(4, NUM_JOINTS, 16)
    out = model(h, ctx, torch.tensor([0, 1, 25, 50]))
    assert out.shape == (4, NUM_JOINTS, 3) and out.dtype == torch.float32
    torch.testing.assert_close(model(h, ctx, 7), model(h, ctx, torch.full((4,), 7)))
    with pytest.raises(ValueError, match="hidden must equal"):
        GCNAttentionDenoiser(context_dim=16, hidden=48, embed_dim=16)
    with pytest.raises(ValueError, match="context must have shape"):
        model(h, ctx[:, :, :8], 3)
    with pytest.raises(ValueError, match="h_k must have shape"):
        model(h[:, :16], ctx, 3)
    with pytest.raises(ValueError, match="k must have shape"):
        model(h, ctx, torch.tensor([1, 2]))


def test_denoiser_depends_on_state_context_and_step():
    model = _small_denoiser()
    torch.manual_seed(4)
    h = torch.randn(3, NUM_JOINTS, 3)
    ctx = torch.randn(3, NUM_JOINTS, 16)
    base = model(h, ctx, 10)
    assert (model(h, ctx + torch.randn_like(ctx), 10) - base).abs().max() > 1e-3
    assert (model(h, ctx, 40) - base).abs().max() > 1e-3
    # the network itself reads h_k, not only the residual connection
    dh = 0.1 * torch.randn_like(h)
    assert (model(h + dh, ctx, 10) - dh - base).abs().max() > 1e-3
    # each pose in the batch is processed on its own
    torch.testing.assert_close(model(h[:1], ctx[:1], 10), base[:1])


def test_denoiser_initial_output_and_residual_mode():
    torch.manual_seed(5)
    h = torch.randn(2, NUM_JOINTS, 3)
    ctx = torch.randn(2, NUM_JOINTS, 128)
    k = torch.tensor([3, 30])
    assert torch.equal(GCNAttentionDenoiser()(h, ctx, k), h)  # residual by default: x0_hat = h_k + 0
    assert torch.equal(GCNAttentionDenoiser(residual=False)(h, ctx, k), torch.zeros_like(h))


def test_denoiser_trains_on_a_tiny_batch():
    # gradients reach every parameter and a few Adam steps cut the x0 loss
    model = _small_denoiser().train()
    torch.manual_seed(6)
    h0 = 0.3 * torch.randn(8, NUM_JOINTS, 3)
    ctx = torch.randn(8, NUM_JOINTS, 16)
    hk = h0 + 0.1 * torch.randn_like(h0)
    k = torch.randint(1, 51, (8,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = (model(hk, ctx, k) - h0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_paper_sized_denoiser_cost():
    params, flops = measure_cost(GCNAttentionDenoiser(), batch=1)
    assert params == 1_682_307
    assert 50e6 < flops < 60e6


def test_frame_context_encoder_outputs():
    torch.manual_seed(7)
    enc = FrameContextEncoder(hidden=32, num_layers=2, heads=4).eval()
    x = torch.rand(5, NUM_JOINTS, 2) * 2 - 1
    out = enc(x)
    assert isinstance(out, ContextOutput)
    assert out.features.shape == (5, NUM_JOINTS, 32)
    assert out.pose.shape == (5, NUM_JOINTS, 3) and out.log_sigma_z.shape == (5, NUM_JOINTS)
    assert torch.equal(out.pose[:, 0], torch.zeros(5, 3))
    assert out.pose[:, 1:].abs().max() > 0
    # input changes propagate; confidence as a third channel is accepted
    assert (enc(x + 0.1).pose - out.pose).abs().max() > 1e-4
    enc3 = FrameContextEncoder(in_features=3, hidden=32, num_layers=1, heads=4)
    assert enc3(torch.rand(2, NUM_JOINTS, 3)).features.shape == (2, NUM_JOINTS, 32)
    with pytest.raises(ValueError, match=r"\[B, 17, 2\]"):
        enc(torch.rand(2, NUM_JOINTS, 3))


def test_frame_context_encoder_feeds_the_denoiser():
    enc = FrameContextEncoder(hidden=16, num_layers=1, heads=4)
    g = _small_denoiser()
    out = enc(torch.rand(3, NUM_JOINTS, 2))
    x0 = g(out.pose, out.features, torch.tensor([50, 50, 50]))
    assert x0.shape == (3, NUM_JOINTS, 3)
