"""PoseSequence: conversion, validation messages that name the argument, flip, slice, root-relative poses."""
import numpy as np
import pytest
import torch

from diffpose_fast.data.camera import Camera, project
from diffpose_fast.data.h36m_cameras import h36m_camera
from diffpose_fast.data.sequence import PoseSequence
from diffpose_fast.data.skeleton import LEFT_JOINTS, RIGHT_JOINTS

T = 6
W, H = 1000, 1002


def make(**overrides):
    rng = np.random.default_rng(0)
    args = dict(
        keypoints_2d=rng.uniform(100, 900, size=(T, 17, 2)),
        poses_3d=rng.normal(size=(T, 17, 3)) * 0.3 + np.array([0.0, 0.0, 5.0]),
        image_size=(W, H),
        confidence=rng.uniform(0.2, 1.0, size=(T, 17)),
        heatmaps=rng.uniform(0, 1, size=(T, 17, 8, 6)),
        heatmap_boxes=np.tile([100.0, 50.0, 700.0, 850.0], (T, 1)),
        camera=h36m_camera(0),
        subject="S1",
        action="Walking 1",
        valid=np.ones(T, dtype=bool),
    )
    args.update(overrides)
    return PoseSequence(**args)


def test_stores_float32_read_only_and_accepts_torch_and_lists():
    seq = make(keypoints_2d=torch.full((T, 17, 2), 500.0, dtype=torch.float64))
    assert seq.keypoints_2d.dtype == np.float32 and seq.confidence.dtype == np.float32
    assert seq.valid.dtype == np.bool_
    assert seq.num_frames == T == len(seq)
    with pytest.raises(ValueError):
        seq.keypoints_2d[0, 0, 0] = 1.0
    lists = PoseSequence(np.full((2, 17, 2), 10.0).tolist(), image_size=(100, 100))
    assert lists.keypoints_2d.shape == (2, 17, 2) and lists.poses_3d is None


def test_image_size_from_camera_and_required_otherwise():
    seq = PoseSequence(np.full((1, 17, 2), 10.0), camera=h36m_camera(1))
    assert seq.image_size == (1000, 1000)
    with pytest.raises(ValueError, match="image_size"):
        PoseSequence(np.full((1, 17, 2), 10.0))


BAD = [
    (dict(keypoints_2d=np.zeros((T, 16, 2))), ValueError, r"keypoints_2d must have shape \[T, 17, 2\]"),
    (dict(keypoints_2d=np.zeros((0, 17, 2))), ValueError, "keypoints_2d must have at least one frame"),
    (dict(keypoints_2d=np.full((T, 17, 2), "a")), TypeError, "keypoints_2d must hold real numbers"),
    (dict(keypoints_2d=[[1, 2], [3]]), TypeError, "keypoints_2d"),
    (dict(keypoints_2d=np.full((T, 17, 2), 5000.0)), ValueError, "keypoints_2d must be pixels"),
    (dict(keypoints_2d=np.full((T, 17, 2), np.inf)), ValueError, "keypoints_2d must not contain inf"),
    (dict(poses_3d=np.zeros((T + 1, 17, 3))), ValueError, r"poses_3d must have shape \[T=6, 17, 3\]"),
    (dict(poses_3d=np.full((T, 17, 3), np.nan)), ValueError, "poses_3d must be finite"),
    (dict(image_size=(0, 100)), ValueError, "image_size must be positive"),
    (dict(image_size=1000), TypeError, "image_size must be a pair"),
    (dict(image_size=("a", 3)), TypeError, "image_size w must be a number"),
    (dict(confidence=np.zeros((T, 17, 1))), ValueError, r"confidence must have shape \[T=6, 17\]"),
    (dict(confidence=np.full((T, 17), 1.5)), ValueError, r"confidence must lie in \[0, 1\]"),
    (dict(heatmaps=np.zeros((T, 17, 4))), ValueError, "heatmaps must have shape"),
    (dict(heatmaps=-np.ones((T, 17, 4, 4))), ValueError, "heatmaps must be finite and non-negative"),
    (dict(heatmaps=np.zeros((T, 17, 4, 4))), ValueError, "every heatmap must have positive total mass"),
    (dict(heatmap_boxes=None), ValueError, "heatmaps need heatmap_boxes"),
    (dict(heatmaps=None), ValueError, "heatmap_boxes given without heatmaps"),
    (dict(heatmap_boxes=np.zeros((T, 3))), ValueError, r"heatmap_boxes must have shape \[T=6, 4\]"),
    (dict(heatmap_boxes=np.tile([5.0, 5.0, 1.0, 9.0], (T, 1))), ValueError, "heatmap_boxes must be finite with x1 > x0"),
    (dict(camera="cam"), TypeError, "camera must be a Camera"),
    (dict(subject=1), TypeError, "subject must be a str"),
    (dict(action=["a"]), TypeError, "action must be a str"),
    (dict(valid=np.ones(T + 1, dtype=bool)), ValueError, r"valid must have shape \[T=6\]"),
    (dict(valid=np.full(T, 0.5)), TypeError, "valid must be boolean"),
]


@pytest.mark.parametrize("overrides, exc, message", BAD, ids=[m for _, _, m in BAD])
def test_validation_errors_name_the_argument(overrides, exc, message):
    with pytest.raises(exc, match=message):
        make(**overrides)


def test_nan_keypoints_only_where_confidence_is_zero():
    kp = np.full((T, 17, 2), 300.0)
    kp[2, 5] = np.nan
    conf = np.ones((T, 17))
    with pytest.raises(ValueError, match="keypoints_2d contains NaN but no confidence"):
        PoseSequence(kp, image_size=(W, H))
    with pytest.raises(ValueError, match="keypoints_2d may be NaN only where confidence is 0.*frame 2, joint 5"):
        PoseSequence(kp, image_size=(W, H), confidence=conf)
    conf[2, 5] = 0.0
    seq = PoseSequence(kp, image_size=(W, H), confidence=conf)
    assert np.isnan(seq.normalized_keypoints()[2, 5]).all()


def test_keypoint_margin_is_one_image_size():
    PoseSequence(np.full((1, 17, 2), -999.0), image_size=(1000, 1000))
    PoseSequence(np.full((1, 17, 2), 1999.0), image_size=(1000, 1000))
    with pytest.raises(ValueError, match="keypoints_2d"):
        PoseSequence(np.full((1, 17, 2), 2001.0), image_size=(1000, 1000))


def test_root_relative_poses_have_zero_root():
    seq = make()
    rr = seq.root_relative_poses()
    assert np.array_equal(rr[:, 0], np.zeros((T, 3), dtype=np.float32))
    np.testing.assert_allclose(rr[:, 3] - rr[:, 1], seq.poses_3d[:, 3] - seq.poses_3d[:, 1], atol=1e-6)
    with pytest.raises(ValueError, match="no poses_3d"):
        make(poses_3d=None).root_relative_poses()


def test_normalized_keypoints():
    seq = make()
    n = seq.normalized_keypoints()
    np.testing.assert_allclose(n[..., 0], seq.keypoints_2d[..., 0] / W * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(n[..., 1], seq.keypoints_2d[..., 1] / W * 2 - H / W, atol=1e-6)


def test_flip_mirrors_swaps_and_twice_is_identity():
    seq = make()
    f = seq.flipped()
    left, right = list(LEFT_JOINTS), list(RIGHT_JOINTS)
    np.testing.assert_allclose(f.keypoints_2d[:, left, 0], W - seq.keypoints_2d[:, right, 0], atol=1e-4)
    np.testing.assert_allclose(f.normalized_keypoints()[:, left, 0], -seq.normalized_keypoints()[:, right, 0], atol=1e-6)
    np.testing.assert_array_equal(f.poses_3d[:, left, 0], -seq.poses_3d[:, right, 0])
    np.testing.assert_array_equal(f.poses_3d[:, 0], seq.poses_3d[:, 0] * np.array([-1, 1, 1], dtype=np.float32))
    np.testing.assert_array_equal(f.confidence[:, left], seq.confidence[:, right])
    np.testing.assert_array_equal(f.heatmaps[:, left], seq.heatmaps[:, right, :, ::-1])
    np.testing.assert_allclose(f.heatmap_boxes[0], [W - 700.0, 50.0, W - 100.0, 850.0])
    assert f.camera.cx == W - seq.camera.cx and f.camera.distortion[3] == -seq.camera.distortion[3]
    ff = f.flipped()
    for name in ("keypoints_2d", "poses_3d", "confidence", "heatmaps", "heatmap_boxes", "valid"):
        np.testing.assert_allclose(getattr(ff, name), getattr(seq, name), atol=1e-4, err_msg=name)
    assert ff.camera == seq.camera and (ff.subject, ff.action) == (seq.subject, seq.action)


def test_flip_is_consistent_with_projection():
    cam = Camera(1145.0, 1143.0, 512.0, 515.0, distortion=(-0.2, 0.25, -0.003, -0.001, -0.0014), res_w=W, res_h=H)
    rng = np.random.default_rng(5)
    poses = rng.normal(size=(T, 17, 3)) * 0.4 + np.array([0.1, 0.0, 5.0])
    seq = PoseSequence(project(poses, cam), poses, (W, H), camera=cam)
    f = seq.flipped()
    np.testing.assert_allclose(f.keypoints_2d, project(f.poses_3d.astype(np.float64), f.camera), atol=1e-3)


def test_slice():
    seq = make()
    s = seq.slice(1, 4)
    assert s.num_frames == 3
    np.testing.assert_array_equal(s.keypoints_2d, seq.keypoints_2d[1:4])
    np.testing.assert_array_equal(s.heatmap_boxes, seq.heatmap_boxes[1:4])
    assert seq.slice(-2, T).num_frames == 2
    with pytest.raises(ValueError, match="selects no frame"):
        seq.slice(4, 4)
    with pytest.raises(TypeError, match="start must be an int"):
        seq.slice(1.0, 3)


def test_keypoint_sigma_through_frames_and_augmentation():
    """PoseSequence.keypoint_sigma reaches the FrameSet; sequences without it get NaN frames (H_K then uses the
    confidence there); the flip augmentation swaps it with its joints; bad values are named."""
    import torch

    from diffpose_fast.data.frames import frames_from_sequences
    from diffpose_fast.data.skeleton import flip_permutation
    from diffpose_fast.data.synthetic import generate_sequences
    from diffpose_fast.training.trainer import _augment

    a, b = generate_sequences(2, 4, seed=9)
    rng = np.random.default_rng(0)
    sigma = rng.uniform(1.0, 9.0, size=(4, 17, 2))
    a = PoseSequence(a.keypoints_2d, a.poses_3d, a.image_size, a.confidence, keypoint_sigma=sigma)
    frames = frames_from_sequences([a, b], 0.8, require_poses=True)
    np.testing.assert_allclose(frames.keypoint_sigma[:4].numpy(), sigma, rtol=1e-6)
    assert torch.isnan(frames.keypoint_sigma[4:]).all()
    flip_u = torch.tensor([0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9])   # mirror frames 0, 2, 4, 6
    out = _augment(frames, flip_u, True)
    perm = flip_permutation(17)
    np.testing.assert_allclose(out.keypoint_sigma[0].numpy(), sigma[0][perm], rtol=1e-6)
    np.testing.assert_allclose(out.keypoint_sigma[1].numpy(), sigma[1], rtol=1e-6)
    assert frames_from_sequences([b], 0.8, require_poses=True).keypoint_sigma is None
    bad = sigma.copy()
    bad[1, 2, 0] = -1.0
    with pytest.raises(ValueError, match="keypoint_sigma must be positive"):
        PoseSequence(a.keypoints_2d, image_size=a.image_size, keypoint_sigma=bad)
    with pytest.raises(ValueError, match="keypoint_sigma"):
        PoseSequence(a.keypoints_2d, image_size=a.image_size, keypoint_sigma=sigma[:, :, :1])
