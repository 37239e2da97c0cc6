"""The ``native`` backend of the batched GMM EM: thin typed wrappers over the compiled module.

Same signatures and return conventions as ``reference.py`` (``e_step``, ``m_step``, ``fit``); outputs are
allocated here with torch on the input's device and dtype, and handed to the kernels as raw addresses
(``diffpose_fast_native``: C++/OpenMP on CPU tensors, CUDA on GPU tensors, on the current stream).
Validation of user input belongs to ``api.py``; this layer only makes tensors contiguous, checks what
the kernels need (``why_not``) and lets the native code re-check sizes.

``fit`` is also registered as the custom op ``torch.ops.diffpose_fast.em_fit`` with a fake implementation, so
that ``torch.compile`` and CUDA graphs see one opaque op with known output shapes.
"""
from __future__ import annotations

import functools
import os

import torch

from ..._native import native_module, native_unavailable_reason
from .._dispatch import compiling

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}
# Kept in sync with csrc/gmm/gmm_math.cuh (kMaxComponents, kCudaMaxDim); build_info() reports the compiled values.
MAX_COMPONENTS = 16
CUDA_MAX_DIM = 64
_MODE = {"fit": 0, "e": 1, "m": 2}


def _threads() -> int:
    """OpenMP threads for the CPU kernels: DIFFPOSE_FAST_NUM_THREADS, else torch's intra-op thread count."""
    env = os.environ.get("DIFFPOSE_FAST_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, torch.get_num_threads())


def why_not(samples: torch.Tensor, num_components: int, covariance: str = "full") -> list[str]:
    """Every reason the native backend cannot fit these inputs (empty: it can)."""
    reasons: list[str] = []
    reason = native_unavailable_reason()
    if reason is not None:
        reasons.append(f"native module not loaded: {reason}")
    if samples.dtype not in _DTYPES:
        reasons.append(f"dtype {samples.dtype} not supported (float32 or float64)")
    if covariance not in ("full", "diag"):
        reasons.append(f"covariance {covariance!r} not supported (full or diag)")
    if num_components > MAX_COMPONENTS:
        reasons.append(f"M={num_components} exceeds the kernel limit of {MAX_COMPONENTS} components")
    device = samples.device.type
    if device == "cuda":
        if reason is None and not native_module().build_info().get("cuda_compiled", False):
            reasons.append("tensors are on a GPU but the native module was compiled without CUDA")
        elif not torch.cuda.is_available():
            reasons.append("tensors are on a GPU but torch sees no usable CUDA device")
        if samples.dim() == 3 and samples.shape[-1] > CUDA_MAX_DIM:
            reasons.append(f"D={samples.shape[-1]} exceeds the CUDA kernel limit {CUDA_MAX_DIM}")
    elif device != "cpu":
        reasons.append(f"device {device!r} not supported (cpu or cuda)")
    return reasons


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _empty(like: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> torch.Tensor:
    """Every output buffer is allocated here (tests replace this to poison outputs with NaN)."""
    return torch.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device)


def _cov_shape(b: int, m: int, d: int, covariance_type: str) -> tuple[int, ...]:
    return (b, m, d, d) if covariance_type == "full" else (b, m, d)


def _full(covariance_type: str) -> bool:
    if covariance_type not in ("full", "diag"):
        raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
    return covariance_type == "full"


def _dtype_name(t: torch.Tensor) -> str:
    name = _DTYPES.get(t.dtype)
    if name is None:
        raise TypeError(f"native GMM kernels take float32 or float64 tensors, got {t.dtype}")
    return name


def _cuda_call(fn_name: str, dtype: str, b: int, n: int, d: int, m: int, full: bool, mode: str,
               device: torch.device, *args):
    """Run a CUDA entry point with a torch-allocated workspace on the current stream of ``device``."""
    lib = native_module()
    with torch.cuda.device(device):
        nbytes = lib.em_workspace_bytes_cuda(dtype, b, n, d, m, full, _MODE[mode])
        workspace = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=device)
        stream = torch.cuda.current_stream(device).cuda_stream
        getattr(lib, fn_name)(*args, _ptr(workspace), nbytes, stream)


def e_step(samples: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
           covariance_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One E step. Returns log responsibilities [B, n, M] and the mean log-likelihood per mixture [B]."""
    lib = native_module()
    full = _full(covariance_type)
    dtype = _dtype_name(samples)
    x = samples.contiguous()
    w = weights.to(samples.dtype).contiguous()
    mu = means.to(samples.dtype).contiguous()
    cov = covariances.to(samples.dtype).contiguous()
    b, n, d = x.shape
    m = w.shape[-1]
    log_resp = _empty(x, (b, n, m))
    ll = _empty(x, (b,))
    args = (dtype, _ptr(x), b, n, d, m, full, _ptr(w), _ptr(mu), _ptr(cov), _ptr(log_resp), _ptr(ll))
    if x.is_cuda:
        _cuda_call("em_e_step_cuda", dtype, b, n, d, m, full, "e", x.device, *args)
    else:
        lib.em_e_step_cpu(*args, _threads())
    return log_resp, ll


def m_step(samples: torch.Tensor, resp: torch.Tensor, reg_covar: torch.Tensor,
           covariance_type: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One M step from responsibilities [B, n, M] with per-mixture regularisation reg_covar [B].

    Returns weights [B, M], means [B, M, D], covariances [B, M, D, D] (full) or [B, M, D] (diag).
    """
    lib = native_module()
    full = _full(covariance_type)
    dtype = _dtype_name(samples)
    x = samples.contiguous()
    r = resp.to(samples.dtype).contiguous()
    reg = reg_covar.to(device=samples.device, dtype=samples.dtype).reshape(-1).contiguous()
    b, n, d = x.shape
    m = r.shape[-1]
    weights = _empty(x, (b, m))
    means = _empty(x, (b, m, d))
    cov = _empty(x, _cov_shape(b, m, d, covariance_type))
    args = (dtype, _ptr(x), b, n, d, m, full, _ptr(r), _ptr(reg), _ptr(weights), _ptr(means), _ptr(cov))
    if x.is_cuda:
        _cuda_call("em_m_step_cuda", dtype, b, n, d, m, full, "m", x.device, *args)
    else:
        lib.em_m_step_cpu(*args, _threads())
    return weights, means, cov


def _fit_impl(samples: torch.Tensor, resp0: torch.Tensor, reg_covar: torch.Tensor, full: bool, max_iter: int,
              tol: float):
    lib = native_module()
    dtype = _dtype_name(samples)
    x = samples.contiguous()
    r = resp0.to(samples.dtype).contiguous()
    reg = reg_covar.to(device=samples.device, dtype=samples.dtype).reshape(-1).contiguous()
    b, n, d = x.shape
    m = r.shape[-1]
    weights = _empty(x, (b, m))
    means = _empty(x, (b, m, d))
    cov = _empty(x, _cov_shape(b, m, d, "full" if full else "diag"))
    ll = _empty(x, (b,))
    n_iter = _empty(x, (b,), torch.int32)
    converged = _empty(x, (b,), torch.bool)
    args = (dtype, _ptr(x), b, n, d, m, full, _ptr(r), _ptr(reg), int(max_iter), float(tol), _ptr(weights),
            _ptr(means), _ptr(cov), _ptr(ll), _ptr(n_iter), _ptr(converged))
    if x.is_cuda:
        _cuda_call("em_fit_cuda", dtype, b, n, d, m, full, "fit", x.device, *args)
    else:
        lib.em_fit_cpu(*args, _threads())
    return weights, means, cov, ll, n_iter, converged


@functools.lru_cache(maxsize=None)
def _custom_op():
    """``torch.ops.diffpose_fast.em_fit``, registered on first use (torch.library.custom_op, torch >= 2.4)."""

    @torch.library.custom_op("diffpose_fast::em_fit", mutates_args=())
    def em_fit_op(samples: torch.Tensor, resp0: torch.Tensor, reg_covar: torch.Tensor, full: bool, max_iter: int,
                  tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                       torch.Tensor]:
        return _fit_impl(samples, resp0, reg_covar, full, max_iter, tol)

    @em_fit_op.register_fake
    def _(samples, resp0, reg_covar, full, max_iter, tol):
        b, n, d = samples.shape
        m = resp0.shape[-1]
        cov_shape = (b, m, d, d) if full else (b, m, d)
        return (samples.new_empty((b, m)), samples.new_empty((b, m, d)), samples.new_empty(cov_shape),
                samples.new_empty((b,)), samples.new_empty((b,), dtype=torch.int32),
                samples.new_empty((b,), dtype=torch.bool))

    return em_fit_op


def fit(samples: torch.Tensor, resp0: torch.Tensor, reg_covar: torch.Tensor, covariance_type: str,
        max_iter: int, tol: float):
    """EM from initial responsibilities [B, n, M]; each mixture stops on its own.

    Returns (weights, means, covariances, log_likelihood [B], n_iter [B] int32, converged [B] bool).
    """
    full = _full(covariance_type)
    _dtype_name(samples)
    reg = reg_covar.to(device=samples.device, dtype=samples.dtype).reshape(-1)
    op = _custom_op()  # registered (cheap) so torch.ops.diffpose_fast.em_fit exists for compiled code
    if compiling():
        return op(samples, resp0.to(samples.dtype), reg, full, int(max_iter), float(tol))
    return _fit_impl(samples, resp0.to(samples.dtype), reg, full, int(max_iter), float(tol))

