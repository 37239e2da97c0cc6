"""Which training frames each cross-fitted context encoder leaves out (``LifterConfig.context_folds``).

Encoder k trains on every frame whose fold is not k, so frames of fold k are out of sample for it: stage 2
conditions the denoiser on their context from encoder k, which sees them as it will see test frames.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def assign_folds(lengths: Sequence[int], num_folds: int, seed: int) -> torch.Tensor:
    """Fold index [F] (int64, F = sum of lengths) of every frame of sequences of these lengths.

    By sequence whenever there are at least ``num_folds`` sequences: the sequences, in an order shuffled by
    ``seed``, go one by one to the fold with the fewest frames so far (neighbouring frames of one sequence are
    nearly the same pose, so splitting inside a sequence would leak it across folds). With fewer sequences than
    folds, the concatenated frames are cut into ``num_folds`` contiguous blocks of nearly equal length. One fold
    gives all zeros.
    """
    lengths = [int(n) for n in lengths]
    total = sum(lengths)
    if num_folds < 1:
        raise ValueError(f"assign_folds: num_folds must be >= 1, got {num_folds}")
    if num_folds == 1:
        return torch.zeros(total, dtype=torch.long)
    if total < num_folds:
        raise ValueError(f"assign_folds: {total} training frames cannot fill context_folds={num_folds} folds")
    out = np.empty(total, dtype=np.int64)
    if len(lengths) >= num_folds:
        starts = np.cumsum([0] + lengths[:-1])
        order = np.random.default_rng(seed).permutation(len(lengths))
        filled = np.zeros(num_folds, dtype=np.int64)
        for i in order:
            k = int(np.argmin(filled))
            out[starts[i]:starts[i] + lengths[i]] = k
            filled[k] += lengths[i]
    else:
        edges = np.linspace(0, total, num_folds + 1).round().astype(int)
        for k in range(num_folds):
            out[edges[k]:edges[k + 1]] = k
    return torch.from_numpy(out)


def calibration_split(lengths: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training sequences, held-out sequences): which whole sequences ``fit`` keeps back to calibrate the spread.

    Whole sequences, because neighbouring frames of one sequence are nearly the same pose: frames held out from a
    sequence that also trains would look in-sample. Sequences short enough (at most 2 x ``fraction`` of all
    frames), in an order shuffled by ``seed``, are held out until they hold at least ``fraction`` of the frames,
    always leaving at least one sequence to train on. If no sequence is short enough (one long sequence, or two),
    nothing is held out here and ``fit`` cuts the tail of the longest sequence instead. Returns sorted index lists.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"calibration_split: fraction must be in [0, 1), got {fraction}")
    lengths = [int(v) for v in lengths]
    n = len(lengths)
    total = sum(lengths)
    if fraction == 0 or n < 2:
        return list(range(n)), []
    order = np.random.default_rng([seed, 0xCA11]).permutation(n)
    held, count = [], 0
    for i in order:
        if count >= fraction * total or len(held) == n - 1:
            break
        if lengths[i] <= 2 * fraction * total:
            held.append(int(i))
            count += lengths[i]
    keep = sorted(set(range(n)) - set(held))
    return keep, sorted(held)
