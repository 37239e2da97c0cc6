"""Readers for 2D keypoints from detectors: COCO-style JSON results, OpenPose JSON folders, plain npz/npy/csv.

Every reader returns ``Track`` objects in the H36M-17 order (converted by ``keypoint_formats``) on a frame
timeline: frames where the person was not detected are *masked* (NaN keypoints, confidence 0), never filled
in. ``interpolate_missing`` fills short gaps linearly when asked.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .keypoint_formats import FORMATS, convert_keypoints, get_format

__all__ = ["Track", "read_coco_json", "read_openpose_folder", "read_keypoint_array", "interpolate_missing"]

_FORMAT_BY_COUNT = {17: "coco", 26: "halpe26", 33: "blazepose33"}   # 25 is ambiguous: body25 or body25b
MAX_FRAMES = 1_000_000   # frames one track may have (a COCO file's integer image ids may not span more)


@dataclass(frozen=True)
class Track:
    """One person over a frame timeline.

    track_id: the detector's track id (None when the source has none).
    frame_ids: one id per frame (image ids, file stems or 0..T-1).
    keypoints: [T, 17, 2] H36M-17 order, source units (pixels), NaN where missing.
    confidence: [T, 17] in [0, 1], 0 where missing.
    """

    track_id: Any
    frame_ids: tuple
    keypoints: np.ndarray
    confidence: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def detected(self) -> np.ndarray:
        """[T] bool: frames where at least one joint was detected."""
        return (self.confidence > 0).any(axis=-1)

    def to_sequence(self, image_size: tuple[float, float]):
        """A ``PoseSequence`` with these keypoints and confidences (``image_size`` = (w, h) pixels)."""
        from .sequence import PoseSequence

        return PoseSequence(keypoints_2d=self.keypoints, confidence=self.confidence, image_size=image_size)


def _natural_key(value) -> tuple:
    parts = re.split(r"(\d+)", str(value))
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _read_json(path: str, fn: str) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{fn}: no such file: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{fn}: cannot read {path!r} as JSON: {exc}") from exc
    except RecursionError:
        raise ValueError(f"{fn}: cannot read {path!r} as JSON: it is nested too deeply") from None


def _resolve_format(fmt, num_keypoints: int, fn: str):
    if fmt is None:
        if num_keypoints not in _FORMAT_BY_COUNT:
            raise ValueError(f"{fn}: cannot tell the keypoint format from {num_keypoints} keypoints; pass fmt= one "
                             f"of {sorted(FORMATS)}")
        fmt = _FORMAT_BY_COUNT[num_keypoints]
    spec = get_format(fmt)
    if spec.num_keypoints != num_keypoints:
        raise ValueError(f"{fn}: format {spec.name!r} has {spec.num_keypoints} keypoints, the file has {num_keypoints}")
    return spec


def _flat_keypoints(values, where: str, fn: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{fn}: {where}: keypoints must be a flat list of numbers") from exc
    if arr.size == 0 or arr.size % 3:
        raise ValueError(f"{fn}: {where}: keypoints must be a flat list of K*3 numbers (x, y, score), "
                         f"got {arr.size}")
    return arr.reshape(-1, 3)


def read_coco_json(path: str | os.PathLike, fmt: str | None = None, frame_ids: Sequence | None = None,
                   min_score: float = 0.0) -> list[Track]:
    """Read COCO-style keypoint results, grouped per track.

    Args:
        path: a JSON list of ``{image_id, category_id, keypoints [K*3], score, track_id (optional)}`` (the
            COCO results format, AlphaPose, MMPose); a dict with an ``annotations`` list is accepted too.
            Only person detections (``category_id`` 1 or absent) are kept.
        fmt: keypoint format; None guesses from K (17 -> coco, 26 -> halpe26, 33 -> blazepose33).
        frame_ids: the image ids in frame order. Default: ``min..max`` when the ids are integers (so frames
            with no detection at all still get a slot), else the sorted distinct ids (natural order).
        min_score: detections with a lower ``score`` are dropped.

    Returns:
        one ``Track`` per track id, sorted by id; without track ids, a single track keeping the highest-scoring
        detection per frame. Frames without a detection are masked (NaN, confidence 0).
    """
    fn = "read_coco_json"
    path = os.fspath(path)
    data = _read_json(path, fn)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise ValueError(f"{fn}: {path!r} must hold a list of detections, got {type(data).__name__}")
    dets = []
    for i, det in enumerate(data):
        if not isinstance(det, dict) or "image_id" not in det or "keypoints" not in det:
            raise ValueError(f"{fn}: {path!r} entry {i} must be a dict with 'image_id' and 'keypoints'")
        image_id, score, track = det["image_id"], det.get("score", 1.0), det.get("track_id")
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise ValueError(f"{fn}: {path!r} entry {i}: image_id must be an int or a string, got {image_id!r}")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
            raise ValueError(f"{fn}: {path!r} entry {i}: score must be a number, got {score!r}")
        if track is not None and (isinstance(track, bool) or not isinstance(track, (int, str))):
            raise ValueError(f"{fn}: {path!r} entry {i}: track_id must be an int or a string, got {track!r}")
        if det.get("category_id", 1) != 1 or float(score) < min_score:
            continue
        dets.append(det)
    if not dets:
        raise ValueError(f"{fn}: {path!r} has no person detections (with score >= {min_score})")
    has_track = ["track_id" in d for d in dets]
    if any(has_track) and not all(has_track):
        raise ValueError(f"{fn}: {path!r} mixes detections with and without 'track_id'")
    kps = [_flat_keypoints(d["keypoints"], f"entry image_id={d['image_id']!r}", fn) for d in dets]
    counts = {k.shape[0] for k in kps}
    if len(counts) != 1:
        raise ValueError(f"{fn}: {path!r} mixes keypoint counts {sorted(counts)}")
    spec = _resolve_format(fmt, counts.pop(), fn)

    if frame_ids is None:
        ids = {d["image_id"] for d in dets}
        if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            span = max(ids) - min(ids) + 1
            if span > MAX_FRAMES:
                raise ValueError(f"{fn}: {path!r} has integer image ids spanning {span} frames ({min(ids)} to "
                                 f"{max(ids)}); at most {MAX_FRAMES}: pass frame_ids= to give the frame order")
            frame_ids = list(range(min(ids), max(ids) + 1))
        else:
            frame_ids = sorted(ids, key=_natural_key)
    elif isinstance(frame_ids, (str, bytes)) or not hasattr(frame_ids, "__iter__"):
        raise TypeError(f"{fn}: frame_ids must be a sequence of image ids, got {type(frame_ids).__name__}")
    else:
        frame_ids = list(frame_ids)
        if len(frame_ids) > MAX_FRAMES:
            raise ValueError(f"{fn}: frame_ids has {len(frame_ids)} entries; at most {MAX_FRAMES}")
    frame_index = {fid: t for t, fid in enumerate(frame_ids)}
    unknown = {d["image_id"] for d in dets} - set(frame_index)
    if unknown:
        raise ValueError(f"{fn}: image ids {sorted(unknown, key=_natural_key)[:5]} are not in frame_ids")

    best: dict[Any, dict[int, tuple[float, np.ndarray]]] = {}
    for det, kp in zip(dets, kps):
        track = det.get("track_id")
        t = frame_index[det["image_id"]]
        score = float(det.get("score", 1.0))
        slot = best.setdefault(track, {})
        if t not in slot or score > slot[t][0]:
            slot[t] = (score, kp)
    tracks = []
    for track in sorted(best, key=_natural_key):
        arr = np.full((len(frame_ids), spec.num_keypoints, 3), np.nan)
        arr[..., 2] = 0.0
        for t, (_, kp) in best[track].items():
            arr[t] = kp
        xy, conf = convert_keypoints(arr, spec)
        tracks.append(Track(track_id=track, frame_ids=tuple(frame_ids), keypoints=xy, confidence=conf))
    return tracks


def read_openpose_folder(path: str | os.PathLike, fmt: str = "body25", person: str | int = "most_confident"
                         ) -> Track:
    """Read an OpenPose ``--write_json`` folder: one ``*_keypoints.json`` per frame (natural file-name order).

    Args:
        path: the folder.
        fmt: ``"body25"`` (default), ``"body25b"`` or ``"coco"`` (OpenPose's COCO-18 model is not supported).
        person: ``"most_confident"`` (the person with the largest summed confidence in each frame; OpenPose
            does not track) or an index into ``people``.

    Returns:
        a ``Track`` with ``frame_ids`` = file stems; frames with no (such) person are masked.
    """
    fn = "read_openpose_folder"
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{fn}: not a folder: {path!r}")
    files = sorted((f for f in os.listdir(path) if f.endswith(".json")), key=_natural_key)
    if not files:
        raise ValueError(f"{fn}: no .json files in {path!r}")
    spec = get_format(fmt)
    if not (person == "most_confident" or (isinstance(person, int) and not isinstance(person, bool) and person >= 0)):
        raise ValueError(f"{fn}: person must be 'most_confident' or a non-negative int, got {person!r}")
    arr = np.full((len(files), spec.num_keypoints, 3), np.nan)
    arr[..., 2] = 0.0
    for t, name in enumerate(files):
        frame = _read_json(os.path.join(path, name), fn)
        people = frame.get("people") if isinstance(frame, dict) else None
        if not isinstance(people, list):
            raise ValueError(f"{fn}: {name!r} has no 'people' list (not an OpenPose JSON file)")
        candidates = []
        for p in people:
            if not isinstance(p, dict) or "pose_keypoints_2d" not in p:
                raise ValueError(f"{fn}: {name!r}: every person needs 'pose_keypoints_2d'")
            kp = _flat_keypoints(p["pose_keypoints_2d"], name, fn)
            if kp.shape[0] != spec.num_keypoints:
                raise ValueError(f"{fn}: {name!r} has {kp.shape[0]} keypoints per person, format {spec.name!r} "
                                 f"has {spec.num_keypoints}")
            candidates.append(kp)
        if person == "most_confident":
            if candidates:
                arr[t] = max(candidates, key=lambda k: float(np.nansum(k[:, 2])))
        elif person < len(candidates):
            arr[t] = candidates[person]
    # OpenPose writes (0, 0, 0) for undetected keypoints: confidence 0 marks them missing in convert_keypoints.
    xy, conf = convert_keypoints(arr, spec)
    if not (conf > 0).any():
        raise ValueError(f"{fn}: no person detected in any of the {len(files)} frames of {path!r}")
    return Track(track_id=None, frame_ids=tuple(os.path.splitext(f)[0] for f in files), keypoints=xy,
                 confidence=conf)


def _read_csv(path: str, fn: str) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{fn}: cannot read {path!r}: {exc}") from exc
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            if i == 0:          # a header row
                continue
            raise ValueError(f"{fn}: {path!r} line {i + 1} is not numeric: {line[:60]!r}") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"{fn}: {path!r} must hold rows of equal length (one frame per row)")
    return np.asarray(rows)


def read_keypoint_array(path: str | os.PathLike, fmt: str, key: str | None = None) -> Track:
    """Read keypoints [T, K, 2|3] from ``.npz`` / ``.npy`` or ``.csv`` and convert them to H36M-17.

    Args:
        path: ``.npz`` (the array under ``key``, or the only array, or ``'keypoints'``; read with the safe
            loader), ``.npy`` (no pickles), or ``.csv`` with one frame per row of K*2 or K*3 values
            (x0, y0[, c0], x1, ...), an optional header row.
        fmt: the keypoint format (``keypoint_formats.FORMATS``), which fixes K.
        key: array name inside an ``.npz``.
    """
    fn = "read_keypoint_array"
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{fn}: no such file: {path!r}")
    spec = get_format(fmt)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        from .safe_npz import load_npz

        content = load_npz(path)
        if key is None:
            key = next(iter(content)) if len(content) == 1 else "keypoints"
        if key not in content:
            raise ValueError(f"{fn}: {path!r} has no array {key!r}; keys: {sorted(content)} (pass key=)")
        arr = np.asarray(content[key], dtype=np.float64)
    elif ext == ".npy":
        try:
            # memory-mapped first: a header that promises more data than the file holds (a 200-byte file
            # claiming 8 TiB) is a ValueError from mmap, not an allocation; the copy below is the file's size
            arr = np.array(np.load(path, mmap_mode="r", allow_pickle=False), dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"{fn}: cannot read {path!r} as a numeric .npy array: {exc}") from exc
    elif ext == ".csv":
        flat = _read_csv(path, fn)
        k = spec.num_keypoints
        if flat.shape[1] not in (2 * k, 3 * k):
            raise ValueError(f"{fn}: {path!r} rows have {flat.shape[1]} values; format {spec.name!r} needs "
                             f"{2 * k} (x, y) or {3 * k} (x, y, confidence)")
        arr = flat.reshape(flat.shape[0], k, -1)
    else:
        raise ValueError(f"{fn}: unsupported file type {ext!r} for {path!r}; expected .npz, .npy or .csv")
    if arr.ndim != 3:
        raise ValueError(f"{fn}: {path!r} must hold keypoints [T, K, 2|3], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{fn}: {path!r} holds no frames")
    xy, conf = convert_keypoints(arr, spec)
    return Track(track_id=None, frame_ids=tuple(range(arr.shape[0])), keypoints=xy, confidence=conf)


def interpolate_missing(keypoints, confidence, max_gap: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Fill gaps of missing joints (confidence 0) by linear interpolation in time, when asked.

    Args:
        keypoints: [T, J, 2]; confidence: [T, J].
        max_gap: longest run of missing frames to fill (None: any length). Gaps before the first or after the
            last detection of a joint are never extrapolated and stay missing.

    Returns:
        (keypoints, confidence) copies; a filled joint gets the smaller confidence of the two detections it is
        interpolated between.
    """
    fn = "interpolate_missing"
    kp = np.array(keypoints, dtype=np.float64)
    conf = np.array(confidence, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[-1] != 2 or conf.shape != kp.shape[:2]:
        raise ValueError(f"{fn}: keypoints must be [T, J, 2] and confidence [T, J], got {kp.shape} and {conf.shape}")
    if max_gap is not None and (isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer))
                                or max_gap < 0):
        raise ValueError(f"{fn}: max_gap must be a non-negative int or None, got {max_gap!r}")
    present = (conf > 0) & np.isfinite(kp).all(axis=-1)
    for j in range(kp.shape[1]):
        idx = np.flatnonzero(present[:, j])
        for a, b in zip(idx[:-1], idx[1:]):
            gap = b - a - 1
            if gap == 0 or (max_gap is not None and gap > max_gap):
                continue
            w = (np.arange(a + 1, b) - a) / (b - a)
            kp[a + 1:b, j] = (1 - w)[:, None] * kp[a, j] + w[:, None] * kp[b, j]
            conf[a + 1:b, j] = min(conf[a, j], conf[b, j])
    return kp, conf
