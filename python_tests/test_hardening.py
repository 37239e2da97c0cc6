"""Hardened inputs: every public entry point refuses bad input with a TypeError/ValueError that names the argument;
missing and low-confidence joints are handled as documented; long sequences run in bounded chunks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose_fast import DiffPoseLifter, PoseSequence
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.distribution.spread2d import confidence_to_sigma_px, pose_size_px
from diffpose_fast.data.frames import fill_missing, frames_from_sequences

from _tiny import tiny

TINY = tiny()
IMG = (1000, 1002)


@pytest.fixture(scope="module")
def lifter():
    return DiffPoseLifter(seed=0, **TINY)  # untrained: the contract does not depend on training


@pytest.fixture(scope="module")
def kp():
    return np.random.default_rng(0).uniform(100, 900, (4, 17, 2)).astype(np.float32)


@pytest.mark.parametrize("value, error, match", [
    ("abc", TypeError, "keypoints_2d must be"),
    ([[1, 2], [3]], TypeError, "keypoints_2d must be"),
    (None, TypeError, "keypoints_2d must be"),
    ({}, TypeError, "keypoints_2d must be"),
    (np.zeros((4, 17, 2), bool), TypeError, "keypoints_2d must hold real numbers"),
    (np.zeros((4, 17, 2), complex), TypeError, "keypoints_2d must hold real numbers"),
    (np.zeros((0, 17, 2), np.float32), ValueError, "at least one frame"),
    (np.zeros((4, 16, 2), np.float32), ValueError, r"\[T, 17, 2\]"),
    (np.zeros((4, 17, 3), np.float32), ValueError, r"\[T, 17, 2\]"),
    (np.zeros(34, np.float32), ValueError, r"\[T, 17, 2\]"),
    (np.full((4, 17, 2), np.inf, np.float32), ValueError, "inf"),
    (np.full((4, 17, 2), np.nan, np.float32), ValueError, "NaN"),
    (np.full((4, 17, 2), 1e7, np.float32), ValueError, "pixels of the image"),
])
def test_predict_refuses_bad_keypoints(lifter, value, error, match):
    with pytest.raises(error, match=match):
        lifter.predict(value, image_size=IMG)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(image_size=None), ValueError, "image_size"),
    (dict(image_size=(0, 1002)), ValueError, "image_size must be positive"),
    (dict(image_size=(1000, -1)), ValueError, "image_size must be positive"),
    (dict(image_size=(np.nan, 1002)), ValueError, "image_size must be positive"),
    (dict(image_size="wide"), TypeError, "image_size"),
    (dict(image_size=IMG, confidence=np.full((4, 17), 1.5)), ValueError, r"confidence must lie in \[0, 1\]"),
    (dict(image_size=IMG, confidence=np.full((4, 17), -0.1)), ValueError, r"confidence must lie in \[0, 1\]"),
    (dict(image_size=IMG, confidence=np.full((4, 17), np.nan)), ValueError, r"confidence must lie in \[0, 1\]"),
    (dict(image_size=IMG, confidence=np.ones((4, 16))), ValueError, "confidence must have shape"),
    (dict(image_size=IMG, heatmaps=np.ones((4, 17, 0, 8)), heatmap_boxes=np.tile([0, 0, 10, 10], (4, 1))),
     ValueError, "Hh, Wh >= 1"),
    (dict(image_size=IMG, heatmaps=np.zeros((4, 17, 8, 8)), heatmap_boxes=np.tile([0, 0, 10, 10], (4, 1))),
     ValueError, "positive total mass"),
    (dict(image_size=IMG, heatmaps=np.ones((4, 17, 8, 8))), ValueError, "heatmap_boxes"),
    (dict(image_size=IMG, num_samples=0), ValueError, "num_samples must be >= 1"),
    (dict(image_size=IMG, num_samples=2.0), TypeError, "num_samples must be an int"),
    (dict(image_size=IMG, steps=99), ValueError, "steps"),
    (dict(image_size=IMG, sampler="euler"), ValueError, "sampler must be one of"),
    (dict(image_size=IMG, generator=0), TypeError, "generator"),
    (dict(image_size=IMG, batch_size=0), ValueError, "batch_size must be >= 1"),
])
def test_predict_refuses_bad_arguments(lifter, kp, kwargs, error, match):
    with pytest.raises(error, match=match):
        lifter.predict(kp, **kwargs)


def test_fit_and_evaluate_refuse_bad_input(lifter):
    seqs = generate_sequences(1, 8, seed=0)
    no_gt = PoseSequence(seqs[0].keypoints_2d, image_size=seqs[0].image_size)
    cases = [
        (lambda: lifter.fit([]), ValueError, "at least one PoseSequence"),
        (lambda: lifter.fit("seq"), TypeError, "PoseSequence"),
        (lambda: lifter.fit(5), TypeError, "sequence of PoseSequence"),
        (lambda: lifter.fit([no_gt]), ValueError, "poses_3d"),
        (lambda: lifter.fit(seqs, batch_size=0), ValueError, "batch_size"),
        (lambda: lifter.fit(seqs, context_steps=-1), ValueError, "context_steps"),
        (lambda: lifter.fit(seqs, diffusion_steps=1.5), TypeError, "diffusion_steps"),
        (lambda: lifter.evaluate([no_gt]), ValueError, "poses_3d"),
        (lambda: lifter.evaluate(seqs, generator="seed"), TypeError, "generator"),
        (lambda: lifter.evaluate(seqs, num_samples=0), ValueError, "num_samples"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert not lifter.trained


def test_missing_joints_are_filled_and_get_the_widest_2d_spread():
    kp = np.random.default_rng(1).uniform(100, 900, (3, 17, 2))
    conf = np.ones((3, 17))
    conf[0, 5] = 0.0          # one missing joint
    kp[0, 5] = np.nan
    conf[1, 7] = 0.3          # a low-confidence joint keeps its position
    conf[2] = 0.0             # a frame with no joint at all
    kp[2] = np.nan
    filled = fill_missing(kp, conf, image_size=IMG)
    assert np.isfinite(filled).all()
    np.testing.assert_allclose(filled[0, 5], np.delete(kp[0], 5, axis=0).mean(0))  # the frame's mean joint
    np.testing.assert_array_equal(filled[1], kp[1])
    np.testing.assert_array_equal(filled[2], np.tile(np.array(IMG) / 2.0, (17, 1)))  # the image centre
    # H_K's x, y spread: sigma_max of the pose size for a missing joint, sigma_min for a sure one, linear between
    c = torch.tensor(conf, dtype=torch.float32)
    size = pose_size_px(torch.tensor(filled, dtype=torch.float32), c)
    sigma = confidence_to_sigma_px(c, size, 0.01, 0.10)
    assert torch.isclose(sigma[0, 5], 0.10 * size[0]) and torch.isclose(sigma[0, 4], 0.01 * size[0])
    assert torch.isclose(sigma[1, 7], (0.01 + 0.09 * 0.7) * size[1])
    assert (sigma[0, 5] >= sigma[0]).all() and size[2] == 1.0  # an empty frame: a 1 px pose, still finite


def test_missing_joints_predict_finite_poses_with_more_spread(lifter):
    seq = generate_sequences(1, 6, seed=3)[0]
    kp = np.array(seq.keypoints_2d)
    conf = np.ones((6, 17), np.float32)
    conf[:, 16] = 0.0  # the right wrist is missing everywhere
    kp[:, 16] = np.nan
    conf[5] = 0.0      # and one frame is lost entirely
    kp[5] = np.nan
    frames = frames_from_sequences([PoseSequence(kp, image_size=seq.image_size, confidence=conf)], 0.8, False)
    assert torch.isfinite(frames.inputs).all() and (frames.inputs[:, 16, 2] == 0).all()
    res = lifter.predict(kp, image_size=seq.image_size, confidence=conf, num_samples=8)
    assert np.isfinite(res.samples).all() and np.isfinite(res.std).all()


def test_long_sequences_run_in_bounded_chunks(lifter, monkeypatch):
    seq = generate_sequences(1, 3000, seed=4)[0]
    sizes = []
    original = lifter.model.sample

    def sample(frames, *args, **kwargs):
        sizes.append(len(frames))
        return original(frames, *args, **kwargs)

    monkeypatch.setattr(lifter.model, "sample", sample)
    res = lifter.predict(seq, num_samples=2, steps=1, batch_size=512)
    assert max(sizes) <= 512 and sum(sizes) == 3000  # the working set is one chunk, whatever T is
    assert res.samples.shape == (2, 3000, 17, 3) and np.isfinite(res.samples).all()
    sizes.clear()
    lifter.predict(seq, num_samples=8, steps=1)  # default: about 4096 hypotheses per pass
    assert max(sizes) <= 4096 // 8


# --- bounded outputs and sizes (the outside attack's "unbounded outputs" and "resource bombs") -------------------

def test_predict_bounds_every_coordinate_and_the_spread(lifter, kp, monkeypatch):
    from diffpose_fast.lifter import POSE_BOUND_M

    real = lifter.model.sample

    def wandering(*args, **kwargs):   # a briefly trained model that wanders off: hypotheses tens of metres out
        out = real(*args, **kwargs)
        return out * 0 + torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype) * 30

    monkeypatch.setattr(lifter.model, "sample", wandering)
    res = lifter.predict(kp, image_size=IMG, num_samples=4)
    assert np.abs(res.samples).max() <= POSE_BOUND_M and np.abs(res.samples).max() == POSE_BOUND_M
    assert np.abs(res.poses_3d).max() <= POSE_BOUND_M
    assert res.std.max() <= 2 * np.sqrt(3) * POSE_BOUND_M


def test_weak_perspective_scale_is_bounded_by_the_body_span():
    from diffpose_fast.distribution.initial import BODY_SPAN_M, weak_perspective_scale
    from diffpose_fast.distribution.spread2d import pose_size_px

    rng = np.random.default_rng(3)
    kp_ = torch.tensor(rng.uniform(200, 600, (3, 17, 2)))
    conf = torch.ones(3, 17, dtype=torch.float64)
    pose = torch.tensor(rng.normal(size=(3, 17, 2)) * 0.4)          # a person-sized pose: the fit is untouched
    wide = pose * 1e4                                               # an encoder pose 10 km across
    tiny = pose * 1e-5                                              # collapsed to a point
    size = pose_size_px(kp_, conf)
    for p in (pose, wide, tiny):
        s = weak_perspective_scale(p, kp_, conf)
        assert torch.all(s >= size / BODY_SPAN_M[1] - 1e-9) and torch.all(s <= size / BODY_SPAN_M[0] + 1e-9)
    p_c, k_c = pose - pose.mean(1, keepdim=True), kp_ - kp_.mean(1, keepdim=True)
    exact = (p_c * k_c).sum((1, 2)) / (p_c * p_c).sum((1, 2))
    inside = (exact > size / BODY_SPAN_M[1]) & (exact < size / BODY_SPAN_M[0])
    torch.testing.assert_close(weak_perspective_scale(pose, kp_, conf)[inside], exact[inside])


def test_num_samples_is_limited_before_anything_is_allocated(lifter, kp):
    from diffpose_fast.lifter import MAX_NUM_SAMPLES

    assert lifter._sampling_args("ddim", MAX_NUM_SAMPLES, None)[1] == MAX_NUM_SAMPLES
    for n in (MAX_NUM_SAMPLES + 1, 10**9, 2**63):
        with pytest.raises(ValueError, match=f"num_samples must be at most {MAX_NUM_SAMPLES}"):
            lifter.predict(kp, image_size=IMG, num_samples=n)


def test_evaluate_defaults_to_the_model_configuration(lifter):
    seqs = generate_sequences(1, 6, seed=4)
    cfg = lifter.config
    by_default = lifter.evaluate(seqs)
    explicit = lifter.evaluate(seqs, sampler=cfg.sampler, num_samples=cfg.num_samples, steps=cfg.sampling_steps)
    assert by_default["mpjpe_mm"] == explicit["mpjpe_mm"]
    other = lifter.evaluate(seqs, num_samples=cfg.num_samples, steps=1)
    assert other["mpjpe_mm"] != by_default["mpjpe_mm"]


@pytest.mark.parametrize("name", ["embed_dim", "num_diffusion_steps", "gmm_samples", "frames", "num_samples"])
def test_config_size_limits_at_their_edges(name):
    from diffpose_fast import LifterConfig
    from diffpose_fast.config import SIZE_LIMITS

    limit = SIZE_LIMITS[name]
    with pytest.raises(ValueError, match=f"{name} must be at most {limit}"):
        LifterConfig(**{name: limit + 1})
    ok = {name: limit, **({"context_dim": 128} if name == "embed_dim" else {})}   # 4096 + 128 divisible by 8 heads
    LifterConfig(**ok)   # the limit itself is a valid config (nothing is built)


def test_model_folder_claiming_a_huge_network_is_refused_before_building(tmp_path, lifter):
    import json

    from diffpose_fast.persistence import CheckpointError

    lifter.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"]["embed_dim"] = 65536
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="embed_dim must be at most 4096"):
        DiffPoseLifter.load(tmp_path / "m")


def test_gmm_sample_refuses_draws_beyond_the_limit():
    from diffpose_fast.ops.gmm import em_fit, gmm_sample
    from diffpose_fast.ops.gmm.api import MAX_DRAW_ELEMENTS

    x = torch.randn(2, 20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fit = em_fit(x, 2, backend="reference", generator=torch.Generator().manual_seed(0))
    edge = MAX_DRAW_ELEMENTS // (2 * 3)
    for n in (edge + 1, 2**40):
        with pytest.raises(ValueError, match="num_samples"):
            gmm_sample(fit, n)
    draws, _ = gmm_sample(fit, 1000)
    assert draws.shape == (2, 1000, 3)


def test_coco_fields_of_the_wrong_type_and_huge_id_spans_are_refused(tmp_path):
    import json

    from diffpose_fast.data.readers import MAX_FRAMES, read_coco_json

    kp = np.random.default_rng(0).uniform(10, 90, (17, 3)).ravel().tolist()
    cases = [
        ([{"image_id": 0, "keypoints": kp, "score": None}], "score must be a number"),
        ([{"image_id": 0, "keypoints": kp, "score": "high"}], "score must be a number"),
        ([{"image_id": [0], "keypoints": kp}], "image_id must be an int or a string"),
        ([{"image_id": 0, "keypoints": kp, "track_id": {"a": 1}}], "track_id must be an int or a string"),
        ([{"image_id": 0, "keypoints": kp}, {"image_id": 10**12, "keypoints": kp}], "spanning"),
        ([{"image_id": 0, "keypoints": kp}, {"image_id": MAX_FRAMES, "keypoints": kp}], "spanning"),
    ]
    for i, (doc, match) in enumerate(cases):
        path = tmp_path / f"c{i}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match=match):
            read_coco_json(path)
    path = tmp_path / "ok.json"
    path.write_text(json.dumps([{"image_id": 0, "keypoints": kp}, {"image_id": 4, "keypoints": kp}]))
    assert read_coco_json(path)[0].keypoints.shape[0] == 5
    with pytest.raises(TypeError, match="frame_ids must be a sequence"):
        read_coco_json(path, frame_ids=5)


def test_npy_header_promising_terabytes_is_refused_without_allocating(tmp_path):
    import io

    from diffpose_fast.data.readers import read_keypoint_array

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40, 17, 3)})
    path = tmp_path / "bomb.npy"
    path.write_bytes(buf.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match="bomb.npy"):
        read_keypoint_array(path, fmt="h36m")


def test_lifter_arguments_and_inputs_named_in_errors(lifter, kp, tmp_path):
    seqs = generate_sequences(1, 6, seed=5)
    with pytest.raises(ValueError, match="device must be a torch device"):
        DiffPoseLifter(device="bogus", **TINY)
    lifter.save(tmp_path / "m")
    with pytest.raises(ValueError, match="device must be a torch device"):
        DiffPoseLifter.load(tmp_path / "m", device="bogus")
    for seed in (2**63, 2**70, -1):
        with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*63\)"):
            DiffPoseLifter(seed=seed, **TINY)
    with pytest.raises(ValueError, match="image_size sides must be at most"):
        lifter.predict(kp * 1e14, image_size=(1e20, 1e20))
    with pytest.raises(ValueError, match="within 1000 m"):
        PoseSequence(seqs[0].keypoints_2d, image_size=seqs[0].image_size, poses_3d=seqs[0].poses_3d * 1e30)
    no_valid = PoseSequence(seqs[0].keypoints_2d, image_size=seqs[0].image_size, poses_3d=seqs[0].poses_3d,
                            valid=np.zeros(6, bool), action="Walk")
    with pytest.raises(ValueError, match="no sequence has a valid frame"):
        lifter.evaluate([no_valid])


def test_bfloat16_and_half_keypoints_lift_like_float32(lifter, kp):
    as_f32 = torch.tensor(kp).bfloat16().float()          # the values bfloat16 can hold
    want = lifter.predict(as_f32, image_size=IMG, sampler="context").poses_3d
    for dtype in (torch.bfloat16, torch.float16):
        got = lifter.predict(as_f32.to(dtype), image_size=IMG, sampler="context").poses_3d
        if dtype == torch.float16:
            want16 = lifter.predict(as_f32.half().float(), image_size=IMG, sampler="context").poses_3d
            torch.testing.assert_close(got, want16, rtol=0, atol=0)
        else:
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_constructing_a_lifter_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DiffPoseLifter(seed=7, **TINY)
    assert torch.equal(torch.rand(3), expected)


def test_fit_checks_val_before_training():
    train = generate_sequences(1, 8, seed=0)
    seq = train[0]
    cases = [([], ValueError, "at least one"), (3, TypeError, "expected a sequence"),
             ([PoseSequence(seq.keypoints_2d, image_size=seq.image_size)], ValueError, "no poses_3d")]
    for val, exc, match in cases:
        lf = DiffPoseLifter(seed=0, **TINY)
        with pytest.raises(exc, match=match):
            lf.fit(train, val=val, context_steps=1, diffusion_steps=1, progress=False)
        assert not lf.trained   # refused before any step ran


def test_hand_built_gmm_fits_are_refused():
    import dataclasses

    from diffpose_fast.ops.gmm import em_fit, gmm_log_prob, gmm_sample

    x = torch.randn(2, 30, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for cov in ("full", "diag"):
        fit = em_fit(x, 2, covariance=cov, backend="reference", generator=torch.Generator().manual_seed(0))
        bad = [
            (dataclasses.replace(fit, weights=-fit.weights), "non-negative"),
            (dataclasses.replace(fit, weights=fit.weights * 2), "summing to 1"),
            (dataclasses.replace(fit, means=fit.means[:, :1]), "shapes disagree"),
            (dataclasses.replace(fit, covariances=-fit.covariances), "positive definite"),
            (dataclasses.replace(fit, means=fit.means * float("nan")), "finite"),
        ]
        for broken, match in bad:
            with pytest.raises(ValueError, match=match):
                gmm_sample(broken, 4)
            with pytest.raises(ValueError, match=match):
                gmm_log_prob(broken, x)
        assert torch.isfinite(gmm_log_prob(fit, x)).all()


def test_write_bvh_refuses_a_non_finite_frame_rate(tmp_path):
    from diffpose_fast.export import write_bvh

    poses = generate_sequences(1, 4, seed=0)[0].root_relative_poses()
    for fps in (float("inf"), float("nan"), 0, -30):
        with pytest.raises(ValueError, match="fps must be"):
            write_bvh(tmp_path / "x.bvh", poses, fps=fps)
    assert not (tmp_path / "x.bvh").exists()


def test_export_read_json_names_what_is_missing_or_malformed(tmp_path):
    import json

    from diffpose_fast.export import FORMAT_TAG, read_json

    cases = [({"format": FORMAT_TAG, "samples": [], "std": []}, "has no 'mean'"),
             ({"format": FORMAT_TAG, "mean": [[1, "a"]], "samples": [], "std": []}, "'mean' is not an array"),
             ({"format": FORMAT_TAG, "mean": [[1], [1, 2]], "samples": [], "std": []}, "'mean' is not an array"),
             ([1, 2], "is not a"), ("text", "is not a")]
    for i, (doc, match) in enumerate(cases):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match=match):
            read_json(path)
