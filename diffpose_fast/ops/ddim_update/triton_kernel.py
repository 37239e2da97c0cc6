"""Triton kernel of the fused DDIM update (the GMM-shifted form of ``diffusion.samplers.DDIMSampler.step``).

    h_prev = mu + a_p (x0 - mu) + c_eps (h - mu - a (x0 - mu)) / b + sigma z

one pass over five flat arrays (h, x0, mu, z optional; out), fp32 arithmetic whatever the storage dtype
(float64 inputs are computed in float64). Importing this module imports triton; callers go through
``diffpose_fast.ops.ddim_update``, which checks that triton can run first.
"""
from __future__ import annotations

import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def ddim_update_kernel(h_ptr, x0_ptr, mu_ptr, z_ptr, out_ptr, n, a, inv_b, a_p, c_eps, sigma,
                       HAS_NOISE: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n
    h = tl.load(h_ptr + offs, mask=mask)
    x0 = tl.load(x0_ptr + offs, mask=mask)
    mu = tl.load(mu_ptr + offs, mask=mask)
    if h.dtype != tl.float64:
        h = h.to(tl.float32)
        x0 = x0.to(tl.float32)
        mu = mu.to(tl.float32)
    d0 = x0 - mu
    eps = (h - mu - a * d0) * inv_b
    out = mu + a_p * d0 + c_eps * eps
    if HAS_NOISE:
        z = tl.load(z_ptr + offs, mask=mask)
        out = out + sigma * z.to(out.dtype)
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)
