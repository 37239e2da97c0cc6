"""The fast inference path: fused denoiser forward, fused DDIM update, CUDA-graph-captured sampling.

- ``fused_denoiser.FusedDenoiser``: the same weights as ``models.denoiser.GCNAttentionDenoiser``, through the
  compiled module (C++/OpenMP on CPU, one CUDA kernel on GPU) or hoisted torch ops.
- ``ddim_update``: ``torch.ops.diffpose_fast.ddim_update`` with triton and reference backends.
- ``eager.fast_sample``: the reverse loop with both; ``sampler.reverse_diffusion`` runs it, on CUDA replayed
  from a graph per batch bucket (``cuda_graph``).
"""
from .ddim_update import ddim_coefficients, ddim_update
from .fused_denoiser import FusedDenoiser

__all__ = ["FusedDenoiser", "ddim_coefficients", "ddim_update"]
