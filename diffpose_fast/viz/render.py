"""Pictures of lifted poses: the 2D input beside the 3D result, still (PNG) or animated (GIF / MP4).

Matplotlib's Agg canvas is used directly (no pyplot, no GUI backend, works headless). Videos are written by
imageio: GIF through Pillow, MP4 through the ffmpeg binary bundled with the ``imageio-ffmpeg`` wheel, so no
system ffmpeg is needed.

3D panel: the N hypotheses are drawn faint, their mean bold; each mean joint is a dot whose colour and size
grow with that joint's spread (``LiftResult.calibrated_std`` or ``std``, as the caller passes it; shown in mm).
Axes: camera x to the right, camera z (depth) into the picture, up = -y (the camera's y points down).
Left limbs blue, right limbs red, the trunk grey, in both panels.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ..data.skeleton import EDGES, LEFT_JOINTS, NUM_JOINTS, RIGHT_JOINTS

__all__ = ["LEFT_COLOR", "RIGHT_COLOR", "CENTRE_COLOR", "bone_colors", "crop_box", "draw_pose_2d", "draw_pose_3d",
           "pose_figure", "save_pose_png", "joint_pixels", "render_animation"]

LEFT_COLOR = "#1f5fd1"
RIGHT_COLOR = "#d6282b"
CENTRE_COLOR = "#3c3c3c"
_STD_CMAP = "plasma"


def bone_colors() -> list[str]:
    """Colour of each bone of ``EDGES`` by the side of its child joint."""
    out = []
    for _, c in EDGES:
        out.append(LEFT_COLOR if c in LEFT_JOINTS else RIGHT_COLOR if c in RIGHT_JOINTS else CENTRE_COLOR)
    return out


def joint_colors() -> list[str]:
    return [LEFT_COLOR if j in LEFT_JOINTS else RIGHT_COLOR if j in RIGHT_JOINTS else CENTRE_COLOR
            for j in range(NUM_JOINTS)]


def crop_box(keypoints_2d: np.ndarray, image_size: Sequence[float], margin: float = 0.25) -> tuple[float, ...]:
    """(x0, x1, y0, y1) pixels: a square around all finite keypoints [..., 17, 2] with ``margin`` of its side
    added, clipped to the image; the whole image when no keypoint is finite."""
    w, h = float(image_size[0]), float(image_size[1])
    pts = np.asarray(keypoints_2d, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(-1)]
    if len(pts) == 0:
        return 0.0, w, 0.0, h
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    half = max(hi - lo) * (0.5 + margin) + 1.0
    x0, x1 = max(0.0, centre[0] - half), min(w, centre[0] + half)
    y0, y1 = max(0.0, centre[1] - half), min(h, centre[1] + half)
    return x0, x1, y0, y1


def draw_pose_2d(ax, keypoints: np.ndarray, box: Sequence[float], confidence: Optional[np.ndarray] = None,
                 title: str = "2D input (px)") -> None:
    """Draw keypoints [17, 2] px in image coordinates (y down) on a 2D axes with limits ``box`` (x0, x1, y0, y1).
    Missing joints (NaN or confidence 0) and their bones are left out."""
    kp = np.asarray(keypoints, np.float64)
    ok = np.isfinite(kp).all(-1)
    if confidence is not None:
        ok &= np.asarray(confidence) > 0
    for (p, c), color in zip(EDGES, bone_colors()):
        if ok[p] and ok[c]:
            ax.plot(kp[[p, c], 0], kp[[p, c], 1], color=color, linewidth=2.5, solid_capstyle="round")
    cols = np.array(joint_colors())
    ax.scatter(kp[ok, 0], kp[ok, 1], s=18, c=list(cols[ok]), zorder=3)
    x0, x1, y0, y1 = box
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)


def _to_plot(p: np.ndarray) -> np.ndarray:
    """Camera frame (x right, y down, z forward) -> plot axes (x, depth z, up = -y)."""
    p = np.asarray(p, np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)


def draw_pose_3d(ax, mean: np.ndarray, samples: Optional[np.ndarray] = None, std: Optional[np.ndarray] = None,
                 radius: float = 0.9, std_max_mm: Optional[float] = None, title: str = "3D (m)",
                 ground_truth: Optional[np.ndarray] = None):
    """Draw a root-relative pose [17, 3] (metres, camera frame) bold, the hypotheses [N, 17, 3] faint, and the
    per-joint spread std [17] (metres) as dot colour and size; ``ground_truth`` [17, 3] (root-relative metres),
    when given, in red dashes beside them (the paper's Fig. 3 convention). Returns the scatter (for a colour
    bar)."""
    m = _to_plot(mean)
    if ground_truth is not None:
        g = _to_plot(ground_truth)
        for k, (p, c) in enumerate(EDGES):
            ax.plot(g[[p, c], 0], g[[p, c], 1], g[[p, c], 2], color="red", linewidth=1.6, linestyle="--",
                    label="ground truth" if k == 0 else None)
    if samples is not None and len(samples) > 1:
        alpha = max(0.08, min(0.35, 1.5 / len(samples)))
        for s in _to_plot(samples):
            for (p, c), color in zip(EDGES, bone_colors()):
                ax.plot(s[[p, c], 0], s[[p, c], 1], s[[p, c], 2], color=color, linewidth=0.8, alpha=alpha)
    for (p, c), color in zip(EDGES, bone_colors()):
        ax.plot(m[[p, c], 0], m[[p, c], 1], m[[p, c], 2], color=color, linewidth=3.0)
    std_mm = np.zeros(NUM_JOINTS) if std is None else np.nan_to_num(np.asarray(std, np.float64)) * 1000.0
    vmax = float(std_max_mm) if std_max_mm else max(1.0, float(std_mm.max()))
    sizes = 10.0 + 90.0 * np.clip(std_mm / vmax, 0, 1)
    sc = ax.scatter(m[:, 0], m[:, 1], m[:, 2], c=std_mm, cmap=_STD_CMAP, vmin=0.0, vmax=vmax, s=sizes,
                    depthshade=False, edgecolors="black", linewidths=0.3, zorder=4)
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_zlim(-radius, radius)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x", fontsize=8, labelpad=-8)
    ax.set_ylabel("depth z", fontsize=8, labelpad=-8)
    ax.set_zlabel("up (-y)", fontsize=8, labelpad=-8)
    ax.tick_params(labelsize=6, pad=-3)
    ax.view_init(elev=12, azim=-70)
    ax.set_title(title, fontsize=10)
    return sc


def pose_figure(keypoints_2d: np.ndarray, mean: np.ndarray, samples: Optional[np.ndarray], std: Optional[np.ndarray],
                image_size: Sequence[float], box: Optional[Sequence[float]] = None, confidence=None,
                title: Optional[str] = None, std_max_mm: Optional[float] = None, size_in=(10.0, 5.0),
                dpi: int = 80, colorbar: bool = True, ground_truth: Optional[np.ndarray] = None):
    """A Figure (Agg canvas) with the 2D input left and the 3D result right, for one frame.

    keypoints_2d [17, 2] px; mean [17, 3] m; samples [N, 17, 3] m or None; std [17] m or None; ground_truth
    [17, 3] root-relative m or None (drawn in red dashes in the 3D view).
    Returns (figure, ax_2d, ax_3d).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size_in, dpi=dpi)
    FigureCanvasAgg(fig)
    top = 0.86 if title else 0.92
    ax2 = fig.add_axes((0.05, 0.08, 0.40, top - 0.10))
    ax3 = fig.add_axes((0.47, 0.02, 0.46, top - 0.02), projection="3d")
    box = crop_box(keypoints_2d, image_size) if box is None else box
    draw_pose_2d(ax2, keypoints_2d, box, confidence)
    n = 0 if samples is None else len(samples)
    label = f"3D: mean of N={n} hypotheses (bold), hypotheses (faint)" if n > 1 else "3D (m)"
    sc = draw_pose_3d(ax3, mean, samples, std, std_max_mm=std_max_mm, ground_truth=ground_truth,
                      title=label + (", ground truth (red dashes)" if ground_truth is not None else ""))
    if colorbar:
        cax = fig.add_axes((0.93, 0.20, 0.012, 0.55))
        cb = fig.colorbar(sc, cax=cax)
        cb.set_label("per-joint spread (mm)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=11, y=0.985)
    return fig, ax2, ax3


def save_pose_png(path: str | os.PathLike, *args, **kwargs):
    """``pose_figure(*args, **kwargs)`` written to ``path`` as PNG at the figure's dpi (no tight bbox, so
    ``joint_pixels`` maps data to pixels of the file). Returns (figure, ax_2d, ax_3d)."""
    fig, ax2, ax3 = pose_figure(*args, **kwargs)
    fig.savefig(os.fspath(path), dpi=fig.dpi, facecolor="white")
    return fig, ax2, ax3


def joint_pixels(fig, ax, points_2d: np.ndarray) -> np.ndarray:
    """Pixel (column, row) [K, 2] in the saved PNG (saved at fig.dpi, no tight bbox) of data points [K, 2] on a
    2D axes ``ax`` of ``fig``: where the renderer put them."""
    fig.canvas.draw()
    disp = ax.transData.transform(np.asarray(points_2d, np.float64))
    height = fig.bbox.height
    return np.stack([disp[:, 0], height - disp[:, 1]], -1)


def _figure_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def render_animation(paths: Sequence[str | os.PathLike], keypoints_2d: np.ndarray, mean: np.ndarray,
                     samples: Optional[np.ndarray], std: Optional[np.ndarray], image_size: Sequence[float],
                     fps: float = 25.0, stride: int = 1, max_frames: int = 300, progress: bool = True,
                     confidence: Optional[np.ndarray] = None, title: Optional[str] = None) -> dict[str, str]:
    """Write an animation of frames 0, stride, 2*stride, ... (at most ``max_frames``) to every path in ``paths``
    (``.gif`` through Pillow, ``.mp4`` through imageio-ffmpeg's bundled ffmpeg).

    keypoints_2d [T, 17, 2] px; mean [T, 17, 3] m; samples [N, T, 17, 3] or None; std [T, 17] or None. Frames
    whose mean is NaN (not lifted) are skipped. ``fps`` is the playback rate of the written file.

    Returns {path: "ok"} or {path: "<reason it could not be written>"} per path; never raises for a missing
    video codec (the reason says what to install).
    """
    from tqdm.auto import tqdm

    mean = np.asarray(mean)
    t_all = np.arange(0, mean.shape[0], max(1, int(stride)))
    t_all = [t for t in t_all if np.isfinite(mean[t]).all()][:max_frames]
    if not t_all:
        raise ValueError("render_animation: no frame with a finite 3D pose to draw")
    box = crop_box(np.asarray(keypoints_2d)[t_all], image_size)
    std_max = None
    if std is not None:
        std_max = max(1.0, float(np.nanpercentile(np.asarray(std)[t_all] * 1000.0, 99)))
    frames = []
    for t in tqdm(t_all, desc="rendering frames", disable=not progress, leave=False, dynamic_ncols=True):
        fig, _, _ = pose_figure(keypoints_2d[t], mean[t], None if samples is None else samples[:, t],
                                None if std is None else std[t], image_size, box=box,
                                confidence=None if confidence is None else confidence[t],
                                title=f"{title + ' - ' if title else ''}frame {t}", std_max_mm=std_max)
        frames.append(_figure_rgb(fig))
    return {os.fspath(p): _write_video(os.fspath(p), frames, fps) for p in paths}


def _write_video(path: str, frames: list[np.ndarray], fps: float) -> str:
    import imageio.v2 as iio

    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".gif":
            iio.mimsave(path, frames, format="GIF", duration=1000.0 / fps, loop=0)
        elif ext == ".mp4":
            try:
                import imageio_ffmpeg  # noqa: F401  (its bundled binary is what imageio's ffmpeg plugin runs)
            except ImportError:
                return "not written: MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg)"
            with iio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=7, macro_block_size=16,
                                ffmpeg_log_level="error") as writer:
                for frame in frames:
                    writer.append_data(frame)
        else:
            return f"not written: unknown video extension {ext!r} (use .gif or .mp4)"
    except Exception as exc:  # a codec or plugin problem must not lose the rest of the outputs
        return f"not written: {type(exc).__name__}: {exc}"
    return "ok"
