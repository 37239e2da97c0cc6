"""Data: the skeleton, cameras, PoseSequence, dataset readers (Human3.6M, MPI-INF-3DHP, custom 2D), synthetic data.

``load_npz`` reads the field's pickled .npz files without executing code from them.
"""
from .safe_npz import load_npz

__all__ = ["load_npz"]
