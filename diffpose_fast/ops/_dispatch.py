"""Backend selection with reasons, not booleans.

Each op registers its backends in order of preference as ``(name, why_not)`` pairs, where
``why_not(**inputs) -> list[str]`` lists every reason the backend cannot run these inputs (empty: it can).

- ``backend="auto"`` takes the first backend with no reasons.
- An explicit backend with reasons raises ``BackendUnavailableError`` listing them: never a silent fallback.
- ``DIFFPOSE_FAST_BACKEND=<name>`` in the environment, or ``with force_backend("<name>"):``, turns every
  ``auto`` choice of an op that *has* a backend of that name into that explicit choice (for debugging and for
  tests that must exercise one backend); an op without one (the DDIM update has no C++ "native", the EM no
  "triton") chooses as with ``auto``. A forced name no op knows is an error.

One vocabulary for every op: "reference" (plain PyTorch, the oracle), "native" (the C++ / CUDA extension),
"triton" (Triton kernels), and "auto".
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Callable, Iterator, Sequence

WhyNot = Callable[..., list]
VOCABULARY = ("reference", "native", "triton")   # every backend name an op may register, besides "auto"
ALIASES = {"torch": "reference"}                  # the fused denoiser's first name for its plain-torch path

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("diffpose_fast_forced_backend", default=None)
ENV_VAR = "DIFFPOSE_FAST_BACKEND"


class BackendUnavailableError(NotImplementedError):
    """No backend (or not the requested one) can run these inputs; the message lists every reason."""


@contextlib.contextmanager
def force_backend(name: str | None) -> Iterator[None]:
    """Within the block, every op called with ``backend="auto"`` that has backend ``name`` uses it (None: no
    forcing); see the module docstring."""
    if name is not None and ALIASES.get(name, name) not in VOCABULARY:
        raise ValueError(f"force_backend: backend must be one of {list(VOCABULARY)} or None, got {name!r}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def select_backend(op: str, requested: str, backends: Sequence[tuple[str, WhyNot]], **inputs) -> str:
    """Pick the backend for one call of ``op``; see the module docstring for the rules."""
    names = [name for name, _ in backends]
    if not isinstance(requested, str):
        raise TypeError(f"{op}: backend must be a string, one of {['auto', *names]}, got {type(requested).__name__}")
    requested = ALIASES.get(requested, requested)
    if requested == "auto":
        forced = _forced.get() or os.environ.get(ENV_VAR) or None
        if forced is not None:
            forced = ALIASES.get(forced, forced)
            if forced not in VOCABULARY:
                where = f"the environment variable {ENV_VAR}" if _forced.get() is None else "force_backend"
                raise ValueError(f"{op}: {where} names an unknown backend {forced!r}; expected one of "
                                 f"{list(VOCABULARY)}")
            if forced in names:   # an op without a backend of that name chooses as with "auto"
                requested = forced
    if requested != "auto" and requested not in names:
        raise ValueError(f"{op}: unknown backend {requested!r}; expected one of {['auto', *names]}")

    reasons: dict[str, list] = {}
    for name, why_not in backends:
        if requested != "auto" and name != requested:
            continue
        reasons[name] = list(why_not(**inputs))
        if not reasons[name]:
            return name
    detail = "; ".join(f"{name}: {', '.join(r)}" for name, r in reasons.items())
    if requested == "auto":
        raise BackendUnavailableError(f"{op}: no backend can run these inputs ({detail})")
    raise BackendUnavailableError(f"{op}: backend {requested!r} cannot run these inputs ({detail})")


def backend_reasons(backends: Sequence[tuple[str, WhyNot]], **inputs) -> dict[str, list]:
    """Every backend's reasons for these inputs (empty list: it can run). For reports and tests."""
    return {name: list(why_not(**inputs)) for name, why_not in backends}


def compiling() -> bool:
    """True while torch.compile traces. Ops then call their ``torch.library`` op, which the compiler sees as one
    opaque node; eagerly they call their kernel directly, as the first call through the dispatcher costs seconds
    (it loads the compiler stack), which every short-lived process (CLI, tests) would pay."""
    import sys

    if "torch._dynamo" not in sys.modules:   # it can only be tracing if dynamo is already imported
        return False
    import torch

    return bool(torch.compiler.is_compiling())
