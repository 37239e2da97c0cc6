"""diffpose_fast: DiffPose (Gong et al., CVPR 2023) 3D human pose lifting by reverse diffusion, with native kernels.

Importing the package is cheap: torch and the native module load on first use.

    from diffpose_fast import DiffPoseLifter, LifterConfig, PoseSequence, LiftResult, Camera
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "DiffPoseLifter": "diffpose_fast.lifter",
    "LifterConfig": "diffpose_fast.config",
    "PoseSequence": "diffpose_fast.data.sequence",
    "LiftResult": "diffpose_fast.lifter",
    "Camera": "diffpose_fast.data.camera",
    "build_info": "diffpose_fast._build_info",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'diffpose_fast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
