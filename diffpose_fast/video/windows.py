"""Cutting a sequence of any length into fixed-size windows and stitching the per-window outputs back.

The encoder sees windows of exactly F frames (``LifterConfig.frames``). A sequence of T frames is covered by
windows whose frame indices are clamped to [0, T-1] (edge padding: a frame outside the sequence repeats the
nearest real one), and every real frame takes its output from exactly one window, its *owner*, so the stitched
sequence has T frames, in order, with no gap and no frame counted twice.

Offline (``causal=False``), the default hop is F: the MixSTE / D3DP evaluation protocol of non-overlapping windows starting at 0, F, 2F, ... with the last window aligned to the end
of the sequence (start T - F), and right edge padding when T < F. A frame covered by two windows (the overlap of
the end-aligned last window, or any frame when hop < F) is owned by the window in which it sits most centrally
(most context on both sides; ties go to the earlier window).

Online (``causal=True``), window k ends at frame k * hop (inclusive) and starts F - 1 frames earlier (left edge
padding before frame 0, which only repeats frame 0: still causal). Frame t is owned by the first window that
contains it, where it sits at position >= F - hop, i.e. it sees at least F - hop earlier frames. hop = 1 is what a
live system runs: one window per new frame, each frame the last of its window.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """Windows over a T-frame sequence.

    starts: [W] int64 first frame of each window (may be < 0 or > T - F: those positions are edge-padded).
    owner: [T] int64 the window each frame takes its output from (non-decreasing in t).
    frames: F, the window length.
    """

    starts: np.ndarray
    owner: np.ndarray
    frames: int

    @property
    def num_windows(self) -> int:
        return int(self.starts.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.owner.shape[0])

    def indices(self, windows=None) -> np.ndarray:
        """[W', F] frame indices of the given windows (all by default), clamped to the sequence (edge padding)."""
        starts = self.starts if windows is None else self.starts[np.asarray(windows)]
        idx = starts[:, None] + np.arange(self.frames)[None, :]
        return np.clip(idx, 0, self.num_frames - 1)

    def owned(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(frames [n], positions [n]): the frames ``window`` owns and where they sit inside it."""
        frames = np.nonzero(self.owner == window)[0]
        return frames, frames - self.starts[window]


def plan_windows(num_frames: int, frames: int, hop: int | None = None, causal: bool = False) -> WindowPlan:
    """Plan the windows of a ``num_frames`` sequence for an encoder of window length ``frames``.

    Args:
        num_frames: T >= 1.
        frames: F >= 1, the window length.
        hop: distance between window starts, 1 <= hop <= F. None: F offline (non-overlapping windows, the field's
            protocol), 1 causal (one window per frame, every frame last in its window).
        causal: plan for a causal encoder (see the module docstring).
    """
    for name, value in (("num_frames", num_frames), ("frames", frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"plan_windows: {name} must be an int >= 1, got {value!r}")
    t, f = int(num_frames), int(frames)
    if hop is None:
        hop = 1 if causal else f
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or not 1 <= hop <= f:
        raise ValueError(f"plan_windows: hop must be an int in [1, frames={f}], got {hop!r}")
    hop = int(hop)
    if causal:
        ends = np.arange(0, t - 1 + hop, hop, dtype=np.int64)  # the last window ends at or after frame T - 1
        starts = ends - (f - 1)
        owner = -(-np.arange(t, dtype=np.int64) // hop)  # ceil(t / hop): the first window with end >= t
        return WindowPlan(starts, owner, f)
    starts = list(range(0, max(t - f, 0) + 1, hop))
    if t > f and starts[-1] + f < t:
        starts.append(t - f)  # the last window aligned to the end of the sequence
    starts_arr = np.asarray(starts, dtype=np.int64)
    tt = np.arange(t, dtype=np.int64)
    best = np.full(t, -1, dtype=np.int64)
    owner = np.zeros(t, dtype=np.int64)
    for w, s in enumerate(starts_arr):
        pos = tt - s
        inside = (pos >= 0) & (pos < f)
        centrality = np.minimum(pos, f - 1 - pos)
        better = inside & (centrality > best)  # strict: ties keep the earlier window
        owner[better] = w
        best[better] = centrality[better]
    return WindowPlan(starts_arr, owner, f)
