"""The reliability diagram of a lifter's spread, from an evaluation report's "uncertainty" entry.

Left: observed against expected coverage of the central p-regions of the spread read as an isotropic Gaussian
(``uncertainty.coverage_curve``): a calibrated spread follows the diagonal, a too narrow one falls below it.
Right: joints binned by their std (quantile bins), RMS error per bin against the bin's mean std, in mm: the
diagonal again means calibrated; a flat curve means the std does not tell good joints from bad.
Matplotlib's Agg canvas, headless, as in ``viz.render``.
"""
from __future__ import annotations

import os
from typing import Any


def calibration_figure(uncertainty: dict[str, Any], title: str = ""):
    """A matplotlib Figure of ``uncertainty`` (``uncertainty.uncertainty_report``'s dict, with "std")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for key in ("coverage_expected", "coverage_observed", "curve_std_mm", "curve_rms_error_mm"):
        if key not in uncertainty:
            raise ValueError(f"calibration_figure: the uncertainty report has no {key!r} (make it with "
                             "uncertainty.uncertainty_report)")
    fig = Figure(figsize=(9.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    kind = uncertainty.get("std", "raw")
    ax = fig.add_subplot(1, 2, 1)
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="calibrated")
    ax.plot(uncertainty["coverage_expected"], uncertainty["coverage_observed"], "o-", color="#1f5fd1", ms=3,
            label=f"{kind} std (ECE {uncertainty.get('ece', float('nan')):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("expected coverage p")
    ax.set_ylabel("share of joint errors inside the p-region")
    ax.legend(loc="upper left", fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    std, err = uncertainty["curve_std_mm"], uncertainty["curve_rms_error_mm"]
    top = max(max(std), max(err)) * 1.05
    ax.plot([0, top], [0, top], color="#999999", lw=1, ls="--")
    ax.plot(std, err, "o-", color="#d6282b", ms=3, label=f"Spearman {uncertainty.get('spearman', float('nan')):.3f}")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(f"mean {kind} std per bin (mm)")
    ax.set_ylabel("RMS joint error per bin (mm)")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_calibration_plot(path: str | os.PathLike, uncertainty: dict[str, Any], title: str = "") -> str:
    """Write the reliability diagram as an image (PNG, or any format matplotlib knows by the suffix)."""
    fig = calibration_figure(uncertainty, title)
    fig.savefig(os.fspath(path))
    return os.fspath(path)
