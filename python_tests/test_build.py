"""The installed build: the compiled module is the one exercised, what it reports, and OpenMP beside torch.

These tests FAIL (not skip) when the compiled module could not be loaded, because a test run that silently
exercised only the reference fallback proves nothing about the native kernels. Set
DIFFPOSE_FAST_ALLOW_NO_NATIVE=1 to turn that failure into a skip on a machine where no build is expected.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from diffpose_fast._build_info import build_info
from diffpose_fast._native import native_unavailable_reason

NVCC = Path("/usr/local/cuda/bin/nvcc")
ALLOW_NO_NATIVE = os.environ.get("DIFFPOSE_FAST_ALLOW_NO_NATIVE") == "1"


@pytest.fixture(scope="module")
def native():
    reason = native_unavailable_reason()
    if reason is not None:
        if ALLOW_NO_NATIVE:
            pytest.skip(f"native module not loaded and DIFFPOSE_FAST_ALLOW_NO_NATIVE=1: {reason}")
        pytest.fail(f"the compiled module was not loaded, so the native kernels were not exercised: {reason}")
    import diffpose_fast_native

    return diffpose_fast_native


def test_native_module_loaded(native):
    info = build_info()
    assert info["native"]["loaded"], info["native"]["reason"]
    assert native.ABI_VERSION == 1
    # The module comes from the installation (site-packages), not from a build directory of the checkout.
    module_path = Path(native.__file__).resolve()
    repo = Path(__file__).resolve().parents[1]
    assert not module_path.is_relative_to(repo / "build"), f"loaded from a build directory: {module_path}"
    for key, kind in [("cuda_compiled", bool), ("cuda_architectures", str), ("cuda_version", str),
                      ("openmp", bool), ("compiler", str), ("build_type", str)]:
        assert isinstance(info["native"][key], kind), (key, info["native"])


def test_fused_denoiser_module_loaded(native):
    """The second compiled module (the fused denoiser) is installed beside the first and is what the fast path
    uses by default on the CPU."""
    den = build_info()["denoiser_native"]
    assert den["loaded"], den["reason"]
    from diffpose_fast.ops.denoiser import fused as fused_denoiser

    assert fused_denoiser.native_module().ABI_VERSION == fused_denoiser.EXPECTED_ABI_VERSION


def test_native_op_exercised(native):
    """The native backend, called through its wrapper, runs the compiled code (not the reference)."""
    from diffpose_fast.ops.gmm import native as gmm_native

    assert gmm_native.why_not(torch.zeros(2, 10, 3, dtype=torch.float64), 2, "full") == []
    x = torch.randn(2, 10, 3, dtype=torch.float64)
    resp = torch.softmax(torch.randn(2, 10, 2, dtype=torch.float64), -1)
    w, mu, cov = gmm_native.m_step(x, resp, torch.full((2,), 1e-6, dtype=torch.float64), "full")
    assert torch.isfinite(cov).all() and torch.allclose(w.sum(-1), torch.ones(2, dtype=torch.float64))


def test_openmp_reported(native):
    info = native.build_info()
    assert info["openmp"], "built without OpenMP: the CPU kernels run on one thread"


def test_cuda_compiled_when_toolkit_present(native):
    if not NVCC.exists():
        pytest.skip(f"no CUDA toolkit at {NVCC}: the CPU-only build is expected here")
    if os.environ.get("DIFFPOSE_FAST_CUDA", "AUTO").upper() == "OFF":
        pytest.skip("built with DIFFPOSE_FAST_CUDA=OFF")
    info = native.build_info()
    assert info["cuda_compiled"], f"nvcc exists at {NVCC} but the module was built without CUDA: {info}"
    archs = info["cuda_architectures"].split(";")
    assert any(a.startswith("80") for a in archs), archs
    assert any(a.startswith("90") for a in archs), archs
    assert info["cuda_version"], info


def test_openmp_coexists_with_torch_in_one_process():
    """torch (with its bundled libgomp) runs a parallel op, then the native OpenMP kernel runs on several
    threads, then torch again: in a fresh process, so that thread pools start in this order."""
    if native_unavailable_reason() is not None and ALLOW_NO_NATIVE:
        pytest.skip("native module not loaded")
    code = textwrap.dedent("""
        import torch
        torch.set_num_threads(2)
        a = torch.randn(256, 256, dtype=torch.float64)
        (a @ a).sum().item()                                   # torch's OpenMP pool is up
        from diffpose_fast.ops.gmm import native, reference
        import diffpose_fast_native as lib
        x = torch.randn(8, 200, 5, dtype=torch.float64)
        r = torch.softmax(torch.randn(8, 200, 3, dtype=torch.float64), -1)
        reg = torch.full((8,), 1e-6, dtype=torch.float64)
        B, n, D = x.shape
        out = [torch.empty(8, 3, dtype=torch.float64), torch.empty(8, 3, 5, dtype=torch.float64),
               torch.empty(8, 3, 5, 5, dtype=torch.float64)]
        for threads in (1, 2, 3):
            lib.em_m_step_cpu("float64", x.data_ptr(), B, n, D, 3, True, r.data_ptr(), reg.data_ptr(),
                              *[t.data_ptr() for t in out], threads)
            ref = reference.m_step(x, r, reg, "full")
            assert all(torch.allclose(p, q, rtol=1e-12, atol=1e-14) for p, q in zip(out, ref)), threads
        fit = native.fit(x, r, reg, "full", 20, 0.0)
        assert torch.isfinite(fit[3]).all()
        (a @ a).sum().item()                                   # and torch still works afterwards
        print("ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_import_is_fast():
    """`import diffpose_fast` loads neither torch nor the native module."""
    code = ("import sys, diffpose_fast; "
            "print('torch' in sys.modules, 'diffpose_fast_native' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"], proc.stdout
