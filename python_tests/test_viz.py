"""Rendering: a PNG that is not blank and has skeleton pixels where the 2D keypoints project; GIF/MP4 writing."""
from __future__ import annotations

import imageio.v2 as iio
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.viz.render import (CENTRE_COLOR, LEFT_COLOR, RIGHT_COLOR, crop_box, joint_pixels,
                                      render_animation, save_pose_png)


@pytest.fixture(scope="module")
def seq():
    return generate_sequences(1, 6, seed=5)[0]


def _result(seq, n=4):
    p = seq.root_relative_poses()
    samples = p[None] + np.random.default_rng(0).normal(0, 0.03, (n,) + p.shape)
    mean = samples.mean(0)
    std = np.sqrt(((samples - mean) ** 2).sum(-1).mean(0))
    return mean, samples, std


def _near_colour(img, col_row, colour, radius=4, tol=60):
    """True if a pixel within ``radius`` of (column, row) is within ``tol`` (RGB L1, 0..765) of ``colour``."""
    c, r = int(round(col_row[0])), int(round(col_row[1]))
    patch = img[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1, :3].astype(int)
    target = (np.array(to_rgb(colour)) * 255).astype(int)
    return bool((np.abs(patch - target).sum(-1) < tol).any())


def test_png_has_skeleton_pixels_where_the_keypoints_project(tmp_path, seq):
    mean, samples, std = _result(seq)
    t = 2
    fig, ax2, _ = save_pose_png(tmp_path / "f.png", seq.keypoints_2d[t], mean[t], samples[:, t], std[t],
                                seq.image_size, confidence=seq.confidence[t])
    img = iio.imread(tmp_path / "f.png")
    assert img.shape[:2] == (int(fig.bbox.height), int(fig.bbox.width))
    rgb = img[..., :3].astype(int)
    assert (np.abs(rgb - 255).sum(-1) > 30).mean() > 0.02, "the picture is (nearly) blank"
    px = joint_pixels(fig, ax2, seq.keypoints_2d[t])
    colours = {0: CENTRE_COLOR, 8: CENTRE_COLOR, 3: RIGHT_COLOR, 16: RIGHT_COLOR, 6: LEFT_COLOR, 13: LEFT_COLOR}
    for j, colour in colours.items():
        assert _near_colour(img, px[j], colour), f"no {colour} pixel near joint {j} at {px[j]}"
    # and the rendering is not simply coloured everywhere: far from the person (a corner of the 2D panel
    # inside the axes) the background is white
    x0, x1, y0, y1 = crop_box(seq.keypoints_2d[t], seq.image_size)
    corner = joint_pixels(fig, ax2, np.array([[x0 + 2, y0 + 2]]))[0]
    assert not _near_colour(img, corner, LEFT_COLOR, radius=2) and not _near_colour(img, corner, RIGHT_COLOR, radius=2)


def test_missing_joints_are_not_drawn(tmp_path, seq):
    mean, samples, std = _result(seq)
    kp = np.array(seq.keypoints_2d[0], dtype=np.float64)
    conf = np.array(seq.confidence[0], dtype=np.float64)
    kp[16] = np.nan
    conf[16] = 0
    fig, ax2, _ = save_pose_png(tmp_path / "m.png", kp, mean[0], samples[:, 0], std[0], seq.image_size,
                                confidence=conf)
    img = iio.imread(tmp_path / "m.png")
    px = joint_pixels(fig, ax2, np.array(seq.keypoints_2d[0])[[13]])
    assert _near_colour(img, px[0], LEFT_COLOR)


def test_animation_gif_and_mp4(tmp_path, seq):
    mean, samples, std = _result(seq)
    mean[1] = np.nan  # a frame that was not lifted is skipped
    status = render_animation([tmp_path / "a.gif", tmp_path / "a.mp4", tmp_path / "a.avi"], seq.keypoints_2d,
                              mean, samples, std, seq.image_size, fps=10, stride=1, max_frames=3, progress=False)
    assert status[str(tmp_path / "a.gif")] == "ok"
    frames = iio.mimread(tmp_path / "a.gif")
    assert len(frames) == 3 and frames[0].shape[0] > 100
    assert status[str(tmp_path / "a.avi")].startswith("not written: unknown video extension")
    mp4 = status[str(tmp_path / "a.mp4")]
    assert mp4 == "ok" or mp4.startswith("not written")
    if mp4 == "ok":
        assert (tmp_path / "a.mp4").stat().st_size > 1000


def test_animation_without_any_pose_raises(seq):
    mean, samples, std = _result(seq)
    with pytest.raises(ValueError, match="no frame"):
        render_animation([], seq.keypoints_2d, mean * np.nan, samples, std, seq.image_size, progress=False)


def test_ground_truth_is_drawn_in_red_beside_the_answer(tmp_path, seq):
    mean, samples, std = _result(seq)
    t = 1
    gt = seq.root_relative_poses()[t] + np.array([0.3, 0.0, 0.0])  # shifted so it does not hide under the mean
    _, _, ax3 = save_pose_png(tmp_path / "g.png", seq.keypoints_2d[t], mean[t], samples[:, t], std[t],
                              seq.image_size, ground_truth=gt)
    red = [ln for ln in ax3.get_lines() if to_rgb(ln.get_color()) == (1.0, 0.0, 0.0) and ln.get_linestyle() == "--"]
    assert len(red) == 16  # one dashed red line per bone
    xs = np.concatenate([ln.get_data_3d()[0] for ln in red])
    np.testing.assert_allclose(np.sort(np.unique(np.round(xs, 9))), np.sort(np.unique(np.round(gt[:, 0], 9))))
    img = iio.imread(tmp_path / "g.png")[..., :3].astype(int)
    assert (np.abs(img - [255, 0, 0]).sum(-1) < 60).sum() > 50  # red pixels in the file
    _, _, ax_plain = save_pose_png(tmp_path / "p.png", seq.keypoints_2d[t], mean[t], samples[:, t], std[t],
                                   seq.image_size)
    assert not [ln for ln in ax_plain.get_lines() if ln.get_linestyle() == "--"]
