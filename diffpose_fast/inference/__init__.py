"""Inference: the method on a batch of frames and its reverse loops.

- ``model.DiffPoseModel``: context encoder + H_K + GMM + reverse diffusion on a FrameSet (what the lifter runs).
- ``reverse.reverse_diffusion``: the reverse loop with a backend ("reference": ``DDIMSampler`` and the reference
  denoiser; "auto" / "native" / "triton": the fused denoiser and fused update of ``ops``).
- ``eager.fast_sample``: that loop eagerly; ``cuda_graph``: replayed from a CUDA graph per batch bucket.
"""
