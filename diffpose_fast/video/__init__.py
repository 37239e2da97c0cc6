"""Video-based DiffPose: MixSTE-style context over windows of frames, per-frame diffusion (paper Sec. 4.3, 5).

    windows       plan_windows / WindowPlan: cut a sequence of any length into F-frame windows, stitch back
    inference     sample_video: windows -> encoder (flip TTA) -> per-frame f_ST -> per-frame DiffPose sampler
    training      VideoStages: stage 1 (position + velocity + temporal consistency) and stage 2 on windows, the
                  steps that training.Trainer runs for mode "video"
    mixste        load_mixste: MixSTE2's released parameter layout into the VideoContextEncoder (weights only)

The public entry point is ``DiffPoseLifter(mode="video", frames=243[, causal=True])``; see docs/video.md.
"""
from .windows import WindowPlan, plan_windows

__all__ = ["WindowPlan", "plan_windows"]
