"""Rendering of lifted poses (matplotlib Agg; videos through imageio and its bundled ffmpeg)."""
from .render import (crop_box, draw_pose_2d, draw_pose_3d, joint_pixels, pose_figure, render_animation,
                     save_pose_png)

__all__ = ["crop_box", "draw_pose_2d", "draw_pose_3d", "joint_pixels", "pose_figure", "render_animation",
           "save_pose_png"]
