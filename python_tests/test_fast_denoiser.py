"""The fused denoiser forward (diffpose_fast.ops.denoiser.fused) against the reference GCNAttentionDenoiser:
native C++ (always, CPU), native CUDA (GPU only), hoisted torch ops; outputs poisoned with NaN first."""
import math

import pytest
import torch
from torch import nn

from diffpose_fast.ops.denoiser import fused as fd
from diffpose_fast.ops.denoiser.fused import FusedDenoiser, pack_panels
from diffpose_fast.models.denoiser import GCNAttentionDenoiser
from diffpose_fast.ops._dispatch import BackendUnavailableError

RTOL32 = 1e-5  # float32 kernels against the float64 reference, relative to the output's scale
CONFIGS = {
    "small": dict(context_dim=32, embed_dim=32, hidden=64, num_blocks=2, heads=4),
    "paper": dict(),  # 128 + 128 = 256 wide, 3 blocks, 8 heads
}


def _model(seed, **kw):
    torch.manual_seed(seed)
    m = GCNAttentionDenoiser(**kw).eval()
    with torch.no_grad():  # the zero-initialised output conv and the unit LayerNorms would hide errors
        for mod in m.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.normal_(1.0, 0.3)
                mod.bias.normal_(0.0, 0.3)
        for p in m.output_conv.parameters():
            p.normal_(0.0, 0.1)
    return m


def _inputs(m, B, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, m.num_joints, 3, generator=g, dtype=torch.float64).to(dtype)
    ctx = torch.randn(B, m.num_joints, m.context_dim, generator=g, dtype=torch.float64).to(dtype)
    return h, ctx


def _reference64(m, h, ctx, k):
    m64 = _model(0, **_kw(m)).double()
    m64.load_state_dict(m.state_dict())
    with torch.no_grad():
        return m64(h.double(), ctx.double(), k)


def _kw(m):
    return dict(context_dim=m.context_dim, embed_dim=m.embed_dim, hidden=m.hidden, num_blocks=len(m.blocks),
                heads=m.blocks[0].attn.heads)


def _rel(got, ref):
    return ((got.double() - ref).abs().max() / ref.abs().max()).item()


@pytest.fixture
def poisoned(monkeypatch):
    monkeypatch.setattr(fd, "_empty_like", lambda t: torch.full_like(t, float("nan")))


def test_native_module_is_built_and_used():
    mod = fd.native_module()  # fails (not skips) when the build lacks the module
    info = mod.build_info()
    assert hasattr(mod, "denoiser_forward_cpu")
    assert info["gemm_kernel"] in ("avx512f 12x32", "avx2-fma 6x16", "scalar")


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("B", [1, 5, 19])
def test_native_cpu_matches_reference(config, B, poisoned):
    m = _model(B, **CONFIGS[config])
    if config == "paper" and B == 19:
        pytest.skip("covered by the small config; keeps the suite fast")
    h, ctx = _inputs(m, B, seed=100 + B)
    ref = _reference64(m, h, ctx, 7)
    fused = FusedDenoiser(m)
    got = fused(h, ctx, 7, backend="native")
    assert not torch.isnan(got).any()
    assert _rel(got, ref) < RTOL32, _rel(got, ref)


def test_native_per_pose_steps_and_threads(poisoned, monkeypatch):
    m = _model(3, **CONFIGS["small"])
    h, ctx = _inputs(m, 21, seed=5)
    k = torch.randint(1, 50, (21,), generator=torch.Generator().manual_seed(1))
    ref = _reference64(m, h, ctx, k)
    for threads in ("1", "2"):
        monkeypatch.setenv("DIFFPOSE_FAST_NUM_THREADS", threads)
        got = FusedDenoiser(m)(h, ctx, k, backend="native")
        assert _rel(got, ref) < RTOL32


def test_native_forward_is_a_registered_op_on_packed_weights():
    """torch.ops.diffpose_fast.denoiser_forward takes tensors only (no module); it equals the reference, passes
    torch.library's schema and fake-tensor checks, and torch.compile traces it whole (fullgraph)."""
    m = _model(2, **CONFIGS["small"])
    h, ctx = _inputs(m, 7, seed=21)
    fused = FusedDenoiser(m)
    pw = fused.packed(h.device, h.dtype, True)
    emb = fused.step_embedding(9, h.device, h.dtype)
    dims = [m.embed_dim, m.context_dim, m.blocks[0].attn.heads, int(m.residual)]
    out = torch.ops.diffpose_fast.denoiser_forward(h, ctx, emb, pw.native_order, dims)
    assert _rel(out, _reference64(m, h, ctx, 9)) < RTOL32
    torch.library.opcheck(torch.ops.diffpose_fast.denoiser_forward.default, (h, ctx, emb, pw.native_order, dims),
                          test_utils=("test_schema", "test_faketensor"))

    def step(h_k, context):   # a traced caller: the op is one node, so no graph break at the kernel's data_ptr
        return torch.ops.diffpose_fast.denoiser_forward(h_k, context, emb, pw.native_order, dims) * 0.5 + h_k * 0.5

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(h, ctx), step(h, ctx), rtol=0, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, RTOL32)])
def test_torch_backend_matches_reference(dtype, tol):
    m = _model(4, **CONFIGS["small"]).to(dtype)
    h, ctx = _inputs(m, 6, seed=9, dtype=dtype)
    ref = _reference64(m.float(), h, ctx, 13)
    m.to(dtype)
    got = FusedDenoiser(m)(h, ctx, 13, backend="torch")
    assert got.dtype == dtype and _rel(got, ref) < tol


def test_weights_are_repacked_after_an_update():
    m = _model(5, **CONFIGS["small"])
    fused = FusedDenoiser(m)
    h, ctx = _inputs(m, 3, seed=2)
    fused(h, ctx, 3, backend="native")
    with torch.no_grad():
        m.blocks[0].gc1.neighbour.weight.mul_(1.5)
        m.step_mlp[0].bias.add_(0.1)
    assert _rel(fused(h, ctx, 3, backend="native"), _reference64(m, h, ctx, 3)) < RTOL32


def test_native_says_why_not():
    m = _model(6, **CONFIGS["small"])
    fused = FusedDenoiser(m)
    reasons = fused.why_not_native(h=torch.zeros(2, 17, 3, dtype=torch.float64))
    assert any("float32" in r for r in reasons)
    with pytest.raises(BackendUnavailableError, match="float32"):
        fused(torch.zeros(2, 17, 3, dtype=torch.float64), torch.zeros(2, 17, 32, dtype=torch.float64), 1,
              backend="native")


def test_shape_errors_name_the_argument():
    m = _model(7, **CONFIGS["small"])
    with pytest.raises(ValueError, match="context"):
        FusedDenoiser(m)(torch.zeros(2, 17, 3), torch.zeros(2, 17, 5), 1)


@pytest.mark.parametrize("R,K,N,acc", [(1, 3, 16, False), (17, 64, 48, True), (136, 256, 512, False), (7, 5, 32, True),
                                       (12, 7, 16, False), (25, 40, 80, True), (24, 9, 64, True)])
def test_gemm_packed_matches_matmul(R, K, N, acc):
    g = torch.Generator().manual_seed(R + K + N)
    A = torch.randn(R, K + 3, generator=g)  # lda > K
    W = torch.randn(K, N, generator=g)
    b = torch.randn(N, generator=g)
    C = torch.randn(R, N + 5, generator=g)
    expected = (A[:, :K].double() @ W.double() + b.double()) + (C[:, :N].double() if acc else 0)
    before = C[:, N:].clone()
    P = pack_panels(W)  # held: a temporary's storage would be freed before the kernel reads it
    fd.native_module().gemm_packed_cpu(R, K, N, A.data_ptr(), K + 3, P.data_ptr(), b.data_ptr(),
                                       C.data_ptr(), N + 5, acc)
    assert _rel(C[:, :N], expected) < 1e-5
    assert torch.equal(C[:, N:], before)  # the padding columns of C are not written


def test_pack_panels_layout():
    W = torch.arange(3 * 20, dtype=torch.float32).reshape(3, 20)
    P = pack_panels(W)
    assert P.shape == (2, 3, 16)
    assert P[1, 2, 3].item() == W[2, 19].item() and P[1, 2, 4].item() == 0.0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("B", [1, 5, 300])
def test_native_cuda_matches_reference(B, poisoned):
    m = _model(B, **CONFIGS["paper"])
    h, ctx = _inputs(m, B, seed=B)
    ref = _reference64(m, h, ctx, 11)
    got = FusedDenoiser(m.cuda())(h.cuda(), ctx.cuda(), 11, backend="native").cpu()
    assert not torch.isnan(got).any() and _rel(got, ref) < RTOL32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_within_twice_torchs_error(dtype, backend, poisoned):
    """bfloat16/float16 storage: no worse than twice PyTorch's own error at that precision vs float64."""
    m = _model(8, **CONFIGS["paper"])
    h, ctx = _inputs(m, 64, seed=8)
    ref = _reference64(m, h, ctx, 11)
    mh = m.cuda().to(dtype)
    with torch.no_grad():
        torch_err = (mh(h.cuda().to(dtype), ctx.cuda().to(dtype), 11).double().cpu() - ref).abs().max()
    got = FusedDenoiser(mh)(h.cuda().to(dtype), ctx.cuda().to(dtype), 11, backend=backend).double().cpu()
    assert not torch.isnan(got).any()
    assert (got - ref).abs().max() <= 2 * torch_err + 1e-6 * ref.abs().max()
