"""The ``lift`` command: 3D poses from a file of 2D keypoints (or heatmaps), written as npz, JSON, BVH, renders."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Optional

from ._common import CliError, FORMAT_CHOICES, _device, _load_lifter


def _read_input(path: str, fmt: Optional[str]) -> tuple[list, Optional[tuple[float, float]], str]:
    """(tracks, image size recorded in the input or None, kind) for ``lift``."""
    from ..data import readers

    if not os.path.exists(path):
        raise CliError(f"no such file or folder: {path!r}")
    kp_fmt = FORMAT_CHOICES[fmt] if fmt else None
    recorded = None
    try:
        if os.path.isdir(path):
            return [readers.read_openpose_folder(path, fmt=kp_fmt or "body25")], None, "openpose"
        ext = os.path.splitext(path)[1].lower()
        if ext == ".json":
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CliError(f"cannot read {path!r} as JSON: {exc}") from None
            except RecursionError:
                raise CliError(f"cannot read {path!r} as JSON: it is nested too deeply") from None
            if isinstance(doc, dict) and "people" in doc:
                raise CliError(f"{path!r} is a single OpenPose frame: pass the folder holding the per-frame "
                               "*_keypoints.json files")
            if isinstance(doc, dict) and isinstance(doc.get("images"), list):
                sizes = {(float(im["width"]), float(im["height"])) for im in doc["images"]
                         if isinstance(im, dict) and "width" in im and "height" in im}
                if len(sizes) == 1:
                    recorded = sizes.pop()
            return readers.read_coco_json(path, fmt=kp_fmt), recorded, "coco"
        if ext in (".npz", ".npy", ".csv"):
            if kp_fmt is None:
                raise CliError(f"--format is required for {ext} input: the layout cannot be told from the array "
                               "(17 keypoints may be COCO or H36M, 25 BODY_25 or BODY_25B)")
            if ext == ".npz":
                from ..data.safe_npz import load_npz

                content = load_npz(path)
                if "image_size" in content:
                    recorded = tuple(float(v) for v in content["image_size"])
                arrays = [k for k in content if k != "image_size"]
                key = arrays[0] if len(arrays) == 1 else None
                return [readers.read_keypoint_array(path, kp_fmt, key=key)], recorded, "array"
            return [readers.read_keypoint_array(path, kp_fmt)], None, "array"
    except CliError:
        raise
    except (ValueError, TypeError, FileNotFoundError, OSError, KeyError) as exc:
        raise CliError(str(exc)) from None
    raise CliError(f"unsupported input {path!r}: expected a COCO-style .json file, an OpenPose JSON folder, or "
                   ".npz/.npy/.csv keypoints")


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "track"


def _cmd_lift(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.readers import interpolate_missing
    from ..data.sequence import PoseSequence
    from ..export import LiftedTrack, write_bvh, write_json, write_npz

    maps = None
    if args.heatmaps:
        from ..data.heatmap_formats import read_heatmap_file

        try:
            maps = read_heatmap_file(args.heatmaps, args.heatmap_layout)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(f"--heatmaps: {exc}") from None
    if args.input is None:
        if maps is None:
            raise CliError("lift: give INPUT (a keypoint file or folder) or --heatmaps FILE")
        from ..data.readers import Track

        tracks = [Track(None, tuple(range(maps.keypoints.shape[0])), maps.keypoints.astype(np.float64),
                        maps.confidence.astype(np.float64))]
        recorded, kind = maps.image_size, "heatmaps"
    else:
        tracks, recorded, kind = _read_input(args.input, args.format)
        if maps is not None and (len(tracks) != 1 or tracks[0].num_frames != maps.heatmaps.shape[0]):
            raise CliError(f"--heatmaps: {args.heatmaps!r} holds one person over {maps.heatmaps.shape[0]} frames; "
                           f"{args.input!r} has {len(tracks)} track(s) of {[t.num_frames for t in tracks]} frames "
                           "(they must be the same person and frames)")
        recorded = recorded if recorded is not None else (maps.image_size if maps is not None else None)
    image_size = tuple(args.image_size) if args.image_size else recorded
    if image_size is None:
        what = {"coco": "a COCO results JSON without an 'images' list", "openpose": "OpenPose JSON files",
                "array": "this array file (no 'image_size' array in it)",
                "heatmaps": "this heatmap file (no 'image_size' array in it)"}[kind]
        raise CliError(f"--image-size W H is required: {what} does not record the image size")
    camera = None
    if args.camera:
        from ..data.camera import Camera

        try:
            camera = Camera(*args.camera)
        except (TypeError, ValueError) as exc:
            raise CliError(f"--camera: {exc}") from None
    device = _device(args.device)
    lifter = _load_lifter(args.checkpoint, device)

    src = Path((args.input or args.heatmaps).rstrip("/\\"))
    out = Path(args.out) if args.out else src.parent / f"{src.stem if src.is_file() else src.name}_3d"
    out.mkdir(parents=True, exist_ok=True)
    stem = _safe_name(src.stem if src.is_file() else src.name)
    written = 0
    for track in tracks:
        kp, conf = track.keypoints, track.confidence
        finite = kp[np.isfinite(kp)]
        if finite.size and np.abs(finite).max() <= 2.0 and min(image_size) > 4:
            # normalised [0, 1] coordinates (MediaPipe's, for one): pixels are what the model reads
            kp = kp * np.asarray(image_size, np.float64)
            print(f"note: {track.track_id if track.track_id is not None else stem}: keypoints look normalised "
                  "to [0, 1]; scaled by the image size to pixels", flush=True)
        if args.fill_gaps:
            kp, conf = interpolate_missing(kp, conf, args.fill_gaps)
        keep = (conf > 0).sum(-1) >= args.min_joints
        name = stem if track.track_id is None else f"{stem}_track{_safe_name(str(track.track_id))}"
        if not keep.any():
            print(f"{name}: skipped: no frame with at least {args.min_joints} detected joints", flush=True)
            continue
        idx = np.flatnonzero(keep)
        # each run of consecutive kept frames is lifted as its own sequence: a gap is never joined over (a video
        # model's windows, and the hypotheses' shared draws, would otherwise run across it)
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        t_all = kp.shape[0]
        mean = samples = std = calibrated = trajectory = None
        seconds = 0.0
        for run in runs:
            try:
                seq = PoseSequence(kp[run], image_size=image_size, confidence=conf[run],
                                   heatmaps=None if maps is None else maps.heatmaps[run],
                                   heatmap_boxes=None if maps is None else maps.boxes[run], camera=camera)
            except (ValueError, TypeError) as exc:
                raise CliError(f"{name}: {exc} (is --image-size right, and are the keypoints in pixels?)") from None
            t0 = time.perf_counter()
            res = lifter.predict(seq, sampler=args.sampler, num_samples=args.num_samples,
                                 steps=args.steps if args.sampler == "ddim" else None, batch_size=args.batch_size,
                                 smoothing=args.smoothing)
            seconds += time.perf_counter() - t0
            if mean is None:
                n = res.samples.shape[0]
                mean = np.full((t_all, 17, 3), np.nan, np.float32)
                samples = np.full((n, t_all, 17, 3), np.nan, np.float32)
                std = np.full((t_all, 17), np.nan, np.float32)
                if res.calibrated_std is not None:
                    calibrated = np.full((t_all, 17), np.nan, np.float32)
                if res.trajectory is not None:
                    trajectory = np.full((t_all, 3), np.nan, np.float32)
            mean[run], samples[:, run], std[run] = res.poses_3d, res.samples, res.std
            if calibrated is not None:
                calibrated[run] = res.calibrated_std
            if trajectory is not None:
                trajectory[run] = res.trajectory
        meta = {"source": os.fspath(args.input or args.heatmaps), "track_id": track.track_id, "checkpoint": args.checkpoint,
                "keypoint_format": FORMAT_CHOICES.get(args.format or "", "auto"), "sampler": args.sampler,
                "num_samples": int(n), "steps": args.steps if args.sampler == "ddim" else None,
                "min_joints": args.min_joints, "fill_gaps": args.fill_gaps,
                "heatmaps": None if maps is None else os.fspath(args.heatmaps)}
        lifted = LiftedTrack(mean, samples, std, list(track.frame_ids), keep, kp, conf, image_size, meta,
                             calibrated_std=calibrated, trajectory=trajectory)
        write_npz(out / f"{name}.npz", lifted)
        write_json(out / f"{name}.json", lifted)
        msg = (f"{name}: lifted {len(idx)} of {t_all} frames in {seconds:.2f} s -> {out / name}.npz, "
               f"{out / name}.json")
        if args.bvh:
            err = write_bvh(out / f"{name}.bvh", mean, fps=args.fps, root_positions=trajectory)  # fills its gaps
            msg += f", {out / name}.bvh (joints within {err * 1000:.1f} mm)"
        print(msg, flush=True)
        if args.render:
            _render_track(out, name, kp, conf, mean, samples, std, image_size, idx, args)
        written += 1
    if not written:
        raise CliError(f"no track in {args.input!r} has a frame with at least {args.min_joints} detected joints "
                       "(empty detections)")
    print(f"output folder: {out.resolve()}", flush=True)
    return 0


def _render_track(out: Path, name: str, kp, conf, mean, samples, std, image_size, idx, args) -> None:
    import numpy as np

    from ..viz.render import render_animation, save_pose_png

    t = int(idx[len(idx) // 2])
    save_pose_png(out / f"{name}.png", kp[t], mean[t], samples[:, t], std[t], image_size, confidence=conf[t],
                  title=f"{name}: frame {t}")
    paths = [out / f"{name}.gif"] + ([out / f"{name}.mp4"] if args.mp4 else [])
    stride = max(1, int(np.ceil(len(idx) / args.render_frames)))
    status = render_animation(paths, kp, mean, samples, std, image_size, fps=args.fps / stride, stride=stride,
                              max_frames=args.render_frames, progress=not args.no_progress, confidence=conf,
                              title=name)
    shown = [f"{out / name}.png"] + [f"{p} ({s})" if s != "ok" else str(p) for p, s in status.items()]
    print(f"{name}: rendered " + ", ".join(shown), flush=True)
