"""``LifterConfig``: every setting of the method, frozen, validated, JSON/YAML round-trippable.

Defaults follow the paper (Sec. 4.5, 5: K = 50, M = 5, N = 5, DDIM 5 steps, denoiser widths 128/256, 3 blocks)
and the resolutions of docs/design.md where the paper is silent.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

SAMPLERS = ("ddim", "ddpm", "context")   # DDIM steps, all K steps of Eq. 8, or the context encoder alone

# hypothesis_smoothing=None in mode "video": the time constant measured in benchmarks/RESULTS.md "Smooth hypotheses"
VIDEO_SMOOTHING_FRAMES = 4.0


def check_smoothing(value, name: str) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is None or a finite number of frames >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 <= value < float("inf")):
        raise ValueError(f"{name} must be None or a number of frames >= 0, got {value!r}")

_CHOICES = {
    "mode": ("frame", "video"),
    "schedule": ("cosine", "linear"),
    "forward_process": ("gmm", "standard"),
    "gmm_scope": ("per_joint", "whole_pose"),
    "gmm_covariance": ("full", "diag"),
    "z_source": ("encoder", "histogram"),
    "loss_weighting": ("x0", "eq9"),
    "sampler": SAMPLERS,
    "temporal_noise": ("shared", "independent"),
}


# Upper bounds on the sizes a config (or a model folder's config.json) may ask for: far above any useful model, far
# below what would try to allocate gigabytes before the first layer is built.
SIZE_LIMITS = {"num_diffusion_steps": 10_000, "gmm_samples": 1 << 16, "gmm_max_iter": 10_000, "z_histogram_bins": 4096,
               "context_dim": 4096, "embed_dim": 4096, "denoiser_blocks": 64, "denoiser_heads": 64,
               "encoder_layers": 64, "encoder_heads": 64, "batch_size": 1 << 20, "train_hypotheses": 64,
               "num_samples": 1000, "sampling_steps": 10_000, "frames": 10_000, "context_folds": 16,
               "virtual_views": 16}


def _check_size_limit(name: str, value: int) -> None:
    if value > SIZE_LIMITS.get(name, value):
        raise ValueError(f"LifterConfig: {name} must be at most {SIZE_LIMITS[name]} (a size limit checked "
                         f"before anything is allocated), got {value}")


@dataclasses.dataclass(frozen=True)
class LifterConfig:
    """All settings of a DiffPoseLifter. Unknown keys are rejected; every value is checked at construction."""

    mode: str = "frame"
    # --- diffusion (paper Sec. 4.2-4.4)
    num_diffusion_steps: int = 50          # K
    schedule: str = "cosine"               # alpha_bar_K = 0, so Eq. 7 reaches the fitted GMM
    forward_process: str = "gmm"           # "gmm" (Eq. 7) or "standard" (Eq. 4, the paper's Stand-Diff)
    gmm_scope: str = "per_joint"           # one GMM per joint (D=3) or one per pose (D=48, the paper's literal form)
    gmm_components: int = 5                # M
    gmm_covariance: str = "full"
    gmm_samples: int = 64                  # N_GMM samples of H_K per fit
    gmm_max_iter: int = 30
    gmm_tol: float = 1e-4
    gmm_reg_covar: float = 1e-3            # relative to each fit's data scale
    # --- H_K (Sec. 4.1)
    z_source: str = "encoder"              # the encoder's predicted depth spread, or the training histogram
    z_histogram_bins: int = 32
    keypoint_sigma_min: float = 0.01       # 2D spread of a joint with confidence 1, as a fraction of the pose size
    keypoint_sigma_max: float = 0.10       # ... with confidence 0 (missing)
    default_confidence: float = 0.8        # used when the input carries no confidence
    # --- networks (Sec. 4.5)
    context_dim: int = 128                 # f_ST width per joint
    embed_dim: int = 128                   # width of the first GCN layer of g (E)
    denoiser_blocks: int = 3
    denoiser_heads: int = 8
    encoder_layers: int = 4
    encoder_heads: int = 4
    encoder_dropout: float = 0.1           # in the frame context encoder (docs/design.md "Regularisation");
                                           # the video encoder uses `dropout`, as it was measured with
    encoder_joint_embedding: bool = True   # a learned per-joint vector in the frame encoder (docs/design.md "Joint
                                           # identity"); the video encoder always has one (MixSTE's)
    denoiser_joint_embedding: bool = True  # ... and in the denoiser's conditioning
    denoiser_2d_input: bool = False        # the denoiser's conditioning also reads the encoder's 2D input
    dropout: float = 0.0                   # in the denoiser (and the video encoder)
    # --- training
    context_epochs: int = 30
    diffusion_epochs: int = 30
    context_min_steps: int = 2000          # fit() without steps: at least this many per stage, whatever the epochs
    diffusion_min_steps: int = 3000        # give on small data (docs/design.md "Budget")
    batch_size: int = 128
    context_lr: float = 1e-3
    diffusion_lr: float = 5e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    flip_augment: bool = True
    flip_test: bool = True                 # the encoder's outputs are averaged over each input and its mirror image
    #                                        (models.flip_test) in stage 2 and at inference, both modes; predict's
    #                                        flip_test overrides it at inference (docs/design.md "Flip test")
    loss_weighting: str = "x0"             # plain x0 loss, or Eq. 9 exactly (x0 loss weighted by w_k)
    train_hypotheses: int = 1              # sets i per training sample in the estimate of Eq. 9's sum
    z_nll_weight: float = 0.1              # weight of the encoder's depth-spread likelihood in stage 1
    calibration_fraction: float = 0.1      # share of the training frames fit() holds out (whole sequences) to
    #                                        calibrate the spread when no val is given; 0: no calibration
    context_folds: int = 1                 # K cross-fitted encoders (docs/design.md "Cross-fitting"); 1: the paper's
    virtual_views: int = 0                 # fit() adds this many copies of each training sequence with a camera,
    #                                        turned about the vertical and re-projected (data.virtual_views); 0: off
    # --- inference
    num_samples: int = 5                   # N
    sampler: str = "ddim"
    sampling_steps: int = 5
    temporal_noise: str = "shared"         # one sequence's frames share their standard draws (smooth hypotheses)
    hypothesis_smoothing: float | None = None  # time constant (frames) of the low-pass on the hypotheses' offset
    #                                        from the encoder's pose (inference.smoothing); None: VIDEO_SMOOTHING_FRAMES
    #                                        in mode "video", 0 (off) in mode "frame" (its frames may be unrelated)
    # --- video (docs/video.md)
    frames: int = 243
    causal: bool = False

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"LifterConfig: {name} must be one of {list(choices)}, got {value!r}")
        positive_ints = ("num_diffusion_steps", "gmm_components", "gmm_samples", "gmm_max_iter", "z_histogram_bins",
                         "context_dim", "embed_dim", "denoiser_blocks", "denoiser_heads", "encoder_layers",
                         "encoder_heads", "batch_size", "train_hypotheses", "num_samples", "sampling_steps", "frames",
                         "context_folds")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LifterConfig: {name} must be an int >= 1, got {value!r}")
            _check_size_limit(name, value)
        for name in ("context_epochs", "diffusion_epochs", "context_min_steps", "diffusion_min_steps",
                     "virtual_views"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"LifterConfig: {name} must be an int >= 0, got {value!r}")
            _check_size_limit(name, value)
        if not 1 <= self.gmm_components <= 9:
            raise ValueError(f"LifterConfig: gmm_components must be in 1..9 (the paper's range), "
                             f"got {self.gmm_components}")
        if self.gmm_samples < self.gmm_components:
            raise ValueError(f"LifterConfig: gmm_samples must be >= gmm_components={self.gmm_components}, "
                             f"got {self.gmm_samples}")
        if self.sampling_steps > self.num_diffusion_steps:
            raise ValueError(f"LifterConfig: sampling_steps must be <= num_diffusion_steps="
                             f"{self.num_diffusion_steps}, got {self.sampling_steps}")
        if (self.embed_dim + self.context_dim) % self.denoiser_heads:
            raise ValueError(f"LifterConfig: embed_dim + context_dim = {self.embed_dim + self.context_dim} must be "
                             f"divisible by denoiser_heads={self.denoiser_heads}")
        if self.context_dim % self.encoder_heads:
            raise ValueError(f"LifterConfig: context_dim={self.context_dim} must be divisible by "
                             f"encoder_heads={self.encoder_heads}")
        for name in ("context_lr", "diffusion_lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LifterConfig: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "z_nll_weight", "gmm_tol", "gmm_reg_covar"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"LifterConfig: {name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("encoder_joint_embedding", "denoiser_joint_embedding", "denoiser_2d_input", "flip_augment",
                     "flip_test", "causal"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LifterConfig: {name} must be true or false, got {getattr(self, name)!r}")
        if self.context_folds > 1 and self.mode != "frame":
            raise ValueError(f"LifterConfig: context_folds > 1 is implemented for mode='frame' only, got "
                             f"context_folds={self.context_folds} with mode={self.mode!r}")
        for name in ("dropout", "encoder_dropout", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"LifterConfig: {name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 < self.keypoint_sigma_min <= self.keypoint_sigma_max:
            raise ValueError("LifterConfig: need 0 < keypoint_sigma_min <= keypoint_sigma_max, got "
                             f"{self.keypoint_sigma_min}, {self.keypoint_sigma_max}")
        if isinstance(self.calibration_fraction, bool) or not 0 <= self.calibration_fraction <= 0.5:
            raise ValueError(f"LifterConfig: calibration_fraction must be in [0, 0.5], got "
                             f"{self.calibration_fraction!r}")
        if not 0 <= self.default_confidence <= 1:
            raise ValueError(f"LifterConfig: default_confidence must be in [0, 1], got {self.default_confidence}")
        check_smoothing(self.hypothesis_smoothing, "LifterConfig: hypothesis_smoothing")

    @property
    def smoothing_frames(self) -> float:
        """The hypotheses' smoothing time constant in frames that inference uses (0: none); see
        ``hypothesis_smoothing``."""
        if self.hypothesis_smoothing is None:
            return VIDEO_SMOOTHING_FRAMES if self.mode == "video" else 0.0
        return float(self.hypothesis_smoothing)

    @property
    def hidden_dim(self) -> int:
        """Width of the GCN-attention blocks: E (embed_dim) concatenated with f_ST (context_dim), 256 in the paper."""
        return self.embed_dim + self.context_dim

    # ------------------------------------------------------------------------------------ (de)serialisation
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> "LifterConfig":
        """The config of a saved model: a key the saving version did not have takes the value that reproduces
        the network it saved (``LEGACY_VALUES``), not today's default."""
        if not isinstance(values, dict):
            raise TypeError(f"LifterConfig.from_saved: expected a dict, got {type(values).__name__}")
        filled = dict(values)
        for key, legacy in LEGACY_VALUES.items():
            if key not in filled:
                filled[key] = legacy(filled) if callable(legacy) else legacy
        return cls.from_dict(filled)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "LifterConfig":
        if not isinstance(values, dict):
            raise TypeError(f"LifterConfig.from_dict: expected a dict, got {type(values).__name__}")
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"LifterConfig: unknown key(s) {unknown}; valid keys: {cls.field_names()}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides) -> "LifterConfig":
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise ValueError(f"LifterConfig: unknown key(s) {unknown}; valid keys: {self.field_names()}")
        return dataclasses.replace(self, **overrides)

    def save(self, path: str | Path) -> None:
        """Write as JSON, or YAML when the suffix is .yaml/.yml."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LifterConfig":
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
        return cls.from_dict(values)


# Keys added after the first saved format, with the value that reproduces a model saved without them.
LEGACY_VALUES: dict[str, Any] = {
    "encoder_dropout": lambda saved: saved.get("dropout", 0.0),
    "encoder_joint_embedding": False,
    "denoiser_joint_embedding": False,
    "denoiser_2d_input": False,
    "context_folds": 1,
    "virtual_views": 0,
    "calibration_fraction": 0.0,
    "hypothesis_smoothing": 0.0,
    # frame models saved before it conditioned on the plain encoder; video models always used the flip test
    "flip_test": lambda saved: saved.get("mode", "frame") == "video",
}
