"""Live lifting: one frame in, its 3D out, with the answer ``predict`` would give over the sequence so far.

    stream = lifter.stream(image_size=(w, h), camera=None, num_samples=5, steps=5, sampler="ddim")
    for kp, conf in detector:                       # kp [17, 2] px, conf [17]
        res = stream.push(kp, conf)                 # LiftResult of the newest frame: poses_3d [1, 17, 3], ...

What makes the answers equal to ``predict``'s: the stream draws the one row of H_K / hypothesis noise that
``predict`` shares over a sequence's frames (``temporal_noise="shared"``), from the same generator, once at the
start; each new frame is then lifted with that row. A frame model needs nothing else. A *causal* video model sees,
for frame t, the window of frames t - F + 1 .. t with the first frame repeated before the start (what
``predict``'s causal plan, hop 1, gives it); the stream keeps the last F frames' encoder inputs and encodes that
one window per new frame. An offline (non-causal) video model needs frames after t and cannot stream.

What the stream does not keep: the encoder's attention keys and values of past frames. The video encoder adds
*absolute* temporal position embeddings to its input, and in a sliding window every frame's position moves by one
each step, so last step's keys and values are not this step's; caching them would change the answers. So a new
frame costs one window's encoding, as ``predict`` pays per frame with hop 1 (measured in benchmarks/RESULTS.md
"Streaming").
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .data.sequence import PoseSequence
from .data.skeleton import NUM_JOINTS
from .inference.reverse import check_backend
from .inference.smoothing import smooth_hypotheses
from .data.frames import frames_from_sequences

__all__ = ["LiftStream"]


class LiftStream:
    """State of one live sequence; made by ``DiffPoseLifter.stream`` (see the module docstring).

    Args (as ``DiffPoseLifter.predict``): image_size (w, h) pixels; camera (a ``data.camera.Camera``: each result
    then carries its ``trajectory``); num_samples, steps, sampler; generator (None: one seeded with the lifter's
    seed, as ``predict``); backend; flip_test (as ``predict``, resolved by the lifter); smoothing (as ``predict``; the stream runs
    the filter's causal pass, which is what ``predict`` runs for a causal video model, so a frame model with
    smoothing on streams the causal version of its offline answer).
    """

    def __init__(self, lifter, image_size, *, camera=None, num_samples: Optional[int] = None,
                 steps: Optional[int] = None, sampler: Optional[str] = None,
                 generator: Optional[torch.Generator] = None, backend: str = "auto", flip_test: bool = True,
                 smoothing: Optional[float] = None):
        cfg = lifter.config
        if cfg.mode == "video" and not cfg.causal:
            raise ValueError("stream: an offline video model (causal=False) looks at frames after the newest one "
                             "and cannot stream; use a frame model or a causal video model (LifterConfig(causal="
                             "True))")
        PoseSequence(np.zeros((1, NUM_JOINTS, 2)), image_size=image_size, camera=camera)   # checks both, early
        self.lifter = lifter
        self.image_size = image_size
        self.camera = camera
        self.sampler, self.num_samples, self.steps = lifter._sampling_args(sampler, num_samples, steps)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"stream: generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator if generator is not None else torch.Generator().manual_seed(lifter.seed)
        check_backend(backend, "stream")
        self.backend = backend
        self.flip_test = flip_test
        self.n_eff = 1 if self.sampler == "context" else self.num_samples
        self.smoothing = lifter._smoothing_frames(smoothing, "stream")
        self._smooth_state = None   # the hypotheses' filtered offset from the encoder's pose at the last frame
        self._shared = None         # drawn on the first frame (whether it has heatmaps decides the draw's kind)
        self._window: list[torch.Tensor] = []   # causal video: the encoder inputs [J, in] of the last F frames
        self._first: Optional[torch.Tensor] = None
        self.frames_seen = 0

    @torch.no_grad()
    def push(self, keypoints_2d, confidence=None, *, heatmaps=None, heatmap_boxes=None, keypoint_sigma=None):
        """Lift the newest frame: keypoints_2d [17, 2] pixels (NaN where missing), confidence [17] in [0, 1] or
        None (heatmaps [17, Hh, Wh] over heatmap_boxes [4] optional, on every frame or none; keypoint_sigma
        [17, 2] pixels, the detector's own spread, optional: ``PoseSequence``). Returns a
        ``LiftResult`` of one frame (poses_3d [1, 17, 3], samples [N, 1, 17, 3], std, calibrated_std,
        trajectory), numpy."""
        lifter = self.lifter
        kp = np.asarray(keypoints_2d, np.float64)
        if kp.shape != (NUM_JOINTS, 2):
            raise ValueError(f"stream.push: keypoints_2d must be [{NUM_JOINTS}, 2] pixels (one frame), got "
                             f"{list(kp.shape)}")
        conf = None if confidence is None else np.asarray(confidence, np.float64).reshape(1, -1)
        seq = PoseSequence(kp[None], image_size=self.image_size, confidence=conf,
                           heatmaps=None if heatmaps is None else np.asarray(heatmaps)[None],
                           heatmap_boxes=None if heatmap_boxes is None else np.asarray(heatmap_boxes)[None],
                           camera=self.camera,
                           keypoint_sigma=None if keypoint_sigma is None else np.asarray(keypoint_sigma)[None])
        frames = frames_from_sequences([seq], lifter.config.default_confidence, require_poses=False)
        model = lifter.model
        model.eval()
        if self._shared is None and self.sampler != "context" and lifter.config.temporal_noise == "shared":
            self._shared = model.draw_noise(1, self.n_eff, frames.heatmaps is not None, self.generator)
        part = frames.to(lifter.device)
        noise = None if self._shared is None else self._shared.expand(1)
        context = None
        if lifter.config.mode == "video":
            from .models.flip_test import encode_with_flip_test

            if self._first is None:
                self._first = frames.inputs[0]
            self._window.append(frames.inputs[0])
            f = model.encoder.frames
            del self._window[:-f]
            pad = [self._first] * (f - len(self._window))   # before the start: the first frame, as predict pads
            window = torch.stack(pad + self._window)[None].to(lifter.device)   # [1, F, J, in]
            ctx = encode_with_flip_test(model.encoder, window, self.flip_test)
            context = type(ctx)(*(c[:, -1] for c in ctx))   # the newest frame sits last in its causal window
        h0, pose = model.sample(part, self.n_eff, self.steps, self.sampler, self.generator, self.backend,
                                context=context, noise=noise, return_context=True, flip_test=self.flip_test)
        self.frames_seen += 1
        samples = h0.float().cpu().permute(1, 0, 2, 3).contiguous()   # [N, 1, J, 3]
        if self.sampler != "context" and self.smoothing > 0:
            # the causal pass of predict's filter, carried from frame to frame (inference.smoothing)
            anchor = pose.float().cpu()
            anchor = anchor - anchor[:, :1]
            smoothed, self._smooth_state = smooth_hypotheses(samples.numpy(), anchor.numpy(), self.smoothing,
                                                             causal=True, state=self._smooth_state)
            samples = torch.from_numpy(smoothed)
        return lifter._result(samples, frames, seq, as_tensor=False)
