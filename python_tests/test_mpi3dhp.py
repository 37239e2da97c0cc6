"""MPI-INF-3DHP: joint maps and the P-STMO npz layouts, written here and read back."""
import numpy as np
import pytest

from diffpose_fast.data import mpi3dhp as D
from diffpose_fast.data.skeleton import JOINT_NAMES, LEFT_JOINTS, RIGHT_JOINTS


def test_maps_are_inverse_permutations_and_respect_sides():
    assert sorted(D.MPI3DHP_TO_H36M) == list(range(17))
    x = np.random.default_rng(0).normal(size=(3, 17, 2))
    np.testing.assert_array_equal(D.to_mpi3dhp_order(D.to_h36m_order(x)), x)
    assert D.MPI3DHP_TO_H36M[D.MPI3DHP_ROOT] == 0
    assert {D.MPI3DHP_TO_H36M[i] for i in D.MPI3DHP_LEFT_JOINTS} == set(LEFT_JOINTS)
    assert {D.MPI3DHP_TO_H36M[i] for i in D.MPI3DHP_RIGHT_JOINTS} == set(RIGHT_JOINTS)
    names = {D.MPI3DHP_JOINT_NAMES[i]: JOINT_NAMES[h] for i, h in enumerate(D.MPI3DHP_TO_H36M)}
    assert names["head_top"] == "Head" and names["neck"] == "Thorax" and names["head"] == "Neck/Nose"
    assert names["left_hip"] == "LHip" and names["right_wrist"] == "RWrist" and names["spine"] == "Spine"
    assert D.PCK14_JOINTS_H36M == (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)


def _mpi_pose(t, rng):
    p = rng.normal(scale=300.0, size=(t, 17, 3))
    p[..., 2] += 4000.0
    return p


def test_load_train_layout(tmp_path):
    rng = np.random.default_rng(1)
    p3 = _mpi_pose(5, rng)
    kp = rng.uniform(0, 2048, size=(5, 17, 2))
    data = {"S1 Seq1": [{0: {"data_2d": kp, "data_3d": p3}, 2: {"data_2d": kp + 1, "data_3d": p3}}, 25],
            "S2 Seq2": [{0: {"data_2d": kp[:3], "data_3d": p3[:3]}}, 50]}
    path = tmp_path / "data_train_3dhp.npz"
    np.savez_compressed(path, data=data)
    seqs = D.load_train(path)
    assert [(s.subject, s.action, s.num_frames) for s in seqs] == [
        ("S1", "Seq1/cam0", 5), ("S1", "Seq1/cam2", 5), ("S2", "Seq2/cam0", 3)]
    s = seqs[0]
    assert s.image_size == (2048, 2048)
    np.testing.assert_allclose(s.poses_3d[:, 0], p3[:, 14] / 1000, rtol=1e-6)   # root moved to 0, metres
    np.testing.assert_allclose(s.keypoints_2d[:, 10], kp[:, 0], rtol=1e-6)       # head_top -> Head
    raw = D.load_train(path, joint_order="mpi3dhp")[0]
    np.testing.assert_allclose(raw.poses_3d, p3 / 1000, rtol=1e-6)


def test_load_test_layout_with_valid_masks_and_sizes(tmp_path):
    rng = np.random.default_rng(2)
    data = {}
    for k, t in (("TS1", 4), ("TS5", 6)):
        w, h = D.TEST_IMAGE_SIZES[k]
        data[k] = {"data_2d": rng.uniform(0, min(w, h), size=(t, 17, 2)), "data_3d": _mpi_pose(t, rng),
                   "valid": np.array([1, 0] * (t // 2), dtype=np.float64)}
    path = tmp_path / "data_test_3dhp.npz"
    np.savez_compressed(path, data=data)
    seqs = D.load_test(path)
    assert [s.subject for s in seqs] == ["TS1", "TS5"]
    assert seqs[0].image_size == (2048, 2048) and seqs[1].image_size == (1920, 1080)
    np.testing.assert_array_equal(seqs[1].valid, [True, False] * 3)
    np.testing.assert_allclose(seqs[1].poses_3d[:, 7], data["TS5"]["data_3d"][:, 15] / 1000, rtol=1e-6)


def test_load_test_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, other=np.zeros(3))
    with pytest.raises(ValueError, match="no 'data' dict"):
        D.load_test(path)
    np.savez(path, data={"TS9": {"data_2d": np.zeros((2, 17, 2)), "data_3d": np.zeros((2, 17, 3))}})
    with pytest.raises(ValueError, match="unknown test sequence 'TS9'"):
        D.load_test(path)
    np.savez(path, data={"TS1": {"data_2d": np.zeros((2, 16, 2)), "data_3d": np.zeros((2, 17, 3)), "valid": [1, 1]}})
    with pytest.raises(ValueError, match=r"data_2d must have shape \[T, 17, 2\]"):
        D.load_test(path)
