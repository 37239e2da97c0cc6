"""Training checkpoints: everything needed to continue a run bit-exactly, in one safetensors file, no pickle.

    DIR/checkpoint-00001200.safetensors     (the number: optimiser steps done over both stages)

One file per checkpoint, written to a temporary name and renamed into place (``persistence.atomic_write_bytes``),
so a file either holds a complete checkpoint or does not exist. Tensors (safetensors):
    model.<name>      raw model weights (encoder + denoiser; after stage 1 the encoder is the frozen EMA one)
    ema.<name>        EMA weights
    opt.<i>.<key>     the optimiser state of parameter i (Adam moments, step)
    hk.<name>         the training depth histogram (when fitted)
    raw.<name>        the raw (non-EMA) weights of the context encoders frozen so far (the model holds their EMA
                      weights), so the saved model's "weights" are the raw ones after a resume too
JSON (the safetensors header's metadata, key "diffpose_fast"): format and version, stage, next step, the run
description and its SHA-256 (config, seed, batch size, steps per stage, frames and a hash of the training data),
the optimiser's param groups, the LR scheduler state, the loss history, and the SHA-256 of all tensor bytes.

Loading checks the file hash, the format, and every tensor's name and shape against the model before anything
is copied: a damaged file or one from another run raises ``CheckpointError`` and leaves the model untouched.
There is no RNG state to save: every draw is derived from (seed, stage, step) (see ``trainer``).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional

import torch

from ..persistence import CheckpointError, atomic_write_bytes

FORMAT = "diffpose_fast.training_checkpoint"
FORMAT_VERSION = 1
META_KEY = "diffpose_fast"
_NAME = re.compile(r"^checkpoint-(\d{8})\.safetensors$")
KEEP_CHECKPOINTS = 2  # checkpoints kept per folder: the newest, and one more in case it is damaged later


def checkpoint_name(global_step: int) -> str:
    return f"checkpoint-{global_step:08d}.safetensors"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first (temporary files of interrupted writes are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_sha256(*tensors: Optional[torch.Tensor]) -> str:
    """Fingerprint of the training data (so a run is not resumed on other data)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def run_sha256(run: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()


def run_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """'field: checkpoint X, now Y' for every (nested) field that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += run_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: checkpoint {a!r}, now {b!r}")
    return out


# --------------------------------------------------------------------------------------------------- save

def _optimizer_split(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars,
                     "params": sorted(int(p) for p in state["state"])}


def save_checkpoint(folder: str | Path, *, stage: str, next_step: int, global_step: int, run: dict[str, Any],
                    model_state: dict[str, torch.Tensor], ema_state: dict[str, torch.Tensor],
                    optimizer: Optional[torch.optim.Optimizer], scheduler, losses: dict[str, list[float]],
                    histogram: Optional[dict[str, torch.Tensor]], keep: Optional[int] = None,
                    raw_state: Optional[dict[str, torch.Tensor]] = None) -> Path:
    """Write one checkpoint atomically; then delete all but the newest ``keep`` (default KEEP_CHECKPOINTS)."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    tensors.update({f"ema.{k}": v for k, v in ema_state.items()})
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = _optimizer_split(optimizer.state_dict())
        tensors.update(opt_tensors)
    if histogram is not None:
        tensors.update({f"hk.{k}": v for k, v in histogram.items()})
    tensors.update({f"raw.{k}": v for k, v in (raw_state or {}).items()})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "stage": stage, "next_step": int(next_step),
            "global_step": int(global_step), "run": run, "run_sha256": run_sha256(run), "optimizer": opt_meta,
            "scheduler": None if scheduler is None else scheduler.state_dict(), "losses": losses,
            "tensors_sha256": tensors_sha256(tensors)}
    path = folder / checkpoint_name(global_step)
    atomic_write_bytes(path, save(tensors, metadata={META_KEY: json.dumps(meta)}))
    keep = KEEP_CHECKPOINTS if keep is None else keep
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------------------- load

class TrainingCheckpoint:
    """A verified checkpoint in memory; ``apply_*`` copy it into live objects after checking every shape."""

    def __init__(self, path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]):
        self.path = path
        self.meta = meta
        self.tensors = tensors

    stage = property(lambda self: self.meta["stage"])
    next_step = property(lambda self: int(self.meta["next_step"]))
    global_step = property(lambda self: int(self.meta["global_step"]))
    losses = property(lambda self: {k: list(v) for k, v in self.meta["losses"].items()})

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    def check_run(self, current: dict[str, Any]) -> None:
        saved = self.meta["run"]
        if run_sha256(saved) != run_sha256(current):
            diffs = run_differences(saved, current)
            raise CheckpointError(f"resume: {str(self.path)!r} was written by a different training run and cannot "
                                  f"continue this one; differing fields: {'; '.join(diffs)}")

    def check_state(self, prefix: str, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        given = self.group(prefix)
        missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
        bad = [f"{k} {list(given[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
               if k in given and (given[k].shape != v.shape or given[k].dtype != v.dtype)]
        if missing or extra or bad:
            raise CheckpointError(f"resume: {prefix} state in {str(self.path)!r} does not fit the model "
                                  f"(missing {missing[:5]}, unexpected {extra[:5]}, mismatched {bad[:5]})")
        return given

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimiser state dict, checked against ``optimizer``'s parameters."""
        meta = self.meta.get("optimizer")
        if meta is None:
            raise CheckpointError(f"resume: {str(self.path)!r} holds no optimiser state for stage {self.stage!r}")
        params = [p for g in optimizer.param_groups for p in g["params"]]
        groups = meta["param_groups"]
        if len(groups) != len(optimizer.param_groups) or sum(len(g["params"]) for g in groups) != len(params):
            raise CheckpointError(f"resume: the optimiser state in {str(self.path)!r} has a different number of "
                                  "parameters than this model")
        state: dict[int, dict[str, Any]] = {}
        for pid in meta["params"]:
            entry = dict(meta["scalars"].get(str(pid), {}))
            entry.update(self.group(f"opt.{pid}"))
            for key in ("exp_avg", "exp_avg_sq"):
                if key in entry and entry[key].shape != params[pid].shape:
                    raise CheckpointError(f"resume: optimiser {key} of parameter {pid} in {str(self.path)!r} has "
                                          f"shape {list(entry[key].shape)}, expected {list(params[pid].shape)}")
            state[int(pid)] = entry
        return {"state": state, "param_groups": groups}


def load_checkpoint(path: str | Path) -> TrainingCheckpoint:
    """Read and verify a checkpoint file, or the newest one in a folder. Raises CheckpointError."""
    from safetensors import safe_open
    from safetensors.torch import load

    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(f"resume: no checkpoint-*.safetensors file in {str(path)!r}")
        path = found[-1]
    if not path.is_file():
        raise CheckpointError(f"resume: {str(path)!r} does not exist")
    older = [p.name for p in list_checkpoints(path.parent) if p != path]
    hint = f" (older checkpoints in the folder: {older}; pass one as resume=)" if older else ""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load(path.read_bytes())
        meta = json.loads(header[META_KEY])
    except Exception as exc:  # safetensors / json raise their own error types for damaged files
        raise CheckpointError(f"resume: {str(path)!r} is damaged or truncated ({type(exc).__name__}: {exc})"
                              f"{hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"resume: {str(path)!r} is not a diffpose_fast training checkpoint{hint}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"resume: {str(path)!r} has format_version {meta.get('format_version')!r}; this "
                              f"diffpose_fast reads version {FORMAT_VERSION}")
    if tensors_sha256(tensors) != meta.get("tensors_sha256"):
        raise CheckpointError(f"resume: {str(path)!r} is damaged: its tensors do not match their SHA-256{hint}")
    return TrainingCheckpoint(path, meta, tensors)


def resolve_resume(resume, checkpoint_dir, checkpoint_every) -> Optional[TrainingCheckpoint]:
    """Validate ``fit``'s checkpoint arguments; the checkpoint to continue from, or None to start afresh."""
    import os

    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"fit: checkpoint_dir must be a path (str or os.PathLike) or None, "
                        f"got {type(checkpoint_dir).__name__}")
    if checkpoint_every is not None:
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int):
            raise TypeError(f"fit: checkpoint_every must be an int or None, got {type(checkpoint_every).__name__}")
        if checkpoint_every < 1:
            raise ValueError(f"fit: checkpoint_every must be >= 1, got {checkpoint_every}")
        if checkpoint_dir is None:
            raise ValueError("fit: checkpoint_every needs checkpoint_dir (the folder to write checkpoints to)")
    if resume is None or resume is False:
        return None
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("fit: resume=True continues from checkpoint_dir, which is None")
        return load_checkpoint(checkpoint_dir) if list_checkpoints(checkpoint_dir) else None
    if not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"fit: resume must be a checkpoint file or folder, True or None, got {type(resume).__name__}")
    return load_checkpoint(resume)
