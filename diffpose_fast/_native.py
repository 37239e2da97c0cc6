"""The one lazy loader of the compiled modules: ``diffpose_fast_native`` (the EM fit) and
``diffpose_fast_denoiser_native`` (the fused denoiser).

Each compiled module is installed as its own top-level module beside the package, so that a test run which
imports the checkout's ``diffpose_fast/`` (which holds no compiled code) still finds the installed build. Each
carries an ``ABI_VERSION`` that must equal the one the Python side expects. The first failure is cached and
reported by every later call, with what to reinstall.
"""
from __future__ import annotations

import functools
from types import ModuleType

# Bumped whenever the Python side starts relying on a new or changed native signature.
EXPECTED_ABI_VERSION = 1
MODULE_NAME = "diffpose_fast_native"
DENOISER_MODULE_NAME = "diffpose_fast_denoiser_native"
DENOISER_ABI_VERSION = 1


class NativeModuleError(ImportError):
    """The compiled module is missing, broken, or from another version of the package."""


@functools.lru_cache(maxsize=None)
def load_native(name: str, expected_abi: int) -> tuple[ModuleType | None, str | None]:
    """(module, None), or (None, why it cannot be used) for the compiled module ``name``."""
    try:
        import importlib

        module = importlib.import_module(name)
    except ImportError as exc:  # not built, or built for another Python
        return None, (f"native module {name!r} could not be imported ({exc}); "
                      "reinstall with `pip install .` from the repository root")
    abi = getattr(module, "ABI_VERSION", None)
    if abi != expected_abi:
        return None, (f"native module {name!r} has ABI version {abi}, this package expects "
                      f"{expected_abi}; the installed build is stale: reinstall with `pip install .`")
    return module, None


def _load() -> tuple[ModuleType | None, str | None]:
    return load_native(MODULE_NAME, EXPECTED_ABI_VERSION)


def load_denoiser() -> tuple[ModuleType | None, str | None]:
    """``load_native`` of the fused denoiser's module."""
    return load_native(DENOISER_MODULE_NAME, DENOISER_ABI_VERSION)


def native_module() -> ModuleType:
    """The compiled module; raises NativeModuleError with the reason when it cannot be used."""
    module, reason = _load()
    if module is None:
        raise NativeModuleError(reason)
    return module


def native_unavailable_reason() -> str | None:
    """None when the compiled module is usable, else why not."""
    return _load()[1]


def cuda_compiled() -> bool:
    module, _ = _load()
    return bool(module is not None and module.build_info().get("cuda_compiled", False))
