"""Smooth hypotheses: the filter against scipy's, and what predict and stream do with it."""
import numpy as np
import pytest
from scipy.signal import lfilter

from diffpose_fast import DiffPoseLifter, LifterConfig
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.inference.smoothing import smooth_hypotheses, smoothing_gain
from diffpose_fast.lifter import POSE_BOUND_M

from _tiny import tiny


def _reference(samples, anchor, tau, causal):
    """The same filter from scipy's direct-form IIR (float64): y[t] = a d[t] + (1 - a) y[t-1], y[-1] = d[0]."""
    a = smoothing_gain(tau)
    d = samples.astype(np.float64) - anchor[None]
    y = lfilter([a], [1.0, a - 1.0], d, axis=1, zi=((1 - a) * d[:, :1]))[0]
    if not causal:
        rev = y[:, ::-1]
        y = lfilter([a], [1.0, a - 1.0], rev, axis=1, zi=((1 - a) * rev[:, :1]))[0][:, ::-1]
    return anchor[None] + y


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("tau", [0.5, 3.0, 40.0])
def test_filter_matches_scipy(causal, tau):
    rng = np.random.default_rng(int(tau * 10) + causal)
    samples, anchor = rng.normal(size=(4, 37, 17, 3)), rng.normal(size=(37, 17, 3))
    got, _ = smooth_hypotheses(samples, anchor, tau, causal=causal)
    np.testing.assert_allclose(got, _reference(samples, anchor, tau, causal), atol=2e-6)  # float32 output


def test_causal_state_continues_across_calls():
    rng = np.random.default_rng(5)
    samples, anchor = rng.normal(size=(3, 20, 17, 3)), rng.normal(size=(20, 17, 3))
    whole, _ = smooth_hypotheses(samples, anchor, 2.5, causal=True)
    first, state = smooth_hypotheses(samples[:, :8], anchor[:8], 2.5, causal=True)
    parts = [first]
    for t in range(8, 20):   # one frame at a time, as a stream pushes
        out, state = smooth_hypotheses(samples[:, t:t + 1], anchor[t:t + 1], 2.5, causal=True, state=state)
        parts.append(out)
    np.testing.assert_allclose(np.concatenate(parts, 1), whole, atol=1e-6)


def test_filter_keeps_the_anchor_and_a_constant_offset():
    rng = np.random.default_rng(6)
    anchor = rng.normal(size=(25, 17, 3))
    offset = rng.normal(size=(2, 1, 17, 3))
    got, _ = smooth_hypotheses(anchor[None] + offset, anchor, 6.0, causal=False)
    np.testing.assert_allclose(got, anchor[None] + offset, atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="time_constant"):
        smoothing_gain(0.0)
    with pytest.raises(ValueError, match=r"samples must be \[N, T, J, 3\]"):
        smooth_hypotheses(np.zeros((2, 5, 17, 3)), np.zeros((4, 17, 3)), 1.0, causal=True)
    with pytest.raises(ValueError, match="zero-phase"):
        smooth_hypotheses(np.zeros((2, 5, 17, 3)), np.zeros((5, 17, 3)), 1.0, causal=False,
                          state=np.zeros((2, 17, 3)))
    with pytest.raises(ValueError, match="hypothesis_smoothing"):
        LifterConfig(hypothesis_smoothing=-1.0)
    lifter = DiffPoseLifter(seed=0, **tiny())
    seq = generate_sequences(1, 4, seed=1)[0]
    with pytest.raises(ValueError, match="predict: smoothing"):
        lifter.predict(seq, smoothing=float("nan"))


def test_config_default_by_mode():
    assert LifterConfig().smoothing_frames == 0.0   # a frame model's frames may be unrelated images
    assert LifterConfig(mode="video").smoothing_frames > 0
    assert LifterConfig(mode="video", hypothesis_smoothing=0).smoothing_frames == 0.0
    assert LifterConfig.from_saved({"mode": "video"}).smoothing_frames == 0.0   # an old model lifts as before


def test_predict_smooths_offsets_not_the_encoder_pose():
    """A very long time constant leaves every hypothesis at a constant offset from the encoder's pose; the
    encoder's own motion passes through untouched."""
    seq = generate_sequences(1, 12, seed=2)[0]
    lifter = DiffPoseLifter(seed=3, **tiny())
    context = lifter.predict(seq, sampler="context").poses_3d
    raw = lifter.predict(seq, num_samples=3, smoothing=0)
    held = lifter.predict(seq, num_samples=3, smoothing=1e9)
    offsets = held.samples - context[None]
    # an untrained model's answer can reach the +-POSE_BOUND_M bound that _result clamps to: compare the rest
    free = (np.abs(held.samples) < POSE_BOUND_M - 1e-3) & (np.abs(held.samples[:, :1]) < POSE_BOUND_M - 1e-3)
    free &= (np.abs(raw.samples[:, :1]) < POSE_BOUND_M - 1e-3) & (np.abs(context) < POSE_BOUND_M - 1e-3)[None]
    free &= (np.abs(context[:1]) < POSE_BOUND_M - 1e-3)[None]
    assert free.mean() > 0.5
    np.testing.assert_allclose(offsets[free], np.broadcast_to(offsets[:, :1], offsets.shape)[free], atol=1e-4)
    # a filter that never moves keeps the offset it starts from: the first frame's
    first = np.broadcast_to(raw.samples[:, :1] - context[None, :1], offsets.shape)
    np.testing.assert_allclose(offsets[free], first[free], atol=1e-4)
    assert np.abs(raw.samples[:, 1:] - held.samples[:, 1:]).max() > 1e-3
