"""A fast inference forward of the SAME weights as ``models.denoiser.GCNAttentionDenoiser``.

``FusedDenoiser(model)`` packs the model's weights once (re-packed automatically when a parameter changes) and
runs x0_hat = g(h_k, f_ST, k) through one of:

- ``native``: the compiled module ``diffpose_fast_denoiser_native`` (csrc/denoiser): the whole
  network in one call; C++/OpenMP with AVX2 micro-kernels on float32 CPU tensors, one CUDA kernel (a thread
  block per pose, activations and A_hat in shared memory) on float32/bfloat16/float16 GPU tensors (float32
  arithmetic). The kernel call itself, ``native_forward``, reads no module: it takes the packed tensors and four
  sizes, and is registered as ``torch.ops.diffpose_fast.denoiser_forward`` (what torch.compile sees).
- ``torch``: torch ops with the constant work hoisted: merged neighbour/self GEMMs of every GraphConv
  ([W_n^T | W_s^T] in one product, A_hat applied to the first half), fused QKV, scaled_dot_product_attention,
  step embeddings f_D^k computed once per step and cached. Any device and dtype.

Both are inference only (no dropout, no autograd). The reference module stays the oracle
(python_tests/test_fast_denoiser.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F

from ..._native import DENOISER_ABI_VERSION, DENOISER_MODULE_NAME, load_denoiser
from .._dispatch import compiling, select_backend

NATIVE_MODULE = DENOISER_MODULE_NAME
EXPECTED_ABI_VERSION = DENOISER_ABI_VERSION
PANEL = 16
_CUDA_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
# what a GCNAttentionDenoiser (models.denoiser) has and this op reads
_DENOISER_PARTS = ("blocks", "input_conv", "output_conv", "norm", "residual", "step_embedding", "num_joints", "hidden",
                   "context_dim", "embed_dim", "parameters")
MAX_JOINTS = 32        # csrc/denoiser/denoiser_math.h kMaxJoints
CUDA_MAX_BLOCKS = 8    # csrc/denoiser/denoiser_block.cu kMaxBlocks


def _load_native():
    """(module, None) or (None, reason) for the fused denoiser's compiled module (``_native.load_denoiser``)."""
    return load_denoiser()


def native_module():
    mod, reason = _load_native()
    if mod is None:
        raise ImportError(reason)
    return mod


def pack_panels(w_t: torch.Tensor) -> torch.Tensor:
    """W^T [K, N] -> 16-column panels [ceil(N/16), K, 16] (zero-padded), the layout of csrc/denoiser/denoiser.h."""
    K, N = w_t.shape
    n_pad = -N % PANEL
    if n_pad:
        w_t = torch.cat([w_t, w_t.new_zeros(K, n_pad)], 1)
    return w_t.reshape(K, -1, PANEL).permute(1, 0, 2).contiguous()


def _cat_t(gc) -> torch.Tensor:
    """[W_n^T | W_s^T] [C_in, 2 C_out] of a GraphConv."""
    return torch.cat([gc.neighbour.weight.t(), gc.self_loop.weight.t()], 1)


@dataclass
class PackedWeights:
    """The model's weights, detached, float32 (native) or the model dtype (torch), on one device."""
    adjacency: torch.Tensor
    w_in: torch.Tensor          # [3, 2E]
    b_in: torch.Tensor
    blocks: list                # per block: dict of tensors
    norm_g: torch.Tensor
    norm_b: torch.Tensor
    w_out: torch.Tensor         # [C, 6] (torch) / panels (native)
    b_out: torch.Tensor
    native_order: Optional[list] = None   # native: every tensor above in the kernel's order (csrc/denoiser)


class FusedDenoiser:
    """Inference forward of ``model``'s weights: ``fused(h [B, J, 3], context [B, J, Cc], k) -> x0_hat``.

    Args:
        model: the reference denoiser whose weights are used (not copied at construction: packed lazily and
            re-packed when any parameter's storage or version changes).
    """

    def __init__(self, model):
        # duck-typed: ops import no nn.Module classes (models sit above ops)
        if not all(hasattr(model, a) for a in _DENOISER_PARTS):
            raise TypeError(f"FusedDenoiser: model must be a GCNAttentionDenoiser, got {type(model).__name__}")
        self.model = model
        self._packed: dict = {}
        self._emb: dict = {}
        self._key = None

    # ------------------------------------------------------------------------------------------ dispatch
    def why_not_native(self, h: torch.Tensor, **_) -> list:
        m = self.model
        mod, reason = _load_native()
        reasons = []
        if mod is None:
            reasons.append(reason)
        if h.device.type == "cuda" and h.dtype not in _CUDA_DTYPES:
            reasons.append(f"dtype {h.dtype} not supported on CUDA (float32, bfloat16, float16)")
        elif h.device.type != "cuda" and h.dtype != torch.float32:
            reasons.append(f"dtype {h.dtype} not supported on CPU (float32 only)")
        if m.num_joints > MAX_JOINTS:
            reasons.append(f"J={m.num_joints} exceeds the kernel limit {MAX_JOINTS}")
        if m.hidden % 16:
            reasons.append(f"hidden={m.hidden} must be a multiple of 16")
        if h.device.type == "cuda":
            if mod is not None and not hasattr(mod, "denoiser_forward_cuda"):
                reasons.append("native module compiled without CUDA (no denoiser_forward_cuda)")
            if not torch.cuda.is_available():
                reasons.append("torch sees no usable CUDA device")
            if len(m.blocks) > CUDA_MAX_BLOCKS:
                reasons.append(f"{len(m.blocks)} blocks exceed the CUDA kernel limit {CUDA_MAX_BLOCKS}")
        elif h.device.type == "cpu":
            if mod is not None and not hasattr(mod, "denoiser_forward_cpu"):
                reasons.append("native module has no denoiser_forward_cpu (older build): rebuild")
        else:
            reasons.append(f"device {h.device.type!r} not supported (cpu or cuda)")
        return reasons

    def backends(self):
        return (("native", self.why_not_native), ("reference", lambda **_: []))   # "torch": an alias

    # ------------------------------------------------------------------------------------------ weights
    def _weights_key(self):
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def _refresh(self) -> None:
        key = self._weights_key()
        if key != self._key:
            self._packed.clear()
            self._emb.clear()
            self._key = key

    def packed(self, device: torch.device, dtype: torch.dtype, native: bool) -> PackedWeights:
        self._refresh()
        slot = (str(device), dtype, native)
        if slot not in self._packed:
            storage = dtype if (native and torch.device(device).type == "cuda") else (torch.float32 if native else dtype)
            self._packed[slot] = self._pack(device, storage, native)
        return self._packed[slot]

    @torch.no_grad()
    def _pack(self, device, dtype, native: bool) -> PackedWeights:
        m = self.model

        small = torch.float32 if native else dtype  # native: A, biases, LayerNorm stay float32

        def t(x):
            return x.detach().to(device=device, dtype=small).contiguous()

        def gemm(w_t):
            w = pack_panels(w_t) if native else w_t
            return w.detach().to(device=device, dtype=dtype).contiguous()

        blocks = []
        for blk in m.blocks:
            blocks.append(dict(
                ln1_g=t(blk.ln1.weight), ln1_b=t(blk.ln1.bias), gc1=gemm(_cat_t(blk.gc1)), gc1_b=t(blk.gc1.self_loop.bias),
                gc2=gemm(_cat_t(blk.gc2)), gc2_b=t(blk.gc2.self_loop.bias), ln2_g=t(blk.ln2.weight),
                ln2_b=t(blk.ln2.bias), qkv=gemm(blk.attn.qkv.weight.t()), qkv_b=t(blk.attn.qkv.bias),
                proj=gemm(blk.attn.proj.weight.t()), proj_b=t(blk.attn.proj.bias)))
        w_in = _cat_t(m.input_conv).detach().to(device=device, dtype=dtype).contiguous()
        pw = PackedWeights(adjacency=t(m.input_conv.adjacency), w_in=w_in,
                           b_in=t(m.input_conv.self_loop.bias), blocks=blocks, norm_g=t(m.norm.weight),
                           norm_b=t(m.norm.bias), w_out=gemm(_cat_t(m.output_conv)), b_out=t(m.output_conv.self_loop.bias))
        if native:
            order = ("ln1_g", "ln1_b", "gc1", "gc1_b", "gc2", "gc2_b", "ln2_g", "ln2_b", "qkv", "qkv_b", "proj",
                     "proj_b")
            tensors = [pw.adjacency, pw.w_in, pw.b_in]
            for b in blocks:
                tensors += [b[name] for name in order]
            pw.native_order = tensors + [pw.norm_g, pw.norm_b, pw.w_out, pw.b_out]
        return pw

    @torch.no_grad()
    def step_embedding(self, k: int, device, dtype) -> torch.Tensor:
        """f_D^k [hidden] for one integer step, computed once per (step, device, dtype) and cached."""
        self._refresh()
        slot = (int(k), str(device), dtype)
        if slot not in self._emb:
            kk = torch.tensor([int(k)], device=device)
            self._emb[slot] = self.model.step_embedding(kk, dtype)[0, 0].detach().contiguous()
        return self._emb[slot]

    # ------------------------------------------------------------------------------------------ forward
    def __call__(self, h: torch.Tensor, context: torch.Tensor, k: Union[int, torch.Tensor],
                 backend: str = "auto") -> torch.Tensor:
        m = self.model
        if h.ndim != 3 or h.shape[1:] != (m.num_joints, 3):
            raise ValueError(f"FusedDenoiser: h must have shape [B, {m.num_joints}, 3], got {tuple(h.shape)}")
        B = h.shape[0]
        if context.shape != (B, m.num_joints, m.context_dim):
            raise ValueError(f"FusedDenoiser: context must have shape [{B}, {m.num_joints}, {m.context_dim}], "
                             f"got {tuple(context.shape)}")
        name = select_backend("denoiser", backend, self.backends(), h=h)
        with torch.no_grad():  # inference only: the native kernels have no backward
            emb = self._embedding(k, B, h)
            if name == "native":
                return self._native(h, context, emb)
            return self._torch(h, context.to(h.dtype), emb)

    def _embedding(self, k, B, h) -> torch.Tensor:
        if isinstance(k, torch.Tensor) and k.numel() > 1:
            if k.shape != (B,):
                raise ValueError(f"FusedDenoiser: k must be an int or have shape [{B}], got {tuple(k.shape)}")
            return self.model.step_embedding(k.to(h.device), h.dtype)[:, 0].contiguous()  # [B, C]
        return self.step_embedding(int(k), h.device, h.dtype)  # [C]

    def _native(self, h, context, emb) -> torch.Tensor:
        m = self.model
        pw = self.packed(h.device, h.dtype, True)
        dims = [m.embed_dim, m.context_dim, m.blocks[0].attn.heads, int(m.residual)]
        args = (h.contiguous(), context.to(h.dtype).contiguous(), emb.to(h.dtype).contiguous(), pw.native_order, dims)
        if compiling():   # one opaque node for torch.compile
            return denoiser_forward_op(*args)
        return native_forward(*args)

    def _torch(self, h, context, emb) -> torch.Tensor:
        m = self.model
        pw = self.packed(h.device, h.dtype, False)
        A = pw.adjacency
        E, C = m.embed_dim, m.hidden
        heads = m.blocks[0].attn.heads
        B, J, _ = h.shape

        def gconv(x, w, b, co):
            z = torch.matmul(x, w)                                     # [B, J, 2 co]: one GEMM for both weights
            return torch.matmul(A, z[..., :co]) + z[..., co:] + b

        x = torch.cat([gconv(h, pw.w_in, pw.b_in, E), context], -1) + emb.unsqueeze(-2)
        for b in pw.blocks:
            xn = F.layer_norm(x, (C,), b["ln1_g"], b["ln1_b"], m.blocks[0].ln1.eps)
            x = x + gconv(F.gelu(gconv(xn, b["gc1"], b["gc1_b"], C)), b["gc2"], b["gc2_b"], C)
            xn = F.layer_norm(x, (C,), b["ln2_g"], b["ln2_b"], m.blocks[0].ln2.eps)
            q, k, v = torch.addmm(b["qkv_b"], xn.reshape(B * J, C), b["qkv"]).view(B, J, 3, heads, C // heads) \
                .permute(2, 0, 3, 1, 4).unbind(0)
            o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B * J, C)
            x = x + torch.addmm(b["proj_b"], o, b["proj"]).view(B, J, C)
        out = gconv(F.layer_norm(x, (C,), pw.norm_g, pw.norm_b, m.norm.eps), pw.w_out, pw.b_out, 3)
        return h + out if m.residual else out


def native_forward(h: torch.Tensor, context: torch.Tensor, emb: torch.Tensor, weights: list[torch.Tensor],
                   dims: list[int]) -> torch.Tensor:
    """The compiled network on packed weights: x0_hat [B, J, 3] from h [B, J, 3], context [B, J, Cc] and the step
    embedding emb ([C] one step for all, or [B, C]), all contiguous, of h's dtype and device.

    weights: ``PackedWeights.native_order`` (the blocks' count follows from its length); dims: [embed_dim E,
    context_dim Cc, heads, residual (0 / 1)]; hidden C = E + Cc. No module is read here: this is the op
    ``torch.ops.diffpose_fast.denoiser_forward`` runs.
    """
    B, J, _ = h.shape
    embed_dim, context_dim, heads, residual = (int(d) for d in dims)
    hidden = embed_dim + context_dim
    out = _empty_like(h)
    args = (h.data_ptr(), context.data_ptr(), emb.data_ptr(), 0 if emb.ndim == 1 else hidden, out.data_ptr(), B, J,
            embed_dim, context_dim, hidden, heads, bool(residual), [w.data_ptr() for w in weights])
    mod = native_module()
    if h.is_cuda:
        mod.denoiser_forward_cuda(*args, _CUDA_DTYPES[h.dtype], torch.cuda.current_stream(h.device).cuda_stream)
    else:
        mod.denoiser_forward_cpu(*args, _threads())
    return out


# Registered at import (about 7 ms), not on first use: torch.compile traces through a registering call and stops.
@torch.library.custom_op("diffpose_fast::denoiser_forward", mutates_args=())
def denoiser_forward_op(h: torch.Tensor, context: torch.Tensor, emb: torch.Tensor, weights: list[torch.Tensor],
                        dims: list[int]) -> torch.Tensor:
    """``torch.ops.diffpose_fast.denoiser_forward``: ``native_forward`` as one opaque op for the compiler."""
    return native_forward(h, context, emb, weights, dims)


@denoiser_forward_op.register_fake
def _(h, context, emb, weights, dims):
    return torch.empty_like(h)


def _threads() -> int:
    env = os.environ.get("DIFFPOSE_FAST_NUM_THREADS")
    return max(1, int(env)) if env else max(1, torch.get_num_threads())


def _empty_like(h: torch.Tensor) -> torch.Tensor:
    """Every native output is allocated here (tests replace this to poison outputs with NaN)."""
    return torch.empty_like(h)
