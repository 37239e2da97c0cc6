"""The built-in demo: train a small DiffPose model on synthetic data, evaluate it, draw and export a result.

    from diffpose_fast.demo import DemoSettings, run_demo
    report = run_demo("diffpose_demo", DemoSettings())            # what ``diffpose-fast demo`` runs
    report = run_demo("tmp_demo", DemoSettings.quick())           # a few seconds, for tests

Everything is deterministic for the settings (data seeds, model seed). Nothing is downloaded: the data come
from ``data.synthetic.generate_sequences`` (synthetic motion seen by real Human3.6M cameras with detector-like
2D noise); the training and held-out sets use different seeds, so they share no subject or motion.

The output folder holds: ``model/`` (a ``DiffPoseLifter.save`` folder), ``demo.png`` (one held-out frame: 2D
input beside the 3D hypotheses, their mean and per-joint spread, and the ground truth), ``demo.gif`` and ``demo.mp4`` (the same
sequence animated), ``heldout.npz`` / ``heldout.json`` / ``heldout.bvh`` (that sequence's lifted motion) and
``results.json`` (the settings, the error table and the timings).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["DemoSettings", "DemoReport", "run_demo", "format_table"]

# The small model the demo trains (the paper's model is LifterConfig's defaults: widths 128, 3 blocks, ...).
DEMO_MODEL: dict[str, Any] = {"embed_dim": 64, "context_dim": 64, "denoiser_heads": 4, "encoder_layers": 2,
                              "gmm_samples": 32}


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What the demo runs. Every count is exact, so a report can state what was trained and measured.

    train_sequences x train_frames: synthetic training frames (data seed ``train_seed``).
    test_sequences x test_frames: held-out frames (data seed ``test_seed``).
    calibration_sequences x train_frames: frames of other subjects and motions (data seed ``calibration_seed``)
        given to ``fit`` as ``val``: it calibrates the spread there and trains on all the training frames (0: fit
        holds out 10 % of the training sequences itself).
    context_steps, diffusion_steps: optimiser steps of stage 1 and stage 2; batch_size frames per step.
    num_samples, sampling_steps: N hypotheses and DDIM steps for the "ddim" row.
    model: LifterConfig overrides of the small model; seed: the lifter's seed.
    animation_frames, animation_stride: frames of the held-out sequence in the GIF/MP4 (every stride-th).
    video: also write the GIF/MP4 (the slowest part on a small CPU).
    """

    train_sequences: int = 40
    train_frames: int = 250
    test_sequences: int = 4
    test_frames: int = 150
    context_steps: int = 150
    diffusion_steps: int = 400
    batch_size: int = 128
    num_samples: int = 5
    sampling_steps: int = 5
    seed: int = 0
    train_seed: int = 1
    test_seed: int = 2
    calibration_sequences: int = 4
    calibration_seed: int = 3
    model: tuple[tuple[str, Any], ...] = tuple(DEMO_MODEL.items())
    animation_frames: int = 30
    animation_stride: int = 4
    video: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"DemoSettings: {f.name} must be a non-negative int, got {v!r}")
        for name in ("train_sequences", "train_frames", "test_sequences", "test_frames", "batch_size",
                     "num_samples", "sampling_steps", "animation_frames", "animation_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"DemoSettings: {name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "model", tuple(dict(self.model).items()))

    @classmethod
    def quick(cls, **changes) -> "DemoSettings":
        """A tiny run (seconds): for tests and for checking an installation, not for its numbers."""
        base = dict(train_sequences=3, train_frames=24, test_sequences=2, test_frames=12, calibration_sequences=1,
                    context_steps=2,
                    diffusion_steps=2, batch_size=32, num_samples=3, sampling_steps=2, animation_frames=3,
                    animation_stride=2, model=tuple({**DEMO_MODEL, "gmm_samples": 16}.items()))
        base.update(changes)
        return cls(**base)

    def replace(self, **changes) -> "DemoSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = dict(self.model)
        return d


@dataclasses.dataclass
class DemoReport:
    """What ``run_demo`` did: the rows of the error table, the files it wrote and how long each phase took."""

    out: Path
    rows: list[dict[str, Any]]
    files: dict[str, str]
    timings_s: dict[str, float]
    settings: DemoSettings
    notes: list[str]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The error table as text: sampler, N, steps, MPJPE and P-MPJPE (mm), time and frames per second."""
    head = f"{'sampler':<8} {'N':>2} {'steps':>5} {'MPJPE mm':>9} {'P-MPJPE mm':>11} {'time s':>7} {'frames/s':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['sampler']:<8} {r['num_samples']:>2} {r['steps']:>5} {r['mpjpe_mm']:>9.1f} "
                     f"{r['p_mpjpe_mm']:>11.1f} {r['seconds']:>7.2f} {r['frames_per_s']:>9.0f}")
    return "\n".join(lines)


def _evaluate(lifter, sequences, sampler: str, num_samples: int, steps: int) -> tuple[dict[str, Any], Optional[dict]]:
    """One pass of ``lifter.evaluate`` over ``sequences``: the table row (frame-weighted MPJPE / P-MPJPE, time)
    and ``uncertainty.uncertainty_report`` of the calibrated spread (None without a calibration: fit had too few
    frames to hold out; the raw spread is not shown, as it is not in metres of error)."""
    start = time.perf_counter()
    rep = lifter.evaluate(sequences, sampler=sampler, num_samples=num_samples,
                          steps=steps if sampler == "ddim" else None)
    seconds = time.perf_counter() - start
    row = {"sampler": sampler, "num_samples": 1 if sampler == "context" else num_samples,
           "steps": steps if sampler == "ddim" else 0, "frames": rep["frames"], "mpjpe_mm": rep["mpjpe_mm"],
           "p_mpjpe_mm": rep["p_mpjpe_mm"], "seconds": seconds, "frames_per_s": rep["frames"] / seconds}
    uncertainty = rep.get("uncertainty")
    if uncertainty is not None and uncertainty["std"] != "calibrated":
        uncertainty = None
    if uncertainty is not None:
        uncertainty = {k: v for k, v in uncertainty.items() if k != "per_joint"}
    return row, uncertainty


def run_demo(out: str | os.PathLike = "diffpose_demo", settings: Optional[DemoSettings] = None, *,
             device: str = "cpu", progress: bool = True, log: Callable[[str], None] = print) -> DemoReport:
    """Run the demo into folder ``out`` (created if needed; files in it with the demo's names are replaced).

    Returns a DemoReport; ``log`` receives the human-readable lines (the table among them).
    """
    from .lifter import DiffPoseLifter
    from .data.synthetic import generate_sequences
    from .export import LiftedTrack, write_bvh, write_json, write_npz
    from .viz.render import render_animation, save_pose_png

    s = settings if settings is not None else DemoSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    files: dict[str, str] = {}
    notes: list[str] = []
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    train = generate_sequences(s.train_sequences, s.train_frames, seed=s.train_seed)
    test = generate_sequences(s.test_sequences, s.test_frames, seed=s.test_seed)
    timings["data"] = time.perf_counter() - t0
    log(f"data: {s.train_sequences} x {s.train_frames} synthetic training frames (seed {s.train_seed}), "
        f"{s.test_sequences} x {s.test_frames} held-out frames (seed {s.test_seed}), "
        f"{s.calibration_sequences} x {s.train_frames} frames to calibrate the spread (seed {s.calibration_seed})")

    lifter = DiffPoseLifter(mode="frame", device=device, seed=s.seed, **dict(s.model))
    log(f"training: {s.context_steps} context-encoder steps + {s.diffusion_steps} diffusion steps, batch "
        f"{s.batch_size}, model {dict(s.model)}")
    t0 = time.perf_counter()
    calibration = (generate_sequences(s.calibration_sequences, s.train_frames, seed=s.calibration_seed)
                   if s.calibration_sequences else None)
    lifter.fit(train, calibration, context_steps=s.context_steps, diffusion_steps=s.diffusion_steps,
               batch_size=s.batch_size, progress=progress)
    timings["train"] = time.perf_counter() - t0

    model_dir = out / "model"
    lifter.save(model_dir)
    files["model"] = str(model_dir)

    context_row, _ = _evaluate(lifter, test, "context", s.num_samples, s.sampling_steps)
    ddim_row, uncertainty = _evaluate(lifter, test, "ddim", s.num_samples, s.sampling_steps)
    rows = [context_row, ddim_row]
    timings["evaluate"] = sum(r["seconds"] for r in rows)
    log(f"held-out errors (root-relative; {rows[0]['frames']} frames):")
    log(format_table(rows))
    if uncertainty is not None:
        from .protocols.report import uncertainty_line

        log(f"DDIM: {uncertainty_line(uncertainty)}")

    t0 = time.perf_counter()
    seq = test[0]
    res = lifter.predict(seq, sampler="ddim", num_samples=s.num_samples, steps=s.sampling_steps)
    spread = res.std if res.calibrated_std is None else res.calibrated_std   # what the pictures show per joint
    frame = int(np.argmax(spread.mean(-1)))  # the frame the model is least sure of: worth a look
    gt_err = float(np.linalg.norm(res.poses_3d[frame] - seq.root_relative_poses()[frame], axis=-1).mean() * 1000)
    fig, _, _ = save_pose_png(out / "demo.png", seq.keypoints_2d[frame], res.poses_3d[frame], res.samples[:, frame],
                              spread[frame], seq.image_size, confidence=seq.confidence[frame],
                              ground_truth=seq.root_relative_poses()[frame],
                              title=f"held-out '{seq.action}', frame {frame}: DDIM {s.sampling_steps} steps, "
                                    f"MPJPE {gt_err:.0f} mm")
    files["png"] = str(out / "demo.png")
    track = LiftedTrack(res.poses_3d, res.samples, res.std, list(range(seq.num_frames)),
                        np.ones(seq.num_frames, bool), seq.keypoints_2d, seq.confidence, seq.image_size,
                        meta={"source": "diffpose_fast demo (synthetic held-out sequence 0)", "sampler": "ddim",
                              "num_samples": s.num_samples, "steps": s.sampling_steps, "action": seq.action},
                        calibrated_std=res.calibrated_std)
    write_npz(out / "heldout.npz", track)
    write_json(out / "heldout.json", track)
    bvh_err = write_bvh(out / "heldout.bvh", res.poses_3d, fps=50.0)
    files.update(npz=str(out / "heldout.npz"), json=str(out / "heldout.json"), bvh=str(out / "heldout.bvh"))
    notes.append(f"heldout.bvh reproduces the lifted joints within {bvh_err * 1000:.1f} mm (BVH bones are rigid)")
    if s.video:
        status = render_animation([out / "demo.gif", out / "demo.mp4"], seq.keypoints_2d, res.poses_3d,
                                  res.samples, spread, seq.image_size, fps=50.0 / s.animation_stride,
                                  stride=s.animation_stride, max_frames=s.animation_frames, progress=progress,
                                  confidence=seq.confidence, title=f"held-out '{seq.action}'")
        for path, state in status.items():
            key = Path(path).suffix[1:]
            if state == "ok":
                files[key] = path
            else:
                notes.append(f"{Path(path).name} {state}")
    timings["render_export"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    results = {"settings": s.to_dict(), "device": str(lifter.device), "rows": rows, "timings_s": timings,
               "files": files, "notes": notes, "uncertainty": uncertainty}
    with open(out / "results.json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=str)
    files["results"] = str(out / "results.json")
    for n in notes:
        log(f"note: {n}")
    log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    log(f"output folder: {out.resolve()}")
    return DemoReport(out.resolve(), rows, files, timings, s, notes)
