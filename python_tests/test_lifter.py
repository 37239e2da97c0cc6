"""DiffPoseLifter end to end at a tiny size: training lowers the losses, predictions keep the contract,
save/load round-trips bit-exactly, and bad input is refused with a clear message."""
import json

import numpy as np
import pytest
import torch

from diffpose_fast import DiffPoseLifter, LifterConfig, LiftResult, PoseSequence
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.persistence import CheckpointError

from _tiny import tiny

TINY = tiny(batch_size=32)


@pytest.fixture(scope="module")
def data():
    return generate_sequences(3, 48, seed=0), generate_sequences(2, 12, seed=1)


@pytest.fixture(scope="module")
def trained(data):
    train, _ = data
    lifter = DiffPoseLifter(seed=0, **TINY)
    history = lifter.fit(train, context_steps=40, diffusion_steps=40, progress=False)
    return lifter, history


def test_training_lowers_both_losses(trained):
    _, history = trained
    for stage in ("context", "diffusion"):
        losses = np.asarray(history[stage])
        assert losses.shape == (40,)
        assert np.isfinite(losses).all()
        # The diffusion loss is noisy (k is drawn per sample), so compare the ends of the run, with margin.
        factor = 0.7 if stage == "context" else 0.85
        assert losses[-10:].mean() < factor * losses[:10].mean(), f"{stage} loss did not fall: {losses}"


def test_predictions_keep_the_contract(trained, data):
    lifter, _ = trained
    seq = data[1][0]
    res = lifter.predict(seq, num_samples=4)
    assert isinstance(res, LiftResult)
    assert res.poses_3d.shape == (12, 17, 3) and res.poses_3d.dtype == np.float32
    assert res.samples.shape == (4, 12, 17, 3)
    assert res.std.shape == (12, 17)
    assert np.isfinite(res.samples).all()
    assert np.all(res.samples[:, :, 0] == 0) and np.all(res.poses_3d[:, 0] == 0)  # root-relative
    np.testing.assert_allclose(res.poses_3d, res.samples.mean(0), atol=1e-6)
    # Hypotheses are distinct draws from H_K, so they differ and their spread is positive.
    assert np.abs(res.samples[0] - res.samples[1]).max() > 1e-4
    assert (res.std[:, 1:] > 0).all()
    expected_std = np.sqrt(((res.samples - res.samples.mean(0)) ** 2).sum(-1).mean(0))
    np.testing.assert_allclose(res.std, expected_std, rtol=1e-5, atol=1e-7)
    # Metres at human scale: a forearm is tens of centimetres, not millimetres or kilometres.
    assert 0.05 < np.linalg.norm(res.poses_3d[:, 13] - res.poses_3d[:, 12], axis=-1).mean() < 1.0


def test_samplers_and_determinism(trained, data):
    lifter, _ = trained
    seq = data[1][0]
    ctx = lifter.predict(seq, sampler="context")
    assert ctx.samples.shape == (1, 12, 17, 3) and np.all(ctx.std == 0)
    ddpm = lifter.predict(seq, sampler="ddpm", num_samples=2)
    assert ddpm.samples.shape == (2, 12, 17, 3)
    a = lifter.predict(seq)
    b = lifter.predict(seq)
    np.testing.assert_array_equal(a.samples, b.samples)  # the default generator is seeded
    c = lifter.predict(seq, generator=torch.Generator().manual_seed(123))
    assert np.abs(a.samples - c.samples).max() > 0


def test_tensor_and_array_inputs(trained, data):
    lifter, _ = trained
    seq = data[1][0]
    from_array = lifter.predict(seq.keypoints_2d, image_size=seq.image_size, confidence=seq.confidence)
    np.testing.assert_array_equal(from_array.samples, lifter.predict(seq).samples)
    as_tensor = lifter.predict(torch.from_numpy(np.array(seq.keypoints_2d)), image_size=seq.image_size,
                               confidence=torch.from_numpy(np.array(seq.confidence)))
    assert isinstance(as_tensor.poses_3d, torch.Tensor)
    np.testing.assert_array_equal(as_tensor.samples.numpy(), from_array.samples)


def test_evaluate_reports_frame_and_action_averages(trained, data):
    lifter, _ = trained
    report = lifter.evaluate(data[1], num_samples=2, steps=2)
    assert report["frames"] == 24
    for key in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm"):
        assert 0 < report[key] < 2000
        assert key in report["action_wise"]
    assert report["p_mpjpe_mm"] <= report["mpjpe_mm"] + 1e-9  # alignment can only lower the error
    assert set(report["per_action"]) == {s.action for s in data[1]}


def test_save_load_round_trips_bit_exactly(trained, data, tmp_path):
    lifter, _ = trained
    lifter.save(tmp_path / "model")
    loaded = DiffPoseLifter.load(tmp_path / "model")
    assert loaded.config == lifter.config
    for name, value in lifter.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[name]), name
    seq = data[1][1]
    np.testing.assert_array_equal(lifter.predict(seq).samples, loaded.predict(seq).samples)


def test_fit_calibrates_the_spread_by_itself(trained, data):
    """Without val, fit holds out the tail of the longest sequence here (three 48-frame sequences: none is short
    enough to hold out whole) and fits the calibration there; calibrated_std is then that map applied to std."""
    lifter, history = trained
    cal = history["calibration"]
    assert cal["source"] == "held_out" and cal["tail_frames"] == round(0.1 * 3 * 48) == cal["frames"]
    seq = data[1][0]
    for kwargs, key, n in ((dict(num_samples=4), "spread", 4), (dict(sampler="context"), "context", 1)):
        res = lifter.predict(seq, **kwargs)
        assert res.calibrated_std.shape == (12, 17) and res.calibrated_std.dtype == np.float32
        assert np.all(res.calibrated_std[:, 0] == 0) and np.all(res.calibrated_std[:, 1:] >= 1e-3)
        expected = lifter.calibration[key].apply(res.std, n, seq.confidence)
        np.testing.assert_allclose(res.calibrated_std, expected, rtol=1e-6)
    tensor = lifter.predict(torch.tensor(np.array(seq.keypoints_2d)), image_size=seq.image_size,
                            confidence=seq.confidence)
    assert isinstance(tensor.calibrated_std, torch.Tensor)


def test_calibrate_spread_fits_keeps_and_saves_the_map(trained, data, tmp_path):
    lifter, _ = trained
    held_out = data[1]
    before = lifter.calibration
    try:
        cal = lifter.calibrate_spread(held_out, num_samples=4)
        assert cal is lifter.calibration["spread"] and cal.frames == 24 and not cal.per_joint  # < 50 frames: shared
        stds, errs = [], []
        for seq in held_out:
            res = lifter.predict(seq, num_samples=4)
            stds.append(res.calibrated_std[:, 1:])
            errs.append(np.linalg.norm(res.poses_3d - seq.root_relative_poses(), axis=-1)[:, 1:])
        std, err = np.concatenate(stds), np.concatenate(errs)
        # On the frames it was fitted on, 60.8 % of the joints (up to one joint of rounding) lie within the spread.
        assert abs(np.mean(err <= std * (1 + 1e-6)) - 0.6084) <= 1.0 / std.size + 1e-9
        lifter.save(tmp_path / "model")
        loaded = DiffPoseLifter.load(tmp_path / "model")
        for key in ("spread", "context"):
            assert loaded.calibration[key].to_dict() == lifter.calibration[key].to_dict()
        np.testing.assert_array_equal(loaded.predict(held_out[0]).calibrated_std,
                                      lifter.predict(held_out[0]).calibrated_std)
        meta = json.loads((tmp_path / "model" / "config.json").read_text())
        meta["calibration"]["spread"]["factor"][3] = -1.0
        (tmp_path / "model" / "config.json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError, match="calibration.factor"):
            DiffPoseLifter.load(tmp_path / "model")
        with pytest.raises(ValueError, match="num_samples >= 2"):
            lifter.calibrate_spread(held_out, sampler="context")
        with pytest.raises(ValueError, match="no poses_3d"):
            lifter.calibrate_spread([PoseSequence(held_out[0].keypoints_2d, image_size=held_out[0].image_size)])
        with pytest.raises(ValueError, match="at least 10 valid frames"):
            lifter.calibrate_spread([held_out[0].slice(0, 9)])
    finally:
        lifter.calibration = before


def test_a_model_saved_with_one_spread_factor_loads_as_that_factor(trained, data, tmp_path):
    """Folders written by calibrate_spread's first version hold one global spread_scale: std x it (for the
    config's N), no calibrated_std for sampler "context"; a bad factor is refused."""
    lifter, _ = trained
    before = lifter.calibration
    try:
        lifter.calibration = None
        lifter.save(tmp_path / "model")
        assert DiffPoseLifter.load(tmp_path / "model").predict(data[1][0]).calibrated_std is None
        meta = json.loads((tmp_path / "model" / "config.json").read_text())
        del meta["calibration"]
        for scale, ok in ((2.5, True), (-1.0, False)):
            meta["spread_scale"] = scale
            (tmp_path / "model" / "config.json").write_text(json.dumps(meta))
            if not ok:
                with pytest.raises(CheckpointError, match="spread_scale"):
                    DiffPoseLifter.load(tmp_path / "model")
                continue
            old = DiffPoseLifter.load(tmp_path / "model")
            res = old.predict(data[1][0])
            np.testing.assert_allclose(res.calibrated_std[:, 1:], np.maximum(res.std[:, 1:], 1e-3) * scale,
                                       rtol=1e-5)
            assert old.predict(data[1][0], sampler="context").calibrated_std is None
    finally:
        lifter.calibration = before


def test_fit_calibrates_on_val_or_not_at_all(data):
    train, val = data
    with_val = DiffPoseLifter(seed=0, **TINY)
    history = with_val.fit(train, val, context_steps=2, diffusion_steps=2, progress=False)
    assert history["calibration"] == {"source": "val", "sequences": [], "frames": 24}
    assert with_val.predict(val[0]).calibrated_std is not None
    off = DiffPoseLifter(seed=0, calibration_fraction=0.0, **TINY)
    assert off.fit(train, context_steps=2, diffusion_steps=2, progress=False)["calibration"]["source"] is None
    assert off.predict(val[0]).calibrated_std is None
    tiny = DiffPoseLifter(seed=0, **TINY)
    with pytest.warns(UserWarning, match="calibrated_std will be None"):
        tiny.fit([train[0].slice(0, 30)], context_steps=2, diffusion_steps=2, progress=False)
    assert tiny.calibration is None


def test_damaged_or_foreign_saves_are_refused(trained, tmp_path):
    lifter, _ = trained
    folder = tmp_path / "model"
    lifter.save(folder)
    weights = folder / json.loads((folder / "config.json").read_text())["tensors"]["weights_ema"]
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with pytest.raises(CheckpointError, match="damaged"):
        DiffPoseLifter.load(folder)
    lifter.save(folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version"):
        DiffPoseLifter.load(folder)
    with pytest.raises(CheckpointError, match="not a folder"):
        DiffPoseLifter.load(tmp_path / "nothing_here")


@pytest.mark.parametrize("call,exc,needle", [
    (lambda lf, s: lf.predict(np.zeros((4, 16, 2)), image_size=(100, 100)), ValueError, "17"),
    (lambda lf, s: lf.predict(s, sampler="euler"), ValueError, "sampler"),
    (lambda lf, s: lf.predict(s, steps=11), ValueError, "steps"),
    (lambda lf, s: lf.predict(s, sampler="ddpm", steps=5), ValueError, "steps"),
    (lambda lf, s: lf.predict(s, num_samples=0), ValueError, "num_samples"),
    (lambda lf, s: lf.predict(s, confidence=np.ones((12, 17))), ValueError, "PoseSequence"),
    (lambda lf, s: lf.predict(np.full((2, 17, 2), np.nan), image_size=(100, 100)), ValueError, "NaN"),
    (lambda lf, s: lf.fit([PoseSequence(np.zeros((3, 17, 2)), image_size=(10, 10))]), ValueError, "poses_3d"),
    (lambda lf, s: lf.fit([]), ValueError, "empty"),
    (lambda lf, s: lf.evaluate(["not a sequence"]), TypeError, "PoseSequence"),
])
def test_bad_input_is_refused_clearly(trained, data, call, exc, needle):
    lifter, _ = trained
    with pytest.raises(exc, match=needle):
        call(lifter, data[1][0])


def test_config_round_trips_and_rejects_unknown_keys(tmp_path):
    cfg = LifterConfig(gmm_components=3, sampler="ddpm")
    for name in ("c.json", "c.yaml"):
        cfg.save(tmp_path / name)
        assert LifterConfig.load(tmp_path / name) == cfg
    with pytest.raises(ValueError, match="unknown key"):
        LifterConfig.from_dict({"gmm_component": 3})
    with pytest.raises(ValueError, match="gmm_components"):
        LifterConfig(gmm_components=10)
    with pytest.raises(ValueError, match="sampling_steps"):
        LifterConfig(num_diffusion_steps=10, sampling_steps=20)
    with pytest.raises(ValueError, match="unknown key"):
        DiffPoseLifter(gmm_component=3)


def test_shared_temporal_noise_gives_smooth_hypotheses(trained, data):
    """With one row of draws shared by a sequence's frames, hypothesis i of neighbouring frames differs far less
    than with fresh draws per frame, while each frame's hypotheses stay exact draws of its own H_K: the shared
    run's first frame equals a one-frame run with the same row."""
    import dataclasses

    lifter, _ = trained
    seq = data[1][0]
    shared = lifter.predict(seq, num_samples=4).samples
    independent_lifter = DiffPoseLifter(seed=0, config=dataclasses.replace(lifter.config,
                                                                           temporal_noise="independent"))
    independent_lifter.model.load_state_dict(lifter.model.state_dict())
    independent_lifter.model.depth_histogram = lifter.model.depth_histogram
    independent = independent_lifter.predict(seq, num_samples=4).samples
    jitter = lambda s: np.abs(np.diff(s, axis=1)).mean()  # noqa: E731
    assert jitter(shared) < 0.5 * jitter(independent)
    first = lifter.predict(seq.slice(0, 1), num_samples=4).samples
    np.testing.assert_allclose(first[:, 0], shared[:, 0], rtol=1e-5, atol=1e-6)


def test_a_second_fit_continues_training(data):
    """fit() twice: the second call trains the (previously frozen) encoder again instead of failing."""
    lifter = DiffPoseLifter(seed=1, **TINY)
    lifter.fit(data[0], context_steps=3, diffusion_steps=2, progress=False)
    before = {k: v.clone() for k, v in lifter.model.encoder.state_dict().items()}
    history = lifter.fit(data[0], context_steps=3, diffusion_steps=2, progress=False)
    assert len(history["context"]) == 3
    assert any(not torch.equal(before[k], v) for k, v in lifter.model.encoder.state_dict().items())


def test_loads_a_folder_saved_before_joint_embeddings_and_folds(tmp_path, data):
    """A model folder written before the joint embeddings, encoder dropout, 2D conditioning, folds, the flip test
    and the depth calibration existed (its config lacks those keys, its weights lack depth_sigma_scale) loads as the network it
    was, not as today's defaults, and predicts what that network predicts."""
    from diffpose_fast.config import LEGACY_VALUES
    from diffpose_fast.persistence import save_folder

    old = DiffPoseLifter(seed=3, encoder_joint_embedding=False, denoiser_joint_embedding=False,
                         denoiser_2d_input=False, encoder_dropout=0.0, flip_test=False, **TINY)
    old.fit(data[0], context_steps=3, diffusion_steps=3, progress=False)
    config = {k: v for k, v in old.config.to_dict().items() if k not in LEGACY_VALUES}
    state = {k: v for k, v in old.model.state_dict().items() if k != "depth_sigma_scale"}
    save_folder(tmp_path / "old", config, {"weights_ema": state, "weights": state},
                extra={"seed": 3, "trained": True, "spread_scale": 1.0})
    back = DiffPoseLifter.load(tmp_path / "old")
    assert not back.config.encoder_joint_embedding and not back.config.denoiser_joint_embedding
    assert back.config.context_folds == 1 and back.config.encoder_dropout == TINY.get("dropout", 0.0)
    assert back.model.encoder.joint_embed is None and back.model.denoiser.joint_embed is None
    seq = data[1][0]
    np.testing.assert_array_equal(back.predict(seq).samples, old.predict(seq).samples)
    assert LifterConfig().encoder_joint_embedding  # today's default differs: the legacy values were needed


def test_default_budget_is_the_epochs_with_a_floor_of_steps(data):
    """fit() without step arguments: config epochs over the frames, but at least the configured minimum steps."""
    train = data[0][:1]                                     # 48 frames: one epoch is 2 steps of 32
    small = DiffPoseLifter(seed=0, **{**TINY, "context_epochs": 1, "diffusion_epochs": 1,
                                      "context_min_steps": 3, "diffusion_min_steps": 4})
    history = small.fit(train, progress=False)
    assert (len(history["context"]), len(history["diffusion"])) == (3, 4)
    many = DiffPoseLifter(seed=0, **{**TINY, "context_epochs": 3, "diffusion_epochs": 2,
                                     "context_min_steps": 3, "diffusion_min_steps": 1})
    history = many.fit(train, progress=False)
    assert (len(history["context"]), len(history["diffusion"])) == (6, 4)
    assert LifterConfig().batch_size == 128 and LifterConfig().context_min_steps == 2000


def test_evaluate_and_flip_tta_report_the_calibrated_spread(trained, data):
    """The evaluation reports measure what a user reads (calibrated_std); with sampler "context" everything is
    deterministic, so the reports equal the measures recomputed from predict."""
    from diffpose_fast.data.skeleton import flip_permutation
    from diffpose_fast.protocols.core import evaluate_sequences, predict_with_flip
    from diffpose_fast.uncertainty import uncertainty_report

    lifter, _ = trained
    test = data[1]
    res = [lifter.predict(s, sampler="context") for s in test]
    std = np.concatenate([r.calibrated_std for r in res])
    err = np.concatenate([np.linalg.norm(r.poses_3d - s.root_relative_poses(), axis=-1) for r, s in zip(res, test)])
    expected = uncertainty_report(std, err)
    for report in (lifter.evaluate(test, sampler="context")["uncertainty"],
                   evaluate_sequences(lifter, test, sampler="context", per="sequence")["uncertainty"]):
        assert report["std"] == "calibrated"
        for key in ("spearman", "within_1std", "within_2std", "ece"):
            assert report[key] == pytest.approx(expected[key], abs=1e-6), key
        assert len(report["per_joint"]["spearman"]) == 17
    flipped = predict_with_flip(lifter, test[0], sampler="context", num_samples=1, steps=None, flip_tta=True)
    mirrored = lifter.predict(test[0].flipped(), sampler="context").calibrated_std
    np.testing.assert_allclose(flipped.calibrated_std,
                               0.5 * (res[0].calibrated_std + mirrored[:, flip_permutation(17)]), rtol=1e-6)


def test_evaluate_groups_renamed_actions_as_the_protocols_do(trained, data):
    """'TakingPhoto 1' is Human3.6M's old name of 'Photo 1': one group, as in protocols.evaluate_sequences."""
    lifter, _ = trained
    a, b = data[1]
    renamed = [PoseSequence(a.keypoints_2d, a.poses_3d, a.image_size, a.confidence, camera=a.camera,
                            action="TakingPhoto 1"),
               PoseSequence(b.keypoints_2d, b.poses_3d, b.image_size, b.confidence, camera=b.camera,
                            action="Photo 2")]
    report = lifter.evaluate(renamed, sampler="context")
    assert list(report["per_action"]) == ["Photo"]
    assert report["per_action"]["Photo"]["mpjpe_mm"] == pytest.approx(report["mpjpe_mm"])
