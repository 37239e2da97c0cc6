"""Mocap takes seen by cameras (data.mocap): exact projection and visibility with a noise-free detector, rigid
placement (a turn about the vertical, the lowest ankle on the floor, the clip centred in the capture area),
clip cutting and labels, determinism, random cameras aimed with ``look_at``, and the argument checks.

Takes are built directly from synthetic world poses (z up, metres). ``PoseSequence`` stores float32, so the
tolerances below follow from float32 rounding: poses of a few metres carry ~5e-7 m, keypoints of ~1000 px
~6e-5 px, and a projection at >= 0.8 m depth turns the pose rounding into < 1e-3 px."""
from __future__ import annotations

import numpy as np
import pytest

from diffpose_fast.data.bvh import MocapTake
from diffpose_fast.data.camera import camera_to_world, world_to_camera
from diffpose_fast.data.h36m_cameras import H36M_SUBJECTS, h36m_camera, h36m_extrinsics
from diffpose_fast.data.mocap import MocapViewConfig, look_at, mocap_sequences
from diffpose_fast.data.skeleton import bone_lengths
from diffpose_fast.data.synthetic import AREA_CENTRE_M, SyntheticConfig, generate_motion

CLEAN = SyntheticConfig(noise_px=0, outlier_prob=0, swap_prob=0, noise_spread=0)
PX_TOL = 1e-3   # float32 keypoints and poses, see the module docstring
M_TOL = 1e-5    # float32 poses of up to ~10 m, after a rigid transform


def _take(frames=60, fps=50.0, name="walk", seed=0, action=None):
    poses = generate_motion(frames, np.random.default_rng(seed), action=action)
    return MocapTake(poses, fps, name, {})


def _distances(poses):
    """[T, 17, 17] distances between all joints: unchanged by any rigid motion, and they vary over a take."""
    return np.linalg.norm(poses[:, :, None] - poses[:, None], axis=-1)


def _h36m_index(camera):
    matches = [i for i in range(4) if h36m_camera(i) == camera]
    assert len(matches) == 1, camera
    return matches[0]


def _yaw_fit(src, dst):
    """Rotation about z + translation taking src [N, 3] onto dst [N, 3] (2D Kabsch on xy, mean shift in z):
    (max residual, angle)."""
    a = src[:, :2] - src[:, :2].mean(0)
    b = dst[:, :2] - dst[:, :2].mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    r = (u @ vt).T
    if np.linalg.det(r) < 0:  # a mirror is no fit
        return np.inf, None
    dz = (dst[:, 2] - src[:, 2]).mean()
    res = max(np.abs(a @ r.T - b).max(), np.abs(dst[:, 2] - src[:, 2] - dz).max())
    return res, np.arctan2(r[1, 0], r[0, 0])


# ------------------------------------------------------------------------------------------------ projection

def test_noise_free_keypoints_are_the_projection_and_unseen_joints_are_missing():
    take = _take(200)
    # a capture area 8 m across: some clips half out of view, some joints behind a camera
    config = MocapViewConfig(clip_seconds=0.4, views=4, area_radius_m=8.0, detector=CLEAN)
    seqs = mocap_sequences([take], seed=0, config=config)
    assert len(seqs) == 10 * 4
    counts = {"seen": 0, "outside": 0, "behind": 0}
    for k, seq in enumerate(seqs):
        lo = (k // 4) * 20
        p = seq.poses_3d.astype(np.float64)
        w, h = seq.camera.image_size
        assert (w, h) in ((1000, 1000), (1000, 1002)) and seq.image_size == (w, h)  # the H36M sensors
        front = p[..., 2] > 0.1
        proj = seq.camera.project(np.where(front[..., None], p, 1.0))
        inside = (proj[..., 0] >= 0) & (proj[..., 0] <= w) & (proj[..., 1] >= 0) & (proj[..., 1] <= h)
        seen = front & inside
        counts["seen"] += seen.sum()
        counts["outside"] += (front & ~inside).sum()
        counts["behind"] += (~front).sum()
        kp, conf = seq.keypoints_2d, seq.confidence
        np.testing.assert_array_equal(np.isfinite(kp).all(-1), seen)
        assert np.isnan(kp[~seen]).all() and (conf[~seen] == 0).all() and (conf[seen] > 0).all()
        if seen.any():
            np.testing.assert_allclose(kp[seen], proj[seen], rtol=0, atol=PX_TOL)
        # the 3D truth is the clip moved rigidly: same bones, same distances between any two joints
        clip = take.poses_world[lo:lo + 20]
        np.testing.assert_allclose(bone_lengths(p), bone_lengths(clip), rtol=0, atol=M_TOL)
        np.testing.assert_allclose(_distances(p), _distances(clip), rtol=0, atol=M_TOL)
    assert min(counts.values()) > 100, counts


def test_default_detector_noise_is_added():
    take = _take(50)
    clean = mocap_sequences(take, seed=3, config=MocapViewConfig(detector=CLEAN))[0]
    noisy = mocap_sequences(take, seed=3)[0]
    np.testing.assert_array_equal(noisy.poses_3d, clean.poses_3d)  # the noise draws come after the placement
    err = np.linalg.norm(noisy.keypoints_2d - clean.keypoints_2d, axis=-1)
    assert 1.0 < np.nanmedian(err) < 20.0  # a few pixels, as a detector (noise_px=3 with per-joint factors)
    assert (noisy.confidence < 1).all() and (noisy.confidence > 0).any()


# ------------------------------------------------------------------------------------------------ clips

@pytest.mark.parametrize("frames,clip_seconds,lengths", [
    (35, 1.0, [10, 10, 10, 5]),   # the last 5 frames: half a clip, kept
    (34, 1.0, [10, 10, 10]),      # 4 frames: dropped
    (10, 1.0, [10]),
    (7, 1.0, [7]),                # a take shorter than a clip is one clip
    (13, 0.5, [5, 5, 3]),
    (12, 0.5, [5, 5]),            # 2 frames are less than half of 5
    (3, 0.1, [1, 1, 1]),          # clips of one frame: no empty clip at the end
])
def test_clip_cutting_views_and_labels(frames, clip_seconds, lengths):
    take = _take(frames, fps=10.0, name="jump", action="waving")
    views = 3
    seqs = mocap_sequences([take], seed=1, config=MocapViewConfig(clip_seconds=clip_seconds, views=views))
    assert len(seqs) == len(lengths) * views
    start = 0
    for c, length in enumerate(lengths):
        clip = seqs[c * views:(c + 1) * views]
        assert [s.num_frames for s in clip] == [length] * views
        assert all(s.subject == "jump" and s.action == f"jump {c}" for s in clip)
        assert len({_h36m_index(s.camera) for s in clip}) == views  # different cameras within a clip
        for s in clip:
            np.testing.assert_allclose(_distances(s.poses_3d.astype(np.float64)),
                                       _distances(take.poses_world[start:start + length]), rtol=0, atol=M_TOL)
        start += length


def test_several_takes_and_a_single_take():
    a, b = _take(20, name="a", seed=1), _take(40, name="b", seed=2)
    config = MocapViewConfig(clip_seconds=0.5)  # 25 frames at 50 fps
    seqs = mocap_sequences([a, b], seed=0, config=config)
    assert [(s.subject, s.action, s.num_frames) for s in seqs] == [("a", "a 0", 20), ("b", "b 0", 25),
                                                                   ("b", "b 1", 15)]
    alone = mocap_sequences(a, seed=0, config=config)  # one take need not be in a list
    assert len(alone) == 1
    np.testing.assert_array_equal(alone[0].poses_3d, seqs[0].poses_3d)
    np.testing.assert_array_equal(alone[0].keypoints_2d, seqs[0].keypoints_2d)


# ------------------------------------------------------------------------------------------------ determinism

def test_deterministic_for_a_seed():
    takes = [_take(80, name="x", seed=4), _take(30, name="y", seed=5)]
    config = MocapViewConfig(clip_seconds=1.0, views=2)
    one, two = mocap_sequences(takes, seed=7, config=config), mocap_sequences(takes, seed=7, config=config)
    other = mocap_sequences(takes, seed=8, config=config)
    assert len(one) == len(two) == len(other) == (2 + 1) * 2  # 80 frames: 50 + 30 (kept), 30 frames: one clip
    for s, t, o in zip(one, two, other):
        np.testing.assert_array_equal(s.keypoints_2d, t.keypoints_2d)
        np.testing.assert_array_equal(s.confidence, t.confidence)
        np.testing.assert_array_equal(s.poses_3d, t.poses_3d)
        assert s.camera == t.camera
        assert np.abs(s.poses_3d - o.poses_3d).max() > 0.01
    # a take's sequences depend on (seed, its place in the list), not on the takes after it
    first = mocap_sequences(takes[:1], seed=7, config=config)
    for s, t in zip(first, one):
        np.testing.assert_array_equal(s.keypoints_2d, t.keypoints_2d)
    # ... and the same take twice is seen in two different ways
    twice = mocap_sequences([takes[1], takes[1]], seed=7, config=config)
    assert np.abs(twice[0].poses_3d - twice[2].poses_3d).max() > 0.01


# ------------------------------------------------------------------------------------------------ placement

@pytest.mark.parametrize("radius", [0.0, 0.5])
def test_h36m_placement_turns_about_the_vertical_and_puts_the_ankle_on_the_floor(radius):
    take = _take(150, seed=6, action="walking")
    poses = take.poses_world.copy()
    poses[..., 2] += 0.2 * np.sin(np.arange(150) / 50 * 2 * np.pi)[:, None]  # hops: the floor is the clip's
    poses[:, 3, 2] += 0.15                                                   # the right ankle kept higher
    take = MocapTake(poses, take.fps, take.name, {})
    config = MocapViewConfig(clip_seconds=1.0, views=4, area_radius_m=radius, detector=CLEAN)
    seqs = mocap_sequences([take], seed=2, config=config)
    assert len(seqs) == 3 * 4
    yaws, centres = [], []
    for c in range(3):
        clip = take.poses_world[c * 50:(c + 1) * 50]
        worlds = []
        for seq in seqs[4 * c:4 * c + 4]:
            cam = _h36m_index(seq.camera)
            p = seq.poses_3d.astype(np.float64)
            # the subject whose extrinsics were used: the world poses are the take turned about z and shifted
            fits = []
            for subject in H36M_SUBJECTS:
                world = camera_to_world(p, *h36m_extrinsics(subject, cam))
                res, yaw = _yaw_fit(clip.reshape(-1, 3), world.reshape(-1, 3))
                if res < M_TOL:
                    fits.append((world, yaw))
            assert len(fits) == 1, f"clip {c}: {len(fits)} subjects fit"
            world, yaw = fits[0]
            np.testing.assert_allclose(world[:, [3, 6], 2].min(), 0.08, atol=M_TOL)  # lowest ankle of the clip
            centre = world[:, 0, :2].mean(0)
            assert np.linalg.norm(centre - np.asarray(AREA_CENTRE_M)) <= radius + M_TOL
            worlds.append(world)
        for world in worlds[1:]:  # the views of one clip see the same placed clip
            np.testing.assert_allclose(world, worlds[0], rtol=0, atol=M_TOL)
        yaws.append(yaw)
        centres.append(centre)
    # the heading (and, with a radius, the spot) differs from clip to clip
    assert np.ptp(yaws) > 0.1
    assert (np.ptp(np.array(centres), axis=0).max() > 0.01) == (radius > 0)


# ------------------------------------------------------------------------------------------------ random cameras

def test_look_at_puts_the_target_on_the_optical_axis():
    from diffpose_fast.data.camera import Camera

    rng = np.random.default_rng(9)
    camera = Camera(fx=1200.0, fy=1200.0, cx=503.0, cy=497.0, res_w=1000, res_h=1000)
    for _ in range(50):
        position = np.array([*rng.uniform(-6, 6, 2), rng.uniform(0.5, 3.0)])
        target = np.array([*rng.uniform(-2, 2, 2), rng.uniform(0.0, 2.0)])
        q = look_at(position, target)
        assert q.shape == (4,) and abs(np.linalg.norm(q) - 1) < 1e-12
        t_cam = world_to_camera(target, q, position)
        np.testing.assert_allclose(t_cam, [0.0, 0.0, np.linalg.norm(target - position)], rtol=0, atol=1e-12)
        np.testing.assert_allclose(camera.project(t_cam), [503.0, 497.0], rtol=0, atol=1e-9)
        # level: the camera's x axis is horizontal; up in the world is up in the image (y down)
        x_axis = camera_to_world(np.array([1.0, 0.0, 0.0]), q, np.zeros(3))
        assert abs(x_axis[2]) < 1e-12
        above = world_to_camera(target + [0.0, 0.0, 0.5], q, position)
        assert above[1] < 0 and abs(above[0]) < 1e-12
        # a proper rotation: the world point to the camera's right has x > 0
        right = world_to_camera(target + x_axis, q, position)
        assert right[0] > 0
    with pytest.raises(ValueError, match="straight up or down"):
        look_at([0.0, 0.0, 3.0], [0.0, 0.0, 0.0])


def test_random_cameras_around_the_clip():
    take = _take(100, seed=7)
    config = MocapViewConfig(cameras="random", views=6, clip_seconds=1.0, detector=CLEAN)  # > 4 views: fine here
    seqs = mocap_sequences([take], seed=3, config=config)
    assert len(seqs) == 2 * 6
    for k, seq in enumerate(seqs):
        cam = seq.camera
        assert cam.image_size == (1000, 1000) and cam.distortion is None
        assert cam.fx == cam.fy and 900 <= cam.fx <= 1500 and abs(cam.cx - 500) < 25 and abs(cam.cy - 500) < 25
        p = seq.poses_3d.astype(np.float64)
        assert (p[..., 2] > 2.0).all()  # in front of the camera, metres away
        assert np.isfinite(seq.keypoints_2d).all(-1).mean() > 0.9
        # recover the camera from the rigid map take -> camera frame: q = M p + t0
        clip = take.poses_world[(k // 6) * 50:(k // 6 + 1) * 50]
        a, b = clip.reshape(-1, 3), p.reshape(-1, 3)
        u, _, vt = np.linalg.svd((a - a.mean(0)).T @ (b - b.mean(0)))
        m = (u @ vt).T
        assert np.linalg.det(m) > 0
        t0 = b.mean(0) - m @ a.mean(0)
        np.testing.assert_allclose(a @ m.T + t0, b, rtol=0, atol=M_TOL)
        up = m @ [0.0, 0.0, 1.0]  # world up in the camera frame (the placement turns about z only)
        assert abs(up[0]) < M_TOL and up[1] < -0.5  # a level camera, right way up
        lift = 0.08 - clip[:, [3, 6], 2].min()      # take z -> placed z
        position = -m.T @ t0                        # the camera centre in take coordinates
        centre = clip[:, 0].mean(0)
        assert 0.8 - M_TOL <= position[2] + lift <= 2.2 + M_TOL
        assert 3.5 - M_TOL <= np.linalg.norm(position[:2] - centre[:2]) <= 6.0 + M_TOL
        # the optical axis passes over the clip's centre at a height of 0.7-1.1 m
        forward = m.T @ [0.0, 0.0, 1.0]
        s = np.linalg.norm(position[:2] - centre[:2]) / np.linalg.norm(forward[:2])
        aim = position + s * forward
        np.testing.assert_allclose(aim[:2], centre[:2], rtol=0, atol=1e-4)
        assert 0.7 - 1e-4 <= aim[2] + lift <= 1.1 + 1e-4
        np.testing.assert_allclose(p[:, 0, 0].mean(), 0.0, atol=M_TOL)  # the mean root is on the vertical axis
    assert len({s.camera.fx for s in seqs}) == len(seqs)  # every view its own camera


def test_a_take_read_from_a_bvh_file(tmp_path):
    from diffpose_fast.data.bvh import load_bvh
    from diffpose_fast.data.synthetic import generate_sequences
    from diffpose_fast.export import write_bvh

    poses = generate_sequences(1, 40, seed=0)[0].root_relative_poses().astype(np.float64)
    write_bvh(tmp_path / "dance.bvh", poses, fps=50)
    take = load_bvh(tmp_path / "dance.bvh", fps=25, mapping={"Thorax": "Thorax", "head": "Neck_Nose/End"})
    assert take.num_frames == 20 and take.fps == 25.0
    seqs = mocap_sequences([take], seed=0, config=MocapViewConfig(views=2, detector=CLEAN))
    assert [(s.subject, s.action, s.num_frames) for s in seqs] == [("dance", "dance 0", 20)] * 2
    for seq in seqs:
        np.testing.assert_allclose(_distances(seq.poses_3d.astype(np.float64)), _distances(take.poses_world),
                                   rtol=0, atol=M_TOL)


# ------------------------------------------------------------------------------------------------ bad input

def test_bad_input_raises_clear_errors():
    take = _take(10)
    with pytest.raises(TypeError, match=r"takes\[1\] must be a MocapTake.*ndarray"):
        mocap_sequences([take, take.poses_world], seed=0)
    bad = take.poses_world.copy()
    bad[3, 4, 1] = np.nan
    for poses in (bad, take.poses_world[:, :16], take.poses_world[..., :2], take.poses_world[0]):
        with pytest.raises(ValueError, match=r"takes\[0\]\.poses_world must be finite \[T, 17, 3\]"):
            mocap_sequences([MocapTake(poses, 50.0, "bad", {})], seed=0)
    for seed in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match="seed must be a non-negative int"):
            mocap_sequences([take], seed=seed)
    for fps in (0.0, -30.0, float("nan"), float("inf"), None, "50", True):
        with pytest.raises(ValueError, match=r"takes\[0\]\.fps must be a positive finite number.*got"):
            mocap_sequences([MocapTake(take.poses_world, fps, "bad", {})], seed=0)
    assert len(mocap_sequences([MocapTake(take.poses_world, np.float32(50), "ok", {})], seed=0)) == 1
    with pytest.raises(ValueError, match="Human3.6M has 4 cameras, got views=5"):
        MocapViewConfig(views=5)
    assert MocapViewConfig(cameras="random", views=5).views == 5
    for views in (0, True, 2.0):
        with pytest.raises(ValueError, match="views must be an int >= 1"):
            MocapViewConfig(views=views)
    with pytest.raises(ValueError, match="cameras must be 'h36m' or 'random', got 'kinect'"):
        MocapViewConfig(cameras="kinect")
    with pytest.raises(ValueError, match="clip_seconds must be positive"):
        MocapViewConfig(clip_seconds=0)
    with pytest.raises(ValueError, match="area_radius_m must be >= 0"):
        MocapViewConfig(area_radius_m=-0.1)
    with pytest.raises(TypeError, match="detector must be a SyntheticConfig, got dict"):
        MocapViewConfig(detector={"noise_px": 0})


def test_ambiguous_detector_gives_heatmaps_for_every_clip():
    """A detector config with heatmaps (SyntheticConfig.ambiguous) makes the mocap sequences carry them: one map
    per joint, its mass around the reported keypoint (or its second peak), uniform for joints the camera misses."""
    import torch

    from diffpose_fast.data.synthetic import SyntheticConfig
    from diffpose_fast.distribution.spread2d import heatmap_mean_px

    config = MocapViewConfig(detector=SyntheticConfig.ambiguous(heatmap_size=(24, 18), occlusion_prob=0.0,
                                                                  double_prob=0.0, swap_prob=0.0,
                                                                  heatmap_confusion=0.0))
    seqs = mocap_sequences([_take(frames=40)], seed=1, config=config)
    for seq in seqs:
        assert seq.heatmaps.shape == (seq.num_frames, 17, 24, 18) and seq.heatmap_boxes.shape == (seq.num_frames, 4)
        seen = np.isfinite(seq.keypoints_2d).all(-1)
        mean = heatmap_mean_px(torch.from_numpy(np.asarray(seq.heatmaps)).double(),
                               torch.from_numpy(np.asarray(seq.heatmap_boxes)).double()).numpy()
        cell = ((seq.heatmap_boxes[:, 2:] - seq.heatmap_boxes[:, :2]) / np.array([18, 24])).max()
        assert np.abs(mean[seen] - seq.keypoints_2d[seen]).max() < 1.5 * cell
