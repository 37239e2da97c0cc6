"""Export: npz / JSON contents and units, Euler conventions, BVH written -> parsed -> forward kinematics."""
from __future__ import annotations

import json

import numpy as np
import pytest

from diffpose_fast.data.skeleton import JOINT_NAMES, PARENTS
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.export import (UNITS, LiftedTrack, bvh_forward_kinematics, euler_zxy_to_matrix,
                                  matrix_to_euler_zxy, read_bvh, read_json, write_bvh, write_json, write_npz)


def _poses(frames=40, seed=3):
    return generate_sequences(1, frames, seed=seed)[0].root_relative_poses().astype(np.float64)


def _track(t=6, n=3):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(t, 17, 3)).astype(np.float32)
    mean[2] = np.nan
    samples = mean[None] + rng.normal(scale=0.01, size=(n, t, 17, 3)).astype(np.float32)
    std = np.abs(rng.normal(size=(t, 17))).astype(np.float32)
    lifted = np.isfinite(mean).all(axis=(1, 2))
    return LiftedTrack(mean, samples, std, [f"img{i}" for i in range(t)], lifted,
                       rng.uniform(0, 100, (t, 17, 2)), np.ones((t, 17)), (100.0, 80.0), {"sampler": "ddim"})


def test_npz_and_json_round_trip(tmp_path):
    tr = _track()
    write_npz(tmp_path / "a.npz", tr)
    write_json(tmp_path / "a.json", tr)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert z["mean"].shape == (6, 17, 3) and z["samples"].shape == (3, 6, 17, 3) and z["std"].shape == (6, 17)
        np.testing.assert_array_equal(z["mean"], tr.mean)
        assert list(z["joint_names"]) == list(JOINT_NAMES) and list(z["parents"]) == list(PARENTS)
        assert str(z["units"]) == UNITS and "metres" in UNITS and "root-relative" in UNITS
        assert list(z["frame_ids"]) == tr.frame_ids and not z["lifted"][2]
        assert json.loads(str(z["meta_json"])) == {"sampler": "ddim"}
    doc = read_json(tmp_path / "a.json")
    assert doc["units"] == UNITS and doc["joint_names"] == list(JOINT_NAMES)
    assert doc["mean"].shape == (6, 17, 3) and np.isnan(doc["mean"][2]).all()
    np.testing.assert_allclose(doc["samples"], tr.samples, atol=1e-5)
    np.testing.assert_allclose(doc["std"], tr.std, atol=1e-5)
    assert "calibrated_std" not in doc   # none given: none written
    # JSON must be strict (no NaN tokens)
    json.loads((tmp_path / "a.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))


def test_calibrated_std_is_written_when_there_is_one(tmp_path):
    import dataclasses

    tr = _track()
    cal = (tr.std * 3.0).astype(np.float32)
    cal[2] = np.nan   # a frame that was not lifted
    tr = dataclasses.replace(tr, calibrated_std=cal)
    write_npz(tmp_path / "a.npz", tr)
    write_json(tmp_path / "a.json", tr)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["calibrated_std"], cal)
    doc = read_json(tmp_path / "a.json")
    np.testing.assert_allclose(doc["calibrated_std"], cal, atol=1e-5)
    assert np.isnan(doc["calibrated_std"][2]).all()
    with pytest.raises(ValueError, match="calibrated_std must have shape"):
        dataclasses.replace(tr, calibrated_std=cal[:3])


def test_lifted_track_checks_shapes():
    tr = _track()
    with pytest.raises(ValueError, match="samples must have shape"):
        LiftedTrack(tr.mean, tr.samples[:, :3], tr.std, tr.frame_ids, tr.lifted)


def test_euler_zxy_round_trip_and_convention():
    rng = np.random.default_rng(1)
    ang = np.stack([rng.uniform(-180, 180, 500), rng.uniform(-89, 89, 500), rng.uniform(-180, 180, 500)], -1)
    r = euler_zxy_to_matrix(ang)
    np.testing.assert_allclose(euler_zxy_to_matrix(matrix_to_euler_zxy(r)), r, atol=1e-10)
    # R = Rz Rx Ry: a pure z angle rotates x towards y
    np.testing.assert_allclose(euler_zxy_to_matrix([90.0, 0, 0]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # gimbal lock (x = 90 deg) still round-trips the matrix
    g = euler_zxy_to_matrix([30.0, 90.0, 20.0])
    np.testing.assert_allclose(euler_zxy_to_matrix(matrix_to_euler_zxy(g)), g, atol=1e-9)


def _fk_joints(path):
    """Positions [T, 17, 3] in metres, camera frame, in H36M order, recomputed from the BVH file."""
    motion = read_bvh(path)
    pos = bvh_forward_kinematics(motion)
    names = []
    for j in range(17):
        has_child = j in PARENTS
        names.append(JOINT_NAMES[j].replace("/", "_") if has_child
                     else JOINT_NAMES[PARENTS[j]].replace("/", "_") + "/End")
    got = np.stack([pos[:, motion.names.index(n)] for n in names], 1) / 100.0
    return got * np.array([1.0, -1.0, -1.0]), motion


def test_bvh_round_trip_reproduces_joints(tmp_path):
    poses = _poses()
    # a turning, travelling person: rotate about the camera's vertical axis and move the root
    a = np.linspace(0, 2 * np.pi, len(poses))
    rot = np.stack([[[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]] for t in a])
    poses = np.einsum("fij,fkj->fki", rot, poses)
    root = np.stack([np.linspace(-1, 1, len(poses)), np.zeros(len(poses)), np.full(len(poses), 4.0)], -1)
    err = write_bvh(tmp_path / "m.bvh", poses, fps=50, root_positions=root)
    got, motion = _fk_joints(tmp_path / "m.bvh")
    expect = poses + root[:, None]
    dist = np.linalg.norm(got - expect, axis=-1)
    assert dist.max() < 0.003, f"BVH forward kinematics off by {dist.max() * 1000:.2f} mm"
    assert abs(err - dist.max()) < 1e-4  # write_bvh reports the same figure
    assert motion.frame_time == pytest.approx(0.02)
    assert motion.motion.shape == (len(poses), 6 + 3 * 11)  # root 6 channels, 11 more joints with children
    assert motion.names[0] == "Hip" and motion.channels[0][:3] == ["Xposition", "Yposition", "Zposition"]


def test_bvh_fills_missing_frames_and_reports_rigid_error(tmp_path):
    poses = _poses(20)
    poses[5] = np.nan
    stretched = poses.copy()
    stretched[10:, 13] += (stretched[10:, 13] - stretched[10:, 12]) * 0.2  # forearm 20% longer later
    err = write_bvh(tmp_path / "s.bvh", stretched)
    got, _ = _fk_joints(tmp_path / "s.bvh")
    assert np.isfinite(got).all() and got.shape == (20, 17, 3)
    assert err > 0.01  # a varying bone length cannot be represented in BVH, and the report says so
    with pytest.raises(ValueError, match="shape"):
        write_bvh(tmp_path / "x.bvh", poses[:, :16])
