"""The reverse loop on the fast path: fused denoiser + fused DDIM update, graph-captured on CUDA.

``reverse_diffusion`` is what ``pipeline.DiffPoseModel.sample`` calls. Backends (the ``backend`` argument of
``DiffPoseLifter.predict`` / ``DiffPoseModel.sample``):

- "reference": ``DDIMSampler.sample`` with the reference ``GCNAttentionDenoiser`` (the oracle).
- "native": every op of the loop that has a native backend uses it (the fused denoiser: C++ on CPU, the CUDA
  kernel on GPU; the EM fit of H_K), raising with the reasons when the compiled module cannot run these
  inputs; the DDIM update, which has none, chooses as with "auto".
- "triton": the DDIM update's Triton kernel (raises where Triton cannot run); the other ops as with "auto".
- "fast": the fused denoiser through its first available backend (native, else hoisted torch ops).
- "auto": "fast" (the ``DIFFPOSE_FAST_BACKEND`` / ``force_backend`` override applies to every op's choice).

On CUDA with eta = 0 the whole loop is replayed from a CUDA graph per batch-size bucket (``cuda_graph``).
The math is ``DDIMSampler.sample`` exactly: same grid (``DDIMSampler.timesteps``), same closed-form step.
"""
from __future__ import annotations

import contextlib
import weakref

import torch

from ..diffusion.samplers import DDIMSampler
from ..diffusion.schedule import DiffusionSchedule
from ..models.denoiser import GCNAttentionDenoiser
from ..ops._dispatch import force_backend
from .eager import fast_sample  # noqa: F401  (the eager loop; also what cuda_graph captures)
from ..ops.denoiser import FusedDenoiser

BACKENDS = ("auto", "fast", "native", "triton", "reference")
_fused_cache: "weakref.WeakKeyDictionary[GCNAttentionDenoiser, FusedDenoiser]" = weakref.WeakKeyDictionary()


def fused_for(model: GCNAttentionDenoiser) -> FusedDenoiser:
    """One FusedDenoiser per model (weights packed once, re-packed when they change)."""
    fused = _fused_cache.get(model)
    if fused is None:
        fused = _fused_cache[model] = FusedDenoiser(model)
    return fused


def check_backend(backend, where: str) -> None:
    """Raise ValueError unless ``backend`` is one of BACKENDS (``where``: the caller's name for the message)."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"{where}: backend must be one of {list(BACKENDS)}, got {backend!r}")


def gmm_backend(backend: str) -> str:
    """The backend name the GMM ops understand for a sampling backend ("fast", "triton" -> "auto": the EM has no
    Triton kernel)."""
    return "auto" if backend in ("fast", "triton") else backend


def reverse_diffusion(denoiser: GCNAttentionDenoiser, schedule: DiffusionSchedule, features: torch.Tensor,
                      h_K: torch.Tensor, mu: torch.Tensor, steps: int, backend: str = "auto") -> torch.Tensor:
    """h_0 [B, J, 3] from h_K (N hypotheses batched into B) with the chosen backend (module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"reverse_diffusion: backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "reference":
        def denoise(h: torch.Tensor, k: int) -> torch.Tensor:
            return denoiser(h, features, k)

        return DDIMSampler(schedule).sample(denoise, h_K, mu, steps)
    den_backend = "native" if backend == "native" else "auto"
    fused = fused_for(denoiser)
    # "native" / "triton": the loop's ops that have that backend use it (the update has no native, the denoiser
    # no triton: those choose as with "auto")
    forced = force_backend(backend) if backend in ("native", "triton") else contextlib.nullcontext()
    with forced:
        if h_K.is_cuda:
            from .cuda_graph import graphed_sample

            return graphed_sample(fused, features, h_K, mu, schedule, steps, denoiser_backend=den_backend)
        with torch.inference_mode():
            h0 = fast_sample(fused, features, h_K, mu, schedule, steps, denoiser_backend=den_backend)
    return h0.clone()  # cloned outside inference mode: an ordinary tensor that callers may modify in place
