"""Protocol runner: flip TTA, per-action / frame-wise averages, Table 2's PCK/AUC, training and evaluation entry
points on tiny fixture files written here in the real Human3.6M and MPI-INF-3DHP layouts."""
import json

import numpy as np
import pytest

from diffpose_fast.data import h36m as H
from diffpose_fast.data import mpi3dhp as D3
from diffpose_fast.data.camera import Camera, world_to_camera
from diffpose_fast.data.h36m_cameras import h36m_camera, h36m_extrinsics
from diffpose_fast.data.sequence import PoseSequence
from diffpose_fast.data.skeleton import flip_permutation
from diffpose_fast.data.synthetic import generate_motion
from diffpose_fast.lifter import LiftResult
from diffpose_fast.protocols import (AVERAGE_LABELS, PAPER_ACTION_ABBREVIATIONS, evaluate_3dhp, evaluate_h36m,
                                     evaluate_sequences, format_report, predict_with_flip, train_3dhp, train_h36m,
                                     unflip_poses)

from _tiny import tiny

TINY = tiny(batch_size=32)

# S1 trains, S9 tests; two actions each, sub-action names and a rename (TakingPhoto -> Photo) as in the real file.
FIXTURE = {"S1": {"Directions 1": ("standing", 20), "Walking 1": ("walking", 20)},
           "S9": {"Directions 1": ("standing", 9), "TakingPhoto": ("waving", 5)}}


# ------------------------------------------------------------------------------------------ fixture files

def _world_32(pose17: np.ndarray) -> np.ndarray:
    """A 32-joint mocap array whose 17 kept joints are ``pose17``; the 15 static joints sit on their parents."""
    out = np.zeros(pose17.shape[:1] + (32, 3), np.float32)
    out[:, list(H.H36M_32_TO_17)] = pose17
    parents32 = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25,
                 26, 27, 28, 27, 30]
    for j in range(32):
        if j not in H.H36M_32_TO_17:
            out[:, j] = out[:, parents32[j]]
    return out


@pytest.fixture(scope="module")
def h36m_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    rng = np.random.default_rng(7)
    positions_3d, positions_2d = {}, {}
    for subject, actions in FIXTURE.items():
        positions_3d[subject], positions_2d[subject] = {}, {}
        for action, (motion, frames) in actions.items():
            world = generate_motion(frames, rng, motion)                 # [T, 17, 3] world metres
            positions_3d[subject][action] = _world_32(world)
            cams = []
            for c in range(4):
                cam = world_to_camera(world, *h36m_extrinsics(subject, c))
                cams.append(h36m_camera(c).project(cam).astype(np.float32))
            positions_2d[subject][action] = cams
    meta = {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(root / "data_3d_h36m.npz", positions_3d=positions_3d)
    np.savez_compressed(root / "data_2d_h36m_gt.npz", positions_2d=positions_2d, metadata=meta)
    return root / "data_3d_h36m.npz", root / "data_2d_h36m_gt.npz"


def _mpi3dhp_entry(rng, frames, size, valid=None):
    """One 3DHP sequence in P-STMO's layout: 3DHP joint order, 2D pixels, 3D camera-frame millimetres."""
    w, h = size
    cam = Camera(fx=1.2 * w, fy=1.2 * w, cx=w / 2, cy=h / 2, res_w=w, res_h=h)
    world = generate_motion(frames, rng, "standing")
    poses = world[..., [0, 2, 1]] * np.array([1.0, -1.0, 1.0])             # z up -> y down, facing the camera
    poses = poses - poses[:, :1].mean(0) + np.array([0.0, 0.0, 4.0])        # 4 m in front of the camera
    entry = {"data_2d": D3.to_mpi3dhp_order(cam.project(poses)).astype(np.float32),
             "data_3d": (D3.to_mpi3dhp_order(poses) * 1000.0).astype(np.float32)}
    if valid is not None:
        entry["valid"] = np.asarray(valid, np.float32)
    return entry


@pytest.fixture(scope="module")
def mpi3dhp_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("3dhp")
    rng = np.random.default_rng(3)
    test = {"TS1": _mpi3dhp_entry(rng, 8, (2048, 2048), [1, 1, 0, 1, 1, 1, 0, 1]),
            "TS5": _mpi3dhp_entry(rng, 6, (1920, 1080), [0, 1, 1, 1, 0, 0])}
    train = {"S1 Seq1": [{0: _mpi3dhp_entry(rng, 12, (2048, 2048)), 2: _mpi3dhp_entry(rng, 12, (2048, 2048))}, 25]}
    np.savez_compressed(root / "data_test_3dhp.npz", data=test)
    np.savez_compressed(root / "data_train_3dhp.npz", data=train)
    return root / "data_train_3dhp.npz", root / "data_test_3dhp.npz"


@pytest.fixture(scope="module")
def trained(h36m_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "h36m_tiny"
    history = train_h36m(*h36m_files, out, config=TINY, subjects=["S1"], context_steps=15, diffusion_steps=15,
                         progress=False, seed=0)
    return out, history


# --------------------------------------------------------------------------------------------- fake lifters

class OracleLifter:
    """Returns the ground truth of whatever sequence it is given (so of the mirrored one on a flipped input),
    plus ``offset(seq) -> [T, 17, 3]`` metres, as ``num_samples`` hypotheses ``+ spread * i`` along z."""

    seed = 0

    def __init__(self, offset=None, spread=0.0):
        self.offset = offset
        self.spread = spread
        self.calls = []

    def predict(self, seq, *, sampler, num_samples, steps, generator):
        self.calls.append(dict(sampler=sampler, num_samples=num_samples, steps=steps))
        pose = seq.root_relative_poses().astype(np.float64)
        if self.offset is not None:
            pose = pose + self.offset(seq)
        n = 1 if sampler == "context" else num_samples
        shift = np.zeros((n, 1, 17, 3))
        shift[:, 0, 1:, 2] = (np.arange(n) - (n - 1) / 2)[:, None] * self.spread
        samples = (pose[None] + shift).astype(np.float32)
        mean = samples.mean(0)
        return LiftResult(mean, samples, np.zeros(mean.shape[:2], np.float32))


def _seq(rng, frames=6, action="Directions 1", valid=None):
    world = generate_motion(frames, rng, "standing")
    q, t = h36m_extrinsics("S9", 1)
    cam = world_to_camera(world, q, t)
    return PoseSequence(h36m_camera(1).project(cam), cam, (1000, 1000), camera=h36m_camera(1), subject="S9",
                        action=action, valid=valid)


# ------------------------------------------------------------------------------------------------ flip TTA

def test_unflip_is_the_mirror_and_its_own_inverse():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 3, 17, 3))
    u = unflip_poses(p)
    perm = flip_permutation()
    np.testing.assert_array_equal(u[..., 0], -p[..., perm, 0])
    np.testing.assert_array_equal(u[..., 1:], p[..., perm, 1:])
    np.testing.assert_array_equal(unflip_poses(u), p)
    assert list(perm[[1, 4, 11, 14]]) == [4, 1, 14, 11] and perm[0] == 0 and perm[9] == 9


def test_flip_tta_recovers_the_pose_of_a_symmetric_oracle():
    seq = _seq(np.random.default_rng(1))
    gt = seq.root_relative_poses()
    lifter = OracleLifter(spread=0.01)
    res = predict_with_flip(lifter, seq, sampler="ddim", num_samples=3, steps=2, flip_tta=True)
    assert len(lifter.calls) == 2
    np.testing.assert_allclose(res.poses_3d, gt, atol=1e-6)          # un-flipping gives back the pose
    assert res.samples.shape == (6, 6, 17, 3)                          # both sets of hypotheses, concatenated
    np.testing.assert_allclose(res.samples[:3], lifter.predict(seq, sampler="ddim", num_samples=3, steps=2,
                                                               generator=None).samples, atol=1e-7)
    np.testing.assert_allclose(res.samples.mean(0), res.poses_3d, atol=1e-6)
    # std = RMS distance of the 2N hypotheses to the mean: z offsets -1, 0, 1 cm twice on non-root joints
    np.testing.assert_allclose(res.std[:, 1:], np.sqrt(2 / 3) * 0.01, rtol=1e-4)
    off = predict_with_flip(lifter, seq, sampler="ddim", num_samples=3, steps=2, flip_tta=False)
    assert off.samples.shape == (3, 6, 17, 3) and len(lifter.calls) == 4


def test_flip_tta_cancels_an_x_bias_and_mirrors_a_left_side_error():
    seq = _seq(np.random.default_rng(2))
    gt = seq.root_relative_poses().astype(np.float64)
    bias = OracleLifter(offset=lambda s: np.broadcast_to([0.05, 0.0, 0.0], (s.num_frames, 17, 3)))
    np.testing.assert_allclose(predict_with_flip(bias, seq, sampler="ddim", num_samples=1, steps=2,
                                                 flip_tta=True).poses_3d, gt, atol=1e-6)

    def left_wrist(s):                      # the model is wrong about whatever it sees as the left wrist
        d = np.zeros((s.num_frames, 17, 3))
        d[:, 13] = [0.02, 0.04, 0.0]
        return d

    res = predict_with_flip(OracleLifter(offset=left_wrist), seq, sampler="context", num_samples=5, steps=None,
                            flip_tta=True)
    expected = gt.copy()
    expected[:, 13] += np.array([0.02, 0.04, 0.0]) / 2       # original pass: left wrist
    expected[:, 16] += np.array([-0.02, 0.04, 0.0]) / 2      # mirrored pass: its "left" wrist is our right, x negated
    np.testing.assert_allclose(res.poses_3d, expected, atol=1e-6)
    assert res.samples.shape == (2, 6, 17, 3)


def test_ddpm_passes_no_step_count():
    lifter = OracleLifter()
    predict_with_flip(lifter, _seq(np.random.default_rng(3)), sampler="ddpm", num_samples=2, steps=5, flip_tta=False)
    assert lifter.calls[-1]["steps"] is None


# ------------------------------------------------------------------------------------------- aggregation

def test_action_wise_and_frame_wise_on_known_errors():
    rng = np.random.default_rng(4)
    seqs = [_seq(rng, 6, "Directions 1"), _seq(rng, 4, "Directions 2"),
            _seq(rng, 5, "TakingPhoto 1", valid=[1, 1, 0, 1, 1])]
    c = {"Directions": 0.010, "Photo": 0.040}                  # a constant z error on the 16 non-root joints

    def offset(s):
        d = np.zeros((s.num_frames, 17, 3))
        d[:, 1:, 2] = c[H.action_group(s.action)]
        return d

    report = evaluate_sequences(OracleLifter(offset=offset), seqs, num_samples=1, steps=2, per="action")
    assert report["groups"] == ["Directions", "Photo"]
    assert report["frames"] == {"Directions": 10, "Photo": 4} and report["total_frames"] == 14
    want = {a: 1000 * v * 16 / 17 for a, v in c.items()}
    for a in want:
        assert report["per_group"]["mpjpe"][a] == pytest.approx(want[a], rel=1e-5)
        assert report["per_group"]["mpjve"][a] == pytest.approx(0.0, abs=1e-3)   # a constant error has no velocity
    assert report["action_wise"]["mpjpe"] == pytest.approx((want["Directions"] + want["Photo"]) / 2, rel=1e-5)
    assert report["frame_wise"]["mpjpe"] == pytest.approx((10 * want["Directions"] + 4 * want["Photo"]) / 14,
                                                          rel=1e-5)
    assert report["velocity_pairs"] == {"Directions": 5 + 3, "Photo": 2}   # pairs of consecutive valid frames
    assert report["metrics"] == ["mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"]       # one hypothesis: no P-Best etc.
    assert len(report["missing_actions"]) == 13 and "Walking" in report["missing_actions"]
    json.dumps(report)

    with pytest.raises(ValueError, match="per='sequence'"):
        evaluate_sequences(OracleLifter(), [_seq(rng, 3, "TS1")], per="action")
    by_seq = evaluate_sequences(OracleLifter(), [_seq(rng, 3, "TS1")], num_samples=1, per="sequence")
    assert by_seq["groups"] == ["TS1"] and by_seq["per_group"]["mpjpe"]["TS1"] == pytest.approx(0, abs=1e-3)
    with pytest.raises(ValueError, match="per must be one of"):
        evaluate_sequences(OracleLifter(), seqs, per="camera")


def test_multi_hypothesis_metrics_on_known_hypotheses():
    seq = _seq(np.random.default_rng(5), 4)
    report = evaluate_sequences(OracleLifter(spread=0.02), [seq], num_samples=3, steps=2, flip_tta=False)
    # hypotheses at z offsets -2, 0, +2 cm on non-root joints: the best one is exact, their mean too
    assert report["metrics"] == ["mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "p_best", "j_best", "p_agg", "j_agg"]
    for m in ("p_best", "j_best", "p_agg", "j_agg", "mpjpe"):
        assert report["frame_wise"][m] == pytest.approx(0.0, abs=1e-3), m
    assert report["settings"]["num_hypotheses"] == 3
    flipped = evaluate_sequences(OracleLifter(spread=0.02), [seq], num_samples=3, steps=2, flip_tta=True)
    assert flipped["settings"]["num_hypotheses"] == 6


# ------------------------------------------------------------------------------------------------- 3DHP

def _table2_offset(seq):
    """Depth errors (mm), symmetric left/right so flip TTA leaves them unchanged; invalid frames get 1 m.
    No error sits on one of the 0:5:150 mm thresholds, where float rounding would decide."""
    e = np.zeros(17)
    e[[10, 8, 1, 4, 2, 5, 3, 6]] = 22.0        # head top, thorax (3DHP neck), hips, knees, ankles
    e[[11, 14, 12, 15]] = 102.0                # shoulders, elbows
    e[[13, 16]] = 160.0                        # wrists
    e[[7, 9]] = 200.0                          # spine, head centre: not among the official 14 joints
    d = np.zeros((seq.num_frames, 17, 3))
    d[:, :, 2] = e / 1000.0
    d[~np.asarray(seq.valid, bool), 1:, :] += 1.0
    return d


@pytest.mark.parametrize("flip_tta", [False, True])
def test_3dhp_pck_auc_mpjpe_match_hand_values(mpi3dhp_files, flip_tta):
    _, test_npz = mpi3dhp_files
    report = evaluate_3dhp(OracleLifter(offset=_table2_offset), test_npz, num_samples=1, flip_tta=flip_tta)
    # 14 joints: 8 at 22 mm (correct from 25 mm: 26 of 31 thresholds), 4 at 102 mm (10 of 31), 2 at 160 mm (0)
    hand = {"pck_14": 100 * 12 / 14, "auc_14": 100 * (8 * 26 + 4 * 10) / (14 * 31),
            # all 17: + pelvis at 0 mm (30 of 31 thresholds, as 0 < 0 fails), spine and head centre at 200 mm
            "pck_all": 100 * 13 / 17, "auc_all": 100 * (8 * 26 + 4 * 10 + 30) / (17 * 31),
            "mpjpe": (8 * 22 + 4 * 102 + 2 * 160 + 2 * 200) / 17}
    assert report["sequences"] == ["TS1", "TS5"]
    assert report["frames"] == {"TS1": 6, "TS5": 3} and report["total_frames"] == 9
    for k, v in hand.items():
        for s in ("TS1", "TS5"):
            assert report["per_sequence"][k][s] == pytest.approx(v, rel=1e-4), (k, s)
        assert report["overall"][k] == pytest.approx(v, rel=1e-4)
    assert report["settings"]["flip_tta"] is flip_tta
    text = format_report(report)
    for word in ("TS1", "TS5", "PCK14", "AUC14", "PCKall", "AUCall", "MPJPE", "frame-weighted", "mean of sequences", "frame-wise"):
        assert word in text
    json.dumps(report)


def test_3dhp_overall_is_frame_weighted(mpi3dhp_files):
    _, test_npz = mpi3dhp_files

    def by_sequence(seq):                      # a different error per sequence: 10 mm on TS1, 40 mm on TS5
        d = np.zeros((seq.num_frames, 17, 3))
        d[:, 1:, 2] = 0.010 if seq.image_size == (2048, 2048) else 0.040
        return d

    report = evaluate_3dhp(OracleLifter(offset=by_sequence), test_npz, num_samples=1, flip_tta=False)
    ts1, ts5 = 10 * 16 / 17, 40 * 16 / 17
    assert report["per_sequence"]["mpjpe"]["TS1"] == pytest.approx(ts1, rel=1e-4)
    assert report["overall"]["mpjpe"] == pytest.approx((6 * ts1 + 3 * ts5) / 9, rel=1e-4)
    assert report["sequence_mean"]["mpjpe"] == pytest.approx((ts1 + ts5) / 2, rel=1e-4)


# ------------------------------------------------------------------------------ training and evaluation files

def test_train_h36m_saves_a_model_and_history(trained):
    out, history = trained
    assert len(history["context"]) == 15 and len(history["diffusion"]) == 15
    assert np.isfinite(history["context"]).all() and np.isfinite(history["diffusion"]).all()
    assert history["sequences"] == 8 and history["frames"] == 4 * 40
    saved = json.loads((out / "history.json").read_text())
    assert saved["dataset"]["subjects"] == ["S1"] and len(saved["diffusion"]) == 15
    assert (out / "config.json").is_file()


def test_evaluate_h36m_report(trained, h36m_files):
    out, _ = trained
    report = evaluate_h36m(out, *h36m_files, num_samples=2, steps=2, subjects=["S9"])
    assert report["protocol"] == "h36m" and report["settings"]["flip_tta"] is False
    assert report["groups"] == ["Directions", "Photo"]          # paper order; TakingPhoto renamed
    assert report["frames"] == {"Directions": 4 * 9, "Photo": 4 * 5}
    assert report["metrics"] == ["mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "p_best", "j_best", "p_agg", "j_agg"]
    frames = report["frames"]
    for m in report["metrics"]:
        per = report["per_group"][m]
        assert all(np.isfinite(v) and v >= 0 for v in per.values())
        assert report["action_wise"][m] == pytest.approx(np.mean([per[a] for a in report["groups"]]), rel=1e-9)
        weights = report["velocity_pairs"] if m == "mpjve" else frames
        wmean = sum(per[a] * weights[a] for a in per) / sum(weights[a] for a in per)
        assert report["frame_wise"][m] == pytest.approx(wmean, rel=1e-9)
    for a in report["groups"]:
        assert report["per_group"]["j_best"][a] <= report["per_group"]["p_best"][a] + 1e-9
        assert report["per_group"]["p_mpjpe"][a] <= report["per_group"]["mpjpe"][a] + 1e-6
    assert report["velocity_pairs"] == {"Directions": 4 * 8, "Photo": 4 * 4}
    text = format_report(report)
    for abbr in PAPER_ACTION_ABBREVIATIONS.values():
        assert abbr in text
    for label in list(AVERAGE_LABELS.values()) + ["MPJPE", "P-MPJPE", "N-MPJPE", "MPJVE", "P-Best", "J-Agg"]:
        assert label in text
    header = next(line for line in text.splitlines() if "Dir" in line and "WalkT" in line)
    cols = header.split()
    assert cols[1:16] == list(PAPER_ACTION_ABBREVIATIONS.values()) and cols[-2:] == ["Avg", "Frame"]
    mpjpe_row = next(line for line in text.splitlines() if line.startswith("MPJPE"))
    assert f"{report['action_wise']['mpjpe']:.1f}" in mpjpe_row and mpjpe_row.count(" -") == 13

    again = evaluate_h36m(out, *h36m_files, num_samples=2, steps=2, subjects=["S9"])
    assert again["per_group"] == report["per_group"]                       # seeded: deterministic
    flip = evaluate_h36m(out, *h36m_files, sampler="context", flip_tta=True, subjects=["S9"], downsample=2)
    assert flip["settings"]["num_hypotheses"] == 2 and flip["frames"] == {"Directions": 4 * 5, "Photo": 4 * 3}
    with pytest.raises(ValueError, match="S11"):
        evaluate_h36m(out, *h36m_files)                                     # the fixture has no S11


def test_train_and_evaluate_3dhp_files(mpi3dhp_files, tmp_path):
    train_npz, test_npz = mpi3dhp_files
    history = train_3dhp(train_npz, tmp_path / "m", config=TINY, context_steps=3, diffusion_steps=3, progress=False,
                         downsample=2)
    assert history["sequences"] == 2 and history["frames"] == 12
    report = evaluate_3dhp(tmp_path / "m", test_npz, num_samples=2, steps=2)
    assert report["settings"]["num_hypotheses"] == 4                       # flip TTA on by default
    for k in report["metrics"]:
        assert min(report["per_sequence"][k].values()) - 1e-9 <= report["overall"][k]
        assert report["overall"][k] <= max(report["per_sequence"][k].values()) + 1e-9
        expected = sum(report["per_sequence"][k][s] * report["frames"][s] for s in report["sequences"]) / 9
        assert report["overall"][k] == pytest.approx(expected, rel=1e-9)
    assert 0 <= report["overall"]["pck_14"] <= 100 and 0 <= report["overall"]["auc_all"] <= 100


def test_config_argument_forms(tmp_path, h36m_files):
    from diffpose_fast.config import LifterConfig
    from diffpose_fast.protocols.fit_and_save import resolve_config

    assert resolve_config(None) == LifterConfig()
    assert resolve_config({"embed_dim": 16}).embed_dim == 16
    LifterConfig(**TINY).save(tmp_path / "c.yaml")
    assert resolve_config(tmp_path / "c.yaml") == LifterConfig(**TINY)
    with pytest.raises(TypeError):
        resolve_config(3)
    with pytest.raises(ValueError, match="unknown key"):
        train_h36m(*h36m_files, tmp_path / "x", config={"nope": 1}, subjects=["S1"])


def test_tensorboard_without_the_package_fails_before_training(tmp_path, h36m_files):
    pytest.importorskip("torch")
    try:
        import torch.utils.tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="pip install tensorboard"):
        train_h36m(*h36m_files, tmp_path / "x", config=TINY, subjects=["S1"], tensorboard=tmp_path / "tb")
    assert not (tmp_path / "x").exists()


def test_video_model_through_the_h36m_protocol(h36m_files, tmp_path):
    """The video model (windows of F frames, flip TTA) trains and evaluates through the same protocol runner:
    every test frame is scored once, MPJVE is reported, and the action-wise average is the paper's mean."""
    out = tmp_path / "video_model"
    config = dict(TINY, mode="video", frames=9, encoder_layers=1, batch_size=18)
    train_h36m(*h36m_files, out, config=config, subjects=["S1"], context_steps=4, diffusion_steps=3,
               progress=False, seed=0)
    report = evaluate_h36m(out, *h36m_files, subjects=["S9"], num_samples=2, steps=2, flip_tta=True)
    frames = sum(t for _, t in FIXTURE["S9"].values()) * 4  # every frame of every camera, once
    assert report["total_frames"] == frames
    assert set(report["groups"]) == {"Directions", "Photo"}
    for metric in ("mpjpe", "p_mpjpe", "mpjve"):
        per_group = report["per_group"][metric]
        assert np.isfinite(list(per_group.values())).all()
        assert report["action_wise"][metric] == pytest.approx(np.mean(list(per_group.values())))
    assert "Photo" in format_report(report)


def test_video_model_through_the_3dhp_protocol(mpi3dhp_files, tmp_path):
    """Table 2 with the video model: valid frames only, per sequence and frame-weighted overall."""
    train_npz, test_npz = mpi3dhp_files
    config = dict(TINY, mode="video", frames=5, encoder_layers=1, batch_size=10)
    train_3dhp(train_npz, tmp_path / "v", config=config, context_steps=3, diffusion_steps=2, progress=False)
    report = evaluate_3dhp(tmp_path / "v", test_npz, num_samples=2, steps=2)
    assert report["sequences"] == ["TS1", "TS5"] and sum(report["frames"].values()) == 9  # the valid frames
    for k in report["metrics"]:
        expected = sum(report["per_sequence"][k][s] * report["frames"][s] for s in report["sequences"]) / 9
        assert report["overall"][k] == pytest.approx(expected, rel=1e-9)
