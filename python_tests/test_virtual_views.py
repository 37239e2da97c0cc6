"""Virtual views (data.virtual_views): the turned poses and carried 2D error against a float64 reference built
from Rodrigues' formula, which sequences can be re-seen, determinism, and fit()'s use of them (folds, warning)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose_fast.config import LifterConfig
from diffpose_fast.data.bvh import MocapTake
from diffpose_fast.data.mocap import MocapViewConfig, mocap_sequences
from diffpose_fast.data.sequence import PoseSequence
from diffpose_fast.data.skeleton import bone_lengths
from diffpose_fast.data.synthetic import generate_motion
from diffpose_fast.data.virtual_views import can_view, virtual_view, virtual_views

PX_TOL = 2e-3   # float32 keypoints of up to ~1000 px, and the error carried through a float32 round trip
M_TOL = 1e-5    # float32 poses of a few metres


def _sequences(n_takes=2, frames=40, seed=0, cameras="h36m"):
    takes = [MocapTake(generate_motion(frames, np.random.default_rng(seed + i)), 50.0, f"take{i}", {})
             for i in range(n_takes)]
    return mocap_sequences(takes, seed=seed, config=MocapViewConfig(clip_seconds=0.4, cameras=cameras))


def _rodrigues(axis, angle):
    """[3, 3] rotation by ``angle`` about the unit ``axis``, float64, from Rodrigues' formula."""
    k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


@pytest.mark.parametrize("cameras", ["h36m", "random"])
def test_turned_poses_and_carried_error_match_a_float64_reference(cameras):
    rng = np.random.default_rng(3)
    for seq in _sequences(cameras=cameras)[:4]:
        angle = float(rng.uniform(-np.pi, np.pi))
        view = virtual_view(seq, angle)
        poses = np.asarray(seq.poses_3d, np.float64)
        centre = poses[:, 0].mean(0)
        turned = (poses - centre) @ _rodrigues([0, 1, 0], angle).T + centre
        np.testing.assert_allclose(view.poses_3d, turned, atol=M_TOL)
        np.testing.assert_allclose(bone_lengths(view.poses_3d), bone_lengths(seq.poses_3d), atol=M_TOL)
        error_old = np.asarray(seq.keypoints_2d, np.float64) - seq.camera.project(poses)
        expected = seq.camera.project(turned) + error_old
        seen = np.isfinite(view.keypoints_2d).all(-1)
        w, h = seq.image_size
        inside = ((turned[..., 2] > 0.1) & np.isfinite(error_old).all(-1)
                  & (seq.camera.project(turned)[..., 0] >= 0) & (seq.camera.project(turned)[..., 0] <= w)
                  & (seq.camera.project(turned)[..., 1] >= 0) & (seq.camera.project(turned)[..., 1] <= h))
        np.testing.assert_array_equal(seen, inside)
        assert seen.mean() > 0.8   # most joints stay in view after a turn about the root
        np.testing.assert_allclose(view.keypoints_2d[seen], np.clip(expected, [-w, -h], [2 * w, 2 * h])[seen],
                                   atol=PX_TOL)
        np.testing.assert_array_equal(view.confidence[~seen], 0)
        np.testing.assert_allclose(view.confidence[seen], np.asarray(seq.confidence)[seen], atol=1e-7)
        assert view.camera is seq.camera and view.subject == seq.subject
        assert view.action == f"{seq.action} (virtual view)"


def test_a_zero_turn_gives_the_sequence_back_and_a_half_turn_moves_the_keypoints():
    seq = _sequences(n_takes=1)[0]
    same = virtual_view(seq, 0.0)
    np.testing.assert_allclose(same.poses_3d, seq.poses_3d, atol=M_TOL)
    both = np.isfinite(seq.keypoints_2d).all(-1)
    np.testing.assert_allclose(same.keypoints_2d[both], seq.keypoints_2d[both], atol=PX_TOL)
    turned = virtual_view(seq, np.pi)
    # a half turn about the root swaps the body's sides in the image: left joints go where the right ones were
    moved = np.nanmean(np.linalg.norm(turned.keypoints_2d - seq.keypoints_2d, axis=-1))
    assert moved > 10.0
    # the turn is about the vertical through the mean root: the mean root stays, its height (camera y) too
    np.testing.assert_allclose(turned.poses_3d[:, 0].mean(0), seq.poses_3d[:, 0].mean(0), atol=M_TOL)
    np.testing.assert_allclose(turned.poses_3d[..., 1], seq.poses_3d[..., 1], atol=M_TOL)


def test_which_sequences_can_be_seen_again():
    seq = _sequences(n_takes=1)[0]
    assert can_view(seq)
    no_camera = PoseSequence(seq.keypoints_2d, seq.poses_3d, seq.image_size, seq.confidence)
    relative = PoseSequence(seq.keypoints_2d, seq.root_relative_poses(), seq.image_size, seq.confidence,
                            camera=seq.camera)
    t = seq.num_frames
    with_maps = PoseSequence(seq.keypoints_2d, seq.poses_3d, seq.image_size, seq.confidence,
                             np.random.default_rng(0).uniform(0.1, 1.0, (t, 17, 8, 8)),
                             np.tile([100.0, 100.0, 600.0, 800.0], (t, 1)), camera=seq.camera)
    for bad in (no_camera, relative, with_maps):
        assert not can_view(bad)
        with pytest.raises(ValueError, match="virtual_view: the sequence .* needs a camera, absolute"):
            virtual_view(bad, 0.3)
    with pytest.raises(TypeError, match="can_view: seq must be a PoseSequence, got ndarray"):
        can_view(seq.keypoints_2d)
    with pytest.raises(ValueError, match="angle_rad must be finite"):
        virtual_view(seq, float("nan"))


def test_views_are_deterministic_and_say_where_they_came_from():
    seqs = _sequences()
    no_camera = PoseSequence(seqs[0].keypoints_2d, seqs[0].poses_3d, seqs[0].image_size, seqs[0].confidence)
    data = [seqs[0], no_camera, *seqs[1:]]
    a, src_a = virtual_views(data, 2, seed=5)
    b, src_b = virtual_views(data, 2, seed=5)
    c, _ = virtual_views(data, 2, seed=6)
    assert src_a == src_b == [i for i in range(len(data)) if i != 1 for _ in range(2)]
    assert len(a) == 2 * (len(data) - 1)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x.poses_3d, y.poses_3d)
        assert not np.allclose(x.poses_3d, z.poses_3d)
    assert not np.allclose(a[0].poses_3d, a[1].poses_3d)   # the copies of one sequence turn by different angles
    assert virtual_views(data, 0, seed=5) == ([], [])
    for copies in (-1, 1.5, True):
        with pytest.raises(ValueError, match="copies must be an int >= 0"):
            virtual_views(data, copies, seed=0)
    for value in (-1, 17, True, 1.0):
        with pytest.raises(ValueError, match="virtual_views must be"):
            LifterConfig(virtual_views=value)


def test_fit_gives_a_view_its_sources_fold_and_warns_when_none_can_be_made():
    from diffpose_fast.lifter import DiffPoseLifter
    from diffpose_fast.training.folds import assign_folds

    seqs = _sequences(n_takes=3)
    lifter = DiffPoseLifter(mode="frame", virtual_views=2, context_folds=3, calibration_fraction=0.0)
    folds = assign_folds([s.num_frames for s in seqs], 3, lifter.seed)
    train, all_folds = lifter._add_virtual_views(seqs, folds)
    _, sources = virtual_views(seqs, 2, lifter.seed)
    assert len(train) == len(seqs) + len(sources) and all_folds.shape[0] == sum(s.num_frames for s in train)
    starts = np.cumsum([0] + [s.num_frames for s in train])
    for j, i in enumerate(sources):
        view_folds = all_folds[starts[len(seqs) + j]:starts[len(seqs) + j + 1]]
        assert torch.equal(view_folds, all_folds[starts[i]:starts[i + 1]])
    no_camera = [PoseSequence(s.keypoints_2d, s.poses_3d, s.image_size, s.confidence) for s in seqs]
    small = DiffPoseLifter(mode="frame", virtual_views=1, calibration_fraction=0.0, context_dim=16, embed_dim=16,
                           denoiser_blocks=1, encoder_layers=1, gmm_samples=16)
    with pytest.warns(UserWarning, match="virtual_views is set but no training sequence"):
        small.fit(no_camera, context_steps=1, diffusion_steps=1, batch_size=8, progress=False)
