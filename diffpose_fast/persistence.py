"""Saving and loading a trained model as a folder, without pickle.

    config.json                          {"format": "diffpose_fast", "format_version": 1, "config": {...},
                                          "seed": int, "files": {name: sha256}, "tensors": {stem: name}}
    weights-<sha256[:16]>.safetensors      raw weights (encoder + denoiser)
    weights_ema-<sha256[:16]>.safetensors  EMA weights (used for prediction)
    hk_stats-<sha256[:16]>.safetensors     statistics of H_K from the training set (the per-joint depth histogram)

``config.json`` is the commit point. A save writes the new weight files beside the old ones (their names carry
their content's hash, so no file of the model already there is touched), each through a temporary name and an
atomic rename, syncs the folder, and only then replaces ``config.json`` in one atomic rename; the old files go
after that. A save interrupted anywhere (killed, out of disk) therefore leaves the folder loading as the old
model or as the new one, never neither; leftovers of an interrupted save are removed by the next one. Every
file's SHA-256 is checked on load, so a truncated or altered file is a clear error, never a half-loaded model.
Folders written before the hashed names (``weights.safetensors`` ...) load as they are.
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


def _sync_folder(folder: Path) -> None:
    """Make the renames into ``folder`` durable before the commit point (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _referenced_files(folder: Path) -> set[str]:
    """Names of the weight files the folder's current config.json points at (none if it has no valid one)."""
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        return {str(name) for name in dict(meta.get("files", {}))}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def save_folder(path: str | Path, config: dict[str, Any], tensors: dict[str, dict[str, torch.Tensor]],
                extra: dict[str, Any] | None = None) -> Path:
    """Write ``tensors`` (file stem -> state dict) and the config to folder ``path``; returns the folder.

    Replacing a model already in ``path`` is safe at every point (see the module docstring)."""
    from safetensors.torch import save

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    previous = _referenced_files(folder)
    hashes, names = {}, {}
    for stem, state in tensors.items():
        clean = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        data = save(clean)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{stem}-{digest[:16]}.safetensors"
        if not ((folder / name).is_file() and _sha256(folder / name) == digest):  # same content: keep the file
            atomic_write_bytes(folder / name, data)
        hashes[name], names[stem] = digest, name
    _sync_folder(folder)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config, "files": hashes,
            "tensors": names}
    meta.update(extra or {})
    atomic_write_bytes(folder / CONFIG_FILE, (json.dumps(meta, indent=2) + "\n").encode())   # the commit point
    _sync_folder(folder)
    for stale in previous - set(hashes):
        try:
            (folder / stale).unlink()
        except OSError:
            pass
    for leftover in folder.glob("*.tmp"):   # an interrupted earlier save's temporary files
        if leftover.name.startswith(tuple(f"{stem}-" for stem in tensors) + (CONFIG_FILE + ".",)):
            try:
                leftover.unlink()
            except OSError:
                pass
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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"load: {str(cfg_path)!r} is damaged ({exc or 'nested too deeply'})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"load: {str(cfg_path)!r} is not a {FORMAT} model (format={meta.get('format')!r})"
                              if isinstance(meta, dict) else f"load: {str(cfg_path)!r} is not a {FORMAT} model")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"load: format_version {version!r} is not supported (this diffpose_fast reads "
                              f"version {FORMAT_VERSION}); use the diffpose_fast release that wrote it")
    files = meta.get("files", {})
    # "tensors" maps each stem to its file; folders written before the hashed names used "<stem>.safetensors"
    stems = meta.get("tensors") or {str(name)[: -len(".safetensors")]: name for name in dict(files)}
    if not isinstance(files, dict) or not isinstance(stems, dict):
        raise CheckpointError(f"load: {str(cfg_path)!r} is damaged (its file table is not a mapping)")
    tensors = {}
    for stem, name in stems.items():
        if not isinstance(name, str) or name not in files or Path(name).name != name:
            raise CheckpointError(f"load: {str(cfg_path)!r} is damaged (entry {stem!r}: {name!r})")
        file, digest = folder / name, files[name]
        if not file.is_file():
            raise CheckpointError(f"load: {str(file)!r} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(f"load: {str(file)!r} is damaged (its SHA-256 does not match config.json)")
        try:
            tensors[str(stem)] = load(file.read_bytes())
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"load: {str(file)!r} could not be read ({exc})") from None
    return meta, tensors
