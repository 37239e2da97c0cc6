"""The fused sampler update as one op: ``torch.ops.diffpose_fast.ddim_update``.

One reverse step of ``diffusion.samplers.DDIMSampler.step`` from k to p < k on the GMM-centred path (Eq. 7/8,
DESIGN.md item 6), with the step's scalars precomputed by ``ddim_coefficients``:

    h_p = mu + a_p (x0 - mu) + c_eps (h_k - mu - a_k (x0 - mu)) / b_k + sigma z

with a = sqrt(alpha_bar), b = sqrt(1 - alpha_bar), sigma = eta sqrt((1 - ab_p)/(1 - ab_k)) sqrt(1 - ab_k/ab_p),
c_eps = sqrt(b_p^2 - sigma^2) (= b_p at eta = 0) and z a draw of N(0, Sigma_m) (omitted at eta = 0).

Backends: ``triton`` (one fused kernel; CUDA tensors, or CPU tensors under TRITON_INTERPRET=1) and
``reference`` (the same arithmetic in torch ops, any device and dtype). The op is registered with
torch.library (custom op + fake implementation), so torch.compile and CUDA-graph capture see one opaque op;
inside it the first backend that can run is used.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import torch

from ...diffusion.samplers import DDIMSampler
from ...diffusion.schedule import DiffusionSchedule
from .._dispatch import select_backend

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def ddim_coefficients(schedule: DiffusionSchedule, k: int, k_prev: int, eta: float = 0.0) -> tuple:
    """(a, inv_b, a_p, c_eps, sigma) of the step k -> k_prev: ``DDIMSampler.coefficients``, the one place the
    step's math is written."""
    return DDIMSampler(schedule).coefficients(k, k_prev, eta)


@functools.lru_cache(maxsize=None)
def _triton_import_error() -> Optional[str]:
    try:
        from . import triton_kernel  # noqa: F401
    except Exception as exc:  # ImportError, or triton failing to initialise
        return f"triton not importable ({type(exc).__name__}: {exc})"
    return None


def why_not_triton(h: torch.Tensor, **_) -> list:
    reasons = []
    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    if h.device.type == "cpu" and not interpret:
        reasons.append("tensors are on the CPU and TRITON_INTERPRET=1 is not set")
    elif h.device.type not in ("cpu", "cuda"):
        reasons.append(f"device {h.device.type!r} not supported")
    if h.dtype not in _TRITON_DTYPES:
        reasons.append(f"dtype {h.dtype} not supported")
    if not reasons:  # import triton (seconds) only when it could run
        err = _triton_import_error()
        if err:
            reasons.append(err)
    return reasons


def why_not_reference(**_) -> list:
    return []


BACKENDS = (("triton", why_not_triton), ("reference", why_not_reference))


def ddim_update_reference(h, x0, mu, noise, a, inv_b, a_p, c_eps, sigma):
    """The update in torch ops (the oracle). noise may be None when sigma == 0."""
    d0 = x0 - mu
    out = mu + a_p * d0 + c_eps * ((h - mu - a * d0) * inv_b)
    if noise is not None and sigma != 0.0:
        out = out + sigma * noise
    return out


def ddim_update_triton(h, x0, mu, noise, a, inv_b, a_p, c_eps, sigma):
    from .triton_kernel import BLOCK, ddim_update_kernel

    h_, x0_, mu_ = h.contiguous(), x0.contiguous(), mu.contiguous()
    out = torch.empty_like(h_)
    n = h_.numel()
    has_noise = noise is not None and sigma != 0.0
    z = noise.contiguous() if has_noise else h_
    grid = (max(1, (n + BLOCK - 1) // BLOCK),)
    ddim_update_kernel[grid](h_, x0_, mu_, z, out, n, float(a), float(inv_b), float(a_p), float(c_eps),
                             float(sigma), HAS_NOISE=has_noise, BLOCK_SIZE=BLOCK)
    return out


_IMPLS = {"triton": ddim_update_triton, "reference": ddim_update_reference}


def _check(h, x0, mu, noise):
    for name, t in (("x0", x0), ("mu", mu)) + ((("noise", noise),) if noise is not None else ()):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"ddim_update: {name} must be a tensor, got {type(t).__name__}")
        if t.shape != h.shape:
            raise ValueError(f"ddim_update: {name} must have the shape of h {tuple(h.shape)}, got {tuple(t.shape)}")
        if t.dtype != h.dtype or t.device != h.device:
            raise TypeError(f"ddim_update: {name} must match h's dtype and device ({h.dtype}, {h.device}), got "
                            f"({t.dtype}, {t.device})")


def ddim_update(h: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor, coefficients: tuple,
                noise: Optional[torch.Tensor] = None, backend: str = "auto") -> torch.Tensor:
    """h_{k_prev} [B, J, 3] from h_k, x0_hat, mu (all [B, J, 3]) and ``ddim_coefficients(...)``.

    backend: "auto" | "triton" | "reference" (explicit and unavailable raises with the reasons).
    """
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"ddim_update: h must be a tensor, got {type(h).__name__}")
    _check(h, x0, mu, noise)
    a, inv_b, a_p, c_eps, sigma = (float(c) for c in coefficients)
    if sigma != 0.0 and noise is None:
        raise ValueError("ddim_update: noise is required when sigma > 0 (eta > 0 and k_prev > 0)")
    name = select_backend("ddim_update", backend, BACKENDS, h=h)
    return _IMPLS[name](h, x0, mu, noise, a, inv_b, a_p, c_eps, sigma)


@functools.lru_cache(maxsize=None)
def custom_op():
    """``torch.ops.diffpose_fast.ddim_update`` (registered on first use); noise may be None."""

    @torch.library.custom_op("diffpose_fast::ddim_update", mutates_args=())
    def ddim_update_op(h: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor, noise: Optional[torch.Tensor],
                       a: float, inv_b: float, a_p: float, c_eps: float, sigma: float) -> torch.Tensor:
        name = select_backend("ddim_update", "auto", BACKENDS, h=h)
        return _IMPLS[name](h, x0, mu, noise, a, inv_b, a_p, c_eps, sigma)

    @ddim_update_op.register_fake
    def _(h, x0, mu, noise, a, inv_b, a_p, c_eps, sigma):
        return torch.empty_like(h)

    return ddim_update_op
