"""``build_info()``: what was compiled, for which GPUs, and what can run now."""
from __future__ import annotations

import platform
from typing import Any


def build_info() -> dict[str, Any]:
    """Report the build and the runtime.

    Returns a dict with:
      ``version``: the package version; ``python``, ``torch``, ``triton``: versions (None if absent);
      ``native``: {"loaded": bool, "reason": str | None, "module": path, plus the compiled module's own
      report: "cuda_compiled", "cuda_architectures", "cuda_version", "openmp", "compiler", "build_type"};
      ``gpu``: {"torch_cuda_available": bool, "device_name": str | None, "usable": bool, "reason": str | None}
      where usable means the native CUDA kernels can run now;
      ``denoiser_native``: the same for the fused denoiser module ``diffpose_fast_denoiser_native``.
    """
    import torch

    from . import __version__
    from ._native import _load

    module, reason = _load()
    native: dict[str, Any] = {"loaded": module is not None, "reason": reason}
    if module is not None:
        native["module"] = getattr(module, "__file__", None)
        native.update(module.build_info())

    from ._native import load_denoiser as _load_denoiser

    den_module, den_reason = _load_denoiser()
    denoiser_native: dict[str, Any] = {"loaded": den_module is not None, "reason": den_reason}
    if den_module is not None:
        denoiser_native["module"] = getattr(den_module, "__file__", None)
        if hasattr(den_module, "build_info"):
            denoiser_native.update(den_module.build_info())

    try:
        import triton  # noqa: F401  (only its version is reported)

        triton_version = triton.__version__
    except Exception:  # triton is optional
        triton_version = None

    cuda_available = torch.cuda.is_available()
    gpu: dict[str, Any] = {
        "torch_cuda_available": cuda_available,
        "device_name": torch.cuda.get_device_name(0) if cuda_available else None,
    }
    if not cuda_available:
        gpu.update(usable=False, reason="torch sees no CUDA device")
    elif module is None:
        gpu.update(usable=False, reason=reason)
    elif not native.get("cuda_compiled", False):
        gpu.update(usable=False, reason="the native module was compiled without CUDA")
    else:
        gpu.update(usable=True, reason=None)

    return {
        "version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
        "native": native,
        "denoiser_native": denoiser_native,
        "gpu": gpu,
    }


def format_build_info(info: dict[str, Any] | None = None) -> str:
    """A human-readable multi-line rendering of ``build_info()``."""
    info = build_info() if info is None else info
    lines = [f"diffpose_fast {info['version']}  python {info['python']}  torch {info['torch']}  "
             f"triton {info['triton'] or 'not installed'}"]
    native = info["native"]
    if native["loaded"]:
        lines.append(f"native module: loaded from {native.get('module')}")
        lines.append(f"  compiler {native.get('compiler')}  build {native.get('build_type')}  "
                     f"OpenMP {'yes' if native.get('openmp') else 'no'}")
        if native.get("cuda_compiled"):
            lines.append(f"  CUDA {native.get('cuda_version')} compiled for {native.get('cuda_architectures')}")
        else:
            lines.append("  CUDA: not compiled")
    else:
        lines.append(f"native module: NOT loaded: {native['reason']}")
    den = info.get("denoiser_native", {})
    lines.append("fused denoiser module: " + (f"loaded from {den.get('module')}" if den.get("loaded")
                                              else f"NOT loaded: {den.get('reason')}"))
    gpu = info["gpu"]
    lines.append(f"GPU: {gpu['device_name'] or 'none'}; native CUDA kernels usable now: "
                 f"{'yes' if gpu['usable'] else 'no (' + str(gpu['reason']) + ')'}")
    return "\n".join(lines)
