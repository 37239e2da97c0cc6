"""The reverse loop captured in a CUDA graph per batch-size bucket, replayed for every call.

A ``GraphedSampler`` owns static buffers (h_K, mu, f_ST and the output, padded to the bucket size) and one
captured graph of ``fast_sample`` (S fused denoiser calls + S fused updates, eta = 0: no noise to draw). A call
copies its inputs into the buffers (the padding rows are zeros and are sliced away), replays the graph and
copies the output out. Graphs are cached per (model, bucket, steps, dtype, device, denoiser backend); buckets
are powers of two from 64 up, so a stream of odd batch sizes reuses a few graphs.

Only on CUDA (torch.cuda.CUDAGraph); the test that the graph equals the eager loop for the same inputs runs
on a GPU only (python_tests/test_fast_sampler.py).
"""
from __future__ import annotations

import weakref

import torch

from ..diffusion.schedule import DiffusionSchedule
from ..ops.denoiser import FusedDenoiser

MIN_BUCKET = 64


def bucket_size(batch: int) -> int:
    """The smallest power of two >= batch, at least MIN_BUCKET."""
    size = MIN_BUCKET
    while size < batch:
        size *= 2
    return size


class GraphedSampler:
    """One captured reverse loop for batches up to ``bucket`` poses."""

    def __init__(self, fused: FusedDenoiser, schedule: DiffusionSchedule, steps: int, bucket: int,
                 like_h: torch.Tensor, like_features: torch.Tensor, denoiser_backend: str = "auto"):
        from .eager import fast_sample

        dev = like_h.device
        J = like_h.shape[1]
        self.bucket = bucket
        self.h = torch.zeros((bucket, J, 3), dtype=like_h.dtype, device=dev)
        self.mu = torch.zeros_like(self.h)
        self.features = torch.zeros((bucket,) + tuple(like_features.shape[1:]), dtype=like_features.dtype,
                                    device=dev)
        self.weights_key = fused._weights_key()

        def run():
            return fast_sample(fused, self.features, self.h, self.mu, schedule, steps,
                               denoiser_backend=denoiser_backend)

        # warm up on a side stream (packs weights, caches step embeddings, compiles triton) before capture
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):
                run()
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.out = run()

    def __call__(self, features: torch.Tensor, h_K: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        B = h_K.shape[0]
        if B > self.bucket:
            raise ValueError(f"GraphedSampler: batch {B} exceeds the bucket {self.bucket}")
        with torch.inference_mode():
            self.h[:B].copy_(h_K)
            self.mu[:B].copy_(mu)
            self.features[:B].copy_(features)
            if B < self.bucket:
                self.h[B:].zero_()
                self.mu[B:].zero_()
                self.features[B:].zero_()
            self.graph.replay()
        return self.out[:B].clone()  # outside inference mode: an ordinary tensor, not a view of the buffer


# Graphs live as long as their FusedDenoiser (weak keys): a freed model frees its graphs, and a new model that
# happens to get a recycled id() can never replay a graph bound to the old one's weights.
_graphs: "weakref.WeakKeyDictionary[FusedDenoiser, dict]" = weakref.WeakKeyDictionary()


def graphed_sample(fused: FusedDenoiser, features: torch.Tensor, h_K: torch.Tensor, mu: torch.Tensor,
                   schedule: DiffusionSchedule, steps: int, denoiser_backend: str = "auto") -> torch.Tensor:
    """h_0 from a cached graph for this bucket (captured on first use; re-captured when the weights change)."""
    if not h_K.is_cuda:
        raise ValueError("graphed_sample: tensors must be on a CUDA device")
    bucket = bucket_size(h_K.shape[0])
    key = (bucket, steps, repr(schedule), h_K.dtype, features.dtype, str(h_K.device), denoiser_backend)
    per_model = _graphs.setdefault(fused, {})
    g = per_model.get(key)
    if g is None or g.weights_key != fused._weights_key():
        g = per_model[key] = GraphedSampler(fused, schedule, steps, bucket, h_K, features, denoiser_backend)
    return g(features, h_K, mu)
