"""Start the VideoContextEncoder from MixSTE's released weights (Zhang et al. CVPR 2022, ``MixSTE2`` in
``common/model_cross.py``; the checkpoint DiffPose's video code loads, ``mixste_cpn_243f.bin``).

Weights only, no code execution: a ``.safetensors`` file is read with safetensors; any other file with
``torch.load(weights_only=True)`` (PyTorch's restricted unpickler: tensors, dicts, lists and numbers only; an object
that would need arbitrary code to rebuild is refused); or pass a state dict you built. The checkpoint's
``{"model_pos": state_dict, ...}`` wrapper and DataParallel's ``module.`` prefix are removed.

MixSTE2's parameter layout (C = embed_dim_ratio, D = depth, i in 0..D-1) and where each tensor lands:

    Spatial_patch_to_embedding.weight [C, 2], .bias [C]  -> joint_embed (weight into input columns 0:2 = x, y; the
                                                            confidence column 2, which MixSTE lacks, is set to 0)
    Spatial_pos_embed   [1, 17, C]                        -> joint_pos
    Temporal_pos_embed  [1, F, C]                         -> frame_pos (only if F equals the encoder's frames)
    STEblocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.{weight, bias}  -> spatial_blocks.i.(same)
    TTEblocks.i.(same)                                    -> temporal_blocks.i.(same)
    Spatial_norm.{weight, bias}, Temporal_norm.{weight, bias} [C]  -> spatial_norm, temporal_norm (shared)
    head.0.{weight, bias} [C] (LayerNorm), head.1.weight [3, C], head.1.bias [3]  -> head_norm, pose_head

The encoder's ``log_sigma_head`` has no MixSTE counterpart and keeps its values; train stage 1 briefly (or only
that head) to calibrate it. MixSTE's pose output is not root-forced; the encoder multiplies the root by 0.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Mapping, Union

import torch

_BLOCK = re.compile(r"^(STEblocks|TTEblocks)\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\."
                    r"(weight|bias)$")
_FIXED = {
    "Spatial_patch_to_embedding.weight": "joint_embed.weight",
    "Spatial_patch_to_embedding.bias": "joint_embed.bias",
    "Spatial_pos_embed": "joint_pos",
    "Temporal_pos_embed": "frame_pos",
    "Spatial_norm.weight": "spatial_norm.weight",
    "Spatial_norm.bias": "spatial_norm.bias",
    "Temporal_norm.weight": "temporal_norm.weight",
    "Temporal_norm.bias": "temporal_norm.bias",
    "head.0.weight": "head_norm.weight",
    "head.0.bias": "head_norm.bias",
    "head.1.weight": "pose_head.weight",
    "head.1.bias": "pose_head.bias",
}


@dataclasses.dataclass
class MixSTELoadReport:
    """loaded: {MixSTE name: encoder name}; skipped: {MixSTE name: reason}; untouched: encoder parameters that
    received nothing (e.g. log_sigma_head.*)."""

    loaded: dict[str, str]
    skipped: dict[str, str]
    untouched: list[str]


def mixste_name_map(name: str) -> str | None:
    """The encoder parameter a MixSTE2 parameter name maps to, or None if it has no counterpart."""
    if name in _FIXED:
        return _FIXED[name]
    m = _BLOCK.match(name)
    if m is None:
        return None
    kind = "spatial_blocks" if m.group(1) == "STEblocks" else "temporal_blocks"
    return f"{kind}.{m.group(2)}.{m.group(3)}.{m.group(4)}"


def read_mixste_state_dict(source: Union[str, os.PathLike, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A MixSTE state dict from a file (safetensors, or a torch file read with weights_only=True) or a mapping;
    unwraps ``model_pos`` and strips ``module.``."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # the restricted unpickler refuses anything but plain data
                raise ValueError(f"load_mixste: {path!r} could not be read as weights only ({exc}); convert it "
                                 "to safetensors or a plain state dict") from None
    elif isinstance(source, Mapping):
        state = source
    else:
        raise TypeError(f"load_mixste: source must be a path or a state dict, got {type(source).__name__}")
    if "model_pos" in state and isinstance(state["model_pos"], Mapping):
        state = state["model_pos"]
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue  # epoch counters and the like
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


@torch.no_grad()
def load_mixste(encoder: torch.nn.Module, source, strict: bool = False) -> MixSTELoadReport:
    """Copy MixSTE2 weights into a VideoContextEncoder where names and shapes correspond.

    Args:
        encoder: the VideoContextEncoder (e.g. ``lifter.model.encoder``); its hidden / depth / heads must match
            the checkpoint for the blocks to load (MixSTE's release: hidden 512, depth 8, heads 8, frames 243).
        source: path (.safetensors, or a torch file read with weights_only=True) or a state dict.
        strict: raise ValueError if any MixSTE tensor was skipped.

    Returns:
        MixSTELoadReport.
    """
    state = read_mixste_state_dict(source)
    own = dict(encoder.named_parameters())
    loaded: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name, value in state.items():
        target = mixste_name_map(name)
        if target is None or target not in own:
            skipped[name] = "no counterpart in the encoder" if target is None else f"encoder has no {target}"
            continue
        dst = own[target]
        value = value.to(dtype=dst.dtype, device=dst.device)
        if target == "joint_embed.weight" and value.ndim == 2 and dst.shape[0] == value.shape[0] \
                and value.shape[1] <= dst.shape[1]:
            dst.zero_()
            dst[:, :value.shape[1]] = value  # MixSTE reads (x, y); the extra confidence column starts at 0
        elif tuple(value.shape) == tuple(dst.shape):
            dst.copy_(value)
        else:
            skipped[name] = f"shape {tuple(value.shape)} != encoder {target} {tuple(dst.shape)}"
            continue
        loaded[name] = target
    untouched = sorted(set(own) - set(loaded.values()))
    if strict and skipped:
        raise ValueError(f"load_mixste: {len(skipped)} tensor(s) did not load: "
                         + "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:5]))
    return MixSTELoadReport(loaded, skipped, untouched)
