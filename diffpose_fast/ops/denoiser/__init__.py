"""The denoiser g's inference forward as one op: the same weights as ``models.denoiser.GCNAttentionDenoiser``
through the compiled module (C++/OpenMP on CPU, one CUDA kernel on GPU) or plain torch ops ("reference").

    FusedDenoiser(model)(h [B, J, 3], context [B, J, C], k) -> x0_hat [B, J, 3]

Reference: ``models.denoiser.GCNAttentionDenoiser.forward``; CPU and CUDA: csrc/denoiser/.
"""
from .fused import FusedDenoiser

__all__ = ["FusedDenoiser"]
