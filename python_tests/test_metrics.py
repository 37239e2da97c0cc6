"""Metrics against hand-computed values."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from diffpose_fast import metrics as M


def _pose(rng, frames=4, joints=17):
    return rng.normal(scale=0.3, size=(frames, joints, 3))


def test_mpjpe_known_offset_and_units():
    gt = np.zeros((2, 17, 3))
    pred = gt + np.array([0.003, 0.004, 0.0])        # 5 mm at every joint
    assert M.mpjpe(pred, gt) == pytest.approx(0.005)
    assert M.mpjpe(pred, gt) * M.MM_PER_M == pytest.approx(5.0)
    np.testing.assert_allclose(M.mpjpe(pred, gt, reduce="none"), [0.005, 0.005])
    pred[1, 0] += [0.0, 0.0, 0.17]                   # one joint of frame 1: sqrt(.003^2+.004^2+.17^2)
    e1 = (16 * 0.005 + np.sqrt(0.003 ** 2 + 0.004 ** 2 + 0.17 ** 2)) / 17
    np.testing.assert_allclose(M.mpjpe(pred, gt, reduce="none"), [0.005, e1])


def test_torch_input_float32_gives_same_value():
    rng = np.random.default_rng(0)
    gt, pred = _pose(rng), _pose(rng)
    ref = M.mpjpe(pred, gt)
    got = M.mpjpe(torch.tensor(pred, dtype=torch.float64), torch.tensor(gt, dtype=torch.float64))
    assert got == pytest.approx(ref, rel=1e-12)
    assert M.p_mpjpe(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt)) == pytest.approx(
        M.p_mpjpe(pred, gt), rel=1e-5)


def test_p_mpjpe_similarity_transform_is_zero():
    rng = np.random.default_rng(1)
    gt = _pose(rng, frames=5)
    rots = Rotation.random(5, random_state=2).as_matrix()
    scales = np.array([0.5, 1.0, 1.7, 2.3, 0.9])
    pred = scales[:, None, None] * np.einsum("fij,fkj->fki", rots, gt) + rng.normal(size=(5, 1, 3))
    assert M.mpjpe(pred, gt) > 0.1
    assert M.p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(M.procrustes_align(pred, gt), gt, atol=1e-10)


def test_p_mpjpe_refuses_reflection():
    rng = np.random.default_rng(3)
    gt = _pose(rng, frames=6)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert M.p_mpjpe(mirrored, gt) > 0.01
    # an unconstrained orthogonal fit (reflection allowed) would reach 0: check the reflection is the reason
    aligned = M.procrustes_align(mirrored, gt)
    for f in range(6):
        a0 = aligned[f] - aligned[f].mean(0)
        m0 = mirrored[f] - mirrored[f].mean(0)
        r, *_ = np.linalg.lstsq(m0, a0, rcond=None)
        assert np.linalg.det(r) > 0


def test_p_mpjpe_matches_per_frame_loop_and_degenerate_frame():
    rng = np.random.default_rng(4)
    gt, pred = _pose(rng, frames=3), _pose(rng, frames=3)
    per = M.p_mpjpe(pred, gt, reduce="none")
    for f in range(3):
        assert per[f] == pytest.approx(M.p_mpjpe(pred[f], gt[f]))
    collapsed = np.zeros((17, 3)) + 0.2
    gt0 = gt[0] - gt[0].mean(0)
    assert M.p_mpjpe(collapsed, gt[0]) == pytest.approx(np.linalg.norm(gt0, axis=-1).mean())


def test_n_mpjpe_scaled_pose_is_zero():
    rng = np.random.default_rng(5)
    gt = _pose(rng)
    assert M.n_mpjpe(gt * 1.37, gt) == pytest.approx(0.0, abs=1e-12)
    assert M.mpjpe(gt * 1.37, gt) > 0.05


def test_mpjve_constant_shift_and_velocity():
    rng = np.random.default_rng(6)
    gt = rng.normal(size=(10, 17, 3))
    assert M.mpjve(gt + 0.3, gt) == pytest.approx(0.0, abs=1e-12)     # constant offset: same velocity
    drift = gt + np.arange(10)[:, None, None] * np.array([0.0, 0.002, 0.0])  # 2 mm per frame drift
    np.testing.assert_allclose(M.mpjve(drift, gt, reduce="none"), np.full(9, 0.002))
    with pytest.raises(ValueError, match="T >= 2"):
        M.mpjve(gt[:1], gt[:1])


def test_pck_and_auc_on_constructed_errors():
    # frame errors: joint j has error e_j along x, 17 joints in H36M order
    errs = np.array([0.0, 0.01, 0.05, 0.10, 0.1499, 0.15, 0.16, 0.30, 0.02, 0.20,
                     0.07, 0.12, 0.149, 0.151, 0.0, 0.03, 0.09])
    gt = np.zeros((1, 17, 3))
    pred = gt.copy()
    pred[0, :, 0] = errs
    assert M.pck(pred, gt) == pytest.approx(100 * np.mean(errs < 0.15))
    idx = [1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16]            # without 0, 7, 9
    assert M.pck(pred, gt, joints="mpii14") == pytest.approx(100 * np.mean(errs[idx] < 0.15))
    th = np.arange(31) * 0.005
    want_auc = 100 * np.mean([(errs[idx] < t).mean() for t in th])
    assert M.auc(pred, gt, joints="mpii14") == pytest.approx(want_auc)
    assert M.auc(pred, gt) == pytest.approx(100 * np.mean([(errs < t).mean() for t in th]))
    # the 14 joints in 3DHP order are 0..13
    from diffpose_fast.data.mpi3dhp import to_mpi3dhp_order
    assert M.pck(to_mpi3dhp_order(pred), gt, joints="mpii14", joint_order="mpi3dhp") == pytest.approx(
        M.pck(pred, gt, joints="mpii14"))
    # zero error everywhere: PCK 100, AUC 100 * 30/31 (threshold 0 counts nothing: strict <)
    assert M.pck(gt, gt) == 100.0
    assert M.auc(gt, gt) == pytest.approx(100 * 30 / 31)


def test_multi_hypothesis_metrics():
    gt = np.zeros((2, 3, 3))                       # 2 frames, 3 joints
    h = np.zeros((3, 2, 3, 3))                     # 3 hypotheses
    h[0, :, :, 0] = [0.01, 0.01, 0.10]             # pose error mean 0.04, good at joints 0,1
    h[1, :, :, 0] = [0.05, 0.05, 0.02]             # mean 0.04, good at joint 2
    h[2, :, :, 0] = [-0.03, -0.03, -0.03]          # mean 0.03: the best whole pose
    assert M.p_best(h, gt) == pytest.approx(0.03)
    assert M.j_best(h, gt) == pytest.approx((0.01 + 0.01 + 0.02) / 3)
    assert M.p_agg(h, gt) == pytest.approx(np.mean(np.abs([0.01, 0.01, 0.09 / 3])))
    np.testing.assert_allclose(M.p_best(np.moveaxis(h, 0, 1), gt, axis=1, reduce="none"), [0.03, 0.03])

    # J-Agg: orthographic "camera" projecting x,y; input 2D equals gt's -> picks per joint the closest in x
    def project(points):
        return points[..., :2]
    kp = gt[..., :2]
    sel = M.joint_reprojection_select(h, kp, project=project)
    np.testing.assert_allclose(sel[..., 0], [[0.01, 0.01, 0.02]] * 2)
    assert M.j_agg(h, gt, kp, project=project) == pytest.approx((0.01 + 0.01 + 0.02) / 3)
    # trajectory is added before projecting and removed from the answer
    traj = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    sel2 = M.joint_reprojection_select(h, kp + traj[:, None, :2], project=project, root_trajectory=traj)
    np.testing.assert_allclose(sel2, sel)


def test_aggregation_action_wise_vs_frame_wise():
    errors = {"Walking": np.array([0.01, 0.01, 0.01, 0.01]), "Sitting": np.array([0.05])}
    assert M.action_wise_mean(errors) == pytest.approx(0.03)
    assert M.frame_wise_mean(errors) == pytest.approx(0.09 / 5)
    s = M.summarize_by_action(errors)
    assert s.frames == {"Walking": 4, "Sitting": 1}
    rows = dict(s.as_rows(scale=1000))
    assert rows["Average (action-wise)"] == pytest.approx(30.0)
    assert rows["Average (frame-wise)"] == pytest.approx(18.0)
    grouped = M.errors_by_group([1.0, 2.0, 3.0], ["a", "b", "a"])
    np.testing.assert_array_equal(grouped["a"], [1.0, 3.0])


def test_validation_messages():
    with pytest.raises(ValueError, match=r"mpjpe: pred and gt must have the same shape"):
        M.mpjpe(np.zeros((2, 17, 3)), np.zeros((3, 17, 3)))
    with pytest.raises(ValueError, match=r"p_mpjpe: pred must have shape \[\.\.\., J, 3\], got \(17, 2\)"):
        M.p_mpjpe(np.zeros((17, 2)), np.zeros((17, 2)))
    with pytest.raises(ValueError, match="reduce must be"):
        M.mpjpe(np.zeros((17, 3)), np.zeros((17, 3)), reduce="sum")
    with pytest.raises(ValueError, match="joints must be"):
        M.pck(np.zeros((17, 3)), np.zeros((17, 3)), joints="some")
    with pytest.raises(ValueError, match="hypotheses must have shape"):
        M.p_best(np.zeros((2, 4, 17, 3)), np.zeros((5, 17, 3)))
    with pytest.raises(ValueError, match="either project"):
        M.j_agg(np.zeros((2, 17, 3)), np.zeros((17, 3)), np.zeros((17, 2)))


def test_j_agg_with_a_camera_and_root_trajectory():
    pytest.importorskip("diffpose_fast.data.camera")
    from diffpose_fast.data.camera import project
    from diffpose_fast.data.h36m_cameras import h36m_camera

    rng = np.random.default_rng(7)
    cam = h36m_camera(0)
    gt = rng.normal(scale=0.2, size=(3, 17, 3))
    gt -= gt[:, :1]
    traj = np.array([[0.1, -0.2, 4.5], [0.0, 0.1, 5.0], [-0.3, 0.0, 3.8]])
    kp = project(gt + traj[:, None], cam)
    h = gt[None] + rng.normal(scale=0.05, size=(4, 3, 17, 3))
    h[2, :, 5] = gt[:, 5]                              # hypothesis 2 is exact at joint 5
    sel = M.joint_reprojection_select(h, kp, camera=cam, root_trajectory=traj)
    np.testing.assert_allclose(sel[:, 5], gt[:, 5], atol=1e-12)
    err2d = np.linalg.norm(project(h + traj[None, :, None], cam) - kp, axis=-1)
    np.testing.assert_array_equal(sel, np.take_along_axis(h, err2d.argmin(0)[None, ..., None], 0)[0])
    assert M.j_agg(h, gt, kp, camera=cam, root_trajectory=traj) == pytest.approx(M.mpjpe(sel, gt))
