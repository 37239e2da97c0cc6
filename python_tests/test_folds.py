"""Cross-fitted context encoders (``LifterConfig.context_folds``): which frames each encoder trains on, what stage 2
and inference take from which encoder, the out-of-fold depth calibration, resume, and the raw weights saved."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose_fast import DiffPoseLifter
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.training import trainer as trainer_module
from diffpose_fast.training.folds import assign_folds

from _tiny import tiny

TINY = tiny(batch_size=16)
RUN = dict(context_steps=5, diffusion_steps=4, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: bit-exactness holds for a fixed thread count


def _train():
    return generate_sequences(4, 15, seed=0)


def test_assign_folds_by_sequence_balanced_and_deterministic():
    lengths = [50, 10, 30, 20, 40, 25]
    folds = assign_folds(lengths, 3, seed=4)
    assert folds.shape == (sum(lengths),) and folds.dtype == torch.long
    starts = np.cumsum([0] + lengths[:-1])
    for s, n in zip(starts, lengths):  # a sequence never straddles two folds
        assert len(set(folds[s:s + n].tolist())) == 1
    counts = np.bincount(folds.numpy(), minlength=3)
    assert counts.min() > 0 and counts.max() - counts.min() <= max(lengths)
    assert torch.equal(folds, assign_folds(lengths, 3, seed=4))
    # fewer sequences than folds: contiguous blocks of nearly equal size
    blocks = assign_folds([10], 3, seed=0)
    assert blocks.tolist() == [0] * 3 + [1] * 4 + [2] * 3
    assert assign_folds([7, 3], 1, seed=0).tolist() == [0] * 10
    with pytest.raises(ValueError, match="cannot fill"):
        assign_folds([2], 3, seed=0)


def test_each_encoder_trains_only_outside_its_fold(monkeypatch):
    train = _train()
    seen: list[torch.Tensor] = []
    original = trainer_module._augment

    def spy(frames, flip_u, enabled):
        seen.append(frames.poses.clone())
        return original(frames, flip_u, enabled)

    monkeypatch.setattr(trainer_module, "_augment", spy)
    lifter = DiffPoseLifter(seed=0, context_folds=2, **TINY)
    lifter.fit(train, context_steps=5, diffusion_steps=0, progress=False)
    assert len(seen) == 10  # K x context_steps
    folds = assign_folds([s.num_frames for s in train], 2, seed=0)
    poses = torch.cat([torch.from_numpy(s.root_relative_poses().astype(np.float32)) for s in train])

    def fold_of(rows):
        hit = (rows[:, None] == poses[None]).flatten(2).all(-1)  # [b, F]
        assert bool((hit.sum(1) == 1).all())
        return folds[hit.float().argmax(1)]

    for step, rows in enumerate(seen):
        encoder = step // 5
        assert bool((fold_of(rows) != encoder).all()), f"encoder {encoder} trained on its own fold at step {step}"


@pytest.fixture(scope="module")
def cross_fitted():
    lifter = DiffPoseLifter(seed=0, context_folds=2, **TINY)
    history = lifter.fit(_train(), **RUN)
    return lifter, history


def test_context_answer_is_the_mean_of_the_encoders_and_hypotheses_alternate(cross_fitted):
    lifter, history = cross_fitted
    assert len(history["context"]) == 2 * RUN["context_steps"]
    seq = generate_sequences(1, 6, seed=3)[0]
    from diffpose_fast.data.frames import frames_from_sequences

    frames = frames_from_sequences([seq], lifter.config.default_confidence, require_poses=False)
    with torch.no_grad():
        poses = [lifter.model.encode(frames, k).pose for k in range(2)]
    ctx = lifter.predict(seq, sampler="context").poses_3d
    np.testing.assert_allclose(ctx, ((poses[0] + poses[1]) / 2).numpy(), atol=1e-6)
    # hypothesis i follows encoder i mod 2: disturbing encoder 1 moves hypotheses 1 and 3 only
    before = lifter.predict(seq, num_samples=4).samples
    state = {k: v.clone() for k, v in lifter.model.extra_encoders[0].state_dict().items()}
    with torch.no_grad():
        for p in lifter.model.extra_encoders[0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    try:
        after = lifter.predict(seq, num_samples=4).samples
    finally:
        lifter.model.extra_encoders[0].load_state_dict(state)
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert np.abs(after[[1, 3]] - before[[1, 3]]).max() > 1e-4


def test_depth_sigma_scale_is_the_out_of_fold_rms_standardised_residual(cross_fitted):
    lifter, _ = cross_fitted
    from diffpose_fast.inference.model import LOG_SIGMA_Z_RANGE
    from diffpose_fast.data.frames import frames_from_sequences

    train = _train()
    frames = frames_from_sequences(train, lifter.config.default_confidence, require_poses=True)
    folds = assign_folds([s.num_frames for s in train], 2, seed=0)
    sq = torch.zeros(17, dtype=torch.float64)
    with torch.no_grad():
        for k in range(2):
            part = frames.index(torch.nonzero(folds == k).flatten())
            out = lifter.model.encode(part, k)
            r = (out.pose[..., 2] - part.poses[..., 2]) / out.log_sigma_z.clamp(*LOG_SIGMA_Z_RANGE).exp()
            sq += (r.double() ** 2).sum(0)
    expected = (sq / len(frames)).sqrt().float()
    expected[0] = 1.0
    torch.testing.assert_close(lifter.model.depth_sigma_scale, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(expected[1:], torch.ones(16))


def test_saved_raw_weights_are_the_raw_encoder_not_its_ema(cross_fitted, tmp_path):
    lifter, _ = cross_fitted
    ema = lifter.model.state_dict()
    raw = lifter._raw_state
    for prefix in ("encoder.", "extra_encoders.0."):
        name = prefix + "input_conv.neighbour.weight"
        assert not torch.equal(raw[name], ema[name]), f"{name}: the raw weights are the EMA ones"
    lifter.save(tmp_path / "m")
    back = DiffPoseLifter.load(tmp_path / "m")
    for name, value in raw.items():
        assert torch.equal(back._raw_state[name], value)
    seq = generate_sequences(1, 5, seed=4)[0]
    np.testing.assert_array_equal(back.predict(seq).samples, lifter.predict(seq).samples)
    assert back.config.context_folds == 2


@pytest.mark.parametrize("step", [3, 5, 7, 10, 12])  # inside encoder 0, at the fold boundary, inside encoder 1,
def test_resume_across_folds_is_bit_exact(tmp_path, cross_fitted, step):  # end of stage 1, inside stage 2
    from diffpose_fast.training import checkpoint

    reference, ref_history = cross_fitted
    keep, checkpoint.KEEP_CHECKPOINTS = checkpoint.KEEP_CHECKPOINTS, 20
    try:
        DiffPoseLifter(seed=0, context_folds=2, **TINY).fit(_train(), **RUN, checkpoint_dir=tmp_path,
                                                          checkpoint_every=1)
    finally:
        checkpoint.KEEP_CHECKPOINTS = keep
    resumed = DiffPoseLifter(seed=0, context_folds=2, **TINY)
    history = resumed.fit(_train(), **RUN, resume=tmp_path / f"checkpoint-{step:08d}.safetensors")
    assert history["context"] == ref_history["context"] and history["diffusion"] == ref_history["diffusion"]
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), f"EMA weights differ at {name}"
        assert torch.equal(reference._raw_state[name], resumed._raw_state[name]), f"raw weights differ at {name}"


def test_context_folds_is_validated():
    with pytest.raises(ValueError, match="context_folds"):
        DiffPoseLifter(context_folds=0)
    with pytest.raises(ValueError, match="mode='frame' only"):
        DiffPoseLifter(mode="video", context_folds=2)


def test_calibration_split_holds_out_whole_short_sequences():
    from diffpose_fast.training.folds import calibration_split

    lengths = [300, 120, 80, 95, 110, 100, 90, 105]
    keep, held = calibration_split(lengths, 0.1, seed=3)
    assert sorted(keep + held) == list(range(len(lengths))) and not set(keep) & set(held)
    held_frames = sum(lengths[i] for i in held)
    assert held_frames >= 0.1 * sum(lengths) and all(lengths[i] <= 0.2 * sum(lengths) for i in held)
    assert calibration_split(lengths, 0.1, seed=3) == (keep, held)          # deterministic
    assert {tuple(calibration_split(lengths, 0.1, seed=s)[1]) for s in range(6)} != {tuple(held)}  # seed matters
    # no sequence short enough (one or two long ones): nothing held out here, fit cuts a tail instead
    assert calibration_split([500], 0.1, 0) == ([0], [])
    assert calibration_split([500, 400], 0.1, 0) == ([0, 1], [])
    assert calibration_split(lengths, 0.0, 0) == (list(range(8)), [])
    with pytest.raises(ValueError, match="fraction"):
        calibration_split(lengths, 1.0, 0)
