"""The paper's evaluation protocols and the training / evaluation entry points behind them.

    predict_with_flip(lifter, seq, *, sampler, num_samples, steps, flip_tta)       flip test-time augmentation
    evaluate_sequences(lifter, sequences, ...)                                     per-frame metrics, grouped
    evaluate_h36m(checkpoint, data_3d, data_2d, ...) / train_h36m(...)             Tables 1 and 3
    evaluate_3dhp(checkpoint, test_npz, ...) / train_3dhp(...)                     Table 2
    format_report(report)                                                          the paper's table layouts

Reports are plain JSON-serialisable dicts, errors in millimetres. Both dataset averages are always reported
and labelled: the **action-wise** average (the unweighted mean of the per-action values: the number the
DiffPose / VideoPose3D papers print) and the **frame-wise** average (the mean over every evaluated frame).
"""
from .core import (AVERAGE_LABELS, METRIC_LABELS, evaluate_sequences, load_lifter, predict_with_flip,
                   unflip_poses)
from .h36m import PAPER_ACTION_ABBREVIATIONS, evaluate_h36m, train_h36m
from .mpi3dhp import evaluate_3dhp, train_3dhp
from .report import format_report

__all__ = [
    "AVERAGE_LABELS", "METRIC_LABELS", "PAPER_ACTION_ABBREVIATIONS", "predict_with_flip", "unflip_poses",
    "evaluate_sequences", "load_lifter", "evaluate_h36m", "train_h36m", "evaluate_3dhp", "train_3dhp",
    "format_report",
]
