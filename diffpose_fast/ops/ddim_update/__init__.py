"""The DDIM step as one fused op: h_kprev = mu + a_p d0 + c_eps (h_k - mu - a d0) inv_b + sigma z, d0 = x0 - mu.

    ddim_update(h, x0, mu, coefficients, noise=None, backend="auto")   backends "triton", "reference"
    custom_op()                       torch.ops.diffpose_fast.ddim_update (what the reverse loop calls)
    ddim_coefficients(schedule, k, k_prev, eta)  = DDIMSampler(schedule).coefficients(k, k_prev, eta)

Reference: ``api.ddim_update_reference`` (and ``diffusion.samplers.DDIMSampler.step``); Triton: ``triton_kernel``.
"""
from .api import custom_op, ddim_coefficients, ddim_update

__all__ = ["custom_op", "ddim_coefficients", "ddim_update"]
