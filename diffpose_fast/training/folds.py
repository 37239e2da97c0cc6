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
