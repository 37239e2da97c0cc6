"""Batched Gaussian-mixture EM (paper Eq. 6): fit, sample, score. Backends: reference (PyTorch), native."""
from .api import GMMFit, em_fit, gmm_log_prob, gmm_sample

__all__ = ["GMMFit", "em_fit", "gmm_log_prob", "gmm_sample"]
