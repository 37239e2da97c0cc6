"""``DiffPoseLifter``: the public facade (train, predict, evaluate, save, load) over the DiffPose method.

    lifter = DiffPoseLifter(mode="frame", device="cpu", seed=0)
    history = lifter.fit(train_sequences)
    res = lifter.predict(keypoints_2d, image_size=(1000, 1002))   # res.poses_3d [T, 17, 3] metres
    report = lifter.evaluate(test_sequences)
    lifter.save("model/"); lifter = DiffPoseLifter.load("model/")
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .config import SAMPLERS, SIZE_LIMITS, LifterConfig, check_smoothing
from .data.sequence import PoseSequence
from .data.skeleton import NUM_JOINTS
from .distribution.depth import DepthHistogram
from .persistence import CheckpointError, load_folder, save_folder
from .data.frames import frames_from_sequences
from .inference.model import DiffPoseModel
from .inference.reverse import check_backend
from .training.folds import assign_folds
from .training.trainer import Trainer, steps_for
from .uncertainty import MIN_CALIBRATION_FRAMES, SpreadCalibration

POSE_BOUND_M = 2.0        # every coordinate of a lifted joint, metres from the root (predict clamps to it)
MAX_NUM_SAMPLES = SIZE_LIMITS["num_samples"]   # hypotheses per frame predict accepts (all held in memory)


@dataclasses.dataclass
class LiftResult:
    """The lifted poses of T frames.

    poses_3d [T, 17, 3]: the mean of the N hypotheses (the paper's h_s); metres, root-relative, camera frame.
    samples [N, T, 17, 3]: the hypotheses h_0^1..N (N = 1 for sampler "context"), each coordinate within
        +-POSE_BOUND_M (2 m) of the root.
    std [T, 17]: per-joint spread, the RMS distance (metres) of the samples to their mean (0 when N = 1). Raw:
        it ranks joints by their error but is several times too narrow (benchmarks/RESULTS.md).
    calibrated_std [T, 17]: the number to read: metres within which about 61 % of joints' errors fall (as for a
        calibrated isotropic Gaussian), from ``uncertainty.SpreadCalibration`` fitted by ``fit`` on held-out
        sequences; also filled for N = 1 / sampler "context" (from the joint and its 2D confidence alone).
        None for a model without a calibration (saved before it existed, or fitted with calibration_fraction 0).
    trajectory [T, 3]: the root's (pelvis') position in the camera frame, metres, when the input has a camera
        (``predict(camera=Camera(fx, fy, cx, cy))`` or the PoseSequence's): the translation that makes
        poses_3d + trajectory reproject onto the 2D keypoints (``trajectory.root_trajectory``); None without
        a camera; NaN in frames with fewer than 3 usable keypoints.
    numpy float32 arrays, or CPU torch tensors when the input came as tensors.
    """

    poses_3d: Any
    samples: Any
    std: Any
    calibrated_std: Any = None
    trajectory: Any = None

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])


def _resolve_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"DiffPoseLifter: device must be a torch device such as 'cpu', 'cuda' or 'cuda:1', "
                         f"got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"DiffPoseLifter: device {str(device)!r} requested but torch sees no CUDA device")
    return dev


class DiffPoseLifter:
    """DiffPose 3D pose lifting (Gong et al., CVPR 2023).

    Args:
        mode: "frame" (this class's context encoder sees one frame) or "video".
        device: torch device for training and inference ("cpu", "cuda", "cuda:1").
        seed: seeds the initial weights, training's random draws and prediction's default generator.
        config: a LifterConfig (None: the defaults); ``**overrides`` replace single fields of it.
    """

    def __init__(self, mode: str = "frame", device: str | torch.device = "cpu", seed: int = 0,
                 config: Optional[LifterConfig] = None, **overrides):
        if config is not None and not isinstance(config, LifterConfig):
            raise TypeError(f"DiffPoseLifter: config must be a LifterConfig or None, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"DiffPoseLifter: seed must be an int, got {type(seed).__name__}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"DiffPoseLifter: seed must be in [0, 2**63), got {seed}")
        config = (config or LifterConfig()).replace(mode=mode, **overrides)
        self.config = config
        self.seed = seed
        self.device = _resolve_device(device)
        with torch.random.fork_rng(devices=[]):   # the caller's global generator is left as it was
            torch.manual_seed(seed)  # the initial weights depend on the seed only
            self.model = DiffPoseModel(config).to(self.device)
        self.model.eval()
        self._raw_state: dict[str, torch.Tensor] | None = None  # raw (non-EMA) weights after training
        self.trained = False
        # LiftResult.calibrated_std: {"spread": map for N >= 2, "context": map for N = 1}, or None
        self.calibration: Optional[dict[str, SpreadCalibration]] = None

    # --------------------------------------------------------------------------------------------- train
    def fit(self, train: Sequence[PoseSequence], val: Optional[Sequence[PoseSequence]] = None, *,
            context_steps: Optional[int] = None, diffusion_steps: Optional[int] = None,
            batch_size: Optional[int] = None, progress: bool = True, resume=None, checkpoint_dir=None,
            checkpoint_every: Optional[int] = None) -> dict[str, Any]:
        """Train stage 1 (context encoder) then stage 2 (diffusion model).

        Under torchrun (WORLD_SIZE > 1) this trains with DistributedDataParallel: each process calls ``fit``
        with the same arguments and data (see docs/training.md, ``training.distributed``).

        Args:
            train: PoseSequences with poses_3d (metres, camera frame). With config.virtual_views = V > 0, each
                sequence with a camera and absolute poses (``data.virtual_views.can_view``) is also trained on as
                V more views, turned about the vertical and re-projected with its own detector errors (not the
                sequences held out for calibration).
            val: optional sequences evaluated after training (``evaluate``'s report lands in history["val"]) and
                used to calibrate the spread. Without val, fit holds out config.calibration_fraction (10 %) of the
                training frames as whole sequences (``training.folds.calibration_split``; with one or two long
                sequences, the tail of the longest), trains on the rest and calibrates there
                (``calibrate_spread``); calibration_fraction 0 trains on everything and leaves no calibration.
            context_steps, diffusion_steps: optimiser steps per stage (None: config.context_epochs /
                diffusion_epochs passes over the frames, but at least config.context_min_steps /
                diffusion_min_steps: 2,000 and 3,000, what ~10,000 frames of real motion need).
            batch_size: frames per step (None: config.batch_size).
            progress: show progress bars (rank 0 only).
            checkpoint_dir: folder for training checkpoints (rank 0 writes them; ``training.checkpoint``).
            checkpoint_every: also write one every that many optimiser steps (None: at the end of each stage).
            resume: a checkpoint file or folder (its newest checkpoint) to continue from; True: the newest in
                checkpoint_dir if there is one, else start afresh. The run (config, seed, batch size, steps,
                data) must be the one that wrote it; the result equals the uninterrupted run's.

        Returns:
            {"context": [loss per step], "diffusion": [loss per step], "val": report or None, "calibration":
            {"source": "val" | "held_out" | None, "sequences": held-out train indices, "frames": F}} (a resumed
            run returns the losses of the whole run).
        """
        from .training import distributed
        from .training.checkpoint import resolve_resume

        train = _check_sequences(train, "train")
        if val is not None:   # checked now, not after the training has run
            val = _check_sequences(val, "fit: val", require_valid=True)
        ckpt = resolve_resume(resume, checkpoint_dir, checkpoint_every)
        dist = distributed.init_from_env(self.device)
        if dist.device != self.device:  # "cuda" under torchrun: this process's GPU
            self.device = dist.device
            self.model.to(self.device)
        bs = self.config.batch_size if batch_size is None else _positive_int(batch_size, "batch_size")
        train, held_out, cal_info = self._calibration_holdout(train, val)
        folds = assign_folds([s.num_frames for s in train], self.config.context_folds, self.seed)
        train, folds = self._add_virtual_views(train, folds)   # after the hold-out: calibration sees real views
        frames = frames_from_sequences(train, self.config.default_confidence, require_poses=True)
        cfg = self.config   # without steps: the epochs, and at least the minimum steps (small data, "Budget")
        c_steps = (max(steps_for(cfg.context_epochs, len(frames), bs), cfg.context_min_steps) if context_steps is None
                   else _positive_int(context_steps, "context_steps", minimum=0))
        d_steps = (max(steps_for(cfg.diffusion_epochs, len(frames), bs), cfg.diffusion_min_steps)
                   if diffusion_steps is None else _positive_int(diffusion_steps, "diffusion_steps", minimum=0))
        stages = None   # the frame model's steps
        if self.config.mode == "video":  # windows of config.frames frames (diffpose_fast.video.training)
            from .video.training import VideoStages

            stages = VideoStages([s.num_frames for s in train], flip_test=self.config.flip_test)
        trainer = Trainer(self.model, self.seed, self.device, progress, dist=dist, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=checkpoint_every, stages=stages)
        history: dict[str, Any] = dict(trainer.fit(frames, c_steps, d_steps, bs, resume=ckpt, folds=folds))
        # raw weights: the trained denoiser as it is, the encoders as they were before their EMA was frozen in
        self._raw_state = {k: trainer.raw_encoders.get(k, v).detach().clone()
                           for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(trainer.ema.state_dict())  # evaluation uses the EMA weights
        self.model.eval()
        self.trained = True
        history["val"] = self.evaluate(val) if val is not None else None
        self.calibration = None
        if held_out:
            self._fit_calibration(held_out, cal_info)
        history["calibration"] = cal_info
        return history

    def _fit_calibration(self, held_out: list[PoseSequence], cal_info: dict) -> None:
        """``calibrate_spread`` for the config's sampling (a config without spread, sampler "context" or N = 1:
        DDIM with N = 5 for the spread's map); with too few valid frames a warning instead of an error, so that
        a finished training is never lost to its calibration."""
        import warnings

        valid = sum(s.num_frames if s.valid is None else int(np.asarray(s.valid).sum()) for s in held_out)
        if valid < MIN_CALIBRATION_FRAMES:
            warnings.warn(f"fit: the calibration sequences have {valid} valid frames, fewer than "
                          f"{MIN_CALIBRATION_FRAMES}; LiftResult.calibrated_std will be None", stacklevel=3)
            return
        cfg = self.config
        if cfg.sampler == "context" or cfg.num_samples < 2:
            self.calibrate_spread(held_out, sampler="ddim", num_samples=5, steps=cfg.sampling_steps)
        else:
            self.calibrate_spread(held_out)
        cal_info["frames"] = self.calibration["spread"].frames

    def _add_virtual_views(self, train: list[PoseSequence], folds: torch.Tensor):
        """(train + config.virtual_views re-projected copies of each sequence that can have them, their frames'
        folds): ``data.virtual_views``; a copy takes its source's fold, so cross-fitting never sees a view of a
        sequence it predicts out of fold. Warns when no sequence can be re-seen."""
        copies = self.config.virtual_views
        if copies == 0:
            return train, folds
        from .data.virtual_views import virtual_views

        extra, sources = virtual_views(train, copies, self.seed)
        if not extra:
            warnings.warn("fit: config.virtual_views is set but no training sequence has a camera, absolute "
                          "camera-frame poses_3d and no heatmaps (data.virtual_views.can_view); training on the "
                          "sequences as they are", stacklevel=3)
            return train, folds
        starts = np.cumsum([0] + [s.num_frames for s in train])
        extra_folds = [folds[starts[i]:starts[i + 1]] for i in sources]
        return list(train) + extra, torch.cat([folds, *extra_folds])

    def _calibration_holdout(self, train: list[PoseSequence], val):
        """(sequences to train on, sequences to calibrate on, history entry): ``fit``'s calibration slice."""
        import warnings

        from .training.folds import calibration_split

        if val is not None:
            return train, val, {"source": "val", "sequences": [], "frames": 0}
        fraction = self.config.calibration_fraction
        none = {"source": None, "sequences": [], "frames": 0}
        if fraction == 0:
            return train, [], none
        keep, held = calibration_split([s.num_frames for s in train], fraction, self.seed)
        if held:
            return [train[i] for i in keep], [train[i] for i in held], {"source": "held_out", "sequences": held,
                                                                       "frames": 0}
        # one or two long sequences: the tail of the longest (one boundary frame pair leaks; documented in fit)
        total = sum(s.num_frames for s in train)
        longest = max(range(len(train)), key=lambda i: train[i].num_frames)
        n_hold = int(round(fraction * total))
        if n_hold < MIN_CALIBRATION_FRAMES or train[longest].num_frames - n_hold < 1:
            warnings.warn(f"fit: {total} training frames leave too few to hold out for calibrating the spread "
                          f"(at least {MIN_CALIBRATION_FRAMES}); LiftResult.calibrated_std will be None: pass val= "
                          f"(sequences with poses_3d) to calibrate", stacklevel=3)
            return train, [], none
        seq = train[longest]
        cut = seq.num_frames - n_hold
        rest = list(train)
        rest[longest] = seq.slice(0, cut)
        return rest, [seq.slice(cut, seq.num_frames)], {"source": "held_out", "sequences": [longest], "frames": 0,
                                                        "tail_of_sequence": longest, "tail_frames": n_hold}

    # ------------------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, keypoints_2d_or_sequence, *, image_size=None, confidence=None, heatmaps=None,
                heatmap_boxes=None, camera=None, num_samples: Optional[int] = None, steps: Optional[int] = None,
                sampler: Optional[str] = None, backend: str = "auto", generator: Optional[torch.Generator] = None,
                batch_size: Optional[int] = None, window_hop: Optional[int] = None,
                flip_test: Optional[bool] = None, smoothing: Optional[float] = None) -> LiftResult:
        """Lift 2D keypoints to 3D.

        Args:
            keypoints_2d_or_sequence: a PoseSequence, or keypoints [T, 17, 2] pixels (numpy or torch) with the
                keyword arguments describing them (image_size (w, h) is then required).
            num_samples: N hypotheses (default config.num_samples = 5); ignored by sampler "context".
            steps: denoiser calls for "ddim" (default config.sampling_steps = 5, at most K); for "ddpm" None or K.
            sampler: "ddim" | "ddpm" (all K steps of Eq. 8) | "context" (the encoder alone).
            backend: backend of the hot ops: "auto", "reference" (plain PyTorch, the oracle), "native" (the C++ /
                CUDA extension wherever an op has one), "triton" (the DDIM update's Triton kernel); see
                ``inference.reverse``. ``ops.force_backend`` and DIFFPOSE_FAST_BACKEND override "auto".
            generator: torch.Generator for H_K and the hypotheses (None: one seeded with the lifter's seed,
                so repeated calls give the same answer).
            batch_size: frames per forward pass (None: about 4096 hypotheses per pass).
            window_hop: mode="video" only: the hop between encoder windows (None: config.frames,
                non-overlapping windows with the last aligned to the end; causal: 1; see docs/video.md).
            flip_test: the encoder's outputs averaged over the input and its mirror image (``models.flip_test``);
                None: ``config.flip_test``, what stage 2 was trained on (on for new models; off for frame models
                saved before it existed). Turning it off for a model trained with it (or on for one trained
                without) gives its denoiser contexts it was not trained on.
            smoothing: time constant in frames of the low-pass on each hypothesis's offset from the encoder's pose
                over the sequence (``inference.smoothing``; zero phase, causal for a causal video model); None:
                ``config.smoothing_frames`` (on for mode "video", off for "frame"), 0: off. Ignored by "context".

        Returns:
            LiftResult (numpy, or torch tensors when the keypoints came as a tensor).
        """
        seq, as_tensor = _as_sequence(keypoints_2d_or_sequence, image_size=image_size, confidence=confidence,
                                      heatmaps=heatmaps, heatmap_boxes=heatmap_boxes, camera=camera)
        check_backend(backend, "predict")
        sampler, num_samples, steps = self._sampling_args(sampler, num_samples, steps)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"predict: generator must be a torch.Generator or None, got {type(generator).__name__}")
        gen = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        frames = frames_from_sequences([seq], self.config.default_confidence, require_poses=False)
        n_eff = 1 if sampler == "context" else num_samples
        bs = _positive_int(batch_size, "batch_size") if batch_size is not None else max(1, 4096 // n_eff)
        self.model.eval()
        # One row of draws shared by every frame of the sequence: each frame's hypotheses are still exact draws
        # from its own H_K, but hypothesis i moves smoothly over time instead of jittering (distribution.noise).
        shared = None
        if sampler != "context" and self.config.temporal_noise == "shared":
            shared = self.model.draw_noise(1, n_eff, frames.heatmaps is not None, gen)
        tau = self._smoothing_frames(smoothing, "predict")
        smooth = sampler != "context" and tau > 0 and len(frames) > 1
        if self.config.mode == "video":
            from .video.inference import sample_video

            samples = sample_video(self.model, frames, n_eff, steps, sampler, gen, backend, hop=window_hop,
                                   flip_test=self._flip_test(flip_test, "predict"), batch_size=bs, device=self.device,
                                   shared_noise=shared, return_context=smooth)  # [N, T, J, 3]
            if smooth:
                samples, anchor = samples
        else:
            chunks, anchors = [], []
            for start in range(0, len(frames), bs):
                part = frames.index(torch.arange(start, min(len(frames), start + bs))).to(self.device)
                noise = None if shared is None else shared.expand(len(part))
                out = self.model.sample(part, n_eff, steps, sampler, gen, backend, noise=noise,
                                        return_context=smooth, flip_test=self._flip_test(flip_test, "predict"))   # with it, the encoder pose H_K is centred on
                if smooth:
                    out, pose = out
                    anchors.append(pose.float().cpu())
                chunks.append(out.float().cpu())
            samples = torch.cat(chunks, 0).permute(1, 0, 2, 3).contiguous()  # [N, T, J, 3]
            anchor = torch.cat(anchors, 0) if smooth else None
        if smooth:
            from .inference.smoothing import smooth_hypotheses

            anchor = anchor - anchor[:, :1]
            smoothed, _ = smooth_hypotheses(samples.numpy(), anchor.numpy(), tau,
                                            causal=self.config.mode == "video" and self.config.causal)
            samples = torch.from_numpy(smoothed)
        return self._result(samples, frames, seq, as_tensor)

    def _smoothing_frames(self, smoothing: Optional[float], where: str) -> float:
        """The smoothing time constant (frames) a call uses: its argument, else the config's."""
        check_smoothing(smoothing, f"{where}: smoothing")
        return self.config.smoothing_frames if smoothing is None else float(smoothing)

    def _flip_test(self, flip_test: Optional[bool], where: str) -> bool:
        """Whether a call averages the encoder over the mirror image: its argument, else the config's."""
        if flip_test is None:
            return self.config.flip_test
        if not isinstance(flip_test, (bool, np.bool_)):
            raise TypeError(f"{where}: flip_test must be True, False or None, got {flip_test!r}")
        return bool(flip_test)

    def _result(self, samples: torch.Tensor, frames, seq: PoseSequence, as_tensor: bool) -> LiftResult:
        """The LiftResult of hypotheses samples [N, T, J, 3] (CPU float32) of ``seq`` (its FrameSet ``frames``)."""
        n_eff = samples.shape[0]
        # A human joint lies within about 1.2 m of the pelvis; a briefly trained model can still wander off
        # (21 m was seen), so every coordinate is bounded to POSE_BOUND_M before the mean and the spread.
        samples = samples.clamp_(-POSE_BOUND_M, POSE_BOUND_M)
        mean = samples.mean(0)
        std = ((samples - mean) ** 2).sum(-1).mean(0).sqrt()
        confidence = frames.confidence.numpy()
        cal = self.calibration_map(n_eff)
        calibrated = None if cal is None else cal.apply(std.numpy(), n_eff, confidence).astype(np.float32)
        trajectory = None
        if seq.camera is not None:
            from .trajectory import root_trajectory

            trajectory = root_trajectory(mean.numpy(), seq.keypoints_2d, seq.camera, confidence).astype(np.float32)
        if as_tensor:
            t = lambda a: None if a is None else torch.from_numpy(a)  # noqa: E731
            return LiftResult(mean, samples, std, t(calibrated), t(trajectory))
        return LiftResult(mean.numpy(), samples.numpy(), std.numpy(), calibrated, trajectory)

    def calibration_map(self, num_hypotheses: int) -> Optional[SpreadCalibration]:
        """The map ``LiftResult.calibrated_std`` comes from for results of ``num_hypotheses`` hypotheses (1: the
        "context" sampler's), or None when there is none (then calibrated_std is None)."""
        if self.calibration is None:
            return None
        return self.calibration.get("spread" if num_hypotheses > 1 else "context")

    def _sampling_args(self, sampler, num_samples, steps):
        cfg = self.config
        sampler = cfg.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"predict: sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        num_samples = cfg.num_samples if num_samples is None else _positive_int(num_samples, "num_samples")
        if num_samples > MAX_NUM_SAMPLES:
            raise ValueError(f"predict: num_samples must be at most {MAX_NUM_SAMPLES} (the hypotheses of every "
                             f"frame are held in memory), got {num_samples}")
        k = cfg.num_diffusion_steps
        if sampler == "ddpm":
            if steps is not None and steps != k:
                raise ValueError(f"predict: sampler 'ddpm' runs all K={k} steps of Eq. 8: steps must be None or "
                                 f"{k}, got {steps!r}")
            steps = k
        elif sampler == "ddim":
            steps = cfg.sampling_steps if steps is None else _positive_int(steps, "steps")
            if steps > k:
                raise ValueError(f"predict: sampler 'ddim' needs 1 <= steps <= K={k}, got {steps}")
        return sampler, num_samples, steps

    def stream(self, image_size, *, camera=None, num_samples: Optional[int] = None, steps: Optional[int] = None,
               sampler: Optional[str] = None, generator: Optional[torch.Generator] = None, backend: str = "auto",
               flip_test: Optional[bool] = None, smoothing: Optional[float] = None):
        """A live stream: ``stream.push(keypoints_2d [17, 2], confidence [17])`` lifts one new frame and returns
        what ``predict`` over the frames so far gives for it (frame models, and causal video models; with the
        default temporal_noise "shared"). See ``diffpose_fast.streaming``."""
        from .streaming import LiftStream

        return LiftStream(self, image_size, camera=camera, num_samples=num_samples, steps=steps, sampler=sampler,
                          generator=generator, backend=backend, flip_test=self._flip_test(flip_test, "stream"),
                          smoothing=smoothing)

    # ------------------------------------------------------------------------------------------ evaluate
    def evaluate(self, sequences: Sequence[PoseSequence], *, sampler: Optional[str] = None,
                 num_samples: Optional[int] = None, steps: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, smoothing: Optional[float] = None) -> dict[str, Any]:
        """MPJPE, P-MPJPE and N-MPJPE in millimetres over the valid frames of ``sequences`` (root-relative), and
        MPJVE (mm per frame) over pairs of consecutive valid frames ("mpjve_mm"; NaN if there is none).
        sampler, num_samples, steps, smoothing: as in ``predict`` (None: the model's configuration).

        Returns {"frames": F, "mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm": frame-weighted averages, and when every
        sequence has an action: "action_wise": {metric: action-wise average (the paper's number)},
        "per_action": {action: {metric: value}}, and when there is a spread (N > 1, or a calibration)
        "uncertainty": ``uncertainty.uncertainty_report`` of the calibrated std (raw std without a calibration,
        "std" says which) against the per-joint error}. Each sequence gets its own generator (seeded from one draw
        of ``generator``), so under torchrun each process predicts a share of the sequences and the report
        equals the one-process report exactly.
        """
        from . import metrics
        from .evaluation import POSE_METRICS, ErrorAccumulator

        sequences = _check_sequences(sequences, "evaluate", require_valid=True)
        sampler = self.config.sampler if sampler is None else sampler
        _, num_samples, steps = self._sampling_args(sampler, num_samples, None if sampler == "ddpm" else steps)
        gen = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        from .training.distributed import predict_sequences  # under torchrun: each rank predicts its share

        predicted = predict_sequences(self, sequences, gen, sampler=sampler, num_samples=num_samples,
                                      steps=None if sampler == "ddpm" else steps,
                                      smoothing=self._smoothing_frames(smoothing, "evaluate"))
        acc = ErrorAccumulator()
        n_eff = 1 if sampler == "context" else num_samples
        for seq, (poses_3d, std, calibrated) in zip(sequences, predicted):
            acc.add(seq, seq.action, poses_3d, std=std, calibrated_std=calibrated, num_hypotheses=n_eff)
        report: dict[str, Any] = {"frames": acc.frames, "sampler": sampler,
                                  "num_samples": 1 if sampler == "context" else num_samples}
        report.update({f"{k}_mm": float(acc.frame_errors(k).mean()) for k in POSE_METRICS})
        report["mpjve_mm"] = acc.mpjve_mm()
        uncertainty = acc.uncertainty()
        if uncertainty is not None:
            report["uncertainty"] = uncertainty
        if all(label is not None for label in acc.labels):
            from .data.h36m import normalize_action_name   # "TakingPhoto 1" and "Photo 2" are one group

            names = [normalize_action_name(a).split(" ")[0] for a in acc.labels]
            groups = {k: acc.grouped(k, names) for k in POSE_METRICS}
            report["action_wise"] = {f"{k}_mm": metrics.action_wise_mean(g) for k, g in groups.items()}
            report["per_action"] = {a: {f"{k}_mm": float(groups[k][a].mean()) for k in groups}
                                    for a in groups["mpjpe"]}
        return report

    def calibrate_spread(self, sequences: Sequence[PoseSequence], *, num_samples: Optional[int] = None,
                         steps: Optional[int] = None, sampler: Optional[str] = None,
                         generator: Optional[torch.Generator] = None) -> SpreadCalibration:
        """Fit the calibration of the spread on held-out ``sequences`` (with poses_3d); ``fit`` calls it itself.

        Lifts every valid frame as ``predict`` would (sampler, N and steps as you will use them, None: the
        config's), measures each non-root joint's error, and fits ``uncertainty.SpreadCalibration`` (per joint
        from PER_JOINT_MIN_FRAMES = 50 frames, one shared map below) twice: for that sampler's spread, and for
        N = 1 / sampler "context" from the encoder's answer. ``LiftResult.calibrated_std`` applies them; ``save``
        keeps them. Use sequences the model was not trained on: in-sample errors are smaller and would make the
        spread too narrow. Raises ValueError with fewer than MIN_CALIBRATION_FRAMES (10) valid frames, or for a
        sampler without spread (use sampler "ddim" or "ddpm" with num_samples >= 2). Returns the spread's map.
        """
        sequences = _check_sequences(sequences, "calibrate_spread")
        sampler, num_samples, steps = self._sampling_args(sampler, num_samples, steps)
        if sampler == "context" or num_samples < 2:
            raise ValueError(f"calibrate_spread: needs a spread, i.e. a diffusion sampler with num_samples >= 2, "
                             f"got sampler={sampler!r}, num_samples={num_samples}")
        maps = {}
        for key, kwargs in (("spread", dict(num_samples=num_samples, steps=steps, sampler=sampler)),
                            ("context", dict(sampler="context"))):
            stds, errors, confs = [], [], []
            for seq in sequences:
                # generator None: each sequence gets predict's default draws, what a later predict(seq) gives
                res = self.predict(seq, generator=generator, **kwargs)
                keep = np.ones(seq.num_frames, bool) if seq.valid is None else np.asarray(seq.valid, bool)
                err = np.linalg.norm(np.asarray(res.poses_3d, np.float64) - seq.root_relative_poses(), axis=-1)
                conf = (np.full((seq.num_frames, NUM_JOINTS), self.config.default_confidence)
                        if seq.confidence is None else np.asarray(seq.confidence, np.float64))
                stds.append(np.asarray(res.std, np.float64)[keep])
                errors.append(err[keep])
                confs.append(conf[keep])
            std, err, conf = np.concatenate(stds), np.concatenate(errors), np.concatenate(confs)
            if len(std) < MIN_CALIBRATION_FRAMES:
                raise ValueError(f"calibrate_spread: needs at least {MIN_CALIBRATION_FRAMES} valid frames with "
                                 f"poses_3d, got {len(std)}")
            maps[key] = SpreadCalibration.fit(std, err, conf, num_samples if key == "spread" else 1)
        self.calibration = maps
        return maps["spread"]

    # -------------------------------------------------------------------------------------- save / load
    def save(self, path) -> None:
        """Write the model to folder ``path`` (see ``persistence``): config, EMA and raw weights, H_K stats."""
        ema = {k: v for k, v in self.model.state_dict().items()}
        raw = self._raw_state if self._raw_state is not None else ema
        tensors = {"weights_ema": ema, "weights": raw}
        if self.model.depth_histogram is not None:
            tensors["hk_stats"] = self.model.depth_histogram.state_dict()
        calibration = None if self.calibration is None else {k: v.to_dict() for k, v in self.calibration.items()}
        save_folder(path, self.config.to_dict(), tensors, extra={"seed": self.seed, "trained": self.trained,
                                                                  "calibration": calibration})

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> "DiffPoseLifter":
        """Read a folder written by ``save``. Raises CheckpointError (a ValueError) if it is damaged."""
        _resolve_device(device)   # a bad device is named before the folder is read
        meta, tensors = load_folder(path)
        try:
            config = LifterConfig.from_saved(meta["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"load: the config in {str(path)!r} is invalid ({exc})") from None
        for needed in ("weights_ema", "weights"):
            if needed not in tensors:
                raise CheckpointError(f"load: the {needed} file is missing from {str(path)!r}")
        lifter = cls(mode=config.mode, device=device, seed=int(meta.get("seed", 0)), config=config)
        for group in ("weights_ema", "weights"):  # folders written before the depth calibration existed
            tensors[group].setdefault("depth_sigma_scale", torch.ones_like(lifter.model.depth_sigma_scale))
        try:
            lifter.model.load_state_dict(tensors["weights_ema"])
        except RuntimeError as exc:
            raise CheckpointError(f"load: the weights in {str(path)!r} do not fit this config ({exc})") from None
        lifter._raw_state = {k: v.to(lifter.device) for k, v in tensors["weights"].items()}
        if "hk_stats" in tensors:
            lifter.model.depth_histogram = DepthHistogram.from_state_dict(tensors["hk_stats"])
        lifter.trained = bool(meta.get("trained", True))
        lifter.calibration = _load_calibration(meta, config, path)
        lifter.model.eval()
        return lifter


# ------------------------------------------------------------------------------------------------ helpers

def _load_calibration(meta: dict, config: LifterConfig, path) -> Optional[dict[str, SpreadCalibration]]:
    """The saved calibration; a folder from before SpreadCalibration may hold one global spread_scale (std x it;
    no map for N = 1 then, whose calibrated_std stays None)."""
    saved = meta.get("calibration")
    if saved is not None:
        if not isinstance(saved, dict) or not set(saved) <= {"spread", "context"} or "spread" not in saved:
            raise CheckpointError(f"load: calibration in {str(path)!r} must map 'spread' and 'context' to maps, "
                                  f"got {saved!r:.80}")
        try:
            return {k: SpreadCalibration.from_dict(v, NUM_JOINTS) for k, v in saved.items()}
        except ValueError as exc:
            raise CheckpointError(f"load: {str(path)!r}: {exc}") from None
    scale = meta.get("spread_scale", 1.0)  # folders written by calibrate_spread's first version
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (np.isfinite(scale) and scale > 0):
        raise CheckpointError(f"load: spread_scale in {str(path)!r} must be a positive number, got {scale!r}")
    if scale == 1.0:   # never calibrated
        return None
    legacy = SpreadCalibration.from_scale(float(scale), config.num_samples, NUM_JOINTS)
    return {"spread": legacy}


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_sequences(sequences, name: str, require_valid: bool = False) -> list[PoseSequence]:
    """The sequences as a list, each a PoseSequence with poses_3d (except for predict); with ``require_valid``,
    at least one valid frame among them (what the metrics are averaged over)."""
    if isinstance(sequences, PoseSequence):
        sequences = [sequences]
    try:
        sequences = list(sequences)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of PoseSequence, got {type(sequences).__name__}") from None
    if not sequences:
        raise ValueError(f"{name}: expected at least one PoseSequence, got an empty sequence")
    for i, s in enumerate(sequences):
        if not isinstance(s, PoseSequence):
            raise TypeError(f"{name}: item {i} must be a PoseSequence, got {type(s).__name__}")
        if name != "predict" and s.poses_3d is None:
            raise ValueError(f"{name}: sequence {i} has no poses_3d (3D ground truth in metres is required)")
    if require_valid and not any(s.valid is None or bool(np.asarray(s.valid).any()) for s in sequences):
        raise ValueError(f"{name}: no sequence has a valid frame (every frame is marked valid=False)")
    return sequences


def _as_sequence(x, **kwargs) -> tuple[PoseSequence, bool]:
    if isinstance(x, PoseSequence):
        given = [k for k, v in kwargs.items() if v is not None]
        if given:
            raise ValueError(f"predict: {given} must be set inside the PoseSequence when one is passed, "
                             "not as keyword arguments")
        return x, False
    as_tensor = isinstance(x, torch.Tensor)
    if as_tensor:
        x = x.detach().cpu()
        x = (x.float() if x.dtype in (torch.bfloat16, torch.float16) else x).numpy()
    try:
        if x is None or isinstance(x, (str, bytes, dict)):
            raise TypeError
        arr = x if isinstance(x, np.ndarray) else np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):  # None, str, dict, ragged lists
        raise TypeError(f"predict: keypoints_2d must be a PoseSequence, or an array, tensor or nested list of "
                        f"numbers [T, {NUM_JOINTS}, 2], got {type(x).__name__}") from None
    if arr.ndim == 2:
        arr = arr[None]  # a single frame [17, 2]
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"predict: keypoints_2d must have shape [T, {NUM_JOINTS}, 2] (pixels, H36M joint order), "
                         f"got {list(np.shape(x))}")
    to_np = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v  # noqa: E731
    seq = PoseSequence(arr, image_size=kwargs["image_size"], confidence=to_np(kwargs["confidence"]),
                       heatmaps=to_np(kwargs["heatmaps"]), heatmap_boxes=to_np(kwargs["heatmap_boxes"]),
                       camera=kwargs["camera"])
    return seq, as_tensor
