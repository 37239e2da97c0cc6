"""Live lifting: stream.push frame by frame gives what predict gives over the whole sequence."""
import numpy as np
import pytest

from diffpose_fast import DiffPoseLifter
from diffpose_fast.data.synthetic import generate_sequences

from _tiny import tiny

TINY = tiny()


def _compare(lifter, seq, **kwargs):
    whole = lifter.predict(seq, **kwargs)
    stream = lifter.stream(seq.image_size, camera=seq.camera, **kwargs)
    for t in range(seq.num_frames):
        res = stream.push(seq.keypoints_2d[t], seq.confidence[t])
        assert res.poses_3d.shape == (1, 17, 3) and res.samples.shape[1] == 1
        np.testing.assert_allclose(res.samples[:, 0], whole.samples[:, t], atol=2e-5, err_msg=f"frame {t}")
        np.testing.assert_allclose(res.std[0], whole.std[t], atol=2e-5)
        np.testing.assert_allclose(res.trajectory[0], whole.trajectory[t], atol=1e-3)
    assert stream.frames_seen == seq.num_frames


@pytest.mark.parametrize("sampler", ["ddim", "context"])
def test_frame_model_stream_equals_predict(sampler):
    seq = generate_sequences(1, 7, seed=3)[0]
    lifter = DiffPoseLifter(seed=1, **TINY)
    _compare(lifter, seq, sampler=sampler, num_samples=3)


def test_causal_video_stream_equals_predict_over_the_sequence_so_far():
    """Frames before and after the window fills (F = 5 here): the padding and the sliding window both match."""
    seq = generate_sequences(1, 9, seed=4)[0]
    lifter = DiffPoseLifter(mode="video", seed=2, frames=5, causal=True, **dict(TINY, encoder_layers=2))
    _compare(lifter, seq, num_samples=2)


def test_stream_refuses_what_it_cannot_do():
    lifter = DiffPoseLifter(mode="video", seed=0, frames=5, causal=False, **dict(TINY, encoder_layers=2))
    with pytest.raises(ValueError, match="offline video model"):
        lifter.stream((1000, 1000))
    frame = DiffPoseLifter(seed=0, **TINY)
    with pytest.raises(ValueError, match="image_size"):
        frame.stream((0, 1000))
    stream = frame.stream((1000, 1000))
    with pytest.raises(ValueError, match=r"keypoints_2d must be \[17, 2\]"):
        stream.push(np.zeros((3, 17, 2)))
