"""Writing lifted poses to track files: npz and JSON (mean, samples, std, calibrated std, trajectory, joint names,
units), and reading the JSON back.

Units everywhere: metres, root-relative, camera frame (x right, y down, z forward), joints in the H36M-17 order
of ``data.skeleton``. Frames in which the person was not detected hold NaN (npz) / null (JSON).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional, Sequence

import numpy as np

from ..data.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

__all__ = ["UNITS", "FORMAT_TAG", "LiftedTrack", "write_npz", "write_json", "read_json"]

UNITS = "metres, root-relative, camera frame (x right, y down, z forward)"
FORMAT_TAG = "diffpose_fast.lift/1"


@dataclasses.dataclass
class LiftedTrack:
    """One person's lifted motion with what is needed to write it.

    mean [T, 17, 3], samples [N, T, 17, 3], std [T, 17]: metres (NaN in frames that were not lifted).
    calibrated_std [T, 17] metres or None: ``LiftResult.calibrated_std`` (about 61 % of errors fall within it).
    trajectory [T, 3] metres or None: ``LiftResult.trajectory``, the root's position in the camera frame.
    frame_ids: T ids (image ids, file stems or 0..T-1); lifted [T] bool: frames that were lifted.
    keypoints_2d [T, 17, 2] px (NaN where missing) and confidence [T, 17]: the input, H36M order.
    meta: free-form JSON-serialisable settings (checkpoint, sampler, steps, source file, ...).
    """

    mean: np.ndarray
    samples: np.ndarray
    std: np.ndarray
    frame_ids: Sequence[Any]
    lifted: np.ndarray
    keypoints_2d: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    image_size: Optional[tuple[float, float]] = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    calibrated_std: Optional[np.ndarray] = None
    trajectory: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        t = np.asarray(self.mean).shape[0]
        checks = (("mean", self.mean, (t, NUM_JOINTS, 3)), ("std", self.std, (t, NUM_JOINTS)),
                  ("lifted", self.lifted, (t,)))
        if self.calibrated_std is not None:
            checks += (("calibrated_std", self.calibrated_std, (t, NUM_JOINTS)),)
        if self.trajectory is not None:
            checks += (("trajectory", self.trajectory, (t, 3)),)
        for name, arr, shape in checks:
            if np.shape(arr) != shape:
                raise ValueError(f"LiftedTrack: {name} must have shape {list(shape)}, got {list(np.shape(arr))}")
        s = np.shape(self.samples)
        if len(s) != 4 or s[1:] != (t, NUM_JOINTS, 3):
            raise ValueError(f"LiftedTrack: samples must have shape [N, {t}, {NUM_JOINTS}, 3], got {list(s)}")
        if len(self.frame_ids) != t:
            raise ValueError(f"LiftedTrack: frame_ids must have {t} entries, got {len(self.frame_ids)}")


def _id_text(v) -> str:
    return str(v.item() if isinstance(v, np.generic) else v)


def write_npz(path: str | os.PathLike, track: LiftedTrack) -> None:
    """Write ``track`` as an npz (no pickles: every array is numeric, bool or unicode)."""
    arrays: dict[str, np.ndarray] = {
        "mean": np.asarray(track.mean, np.float32), "samples": np.asarray(track.samples, np.float32),
        "std": np.asarray(track.std, np.float32), "lifted": np.asarray(track.lifted, bool),
        "frame_ids": np.array([_id_text(f) for f in track.frame_ids], dtype=str),
        "joint_names": np.array(JOINT_NAMES, dtype=str), "parents": np.array(PARENTS, dtype=np.int64),
        "units": np.array(UNITS), "meta_json": np.array(json.dumps(track.meta, default=str)),
    }
    if track.calibrated_std is not None:
        arrays["calibrated_std"] = np.asarray(track.calibrated_std, np.float32)
    if track.trajectory is not None:
        arrays["trajectory"] = np.asarray(track.trajectory, np.float32)
    if track.keypoints_2d is not None:
        arrays["keypoints_2d"] = np.asarray(track.keypoints_2d, np.float32)
    if track.confidence is not None:
        arrays["confidence"] = np.asarray(track.confidence, np.float32)
    if track.image_size is not None:
        arrays["image_size"] = np.asarray(track.image_size, np.float64)
    np.savez_compressed(os.fspath(path), **arrays)


def _nested(arr: np.ndarray, decimals: int) -> Any:
    """Nested lists with NaN -> None, rounded (JSON has no NaN)."""
    a = np.round(np.asarray(arr, np.float64), decimals)
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()


def write_json(path: str | os.PathLike, track: LiftedTrack, decimals: int = 5) -> None:
    """Write ``track`` as JSON; values rounded to ``decimals`` (5: 10 micrometres), NaN written as null."""
    doc = {
        "format": FORMAT_TAG, "units": UNITS, "joint_names": list(JOINT_NAMES), "parents": list(PARENTS),
        "num_frames": int(np.shape(track.mean)[0]), "num_samples": int(np.shape(track.samples)[0]),
        "frame_ids": [f.item() if isinstance(f, np.generic) else f for f in track.frame_ids],
        "lifted": [bool(v) for v in np.asarray(track.lifted)],
        "image_size": None if track.image_size is None else [float(v) for v in track.image_size],
        "meta": track.meta,
        "mean": _nested(track.mean, decimals), "std": _nested(track.std, decimals),
        "samples": _nested(track.samples, decimals),
    }
    if track.calibrated_std is not None:
        doc["calibrated_std"] = _nested(track.calibrated_std, decimals)
    if track.trajectory is not None:
        doc["trajectory"] = _nested(track.trajectory, decimals)
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        json.dump(doc, f, default=str)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file from ``write_json``: "mean", "samples", "std" (and "calibrated_std", "trajectory" when
    written) become float64 arrays (null -> NaN)."""
    try:
        with open(os.fspath(path), encoding="utf-8") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        why = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(f"read_json: cannot read {os.fspath(path)!r} as JSON: {why}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
        raise ValueError(f"read_json: {os.fspath(path)!r} is not a {FORMAT_TAG} file")
    for key in ("mean", "samples", "std"):
        if key not in doc:
            raise ValueError(f"read_json: {os.fspath(path)!r} has no {key!r} (a {FORMAT_TAG} file has mean, "
                             "samples and std)")
        try:
            doc[key] = np.array(doc[key], dtype=np.float64)  # None -> nan with dtype float
        except (TypeError, ValueError) as exc:
            raise ValueError(f"read_json: {os.fspath(path)!r}: {key!r} is not an array of numbers ({exc})") from None
    for key in ("calibrated_std", "trajectory"):
        if doc.get(key) is not None:
            try:
                doc[key] = np.array(doc[key], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"read_json: {os.fspath(path)!r}: {key!r} is not an array of numbers "
                                 f"({exc})") from None
    return doc
