"""The ``diffpose-fast`` command line: demo, lift, train, evaluate, bench, info.

    diffpose-fast demo [--out DIR] [--quick]                 train a small model on built-in data, lift, draw
    diffpose-fast lift INPUT --checkpoint DIR [...]          3D poses from your 2D keypoints (npz, JSON, BVH)
    diffpose-fast train --data synthetic|h36m|3dhp --out DIR [--config cfg.yaml] [...]
    diffpose-fast evaluate --checkpoint DIR --data synthetic|h36m|3dhp [...]
    diffpose-fast bench [--device cuda] [...]                predict() frames per second
    diffpose-fast info                                       build, native module, GPU

argparse lives here only: every command turns its namespace into plain arguments of library functions.
Problems with the user's input (unreadable or empty files, a wrong format, a missing option) end with one line
"diffpose-fast <command>: error: ..." on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser", "CliError"]

PROG = "diffpose-fast"
# --format names -> keypoint_formats names
FORMAT_CHOICES = {"coco": "coco", "openpose": "body25", "body25": "body25", "body25b": "body25b",
                  "mediapipe": "blazepose33", "halpe": "halpe26", "h36m": "h36m"}
QUICK_ENV = "DIFFPOSE_FAST_DEMO_QUICK"


class CliError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


# ============================================================================================ parser

def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def _add_sampling(p: argparse.ArgumentParser, default_sampler: str = "ddim") -> None:
    from .config import SAMPLERS

    p.add_argument("--sampler", choices=SAMPLERS, default=default_sampler,
                   help="reverse process: ddim (few steps), ddpm (all K steps of Eq. 8), context (encoder alone); "
                        f"default {default_sampler}")
    p.add_argument("--num-samples", type=_positive_int, default=5, metavar="N", help="hypotheses (default 5)")
    p.add_argument("--steps", type=_positive_int, default=5, metavar="S",
                   help="DDIM steps (default 5; ignored by ddpm and context)")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, or auto (default cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="DiffPose 3D human pose lifting by reverse diffusion (Gong et al., CVPR 2023).",
        epilog="Run 'diffpose-fast <command> --help' for a command's options. Docs: docs/usage.md")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    # ---- demo
    p = sub.add_parser("demo", help="train a small model on built-in synthetic data, lift held-out sequences, "
                                    "print errors and write pictures",
                       description="Generates synthetic motion seen by real Human3.6M cameras, trains a small model, "
                                   "prints MPJPE / P-MPJPE for 'context' and 'ddim', and writes the model, a PNG, "
                                   "a GIF/MP4, npz/JSON/BVH of a held-out sequence and results.json to one folder. "
                                   f"--quick (or {QUICK_ENV}=1) makes it tiny (seconds; numbers meaningless).")
    p.add_argument("--out", default="diffpose_demo", help="output folder (default ./diffpose_demo)")
    p.add_argument("--quick", action="store_true", help="a tiny run to check an installation or for tests")
    p.add_argument("--train-sequences", type=_positive_int, help="training sequences (default 40)")
    p.add_argument("--frames", type=_positive_int, help="frames per training sequence (default 250)")
    p.add_argument("--test-sequences", type=_positive_int, help="held-out sequences (default 4)")
    p.add_argument("--context-steps", type=_non_negative_int, help="stage-1 optimiser steps (default 150)")
    p.add_argument("--diffusion-steps", type=_non_negative_int, help="stage-2 optimiser steps (default 100)")
    p.add_argument("--batch-size", type=_positive_int, help="frames per optimiser step (default 128)")
    p.add_argument("--seed", type=int, help="model seed (default 0)")
    p.add_argument("--no-video", action="store_true", help="skip the GIF/MP4 (the slowest output on a small CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="CPU threads for torch (default 1: the demo model's small matrices ran 3x slower on 2 "
                        "threads than on 1 on a 2-core machine)")
    _add_device(p)

    # ---- lift
    p = sub.add_parser("lift", help="lift your own 2D keypoints to 3D (writes npz + JSON, optionally BVH and renders)",
                       description="INPUT is a COCO-style results JSON (AlphaPose, MMPose, ...; one output per "
                                   "track_id when detections carry one), an OpenPose --write_json folder, or an "
                                   ".npz/.npy/.csv of keypoints [T, K, 2|3]. Outputs per track: <name>.npz and "
                                   "<name>.json with mean [T,17,3], samples [N,T,17,3], std [T,17] in metres, "
                                   "root-relative, camera frame (x right, y down, z forward); H36M-17 joint order.")
    p.add_argument("input", nargs="?", help="COCO-style JSON file, OpenPose JSON folder, or .npz/.npy/.csv "
                                            "(optional with --heatmaps: the keypoints are then read from the maps)")
    p.add_argument("--heatmaps", metavar="FILE",
                   help="a detector's heatmaps (.npz: heatmaps [T,K,Hh,Wh] + boxes [T,4], or RTMPose simcc_x / "
                        "simcc_y + boxes; docs/usage.md 'Heatmaps'): H_K is built from them (the paper's Sec. 4.1) "
                        "instead of the keypoint-confidence Gaussian; one person, the frames of INPUT")
    p.add_argument("--heatmap-layout", choices=("coco17", "halpe26", "h36m17"), default=None,
                   help="keypoint order of the heatmaps (default: the file's 'layout' entry, else coco17)")
    p.add_argument("--checkpoint", required=True, help="model folder (written by 'train', 'demo' or "
                                                       "DiffPoseLifter.save)")
    p.add_argument("--format", choices=sorted(FORMAT_CHOICES),
                   help="keypoint layout: coco (17), halpe (26, AlphaPose), openpose = body25, body25b, "
                        "mediapipe (BlazePose 33), h36m (17, already in the H36M order). Default: told from the "
                        "keypoint count for JSON (17 -> coco, 26 -> halpe, 33 -> mediapipe), body25 for OpenPose "
                        "folders; required for .npz/.npy/.csv")
    p.add_argument("--image-size", type=_positive_float, nargs=2, metavar=("W", "H"),
                   help="image width and height in pixels (required unless the input records it: a COCO JSON "
                        "with an 'images' list, an npz with an 'image_size' array)")
    p.add_argument("--out", default=None, help="output folder (default: <input name>_3d next to the input)")
    p.add_argument("--camera", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="the camera's pinhole intrinsics in pixels: then each output also holds the trajectory "
                        "[T,3] (the pelvis in the camera frame, metres) and the BVH moves through space")
    _add_sampling(p)
    p.add_argument("--min-joints", type=_positive_int, default=8,
                   help="lift a frame only if at least this many of the 17 joints were detected (default 8); "
                        "other frames are written as NaN / null")
    p.add_argument("--fill-gaps", type=_non_negative_int, default=0, metavar="FRAMES",
                   help="interpolate missing joints over gaps of at most this many frames (default 0: off)")
    p.add_argument("--smoothing", type=_non_negative_float, default=None, metavar="FRAMES",
                   help="time constant of the low-pass on the hypotheses' offset from the encoder's pose over each "
                        "run of frames (0: off; default: the model's, on for video models, off for frame models)")
    p.add_argument("--fps", type=_positive_float, default=30.0, help="frame rate for BVH and videos (default 30)")
    p.add_argument("--bvh", action="store_true", help="also write <name>.bvh (centimetres, Y up)")
    p.add_argument("--render", action="store_true", help="also write <name>.png (one frame) and <name>.gif")
    p.add_argument("--mp4", action="store_true", help="with --render: also write <name>.mp4 (bundled ffmpeg)")
    p.add_argument("--render-frames", type=_positive_int, default=150,
                   help="at most this many frames in the animation (default 150)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="frames per forward pass")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_device(p)

    # ---- train
    p = sub.add_parser("train", help="train a model (your mocap in BVH, synthetic data, Human3.6M or 3DHP files)",
                       description="Trains the two stages and saves the model folder to --out (with history.json). "
                                   "--bvh FILE... trains on your motion capture seen by the Human3.6M cameras with "
                                   "detector-like 2D noise (diffpose_fast.data.mocap); --data synthetic needs "
                                   "nothing else; h36m needs --data-3d and --data-2d (VideoPose3D npz files); "
                                   "3dhp needs --train-npz (P-STMO data_train_3dhp.npz).")
    p.add_argument("--data", choices=("synthetic", "h36m", "3dhp", "bvh"),
                   help="the training data (default: bvh with --bvh, else required)")
    p.add_argument("--bvh", nargs="+", metavar="FILE", help="BVH motion capture files to train on")
    p.add_argument("--bvh-fps", type=_positive_float, default=30.0, help="bvh: resample to this rate (default 30)")
    p.add_argument("--bvh-units", choices=("auto", "m", "cm", "mm", "in"), default="auto",
                   help="bvh: length unit of the files (default: from the skeleton's size)")
    p.add_argument("--bvh-up", choices=("y", "z"), default="y", help="bvh: the files' up axis (default y)")
    p.add_argument("--cameras", choices=("h36m", "random"), default="h36m",
                   help="bvh: the four Human3.6M cameras or random cameras around the subject (default h36m)")
    p.add_argument("--views", type=_positive_int, default=1, help="bvh: cameras per 5 s clip (default 1)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--config", help="LifterConfig as .json or .yaml (default: the paper's settings)")
    p.add_argument("--data-3d", help="h36m: data_3d_h36m.npz")
    p.add_argument("--data-2d", help="h36m: data_2d_h36m_gt.npz, data_2d_h36m_cpn_ft_h36m_dbb.npz, ...")
    p.add_argument("--train-npz", help="3dhp: data_train_3dhp.npz")
    p.add_argument("--downsample", type=_positive_int, default=1, help="use every n-th frame (default 1)")
    p.add_argument("--train-sequences", type=_positive_int, default=40, help="synthetic: sequences (default 40)")
    p.add_argument("--frames", type=_positive_int, default=250, help="synthetic: frames each (default 250)")
    p.add_argument("--data-seed", type=_non_negative_int, default=1, help="synthetic: data seed (default 1)")
    p.add_argument("--context-steps", type=_non_negative_int, help="stage-1 steps (default: config epochs)")
    p.add_argument("--diffusion-steps", type=_non_negative_int, help="stage-2 steps (default: config epochs)")
    p.add_argument("--seed", type=int, default=0, help="weights and training randomness (default 0)")
    p.add_argument("--tensorboard", metavar="DIR", help="log the per-step losses to TensorBoard in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_device(p)

    # ---- evaluate
    p = sub.add_parser("evaluate", help="MPJPE / P-MPJPE (Human3.6M), PCK / AUC (3DHP) of a model",
                       description="synthetic: fresh held-out synthetic sequences; h36m: S9 and S11 of the "
                                   "VideoPose3D files; 3dhp: P-STMO's data_test_3dhp.npz.")
    p.add_argument("--checkpoint", required=True, help="model folder")
    p.add_argument("--data", required=True, choices=("synthetic", "h36m", "3dhp"))
    p.add_argument("--data-3d", help="h36m: data_3d_h36m.npz")
    p.add_argument("--data-2d", help="h36m: 2D file (gt, CPN detections, or a DiffPose GMM file)")
    p.add_argument("--test-npz", help="3dhp: data_test_3dhp.npz")
    _add_sampling(p)
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test-time augmentation (default: the protocol's: off for synthetic and h36m, on for "
                        "3dhp, as in the official code)")
    p.add_argument("--downsample", type=_positive_int, default=1, help="h36m: every n-th frame (default 1)")
    p.add_argument("--sequences", type=_positive_int, default=5, help="synthetic: sequences (default 5)")
    p.add_argument("--frames", type=_positive_int, default=200, help="synthetic: frames each (default 200)")
    p.add_argument("--data-seed", type=_non_negative_int, default=2, help="synthetic: data seed (default 2)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--plot-calibration", metavar="FILE",
                   help="write the spread's reliability diagram (coverage and binned error against std) as an image")
    _add_device(p)

    # ---- bench
    p = sub.add_parser("bench", help="quick speed check of predict(): frames per second",
                       description="Times DiffPoseLifter.predict on synthetic 2D input with the paper's model "
                                   "widths (untrained unless --checkpoint: weights do not change the speed), after "
                                   "one warm-up call; prints frames/s per backend with the device's name.")
    p.add_argument("--checkpoint", help="model folder (default: an untrained model with the default config)")
    p.add_argument("--mode", choices=("frame", "video"), default="frame",
                   help="the untrained model's kind when no --checkpoint is given (default frame; a checkpoint "
                        "carries its own)")
    p.add_argument("--frames", type=_positive_int, default=2048, help="frames lifted per timed call (default 2048)")
    p.add_argument("--batch-size", type=_positive_int, default=512, help="frames per forward pass (default 512)")
    p.add_argument("--backends", default="reference,auto",
                   help="comma-separated backends to time (default reference,auto)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="timed calls per backend (default 3)")
    _add_sampling(p)
    _add_device(p)

    # ---- info
    sub.add_parser("info", help="print the build (native module, CUDA architectures) and the torch device")
    return parser


# ============================================================================================ helpers

def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CliError(f"--device: not a torch device: {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name}: torch sees no CUDA device (torch {torch.__version__}; a CPU build?)")
    return name


def _device_label(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu: {cpu}; torch threads {torch.get_num_threads()}, {os.cpu_count()} logical cores visible"


def _load_lifter(checkpoint: str, device: str):
    from .lifter import DiffPoseLifter

    if not os.path.isdir(checkpoint):
        raise CliError(f"--checkpoint: no such model folder: {checkpoint!r}")
    try:
        return DiffPoseLifter.load(checkpoint, device=device)
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"--checkpoint: cannot load {checkpoint!r}: {exc}") from None


def _protocols(name: str):
    """A function of diffpose_fast.protocols, or a CliError saying it is missing from this installation."""
    try:
        from . import protocols
    except ImportError as exc:
        raise CliError(f"the Human3.6M / 3DHP protocols (diffpose_fast.protocols) are not available in this "
                       f"installation: {exc}") from None
    fn = getattr(protocols, name, None)
    if fn is None:
        raise CliError(f"diffpose_fast.protocols has no {name}() in this installation (version mismatch?)")
    return fn


def _need(args: argparse.Namespace, data: str, *names: str) -> None:
    missing = ["--" + n.replace("_", "-") for n in names if getattr(args, n) is None]
    if missing:
        raise CliError(f"--data {data} needs {' and '.join(missing)}")
    for n in names:
        if not os.path.exists(getattr(args, n)):
            raise CliError(f"--{n.replace('_', '-')}: no such file: {getattr(args, n)!r}")


# ============================================================================================ commands

def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo

    quick = args.quick or os.environ.get(QUICK_ENV, "") not in ("", "0")
    settings = DemoSettings.quick() if quick else DemoSettings()
    changes = {k: v for k, v in (("train_sequences", args.train_sequences), ("train_frames", args.frames),
                                 ("test_sequences", args.test_sequences), ("context_steps", args.context_steps),
                                 ("diffusion_steps", args.diffusion_steps), ("batch_size", args.batch_size),
                                 ("seed", args.seed)) if v is not None}
    if args.no_video:
        changes["video"] = False
    settings = settings.replace(**changes)
    device = _device(args.device)
    import torch

    torch.set_num_threads(args.threads)
    print(f"diffpose-fast demo{' (quick)' if quick else ''} on {_device_label(device)}", flush=True)
    start = time.perf_counter()
    run_demo(args.out, settings, device=device, progress=not args.no_progress,
             log=lambda line: print(line, flush=True))
    print(f"demo finished in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


def _read_input(path: str, fmt: Optional[str]) -> tuple[list, Optional[tuple[float, float]], str]:
    """(tracks, image size recorded in the input or None, kind) for ``lift``."""
    from .data import readers

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
                from .data.safe_npz import load_npz

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

    from .data.readers import interpolate_missing
    from .data.sequence import PoseSequence
    from .export import LiftedTrack, write_bvh, write_json, write_npz

    maps = None
    if args.heatmaps:
        from .data.heatmap_formats import read_heatmap_file

        try:
            maps = read_heatmap_file(args.heatmaps, args.heatmap_layout)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(f"--heatmaps: {exc}") from None
    if args.input is None:
        if maps is None:
            raise CliError("lift: give INPUT (a keypoint file or folder) or --heatmaps FILE")
        from .data.readers import Track

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
        from .data.camera import Camera

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

    from .viz.render import render_animation, save_pose_png

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


def _cmd_train(args: argparse.Namespace) -> int:
    device = _device(args.device)
    config = None
    if args.config:
        from .config import LifterConfig

        if not os.path.isfile(args.config):
            raise CliError(f"--config: no such file: {args.config!r}")
        try:
            config = LifterConfig.load(args.config)
        except Exception as exc:  # JSON/YAML syntax, unknown keys, invalid values: all the user's to fix
            raise CliError(f"--config {args.config!r}: {exc}") from None
    if args.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise CliError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    common = dict(context_steps=args.context_steps, diffusion_steps=args.diffusion_steps,
                  progress=not args.no_progress, seed=args.seed, tensorboard=args.tensorboard, device=device)
    print(f"training on {_device_label(device)}", flush=True)
    start = time.perf_counter()
    if args.bvh and args.data not in (None, "bvh"):
        raise CliError(f"--bvh trains on motion capture; it cannot be combined with --data {args.data}")
    data = "bvh" if args.bvh else args.data
    if data is None:
        raise CliError("train: give --bvh FILE... or --data synthetic|h36m|3dhp")
    if data == "bvh" and not args.bvh:
        raise CliError("--data bvh needs --bvh FILE...")
    try:
        if data == "bvh":
            seqs, dataset = _bvh_sequences(args)
            history = _fit_and_save()(seqs, args.out, config, dataset=dataset, **common)
        elif data == "synthetic":
            from .data.synthetic import generate_sequences

            fit_and_save = _fit_and_save()
            seqs = generate_sequences(args.train_sequences, args.frames, seed=args.data_seed)
            dataset = {"name": "synthetic", "sequences": args.train_sequences, "frames": args.frames,
                       "data_seed": args.data_seed}
            history = fit_and_save(seqs, args.out, config, dataset=dataset, **common)
        elif data == "h36m":
            _need(args, "h36m", "data_3d", "data_2d")
            history = _protocols("train_h36m")(args.data_3d, args.data_2d, args.out, config,
                                               downsample=args.downsample, **common)
        else:
            _need(args, "3dhp", "train_npz")
            history = _protocols("train_3dhp")(args.train_npz, args.out, config, downsample=args.downsample,
                                               **common)
    except (ValueError, TypeError, FileNotFoundError, KeyError, ImportError) as exc:
        raise CliError(str(exc)) from None
    last = {k: history[k][-1] for k in ("context", "diffusion") if history.get(k)}
    print(f"trained in {time.perf_counter() - start:.1f} s; final losses {last}; model folder: "
          f"{Path(args.out).resolve()}", flush=True)
    return 0


def _bvh_sequences(args: argparse.Namespace):
    """PoseSequences from the --bvh files (data.bvh, data.mocap) and the dataset description for history.json."""
    from .data.bvh import BVHError, load_bvh
    from .data.mocap import MocapViewConfig, mocap_sequences

    takes = []
    for path in args.bvh:
        if not os.path.isfile(path):
            raise CliError(f"--bvh: no such file: {path!r}")
        try:
            takes.append(load_bvh(path, fps=args.bvh_fps, units=args.bvh_units, up_axis=args.bvh_up))
        except (BVHError, OSError) as exc:
            raise CliError(f"--bvh: {exc}") from None
    if args.cameras == "h36m" and args.views > 4:
        raise CliError(f"--views: Human3.6M has 4 cameras, got {args.views}")
    seqs = mocap_sequences(takes, seed=args.data_seed, config=MocapViewConfig(cameras=args.cameras, views=args.views))
    print(f"{len(takes)} BVH take(s), {sum(t.num_frames for t in takes)} frames at {args.bvh_fps:g} fps -> "
          f"{len(seqs)} clips seen by {args.cameras} cameras", flush=True)
    dataset = {"name": "bvh", "files": [os.path.abspath(p) for p in args.bvh], "fps": args.bvh_fps,
               "cameras": args.cameras, "views": args.views, "data_seed": args.data_seed}
    return seqs, dataset


def _fit_and_save():
    try:
        from .protocols.fit_and_save import fit_and_save
    except ImportError as exc:
        raise CliError(f"diffpose_fast.protocols.fit_and_save is not available in this installation: {exc}") from None
    return fit_and_save


def _cmd_evaluate(args: argparse.Namespace) -> int:
    device = _device(args.device)
    steps = args.steps if args.sampler == "ddim" else None
    sampling = dict(sampler=args.sampler, num_samples=args.num_samples, steps=steps)
    if args.flip_tta is not None:   # otherwise each protocol's own default (3dhp: on)
        sampling["flip_tta"] = args.flip_tta
    format_report = _protocols("format_report")
    try:
        if args.data == "synthetic":
            from .data.synthetic import generate_sequences

            lifter = _load_lifter(args.checkpoint, device)
            seqs = generate_sequences(args.sequences, args.frames, seed=args.data_seed)
            report = _protocols("evaluate_sequences")(lifter, seqs, per="sequence", progress=True, **sampling)
            report["protocol"] = "synthetic"
            report["dataset"] = {"name": "synthetic", "sequences": args.sequences, "frames": args.frames,
                                 "data_seed": args.data_seed, "checkpoint": args.checkpoint}
        elif args.data == "h36m":
            _need(args, "h36m", "data_3d", "data_2d")
            if not os.path.isdir(args.checkpoint):
                raise CliError(f"--checkpoint: no such model folder: {args.checkpoint!r}")
            report = _protocols("evaluate_h36m")(args.checkpoint, args.data_3d, args.data_2d,
                                                 downsample=args.downsample, device=device, **sampling)
        else:
            _need(args, "3dhp", "test_npz")
            if not os.path.isdir(args.checkpoint):
                raise CliError(f"--checkpoint: no such model folder: {args.checkpoint!r}")
            report = _protocols("evaluate_3dhp")(args.checkpoint, args.test_npz, device=device, **sampling)
    except CliError:
        raise
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        raise CliError(str(exc)) from None
    print(format_report(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"report written to {args.json}", flush=True)
    if args.plot_calibration:
        if "uncertainty" not in report:
            raise CliError("--plot-calibration: the model gave no spread to plot (use a diffusion sampler with "
                           "--num-samples >= 2, or a calibrated model)")
        from .viz.calibration import save_calibration_plot

        try:
            save_calibration_plot(args.plot_calibration, report["uncertainty"],
                                  title=f"{args.checkpoint}: {args.data}")
        except (OSError, ValueError) as exc:
            raise CliError(f"--plot-calibration: cannot write {args.plot_calibration!r} ({exc})") from None
        print(f"reliability diagram written to {args.plot_calibration}", flush=True)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from .data.synthetic import generate_sequences
    from .lifter import DiffPoseLifter

    device = _device(args.device)
    lifter = (_load_lifter(args.checkpoint, device) if args.checkpoint
              else DiffPoseLifter(mode=args.mode, device=device, seed=0))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    seq = generate_sequences(1, args.frames, seed=7)[0]
    seq_2d = dict(image_size=seq.image_size, confidence=seq.confidence)
    cfg = lifter.config
    steps = args.steps if args.sampler == "ddim" else None
    print(f"bench on {_device_label(device)}", flush=True)
    print(f"model: {'checkpoint ' + args.checkpoint if args.checkpoint else 'untrained, default config'}, "
          f"{cfg.mode}{f' (window {cfg.frames} frames)' if cfg.mode == 'video' else ''} "
          f"(embed {cfg.embed_dim}, context {cfg.context_dim}, {cfg.denoiser_blocks} blocks, "
          f"gmm {cfg.gmm_scope} M={cfg.gmm_components}); sampler {args.sampler}, N={args.num_samples}, "
          f"steps {steps}; {args.frames} frames per call, batch {args.batch_size}; "
          f"median of {args.repeats} calls after 1 warm-up", flush=True)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for backend in backends:
        try:
            call = lambda: lifter.predict(seq.keypoints_2d, **seq_2d, sampler=args.sampler,  # noqa: E731
                                          num_samples=args.num_samples, steps=steps, backend=backend,
                                          batch_size=args.batch_size)
            call()
            times = []
            for _ in range(args.repeats):
                sync()
                t0 = time.perf_counter()
                call()
                sync()
                times.append(time.perf_counter() - t0)
        except (ValueError, NotImplementedError) as exc:
            print(f"  backend {backend:<10} cannot run: {exc}", flush=True)
            continue
        med = sorted(times)[len(times) // 2]
        print(f"  backend {backend:<10} {args.frames / med:10.1f} frames/s  ({med * 1000:.1f} ms per call)", flush=True)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from ._build_info import format_build_info

    print(format_build_info(), flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch device: {_device_label(device)}", flush=True)
    return 0


_COMMANDS = {"demo": _cmd_demo, "lift": _cmd_lift, "train": _cmd_train, "evaluate": _cmd_evaluate,
             "bench": _cmd_bench, "info": _cmd_info}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default sys.argv[1:]); returns the exit code (0 ok, 2 usage/input
    error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return _COMMANDS[args.command](args)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bad file or option deep in the library: one line, never a traceback
        if os.environ.get("DIFFPOSE_FAST_TRACEBACK"):
            raise
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2


def _one_line(exc: BaseException) -> str:
    """The exception as one line: its message (the library's errors name the file or argument), else its type."""
    known = False
    if isinstance(exc, RecursionError):
        text = "the input is nested too deeply to read"
    elif isinstance(exc, MemoryError):
        text = "out of memory (the input asks for more than this machine has)"
    else:
        import pickle

        text = " ".join(str(exc).split()) or type(exc).__name__
        known = isinstance(exc, (ValueError, OSError, pickle.UnpicklingError))   # the library's own, naming the input
        if not known:
            text = f"{type(exc).__name__}: {text}"
    hint = "" if known else " (DIFFPOSE_FAST_TRACEBACK=1 shows where)"
    return (text if len(text) <= 400 else text[:397] + "...") + hint


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
