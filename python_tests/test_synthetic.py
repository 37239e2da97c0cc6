"""Synthetic motion: rigid bones of plausible length, smooth motion, determinism, noise statistics, laterality."""
import time

import numpy as np
import pytest

from diffpose_fast.data.synthetic import (
    ACTIONS, BONE_LENGTHS_M, JOINT_NOISE_FACTOR, SyntheticConfig, add_detector_noise, generate_motion,
    generate_sequences,
)
from diffpose_fast.data.skeleton import EDGES, bone_lengths

FPS = 50.0


@pytest.fixture(scope="module")
def sequences():
    return generate_sequences(10, 200, seed=3)


def test_deterministic_for_a_seed_and_independent_of_count(sequences):
    again = generate_sequences(12, 200, seed=3)
    for a, b in zip(sequences, again):
        np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)
        np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
        assert a.camera == b.camera and a.action == b.action
    other = generate_sequences(1, 200, seed=4)[0]
    assert not np.allclose(other.poses_3d, sequences[0].poses_3d)


def test_every_action_appears_and_metadata(sequences):
    assert {s.action for s in sequences} == set(ACTIONS)
    for s in sequences:
        assert s.image_size == s.camera.image_size and s.confidence is not None
        assert s.keypoints_2d.shape == (200, 17, 2) and s.poses_3d.shape == (200, 17, 3)


def test_bones_are_rigid_and_near_the_stated_lengths(sequences):
    nominal = np.array([BONE_LENGTHS_M[c] for _, c in EDGES])
    for s in sequences:
        lengths = bone_lengths(s.poses_3d.astype(np.float64))           # [T, 16]
        assert lengths.std(axis=0).max() < 1e-5                         # the same subject all along
        ratio = lengths[0] / nominal
        assert ((ratio > 0.9 * 0.97 - 1e-6) & (ratio < 1.1 * 1.03 + 1e-6)).all()
        # One scale per subject: the per-bone ratios agree within the +-3% jitter.
        assert ratio.max() / ratio.min() < 1.03 / 0.97 + 1e-6
        # Left and right limbs are symmetric.
        np.testing.assert_allclose(lengths[0, 0:3], lengths[0, 3:6], rtol=1e-5)  # float32 poses


def test_motion_is_smooth(sequences):
    for s in sequences:
        rel = s.root_relative_poses().astype(np.float64)
        speed = np.linalg.norm(np.diff(rel, axis=0), axis=-1) * FPS              # m/s
        assert speed.max() < 4.0, s.action
        accel = np.linalg.norm(np.diff(rel, 2, axis=0), axis=-1) * FPS ** 2        # m/s^2
        assert accel.max() < 40.0, s.action
        root_speed = np.linalg.norm(np.diff(s.poses_3d[:, 0], axis=0), axis=-1) * FPS
        assert root_speed.max() < 2.5, s.action


def test_knees_and_elbows_stay_within_limits(sequences):
    def flexion(p, a, b, c):
        u, v = p[:, b] - p[:, a], p[:, c] - p[:, b]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        return np.degrees(np.arccos(np.clip(cos, -1, 1)))
    for s in sequences:
        p = s.poses_3d.astype(np.float64)
        for chain, limit in (((1, 2, 3), 150), ((4, 5, 6), 150), ((11, 12, 13), 145), ((14, 15, 16), 145)):
            assert flexion(p, *chain).max() <= limit + 0.5


def test_people_are_upright_in_view_and_inside_the_image(sequences):
    for s in sequences:
        clean = s.camera.project(s.poses_3d.astype(np.float64))
        w, h = s.image_size
        assert ((clean[..., 0] > 0) & (clean[..., 0] < w) & (clean[..., 1] > 0) & (clean[..., 1] < h)).all()
        assert (clean[:, 10, 1] < clean[:, 0, 1]).all()                  # head above pelvis (v grows downwards)
        assert (s.poses_3d[..., 2] > 3.0).all() and (s.poses_3d[..., 2] < 7.5).all()


def test_left_hip_on_image_right_when_facing_the_camera():
    cfg = SyntheticConfig(actions=("standing", "waving", "sitting"), facing="camera", yaw_jitter_deg=0.0)
    for s in generate_sequences(6, 100, seed=11, config=cfg):
        clean = s.camera.project(s.poses_3d.astype(np.float64))
        # Facing the camera, the person's left appears on the image's right (larger u).
        assert (clean[:, 4, 0] > clean[:, 1, 0]).all()
        assert (clean[:, 11, 0] > clean[:, 14, 0]).all()
        # And the nose is nearer the camera than the head top's projection axis: facing, not turned away.
        assert (s.poses_3d[:, 9, 2] < s.poses_3d[:, 8, 2]).all()


def test_detector_noise_statistics():
    cfg = SyntheticConfig(noise_px=4.0, outlier_prob=0.02, swap_prob=0.01, missing_prob=0.01)
    rng = np.random.default_rng(0)
    t = 20000
    clean = np.tile(np.arange(17, dtype=np.float64)[None, :, None] * 100.0, (t, 1, 2))   # joints far apart
    noise = add_detector_noise(clean, rng, cfg)
    plain = ~(noise.outlier | noise.swapped | noise.missing)
    err = noise.keypoints - clean
    z = err[plain] / noise.sigma_px[plain][:, None]
    assert abs(z.std() - 1) < 0.02 and abs(z.mean()) < 0.02
    # The per-joint scale follows the configured factors: rms = noise_px * factor * exp(spread^2) (lognormal).
    rms = np.sqrt((np.where(plain[..., None], err, 0.0) ** 2).sum(axis=(0, 2)) / (2 * plain.sum(axis=0)))
    np.testing.assert_allclose(rms, 4.0 * JOINT_NOISE_FACTOR * np.exp(cfg.noise_spread ** 2), rtol=0.05)
    assert noise.outlier.mean() == pytest.approx(0.02, abs=0.002)
    assert noise.missing.mean() == pytest.approx(0.01, abs=0.002)
    assert noise.swapped[:, 4].mean() == pytest.approx(0.01, abs=0.003)
    assert not noise.swapped[:, [0, 7, 8, 9, 10]].any()
    # A swap moves the joint to the other side's position.
    f = np.argmax(noise.swapped[:, 4] & ~noise.outlier[:, 4] & ~noise.missing[:, 4])
    assert abs(noise.keypoints[f, 4, 0] - clean[f, 1, 0]) < 60
    # Confidence: in [0, 1], 0 exactly where missing, lower where the error is larger.
    c = noise.confidence
    assert ((c >= 0) & (c <= 1)).all() and (c[noise.missing] == 0).all() and (c[~noise.missing] > 0).all()
    assert c[noise.outlier & ~noise.missing].mean() < 0.5 * c[plain].mean()
    assert np.corrcoef(c[plain], noise.sigma_px[plain])[0, 1] < -0.5
    assert np.isnan(noise.keypoints[noise.missing]).all()


def test_missing_joints_survive_into_pose_sequence():
    cfg = SyntheticConfig(missing_prob=0.05)
    s = generate_sequences(1, 100, seed=1, config=cfg)[0]
    gone = np.isnan(s.keypoints_2d).any(-1)
    assert gone.any() and (s.confidence[gone] == 0).all()


def test_heatmaps_option():
    cfg = SyntheticConfig(heatmap_size=(32, 32), actions=("walking",))
    s = generate_sequences(1, 20, seed=2, config=cfg)[0]
    assert s.heatmaps.shape == (20, 17, 32, 32) and s.heatmap_boxes.shape == (20, 4)
    np.testing.assert_allclose(s.heatmaps.sum(axis=(2, 3)), 1.0, atol=1e-5)
    from diffpose_fast.data.heatmaps import heatmap_to_keypoints
    kp, _ = heatmap_to_keypoints(s.heatmaps, s.heatmap_boxes)
    cell = (s.heatmap_boxes[:, 2] - s.heatmap_boxes[:, 0]) / 32
    ok = np.linalg.norm(kp - s.keypoints_2d, axis=-1) < 2 * cell[:, None]
    assert ok.mean() > 0.95


def test_generate_motion_world_frame():
    world = generate_motion(100, np.random.default_rng(0), "standing")
    assert world.shape == (100, 17, 3)
    np.testing.assert_allclose(world[:, [3, 6], 2].min(axis=1), 0.08, atol=1e-9)   # a foot on the floor, z up
    assert (world[:, 10, 2] > 1.4).all()                                          # head about 1.5-1.8 m high


def test_fast_enough():
    start = time.perf_counter()
    generate_sequences(4, 2500, seed=0)
    fps = 10000 / (time.perf_counter() - start)
    assert fps > 2000, f"{fps:.0f} frames/s"


@pytest.mark.parametrize("kwargs, words", [
    (dict(actions=("dancing",)), "actions"), (dict(facing="away"), "facing"), (dict(scale_range=(1.2, 1.0)), "scale_range"),
    (dict(outlier_prob=2.0), "outlier_prob"), (dict(noise_px=-1.0), "noise_px"), (dict(heatmap_size=(0, 3)), "heatmap_size"),
])
def test_config_validation(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SyntheticConfig(**kwargs)
    with pytest.raises(TypeError):
        SyntheticConfig(unknown_key=1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="frames"):
        generate_sequences(1, 0, seed=0)
    with pytest.raises(ValueError, match="action"):
        generate_motion(10, np.random.default_rng(0), "flying")
    with pytest.raises(TypeError, match="rng"):
        generate_motion(10, 0)


def test_ambiguous_failure_modes_leave_the_other_draws_alone():
    """Occlusions and double detections are drawn after everything else: the joints they do not touch keep the
    keypoints of the default config, draw for draw."""
    from diffpose_fast.data.synthetic import SyntheticConfig, add_detector_noise

    clean = np.random.default_rng(0).uniform(200, 800, size=(50, 17, 2))
    base = add_detector_noise(clean, np.random.default_rng(1), SyntheticConfig())
    amb = add_detector_noise(clean, np.random.default_rng(1), SyntheticConfig(occlusion_prob=0.2, double_prob=0.2))
    touched = amb.occluded | amb.doubled
    assert 0.2 < touched.mean() < 0.5
    np.testing.assert_array_equal(amb.keypoints[~touched], base.keypoints[~touched])
    np.testing.assert_allclose(amb.sigma_px[amb.occluded], 3.0 * base.sigma_px[amb.occluded])
    assert (amb.confidence[touched] < base.confidence[touched]).all()
    # a double detection reports the heavier peak: its keypoint sits 30-120 px from the other peak
    d = np.linalg.norm(amb.keypoints[amb.doubled] - amb.second_px[amb.doubled], axis=-1)
    assert (d >= 30 - 1e-9).all() and (d <= 120 + 1e-9).all()
    assert (amb.second_weight[amb.doubled] <= 0.5).all() and (amb.second_weight[amb.doubled] >= 0.3).all()


def test_ambiguous_heatmaps_have_the_second_peak_and_the_wide_maps():
    import torch

    from diffpose_fast.data.synthetic import SyntheticConfig, add_detector_noise, detector_heatmaps
    from diffpose_fast.distribution.spread2d import heatmap_mean_px

    clean = np.random.default_rng(2).uniform(300, 700, size=(40, 17, 2))
    cfg = SyntheticConfig.ambiguous(occlusion_prob=0.3, double_prob=0.3, swap_prob=0.0, heatmap_confusion=0.0,
                                    heatmap_size=(96, 96), noise_px=8.0)
    noise = add_detector_noise(clean, np.random.default_rng(3), cfg)
    maps, boxes = detector_heatmaps(noise, cfg)
    # the map's mean is the mixture's: (1 - w) keypoint + w second peak
    w = noise.second_weight[..., None]
    want = np.where(w > 0, (1 - w) * noise.keypoints + w * np.nan_to_num(noise.second_px), noise.keypoints)
    got = heatmap_mean_px(torch.from_numpy(maps).double(), torch.from_numpy(boxes).double()).numpy()
    cell = np.max((boxes[:, 2:] - boxes[:, :2]) / 96.0)
    assert np.abs(got - want).max() < 2 * cell
    # an occluded joint without a second peak has a map about occlusion_spread times wider
    def spread(m, b):
        p = m / m.sum()
        ys, xs = np.mgrid[0:96, 0:96]
        cx, cy = (p * xs).sum(), (p * ys).sum()
        return np.sqrt((p * ((xs - cx) ** 2 + (ys - cy) ** 2)).sum() / 2) * (b[2] - b[0]) / 96.0
    plain = ~noise.occluded & ~noise.doubled & ~noise.swapped
    wide = noise.occluded & (noise.second_weight == 0)
    f, j = np.argwhere(wide)[0]
    ratio = spread(maps[f, j], boxes[f]) / noise.sigma_px[f, j]
    assert 0.8 < ratio < 1.25                             # the map's width is the widened sigma
    f0, j0 = np.argwhere(plain & (noise.sigma_px > 1.5 * cell))[0]
    assert 0.8 < spread(maps[f0, j0], boxes[f0]) / noise.sigma_px[f0, j0] < 1.25
