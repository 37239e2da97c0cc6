"""The argument parser of every command (argparse lives in this package only)."""
from __future__ import annotations

import argparse

from ._common import FORMAT_CHOICES, PROG, QUICK_ENV, _add_device, _add_sampling, _non_negative_float, _non_negative_int, _positive_float, _positive_int


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
