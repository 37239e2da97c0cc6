"""Human3.6M files in the VideoPose3D / DiffPose layouts, written here and read back."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffpose_fast.data import h36m as D


def _world_poses(t, rng):
    p = rng.normal(scale=0.3, size=(t, 32, 3)).astype(np.float32)
    p[..., 2] += 0.9                                   # standing around the room centre, metres
    return p


def _write_3d(path, rng):
    positions = {"S1": {"Walking 1": _world_poses(6, rng), "TakingPhoto": _world_poses(4, rng)},
                 "S9": {"Directions 1": _world_poses(5, rng)}}
    np.savez_compressed(path, positions_3d=positions)
    return positions


def _write_2d(path, rng, lengths, joints=17, metadata=True):
    positions = {s: {a: [rng.uniform(100, 900, size=(t + extra, joints, 2)).astype(np.float32)
                         for extra in (0, 1, 2, 3)] for a, t in acts.items()} for s, acts in lengths.items()}
    meta = {"layout_name": "h36m", "num_joints": joints,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    if metadata:
        np.savez_compressed(path, positions_2d=positions, metadata=meta)
    else:
        np.savez_compressed(path, positions_2d=positions)
    return positions


LENGTHS = {"S1": {"Walking 1": 6, "TakingPhoto": 4}, "S9": {"Directions 1": 5}}


def test_action_names_and_constants():
    assert D.normalize_action_name("TakingPhoto 1") == "Photo 1"
    assert D.normalize_action_name("WalkingDog") == "WalkDog"
    assert D.action_group("Directions 1") == "Directions"
    assert D.action_group("WalkingDog 2") == "WalkDog" and D.action_group("WalkTogether") == "WalkTogether"
    assert len(D.ACTIONS) == 15 and D.TRAIN_SUBJECTS == ("S1", "S5", "S6", "S7", "S8")
    assert D.TEST_SUBJECTS == ("S9", "S11") and D.IMAGE_SIZES[0] == (1000, 1002)
    with pytest.raises(ValueError, match="not a Human3.6M action"):
        D.action_group("Dancing 1")


def test_load_positions_3d_selects_17_joints(tmp_path):
    rng = np.random.default_rng(0)
    raw = _write_3d(tmp_path / "data_3d_h36m.npz", rng)
    pos = D.load_positions_3d(tmp_path / "data_3d_h36m.npz")
    assert set(pos["S1"]) == {"Walking 1", "Photo"}
    p = pos["S1"]["Walking 1"]
    assert p.shape == (6, 17, 3) and p.dtype == np.float32
    src = raw["S1"]["Walking 1"]
    for j17, j32 in ((0, 0), (4, 6), (7, 12), (8, 13), (10, 15), (11, 17), (14, 25), (16, 27)):
        np.testing.assert_array_equal(p[:, j17], src[:, j32])


def test_load_positions_2d_plain_and_metadata(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz"
    raw = _write_2d(path, rng, LENGTHS)
    f = D.load_positions_2d(path)
    assert not f.gmm and f.layout == "h36m" and f.metadata["num_joints"] == 17
    assert len(f.positions["S1"]["Photo"]) == 4
    np.testing.assert_array_equal(f.positions["S9"]["Directions 1"][2], raw["S9"]["Directions 1"][2])
    path2 = tmp_path / "data_2d_h36m_detectron_pt_coco.npz"
    _write_2d(path2, rng, LENGTHS, metadata=False)
    assert D.load_positions_2d(path2).layout == "coco"            # guessed from the file name


def test_gmm_format(tmp_path):
    rng = np.random.default_rng(2)
    t, m = 5, 3
    arr = np.zeros((t, 17, m, 5), dtype=np.float32)
    arr[..., 0] = [0.2, 0.7, 0.1]
    arr[..., 1:3] = rng.uniform(100, 900, size=(t, 17, m, 2))
    arr[..., 3:5] = 0.01
    path = tmp_path / "data_2d_h36m_gt_gmm.npz"
    np.savez_compressed(path, positions_2d={"S9": {"Directions 1": [arr] * 4}})
    f = D.load_positions_2d(path)
    assert f.gmm and f.positions["S9"]["Directions 1"][0].shape == (t, 17, m, 5)
    g = D.gmm_components(f.positions["S9"]["Directions 1"][0])
    assert g.weights.shape == (t, 17, m) and g.means.shape == (t, 17, m, 2) and g.spreads.shape == (t, 17, m, 2)
    np.testing.assert_allclose(D.gmm_keypoints(arr), arr[:, :, 1, 1:3], rtol=1e-6)
    want = (arr[..., :1] * arr[..., 1:3]).sum(axis=2) / arr[..., 0].sum(axis=2)[..., None]
    np.testing.assert_allclose(D.gmm_keypoints(arr, "weighted_mean"), want, rtol=1e-5)
    bad = arr.copy()
    bad[0, 0, 0, 0] = -1
    with pytest.raises(ValueError, match="non-negative"):
        D.gmm_components(bad)


def test_gmm_spreads_become_keypoint_sigma_in_pixels(tmp_path):
    """The GMM files' spreads go to PoseSequence.keypoint_sigma (pixels): the heaviest kernel's, or the whole
    mixture's standard deviation per axis (checked against a brute-force sample of the mixture)."""
    rng = np.random.default_rng(3)
    t, m = 6, 3
    arr = np.zeros((t, 17, m, 5))
    arr[..., 0] = rng.uniform(0.1, 1.0, size=(t, 17, m))
    arr[..., 1:3] = rng.uniform(-0.5, 0.5, size=(t, 17, m, 2))
    arr[..., 3:5] = rng.uniform(0.005, 0.03, size=(t, 17, m, 2))
    heaviest = np.take_along_axis(arr[..., 3:5], arr[..., 0].argmax(-1)[..., None, None], axis=-2)[..., 0, :]
    np.testing.assert_allclose(D.gmm_keypoint_sigma(arr, 1000.0), heaviest * 500.0, rtol=1e-12)
    np.testing.assert_allclose(D.gmm_keypoint_sigma(arr, 1000.0, units="pixels"), heaviest, rtol=1e-12)
    # the mixture's own standard deviation, by sampling it
    w = arr[0, 5, :, 0] / arr[0, 5, :, 0].sum()
    k = rng.choice(m, size=400_000, p=w)
    draws = arr[0, 5, k, 1:3] + arr[0, 5, k, 3:5] * rng.standard_normal((k.size, 2))
    np.testing.assert_allclose(D.gmm_keypoint_sigma(arr, 2.0, "weighted_mean")[0, 5], draws.std(0), rtol=0.01)
    with pytest.raises(ValueError, match="units"):
        D.gmm_keypoint_sigma(arr, 1000.0, units="cm")


def test_build_sequences_keeps_the_gmm_spreads(tmp_path):
    rng = np.random.default_rng(4)
    p3 = {"S1": {"Walking 1": rng.normal(0, 0.3, size=(8, 17, 3)) + np.array([0.0, 0.0, 4.0])}}
    arr = np.zeros((8, 17, 2, 5))
    arr[..., 0] = [1.0, 0.0]                         # the released files' weights
    arr[..., 1:3] = rng.uniform(300, 700, size=(8, 17, 2, 2))
    arr[..., 3:5] = rng.uniform(0.002, 0.01, size=(8, 17, 2, 2))
    arr[2, 3, 0, 3:5] = 0.0                          # an empty spread: H_K falls back to the confidence there
    p2 = D.Positions2D(positions={"S1": {"Walking 1": [arr] * 4}}, metadata={}, layout="h36m", gmm=True)
    seqs = D.build_sequences(p3, p2, ["S1"], cameras=[1])
    sigma = seqs[0].keypoint_sigma
    assert sigma.shape == (8, 17, 2)
    want = arr[:, :, 0, 3:5] * D.IMAGE_SIZES[1][0] / 2.0
    ok = ~np.isnan(sigma)
    np.testing.assert_allclose(sigma[ok], want[ok], rtol=1e-6)
    assert np.isnan(sigma[2, 3]).all() and ok.sum() == sigma.size - 2
    flipped = seqs[0].flipped()
    from diffpose_fast.data.skeleton import flip_permutation

    np.testing.assert_array_equal(flipped.keypoint_sigma, sigma[:, flip_permutation(17)])
    assert seqs[0].slice(2, 5).keypoint_sigma.shape == (3, 17, 2)


def test_truncate_and_downsample():
    x = np.arange(10)
    np.testing.assert_array_equal(D.truncate_to_mocap(x, 7), np.arange(7))
    with pytest.raises(ValueError, match="fewer than the 11 mocap frames"):
        D.truncate_to_mocap(x, 11)
    np.testing.assert_array_equal(D.downsample(x, 3), [0, 3, 6, 9])
    with pytest.raises(ValueError, match="factor must be an int >= 1"):
        D.downsample(x, 0)


def test_build_sequences_world_to_camera(tmp_path):
    pytest.importorskip("diffpose_fast.data.h36m_cameras")
    from diffpose_fast.data.h36m_cameras import h36m_extrinsics

    rng = np.random.default_rng(3)
    _write_3d(tmp_path / "3d.npz", rng)
    _write_2d(tmp_path / "2d.npz", rng, LENGTHS)
    p3 = D.load_positions_3d(tmp_path / "3d.npz")
    p2 = D.load_positions_2d(tmp_path / "2d.npz")
    seqs = D.build_sequences(p3, p2, ["S1"])
    assert [(s.action, s.image_size) for s in seqs] == [
        ("Photo", (1000, 1002)), ("Photo", (1000, 1000)), ("Photo", (1000, 1000)), ("Photo", (1000, 1002)),
        ("Walking 1", (1000, 1002)), ("Walking 1", (1000, 1000)), ("Walking 1", (1000, 1000)),
        ("Walking 1", (1000, 1002))]
    s = seqs[6]                                       # Walking 1, camera 2
    assert s.subject == "S1" and s.num_frames == 6 and s.camera is not None
    np.testing.assert_array_equal(s.keypoints_2d, p2.positions["S1"]["Walking 1"][2][:6])   # truncated
    quat, t = h36m_extrinsics("S1", 2)
    rot = Rotation.from_quat([quat[1], quat[2], quat[3], quat[0]]).as_matrix()   # camera -> world
    want = (p3["S1"]["Walking 1"].astype(np.float64) - t) @ rot                 # R^T (X - t), row form
    np.testing.assert_allclose(s.poses_3d, want, atol=1e-5)
    down = D.build_sequences(p3, p2, ["S1"], downsample=2, actions=["Walking"], cameras=[2])
    assert len(down) == 1 and down[0].num_frames == 3
    np.testing.assert_allclose(down[0].poses_3d, want[::2], atol=1e-5)
    with pytest.raises(ValueError, match="subject 'S5' not in positions_3d"):
        D.build_sequences(p3, p2, ["S5"])


def test_errors(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, positions_3d={"S1": {"Walking": np.zeros((3, 20, 3))}})
    with pytest.raises(ValueError, match=r"must have shape \[T, 32, 3\]"):
        D.load_positions_3d(path)
    np.savez(path, other=1)
    with pytest.raises(ValueError, match="has no 'positions_2d' dict"):
        D.load_positions_2d(path)


def test_build_sequences_converts_coco_layout(tmp_path):
    pytest.importorskip("diffpose_fast.data.h36m_cameras")
    rng = np.random.default_rng(4)
    _write_3d(tmp_path / "3d.npz", rng)
    path = tmp_path / "data_2d_h36m_detectron_pt_coco.npz"
    raw = _write_2d(path, rng, LENGTHS, metadata=False)
    p2 = D.load_positions_2d(path)
    seqs = D.build_sequences(D.load_positions_3d(tmp_path / "3d.npz"), p2, ["S9"], cameras=[1])
    coco = raw["S9"]["Directions 1"][1][:5]
    np.testing.assert_allclose(seqs[0].keypoints_2d[:, 4], coco[:, 11])          # COCO left_hip -> LHip
    np.testing.assert_allclose(seqs[0].keypoints_2d[:, 0], (coco[:, 11] + coco[:, 12]) / 2, rtol=1e-6)
    assert seqs[0].confidence is not None and (seqs[0].confidence == 1).all()
