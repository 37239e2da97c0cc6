"""Saving and loading a trained model as a folder, without pickle.

    config.json            {"format": "diffpose_fast", "format_version": 1, "config": {...}, "seed": int,
                            "files": {name: sha256}}   -- written last: its presence marks a complete save
    weights.safetensors    raw weights (encoder + denoiser)
    weights_ema.safetensors  EMA weights (used for prediction)
    hk_stats.safetensors   statistics of H_K from the training set (the per-joint depth histogram)

Every file is written to a temporary name and renamed into place (atomic on POSIX), and its SHA-256 is checked
on load, so a truncated or altered file is a clear error, never a half-loaded model.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "diffpose_fast"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A saved model folder is missing, damaged, or of an unknown format version."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_folder(path: str | Path, config: dict[str, Any], tensors: dict[str, dict[str, torch.Tensor]],
                extra: dict[str, Any] | None = None) -> Path:
    """Write ``tensors`` (file stem -> state dict) and the config to folder ``path``; returns the folder."""
    from safetensors.torch import save

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for stem, state in tensors.items():
        name = f"{stem}.safetensors"
        clean = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        atomic_write_bytes(folder / name, save(clean))
        hashes[name] = _sha256(folder / name)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config, "files": hashes}
    meta.update(extra or {})
    atomic_write_bytes(folder / CONFIG_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return folder


def load_folder(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read a folder written by ``save_folder``: (metadata, {file stem: state dict}), verified."""
    from safetensors.torch import load

    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"load: {str(folder)!r} is not a folder saved by DiffPoseLifter.save")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"load: {str(cfg_path)!r} is missing: the save is incomplete or not a model folder")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"load: {str(cfg_path)!r} is damaged ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"load: {str(cfg_path)!r} is not a {FORMAT} model (format={meta.get('format')!r})"
                              if isinstance(meta, dict) else f"load: {str(cfg_path)!r} is not a {FORMAT} model")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"load: format_version {version!r} is not supported (this diffpose_fast reads "
                              f"version {FORMAT_VERSION}); use the diffpose_fast release that wrote it")
    tensors = {}
    for name, digest in dict(meta.get("files", {})).items():
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"load: {str(file)!r} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(f"load: {str(file)!r} is damaged (its SHA-256 does not match config.json)")
        try:
            tensors[name[: -len(".safetensors")]] = load(file.read_bytes())
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"load: {str(file)!r} could not be read ({exc})") from None
    return meta, tensors
