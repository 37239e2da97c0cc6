"""Reports as text in the paper's layouts: Tables 1 / 3 (Human3.6M, per action) and Table 2 (MPI-INF-3DHP)."""
from __future__ import annotations

from typing import Any

from ..data.h36m import ACTIONS
from .core import AVERAGE_LABELS, METRIC_LABELS
from .h36m import PAPER_ACTION_ABBREVIATIONS

__all__ = ["format_report"]


def _value(v, width: int, digits: int = 1) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def _settings_line(report: dict[str, Any]) -> str:
    s = report.get("settings", {})
    parts = [f"sampler {s.get('sampler')}", f"N={s.get('num_samples')}"]
    if s.get("steps") is not None:
        parts.append(f"steps={s.get('steps')}")
    parts.append(f"flip TTA {'on' if s.get('flip_tta') else 'off'}")
    if s.get("num_hypotheses", 0) > 1:
        parts.append(f"{s['num_hypotheses']} hypotheses per frame")
    return ", ".join(parts)


def _format_grouped(report: dict[str, Any]) -> str:
    by_action = report.get("grouping") == "action"
    if by_action:
        columns = list(ACTIONS)
        headers = [PAPER_ACTION_ABBREVIATIONS[a] for a in columns]
    else:
        columns = list(report["groups"])
        headers = [str(g) for g in columns]
    width = max(6, max(len(h) for h in headers) + 1)
    label_w = max(len(METRIC_LABELS.get(m, m)) for m in report["metrics"] + ["Frames"]) + 6
    head = f"{'(mm)':<{label_w}}" + "".join(f"{h:>{width}}" for h in headers) + f" |{'Avg':>8}{'Frame':>8}"
    lines = []
    if report.get("protocol") == "h36m":
        ds = report.get("dataset", {})
        lines.append(f"Human3.6M, subjects {' '.join(ds.get('subjects', []))}, downsample {ds.get('downsample', 1)}: "
                     f"root-relative errors in mm; {_settings_line(report)}")
    else:
        lines.append(f"Errors in mm, grouped by {report.get('grouping')}; {_settings_line(report)}")
    lines += [head, "-" * len(head)]
    for m in report["metrics"]:
        values = report["per_group"][m]
        row = f"{METRIC_LABELS.get(m, m):<{label_w}}" + "".join(_value(values.get(c), width) for c in columns)
        row += f" |{_value(report['action_wise'].get(m), 8)}{_value(report['frame_wise'].get(m), 8)}"
        lines.append(row)
    frames = report["frames"]
    lines.append(f"{'Frames':<{label_w}}" + "".join(f"{frames[c]:>{width}}" if c in frames else f"{'-':>{width}}"
                                                   for c in columns) + f" |{'':>8}{report['total_frames']:>8}")
    avg_what = "the per-action values" if by_action else "the per-group values"
    lines.append(f"Avg = {AVERAGE_LABELS['action_wise']}: unweighted mean of {avg_what}; "
                 f"Frame = {AVERAGE_LABELS['frame_wise']}: mean over all {report['total_frames']} frames")
    if by_action and report.get("missing_actions"):
        lines.append(f"'-' = not evaluated: {', '.join(report['missing_actions'])}; Avg is over the "
                     f"{len(report['groups'])} evaluated actions, not the paper's 15")
    if "uncertainty" in report:
        lines.append(uncertainty_line(report["uncertainty"]))
    for note in report.get("notes", []):
        if by_action and note.startswith("only "):
            continue
        lines.append(f"note: {note}")
    return "\n".join(lines)


def uncertainty_line(u: dict[str, Any]) -> str:
    """One line for ``uncertainty.uncertainty_report`` (with its "std" kind): how far the spread can be trusted."""
    return (f"Uncertainty ({u.get('std', 'raw')} std, non-root joints): Spearman(std, error) {u['spearman']:.3f}; "
            f"within 1 / 2 std {100 * u['within_1std']:.1f} % / {100 * u['within_2std']:.1f} % (calibrated: "
            f"{100 * u['calibrated_within_1std']:.1f} / {100 * u['calibrated_within_2std']:.1f}); ECE {u['ece']:.3f}")


def _format_3dhp(report: dict[str, Any]) -> str:
    cols = [("pck_14", "PCK14"), ("auc_14", "AUC14"), ("pck_all", "PCKall"), ("auc_all", "AUCall"),
            ("mpjpe", "MPJPE")]
    rows = [(s, report["frames"][s], {k: report["per_sequence"][k][s] for k, _ in cols}) for s in report["sequences"]]
    labels = report["average_labels"]
    row_names = {"overall": "All (frame-weighted)", "sequence_mean": "All (mean of seqs)"}
    label_w = max([len(v) for v in row_names.values()] + [len(s) for s in report["sequences"]]) + 2
    head = f"{'Sequence':<{label_w}}{'Frames':>8}" + "".join(f"{h:>9}" for _, h in cols)
    lines = [f"MPI-INF-3DHP test set (Table 2): valid frames only, root-relative; {_settings_line(report)}",
             head, "-" * len(head)]
    for name, n, vals in rows:
        lines.append(f"{name:<{label_w}}{n:>8}" + "".join(_value(vals[k], 9) for k, _ in cols))
    lines.append("-" * len(head))
    for key in ("overall", "sequence_mean"):
        n = report["total_frames"] if key == "overall" else len(report["sequences"])
        unit = "" if key == "overall" else " seq"
        lines.append(f"{row_names[key]:<{label_w}}{str(n) + unit:>8}"
                     + "".join(_value(report[key][k], 9) for k, _ in cols))
    lines.append(f"{row_names['overall']} = {labels['overall']}; {row_names['sequence_mean']} = "
                 f"{labels['sequence_mean']}")
    lines.append("PCK = PCK@150mm (%), AUC = area under PCK over 0..150 mm, 31 thresholds (%), MPJPE in mm; "
                 "14 = official 14-joint grouping, all = all 17 joints")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    """The report as a text table.

    Human3.6M reports (``evaluate_h36m``, or ``evaluate_sequences(per="action")``): the layout of the paper's
    Tables 1 and 3 -- one column per action in the paper's order (Dir, Disc, Eat, Greet, Phone, Photo, Pose,
    Pur, Sit, SitD, Smoke, Wait, WalkD, Walk, WalkT), then "Avg" (the action-wise average: the paper's number)
    and "Frame" (the frame-wise average), one row per metric (MPJPE, P-MPJPE, N-MPJPE, MPJVE, and P-Best,
    J-Best, P-Agg, J-Agg when there are several hypotheses) and a row of frame counts. Actions not evaluated
    show "-". MPI-INF-3DHP reports (``evaluate_3dhp``): Table 2's PCK, AUC and MPJPE, one row per test sequence,
    then the frame-weighted overall row and the unweighted mean of sequences, each labelled.
    """
    if not isinstance(report, dict) or "protocol" not in report:
        raise TypeError("format_report: expected a report dict from evaluate_h36m, evaluate_3dhp or "
                        "evaluate_sequences")
    if report["protocol"] == "3dhp":
        return _format_3dhp(report)
    return _format_grouped(report)
