"""Hot ops, each with one semantics and several backends (``reference``, ``native``, ``triton``).

    em_fit, gmm_sample, gmm_log_prob, GMMFit     batched Gaussian-mixture EM (paper Eq. 6)
    force_backend, BackendUnavailableError        dispatch control (see ``_dispatch``)
"""
from __future__ import annotations

_LAZY = {
    "em_fit": "diffpose_fast.ops.gmm",
    "gmm_sample": "diffpose_fast.ops.gmm",
    "gmm_log_prob": "diffpose_fast.ops.gmm",
    "GMMFit": "diffpose_fast.ops.gmm",
    "force_backend": "diffpose_fast.ops._dispatch",
    "BackendUnavailableError": "diffpose_fast.ops._dispatch",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'diffpose_fast.ops' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
