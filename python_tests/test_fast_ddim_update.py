"""The fused DDIM update (diffpose_fast.ops.ddim_update): triton kernel under TRITON_INTERPRET=1 on CPU and the
torch.library op, against DDIMSampler.step; the kernel compiled for sm_90 without a GPU."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from diffpose_fast.diffusion.samplers import DDIMSampler
from diffpose_fast.diffusion.schedule import DiffusionSchedule
from diffpose_fast.ops.ddim_update.api import custom_op, ddim_coefficients, ddim_update, why_not_triton
from diffpose_fast.ops._dispatch import BackendUnavailableError

# Only the kernel's tests need triton; the reference update and the torch.library op run without it.
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton not installed (pip install triton==3.6.0)")


def _inputs(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(4)]


@pytest.mark.parametrize("k,k_prev,eta", [(50, 40, 0.0), (10, 9, 0.0), (30, 20, 0.7), (10, 0, 1.0)])
def test_reference_update_equals_sampler_step(k, k_prev, eta):
    s = DiffusionSchedule(50)
    h, x0, mu, z = _inputs((6, 17, 3), torch.float64, k)
    expected = DDIMSampler(s).step(h, x0, mu, k, k_prev, eta=eta, noise=z)
    got = ddim_update(h, x0, mu, ddim_coefficients(s, k, k_prev, eta), noise=z, backend="reference")
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_op_is_registered_and_traceable():
    op = custom_op()
    s = DiffusionSchedule(50)
    h, x0, mu, _ = _inputs((4, 17, 3), torch.float32, 1)
    coeffs = ddim_coefficients(s, 50, 40)
    out = torch.ops.diffpose_fast.ddim_update(h, x0, mu, None, *coeffs)
    torch.testing.assert_close(out, op(h, x0, mu, None, *coeffs))
    torch.library.opcheck(torch.ops.diffpose_fast.ddim_update.default, (h, x0, mu, None, *coeffs),
                          test_utils=("test_schema", "test_faketensor"))


@needs_triton
def test_triton_backend_says_why_not_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reasons = why_not_triton(h=torch.zeros(2, 17, 3))
    assert any("TRITON_INTERPRET" in r for r in reasons)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET"):
        ddim_update(*_inputs((2, 17, 3), torch.float32, 0)[:3], (1.0, 1.0, 1.0, 1.0, 0.0), backend="triton")


_INTERPRETED = textwrap.dedent('''
    import os, sys
    os.environ["TRITON_INTERPRET"] = "1"
    import torch
    from diffpose_fast.diffusion.samplers import DDIMSampler
    from diffpose_fast.diffusion.schedule import DiffusionSchedule
    from diffpose_fast.ops.ddim_update.api import ddim_coefficients, ddim_update, ddim_update_triton
    import diffpose_fast.ops.ddim_update.api as mod
    s = DiffusionSchedule(50)
    worst = {}
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        for (k, k_prev, eta, n) in ((50, 40, 0.0, 3001), (20, 10, 0.5, 17 * 3 * 7), (10, 0, 1.0, 5)):
            g = torch.Generator().manual_seed(k * 7 + n)
            h, x0, mu, z = (torch.randn(n, generator=g, dtype=torch.float64) for _ in range(4))
            ref = DDIMSampler(s).step(h, x0, mu, k, k_prev, eta=eta, noise=z)
            c = ddim_coefficients(s, k, k_prev, eta)
            real_empty = torch.empty_like
            poisoned = lambda t, *a, **kw: real_empty(t, *a, **kw).fill_(float("nan"))
            torch.empty_like = poisoned
            try:
                got = ddim_update(h.to(dtype), x0.to(dtype), mu.to(dtype), c, noise=z.to(dtype), backend="triton")
            finally:
                torch.empty_like = real_empty
            assert got.dtype == dtype and not torch.isnan(got).any(), (dtype, k)
            err = ((got.double() - ref).abs().max() / ref.abs().max()).item()
            assert err < tol, (dtype, k, k_prev, eta, err)
            worst[str(dtype)] = max(worst.get(str(dtype), 0.0), err)
    print("OK", worst)
''')


@needs_triton
def test_triton_kernel_interpreted_on_cpu_matches_reference():
    """float64 and float32 through the triton kernel under TRITON_INTERPRET=1 (a subprocess: the variable must
    be set before triton is imported), outputs poisoned with NaN first."""
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _INTERPRETED], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout + res.stderr


@needs_triton
def test_triton_kernel_compiles_for_sm90_without_gpu():
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from diffpose_fast.ops.ddim_update.triton_kernel import BLOCK, ddim_update_kernel

    sig = {"h_ptr": "*fp32", "x0_ptr": "*fp32", "mu_ptr": "*fp32", "z_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32",
           "a": "fp32", "inv_b": "fp32", "a_p": "fp32", "c_eps": "fp32", "sigma": "fp32",
           "HAS_NOISE": "constexpr", "BLOCK_SIZE": "constexpr"}
    src = ASTSource(fn=ddim_update_kernel, signature=sig, constexprs={"HAS_NOISE": True, "BLOCK_SIZE": BLOCK})
    try:
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32))
    except Exception as exc:  # no ptxas / CUDA backend in this environment
        pytest.skip(f"triton cannot compile for sm_90 here: {type(exc).__name__}: {exc}")
    assert "ptx" in compiled.asm and ".target sm_90" in compiled.asm["ptx"]
    assert compiled.asm.get("cubin")


@pytest.mark.cuda
@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_triton_kernel_on_gpu(dtype):
    s = DiffusionSchedule(50)
    h, x0, mu, z = (t.cuda() for t in _inputs((1000, 17, 3), torch.float64, 3))
    ref = DDIMSampler(s).step(h, x0, mu, 30, 20, eta=0.5, noise=z)
    c = ddim_coefficients(s, 30, 20, 0.5)
    got = ddim_update(h.to(dtype), x0.to(dtype), mu.to(dtype), c, noise=z.to(dtype), backend="triton")
    torch_err = (ddim_update(h.to(dtype), x0.to(dtype), mu.to(dtype), c, noise=z.to(dtype), backend="reference")
                 .double() - ref).abs().max()
    err = (got.double() - ref).abs().max()
    assert err <= 2 * torch_err + 1e-6 * ref.abs().max()
