"""Smooth hypotheses over time: a low-pass filter on what the diffusion adds to the encoder's pose.

Each frame's H_K is its own GMM fit, so even with one row of standard draws shared over a sequence
(``temporal_noise="shared"``) hypothesis i can move to another mixture component between two frames, and the
hypotheses (and their mean) jitter where the video encoder's pose does not (benchmarks/RESULTS.md "Smooth
hypotheses"). The filter here keeps the encoder's pose as it is, frame by frame, and smooths only the deviation of
each hypothesis from it:

    d_i[t] = x_i[t] - p[t]                       x_i [T, J, 3] hypothesis i, p [T, J, 3] the encoder's pose
    y_i[t] = y_i[t-1] + a (d_i[t] - y_i[t-1])    a = 1 - exp(-1 / tau), y_i[0] = d_i[0]   (causal pass)
    z_i[t] = z_i[t+1] + a (y_i[t] - z_i[t+1])    z_i[T-1] = y_i[T-1]                      (backward pass)
    x_i'[t] = p[t] + z_i[t]                      (offline; a causal model keeps y_i: no look-ahead)

tau is the filter's time constant in frames. The motion itself comes from p, so the filter adds no lag to it; it
only slows how fast a hypothesis may leave or change its offset from p. Shared draws are what make the filter
meaningful: hypothesis i of neighbouring frames is the same draw, so its offset is a slowly varying signal plus
the frame-to-frame jitter of the refits.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["smoothing_gain", "smooth_hypotheses"]


def smoothing_gain(time_constant: float) -> float:
    """The filter's gain a = 1 - exp(-1 / tau) for a time constant tau > 0 frames (a = 1: no smoothing)."""
    if not time_constant > 0:
        raise ValueError(f"smoothing_gain: time_constant must be > 0 frames, got {time_constant!r}")
    return 1.0 - math.exp(-1.0 / time_constant)


def smooth_hypotheses(samples: np.ndarray, anchor: np.ndarray, time_constant: float, *, causal: bool,
                      state: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Low-pass the hypotheses' deviation from ``anchor`` along time (see the module docstring).

    Args:
        samples: [N, T, J, 3] hypotheses of T consecutive frames (metres, root-relative).
        anchor: [T, J, 3] the encoder's pose of the same frames (metres, root-relative).
        time_constant: tau in frames (> 0).
        causal: True: the forward pass only (the answer for frame t uses frames <= t, as a stream can);
            False: forward then backward (zero phase).
        state: [N, J, 3] the causal pass's last filtered deviation from an earlier call on the frames just
            before these (a stream's memory); None: start at the first frame's deviation. causal=True only.

    Returns:
        (smoothed samples [N, T, J, 3], the causal pass's state after the last frame [N, J, 3]), float32.
    """
    x = np.asarray(samples, np.float64)
    p = np.asarray(anchor, np.float64)
    if x.ndim != 4 or x.shape[1:] != p.shape or p.ndim != 3:
        raise ValueError(f"smooth_hypotheses: samples must be [N, T, J, 3] and anchor [T, J, 3] of the same frames, "
                         f"got {list(x.shape)} and {list(p.shape)}")
    if state is not None and not causal:
        raise ValueError("smooth_hypotheses: a state continues a causal pass; the zero-phase filter has none")
    a = smoothing_gain(time_constant)
    d = x - p[None]
    y = np.empty_like(d)
    prev = d[:, 0] if state is None else np.asarray(state, np.float64)
    if prev.shape != d[:, 0].shape:
        raise ValueError(f"smooth_hypotheses: state must be [N, J, 3] = {list(d[:, 0].shape)}, got {list(prev.shape)}")
    for t in range(d.shape[1]):
        prev = prev + a * (d[:, t] - prev)
        y[:, t] = prev
    last = prev
    if not causal:
        for t in range(d.shape[1] - 2, -1, -1):
            y[:, t] = y[:, t + 1] + a * (y[:, t] - y[:, t + 1])
    return (p[None] + y).astype(np.float32), last.astype(np.float32)
