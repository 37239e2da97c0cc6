"""The root trajectory from a root-relative pose and its 2D keypoints, against ground truth it must recover."""
import numpy as np
import pytest

from diffpose_fast.data.camera import Camera, project_linear
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.trajectory import reprojection_error_px, root_trajectory


def _scene(frames=40, seed=0):
    seq = generate_sequences(1, frames, seed=seed)[0]
    cam = Camera(seq.camera.fx, seq.camera.fy, seq.camera.cx, seq.camera.cy)    # pinhole: no distortion
    absolute = np.asarray(seq.poses_3d, np.float64)
    return seq, cam, absolute, absolute - absolute[:, :1], absolute[:, 0]


def test_exact_keypoints_give_the_true_root():
    _, cam, absolute, rel, root = _scene()
    kp = project_linear(absolute, cam)
    traj = root_trajectory(rel, kp, cam)
    np.testing.assert_allclose(traj, root, atol=1e-6)
    assert np.nanmax(reprojection_error_px(rel, traj, kp, cam)) < 1e-4


def test_noisy_and_missing_keypoints_and_a_wrong_pose():
    rng = np.random.default_rng(1)
    seq, cam, absolute, rel, root = _scene(seed=1)
    kp = project_linear(absolute, cam) + rng.normal(scale=3.0, size=(40, 17, 2))
    conf = rng.uniform(0.5, 1.0, size=(40, 17))
    kp[5, 3:] = np.nan                                    # frame 5: only three joints left
    kp[6, 2:] = np.nan                                    # frame 6: two: no trajectory
    conf[7] = 0.0                                         # frame 7: nothing usable
    traj = root_trajectory(rel, kp, cam, conf)
    assert np.isnan(traj[[6, 7]]).all() and np.isfinite(np.delete(traj, [6, 7], axis=0)).all()
    good = np.setdiff1d(np.arange(40), [5, 6, 7])
    depth = root[good, 2]
    # 3 px of noise on ~17 joints: the root's depth within a few centimetres at 4-6 m
    assert np.abs(traj[good, 2] - depth).max() < 0.10
    assert np.abs(traj[good, :2] - root[good, :2]).max() < 0.02
    # a pose 10 % too large seen at the same keypoints is placed 10 % further away (scale-depth ambiguity)
    far = root_trajectory(rel * 1.1, project_linear(absolute, cam), cam)
    np.testing.assert_allclose(far[:, 2] / root[:, 2], 1.1, rtol=0.01)
    # pose + trajectory reprojects onto the keypoints within a fraction of the 2D pose size
    err = reprojection_error_px(rel, traj, kp, cam, conf)
    size = np.linalg.norm(np.nanmax(kp, 1) - np.nanmin(kp, 1), axis=-1)
    assert np.nanmax(err[good] / size[good]) < 0.05


def test_bad_input():
    _, cam, absolute, rel, _ = _scene(frames=3)
    kp = project_linear(absolute, cam)
    with pytest.raises(TypeError, match="Camera"):
        root_trajectory(rel, kp, (1000, 1000, 500, 500))
    with pytest.raises(ValueError, match="keypoints_2d must be"):
        root_trajectory(rel, kp[:, :5], cam)
    with pytest.raises(ValueError, match="confidence must be"):
        root_trajectory(rel, kp, cam, np.ones((3, 4)))


def test_predict_returns_the_trajectory_when_the_camera_is_known():
    from diffpose_fast import DiffPoseLifter, PoseSequence

    seq, cam, absolute, rel, root = _scene(frames=12, seed=3)
    lifter = DiffPoseLifter(seed=0, embed_dim=16, context_dim=16, denoiser_heads=2, denoiser_blocks=1,
                            encoder_layers=1, encoder_heads=2, gmm_samples=16, num_diffusion_steps=10,
                            sampling_steps=2)
    res = lifter.predict(PoseSequence(seq.keypoints_2d, image_size=seq.image_size, confidence=seq.confidence,
                                      camera=cam), num_samples=2)
    assert res.trajectory.shape == (12, 3) and res.trajectory.dtype == np.float32
    np.testing.assert_allclose(res.trajectory, root_trajectory(res.poses_3d, seq.keypoints_2d, cam, seq.confidence),
                               rtol=1e-5, atol=1e-5)
    assert lifter.predict(seq.keypoints_2d, image_size=seq.image_size, num_samples=2).trajectory is None


def test_frames_with_joints_behind_the_camera_or_alone_stay_finite_or_nan():
    """A frame whose only usable joints are few, or whose unusable joints would sit behind the camera for the
    current translation, must not break the solve (0 x inf): NaN where too few joints, finite elsewhere."""
    _, cam, absolute, rel, root = _scene(frames=6, seed=5)
    kp = project_linear(absolute, cam)
    rel = rel.copy()
    rel[2, 5:, 2] = -50.0                    # joints 5.. of frame 2: 50 m towards the camera ...
    kp[2, 5:] = np.nan                       # ... and not detected
    kp[3, 1:] = np.nan                       # frame 3: the root alone
    kp[4] = np.nan                           # frame 4: nothing detected, and a joint exactly at the start depth
    rel[4, 7, 2] = -0.1                      # (tz starts at 0.1 m: depth 0 there)
    traj = root_trajectory(rel, kp, cam)
    assert np.isnan(traj[[3, 4]]).all()
    finite = [0, 1, 2, 5]
    np.testing.assert_allclose(traj[finite], root[finite], atol=1e-5)
