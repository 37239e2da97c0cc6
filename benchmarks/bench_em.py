"""Batched GMM EM: native (C++/OpenMP, CUDA) vs the PyTorch reference vs scikit-learn, in the same run.

    OMP_NUM_THREADS=1 pytest benchmarks/bench_em.py --benchmark-only -s      (the per-core comparison)
    OMP_NUM_THREADS=2 pytest benchmarks/bench_em.py --benchmark-only -s

The native CPU kernel runs on torch.get_num_threads() OpenMP threads (set by OMP_NUM_THREADS); scikit-learn
fits one GMM at a time (its BLAS limited to the same OMP_NUM_THREADS). "per core" divides the native time by
its thread count. All fits start from the same responsibilities resp0 (scikit-learn through weights_init,
means_init and precisions_init computed from resp0 by one M step) and run exactly max_iter iterations: tol = 0
makes |change| < tol impossible, in the reference and in scikit-learn alike.

Where the slower baselines would take minutes, they fit a subset of the batch and the time is scaled per GMM
(said in the printed table and in extra_info): scikit-learn 16 of the 256 whole-pose fits; the reference
whole-pose fits on a subset of 32 (in one batched call); per-joint reference 4,096 of 65,536.
"""
from __future__ import annotations

import os
import platform
import time
import warnings

import pytest
import torch

from diffpose_fast._native import native_unavailable_reason
from diffpose_fast.ops.gmm import native, reference

pytestmark = pytest.mark.skipif(native_unavailable_reason() is not None,
                                reason=f"native module not loaded: {native_unavailable_reason()}")


def _machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _problem(b, n, d, m, seed, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(b, m, d, generator=g, dtype=torch.float64) * 3.0
    labels = torch.randint(0, m, (b, n), generator=g)
    x = torch.gather(centers, 1, labels[..., None].expand(b, n, d)) + torch.randn(b, n, d, generator=g,
                                                                                 dtype=torch.float64)
    resp0 = torch.softmax(torch.randn(b, n, m, generator=g, dtype=torch.float64) * 3.0, -1)
    reg = torch.full((b,), 1e-6, dtype=torch.float64)
    return x.to(device, dtype), resp0.to(device, dtype), reg.to(device, dtype)


def _best_of(fn, repeats=1):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _sklearn_fit_all(x, resp0, reg, cov, max_iter):
    """scikit-learn GaussianMixture per GMM from the same start; returns the per-sample mean log-likelihoods."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    w0, mu0, c0 = reference.m_step(x, resp0, reg, cov)
    lls = []
    for i in range(x.shape[0]):
        prec = torch.linalg.inv(c0[i]) if cov == "full" else 1.0 / c0[i]
        gm = GaussianMixture(n_components=resp0.shape[-1], covariance_type=cov, tol=0.0, max_iter=max_iter,
                             reg_covar=float(reg[i]), init_params="random", weights_init=w0[i].numpy(),
                             means_init=mu0[i].numpy(), precisions_init=prec.numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(x[i].numpy())
        assert gm.n_iter_ == max_iter, gm.n_iter_
        lls.append(gm.score(x[i].numpy()))
    return torch.tensor(lls, dtype=torch.float64)


def _table(title, rows):
    lines = [title, f"{'backend':<28}{'GMMs timed':>11}{'ms / GMM':>12}{'native speedup':>16}"]
    for name, count, per_gmm, ratio in rows:
        lines.append(f"{name:<28}{count:>11}{per_gmm * 1e3:>12.3f}{ratio:>16.2f}")
    print("\n" + "\n".join(lines))


B_POSE, N_POSE, D_POSE, M_POSE, ITERS_POSE = 256, 500, 51, 5, 50
SKLEARN_SUBSET, REFERENCE_SUBSET = 16, 32


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_em_whole_pose_cpu(benchmark, cov):
    """B=256 GMMs, M=5, D=51, n=500, 50 iterations, float64: native CPU vs reference vs scikit-learn."""
    x, resp0, reg = _problem(B_POSE, N_POSE, D_POSE, M_POSE, seed=0)
    threads = torch.get_num_threads()

    # Correctness once, before any timing: the three agree from the same start (float64).
    sub = slice(0, 4)
    ll_native = native.fit(x[sub], resp0[sub], reg[sub], cov, ITERS_POSE, 0.0)[3]
    ll_ref = reference.fit(x[sub], resp0[sub], reg[sub], cov, ITERS_POSE, 0.0)[3]
    ll_skl = _sklearn_fit_all(x[sub], resp0[sub], reg[sub], cov, ITERS_POSE)
    assert torch.allclose(ll_native, ll_ref, rtol=1e-8, atol=1e-8), (ll_native, ll_ref)
    assert torch.allclose(ll_native, ll_skl, rtol=1e-6, atol=1e-6), (ll_native, ll_skl)

    result = benchmark.pedantic(lambda: native.fit(x, resp0, reg, cov, ITERS_POSE, 0.0), rounds=3, iterations=1)
    assert torch.isfinite(result[3]).all()
    t_native = benchmark.stats.stats.min / B_POSE

    rs = slice(0, REFERENCE_SUBSET)
    t_ref = _best_of(lambda: reference.fit(x[rs], resp0[rs], reg[rs], cov, ITERS_POSE, 0.0)) / REFERENCE_SUBSET
    ss = slice(0, SKLEARN_SUBSET)
    t_skl = _best_of(lambda: _sklearn_fit_all(x[ss], resp0[ss], reg[ss], cov, ITERS_POSE)) / SKLEARN_SUBSET

    extra = {"shape": f"B={B_POSE} n={N_POSE} D={D_POSE} M={M_POSE} iters={ITERS_POSE} {cov} float64",
             "native_threads": threads, "ms_per_gmm_native": t_native * 1e3, "ms_per_gmm_reference": t_ref * 1e3,
             "ms_per_gmm_sklearn": t_skl * 1e3, "speedup_vs_reference": t_ref / t_native,
             "speedup_vs_sklearn": t_skl / t_native, "speedup_vs_sklearn_per_core": t_skl / (t_native * threads),
             "subsets": f"sklearn {SKLEARN_SUBSET} GMMs, reference {REFERENCE_SUBSET} GMMs, scaled per GMM",
             **_machine()}
    benchmark.extra_info.update(extra)
    _table(f"EM whole-pose {cov}, B={B_POSE} n={N_POSE} D={D_POSE} M={M_POSE}, {ITERS_POSE} iters, float64, "
           f"native on {threads} thread(s) [{extra['cpu']}]",
           [(f"native CPU ({threads} thr)", B_POSE, t_native, 1.0),
            ("reference (torch, batched)", REFERENCE_SUBSET, t_ref, t_ref / t_native),
            ("scikit-learn (loop)", SKLEARN_SUBSET, t_skl, t_skl / t_native)])
    print(f"native vs scikit-learn per core: {t_skl / (t_native * threads):.2f}x")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_em_whole_pose_cpu_dtype(benchmark, dtype):
    """The same full-covariance fits, native only, per dtype (float32 halves the bytes and doubles the SIMD)."""
    x, resp0, reg = _problem(B_POSE, N_POSE, D_POSE, M_POSE, seed=0, dtype=dtype)
    benchmark.pedantic(lambda: native.fit(x, resp0, reg, "full", ITERS_POSE, 0.0), rounds=2, iterations=1)
    benchmark.extra_info.update({"ms_per_gmm": benchmark.stats.stats.min / B_POSE * 1e3, "dtype": str(dtype),
                                 **_machine()})


B_JOINT, N_JOINT, D_JOINT, M_JOINT, ITERS_JOINT, REF_JOINT = 65536, 256, 3, 5, 20, 4096


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_em_per_joint_cpu(benchmark, cov):
    """65,536 per-joint fits (D=3, M=5, n=256), 20 iterations, float32: native vs reference (4,096, scaled)."""
    x, resp0, reg = _problem(B_JOINT, N_JOINT, D_JOINT, M_JOINT, seed=1, dtype=torch.float32)
    sub = slice(0, 64)
    a = native.fit(x[sub], resp0[sub], reg[sub], cov, ITERS_JOINT, 0.0)[3]
    r = reference.fit(x[sub].double(), resp0[sub].double(), reg[sub].double(), cov, ITERS_JOINT, 0.0)[3]
    assert torch.allclose(a.double(), r, rtol=1e-3, atol=1e-3)

    benchmark.pedantic(lambda: native.fit(x, resp0, reg, cov, ITERS_JOINT, 0.0), rounds=2, iterations=1)
    t_native = benchmark.stats.stats.min / B_JOINT
    rs = slice(0, REF_JOINT)
    t_ref = _best_of(lambda: reference.fit(x[rs], resp0[rs], reg[rs], cov, ITERS_JOINT, 0.0)) / REF_JOINT
    threads = torch.get_num_threads()
    benchmark.extra_info.update({"shape": f"B={B_JOINT} n={N_JOINT} D={D_JOINT} M={M_JOINT} {cov} float32",
                                 "us_per_gmm_native": t_native * 1e6, "us_per_gmm_reference": t_ref * 1e6,
                                 "speedup_vs_reference": t_ref / t_native, "native_threads": threads,
                                 "subsets": f"reference {REF_JOINT} GMMs, scaled per GMM", **_machine()})
    _table(f"EM per-joint {cov}, B={B_JOINT} n={N_JOINT} D=3 M=5, {ITERS_JOINT} iters, float32, "
           f"native on {threads} thread(s)",
           [(f"native CPU ({threads} thr)", B_JOINT, t_native, 1.0),
            ("reference (torch, batched)", REF_JOINT, t_ref, t_ref / t_native)])


B_HOT, N_HOT, D_HOT, M_HOT, ITERS_HOT = 4096, 32, 3, 5, 10


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_em_per_joint_training_shape_cpu(benchmark, cov):
    """The training hot loop's per-joint fits (16 x batch 256 = 4,096 GMMs, n=32, D=3, M=5), 10 iterations,
    float32: native (the small-D CPU path) vs the reference on the whole batch, in the same run. reg = 1e-3: with
    n=32 and 1e-6, float32 full-covariance fits become ill-conditioned (the float32 reference's eigh fallback
    fails to converge, and ~7% of the float32 fits end in another optimum than float64, native before and after
    the small-D path alike)."""
    x, resp0, reg = _problem(B_HOT, N_HOT, D_HOT, M_HOT, seed=3, dtype=torch.float32)
    reg = torch.full_like(reg, 1e-3)
    a = native.fit(x[:64], resp0[:64], reg[:64], cov, ITERS_HOT, 0.0)[3]
    r = reference.fit(x[:64].double(), resp0[:64].double(), reg[:64].double(), cov, ITERS_HOT, 0.0)[3]
    assert torch.allclose(a.double(), r, rtol=1e-3, atol=1e-3)

    native.fit(x, resp0, reg, cov, ITERS_HOT, 0.0)  # warm-up
    benchmark.pedantic(lambda: native.fit(x, resp0, reg, cov, ITERS_HOT, 0.0), rounds=5, iterations=1)
    t_native = benchmark.stats.stats.min
    t_ref = _best_of(lambda: reference.fit(x, resp0, reg, cov, ITERS_HOT, 0.0), 2)
    threads = torch.get_num_threads()
    benchmark.extra_info.update({"shape": f"B={B_HOT} n={N_HOT} D={D_HOT} M={M_HOT} iters={ITERS_HOT} {cov} float32",
                                 "ms_total_native": t_native * 1e3, "ms_total_reference": t_ref * 1e3,
                                 "us_per_gmm_iteration_native": t_native / (B_HOT * ITERS_HOT) * 1e6,
                                 "speedup_vs_reference": t_ref / t_native, "native_threads": threads,
                                 **_machine()})
    _table(f"EM per-joint training shape {cov}, B={B_HOT} n={N_HOT} D={D_HOT} M={M_HOT}, {ITERS_HOT} iters, float32, "
           f"native on {threads} thread(s)",
           [(f"native CPU ({threads} thr)", B_HOT, t_native / B_HOT, 1.0),
            ("reference (torch, batched)", B_HOT, t_ref / B_HOT, t_ref / t_native)])


def _gpu_reason():
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    import diffpose_fast_native

    if not diffpose_fast_native.build_info()["cuda_compiled"]:
        return "native module compiled without CUDA"
    return None


@pytest.mark.cuda
@pytest.mark.skipif(_gpu_reason() is not None, reason=f"GPU benchmark: {_gpu_reason()}")
@pytest.mark.parametrize("cov", ["full", "diag"])
def test_em_whole_pose_cuda(benchmark, cov):
    """B=4096 whole-pose fits (D=48, M=5, n=256), 20 iterations, float32: CUDA vs the reference on the GPU."""
    b, n, d, m, iters = 4096, 256, 48, 5, 20
    x, resp0, reg = _problem(b, n, d, m, seed=2, dtype=torch.float32, device="cuda")
    sub = slice(0, 64)
    a = native.fit(x[sub], resp0[sub], reg[sub], cov, iters, 0.0)[3]
    r = reference.fit(x[sub].double(), resp0[sub].double(), reg[sub].double(), cov, iters, 0.0)[3]
    assert torch.allclose(a.double(), r, rtol=1e-3, atol=1e-3), (a, r)

    def run_native():
        native.fit(x, resp0, reg, cov, iters, 0.0)
        torch.cuda.synchronize()

    def run_reference():
        reference.fit(x, resp0, reg, cov, iters, 0.0)
        torch.cuda.synchronize()

    run_native()
    benchmark.pedantic(run_native, rounds=5, iterations=1)
    t_native = benchmark.stats.stats.min
    run_reference()
    t_ref = _best_of(run_reference, 2)
    benchmark.extra_info.update({"shape": f"B={b} n={n} D={d} M={m} iters={iters} {cov} float32",
                                 "ms_total_cuda": t_native * 1e3, "ms_total_reference_gpu": t_ref * 1e3,
                                 "speedup_vs_reference": t_ref / t_native, "target_ms_full_h100": 40.0,
                                 **_machine()})
    _table(f"EM whole-pose on GPU {cov}, B={b} n={n} D={d} M={m}, {iters} iters, float32 "
           f"[{torch.cuda.get_device_name(0)}]",
           [("native CUDA", b, t_native / b, 1.0), ("reference (torch on GPU)", b, t_ref / b, t_ref / t_native)])
    print(f"native CUDA total: {t_native * 1e3:.2f} ms for {b} fits (target on an H100, full: <= 40 ms)")
