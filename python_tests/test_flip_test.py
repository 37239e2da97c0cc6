"""The frame model's flip test (``LifterConfig.flip_test``, ``models.flip_test``): the encoder's outputs are the
mean over each frame and its mirror image in stage 2 and at inference, predict can override it, and models saved
before it load without it."""
import numpy as np
import pytest
import torch

from diffpose_fast import DiffPoseLifter, LifterConfig
from diffpose_fast.data.frames import frames_from_sequences
from diffpose_fast.data.skeleton import mirror
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.inference.model import DiffPoseModel
from diffpose_fast.models.context_frame import FrameContextEncoder
from diffpose_fast.models.flip_test import encode_with_flip_test, mirror_inputs, unmirror_context

from _tiny import tiny


@torch.no_grad()
def test_flip_test_is_the_mean_with_the_unmirrored_mirror_pass_float64():
    torch.manual_seed(0)
    enc = FrameContextEncoder(in_features=3, hidden=16, num_layers=2, heads=2, joint_embedding=True).double().eval()
    x = torch.randn(5, 17, 3, dtype=torch.float64)
    got = encode_with_flip_test(enc, x, flip_test=True)
    plain, mirrored = enc(x), enc(mirror_inputs(x))
    # the reference, written out: joints of the mirrored pass swapped back, its pose's x negated
    perm = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]
    pose_back = mirrored.pose[:, perm].clone()
    pose_back[..., 0] = -pose_back[..., 0]
    torch.testing.assert_close(got.pose, 0.5 * (plain.pose + pose_back), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.features, 0.5 * (plain.features + mirrored.features[:, perm]), rtol=1e-12,
                               atol=1e-12)
    torch.testing.assert_close(got.log_sigma_z, 0.5 * (plain.log_sigma_z + mirrored.log_sigma_z[:, perm]),
                               rtol=1e-12, atol=1e-12)
    # the joint embedding breaks the symmetry: the plain encoder is not equivariant, the averaged one is exactly
    back = unmirror_context(enc(mirror_inputs(x)))
    assert (back.pose - plain.pose).abs().max() > 1e-4
    again = unmirror_context(encode_with_flip_test(enc, mirror_inputs(x), flip_test=True))
    torch.testing.assert_close(again.pose, got.pose, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(encode_with_flip_test(enc, x, flip_test=False).pose, plain.pose, rtol=0, atol=0)


@torch.no_grad()
@pytest.mark.parametrize("folds", [1, 2])
def test_the_model_encodes_with_its_config_in_training_and_inference(folds):
    torch.manual_seed(1)
    frames = frames_from_sequences(generate_sequences(2, 6, seed=3), 0.8, require_poses=True)
    model = DiffPoseModel(LifterConfig(**tiny(context_folds=folds))).eval()
    assert model.config.flip_test
    for k, enc in enumerate(model.encoders):
        want = encode_with_flip_test(enc, frames.inputs, True)
        torch.testing.assert_close(model.encode(frames, k).pose, want.pose)
        torch.testing.assert_close(model.encode(frames, k, flip_test=False).pose, enc(frames.inputs).pose)
    fold_of = torch.arange(len(frames)) % folds          # stage 2's contexts: each frame from its out-of-fold encoder
    oof = model.encode_out_of_fold(frames, fold_of)
    for i in range(len(frames)):
        want = encode_with_flip_test(model.encoders[int(fold_of[i])], frames.inputs[i:i + 1], True)
        torch.testing.assert_close(oof.features[i:i + 1], want.features)
    off = DiffPoseModel(LifterConfig(**tiny(context_folds=folds, flip_test=False))).eval()
    off.load_state_dict(model.state_dict())
    torch.testing.assert_close(off.encode_out_of_fold(frames, fold_of).pose[fold_of == 0],
                               model.encoders[0](frames.inputs[fold_of == 0]).pose)


@pytest.fixture(scope="module")
def lifter():
    lf = DiffPoseLifter(seed=0, **tiny(batch_size=32))
    lf.fit(generate_sequences(3, 48, seed=0), context_steps=30, diffusion_steps=10, progress=False)
    return lf


def test_predict_is_mirror_equivariant_with_the_flip_test_and_can_turn_it_off(lifter):
    seq = generate_sequences(1, 10, seed=5)[0]
    on = lifter.predict(seq, sampler="context").poses_3d
    on_mirror = lifter.predict(seq.flipped(), sampler="context").poses_3d
    np.testing.assert_allclose(mirror(on_mirror), on, atol=1e-5)
    off = lifter.predict(seq, sampler="context", flip_test=False).poses_3d
    off_mirror = lifter.predict(seq.flipped(), sampler="context", flip_test=False).poses_3d
    assert np.abs(mirror(off_mirror) - off).max() > 1e-3     # the network alone is not equivariant
    np.testing.assert_allclose(on, 0.5 * (off + mirror(off_mirror)), atol=1e-5)
    ddim = lifter.predict(seq).poses_3d
    assert np.abs(ddim - lifter.predict(seq, flip_test=False).poses_3d).max() > 1e-4
    with pytest.raises(TypeError, match="flip_test"):
        lifter.predict(seq, flip_test="yes")


def test_stream_follows_the_flip_test_of_predict(lifter):
    seq = generate_sequences(1, 6, seed=6)[0]
    for flip in (None, False):
        stream = lifter.stream(seq.image_size, flip_test=flip)
        got = np.stack([stream.push(seq.keypoints_2d[t], seq.confidence[t]).poses_3d[0] for t in range(6)])
        np.testing.assert_allclose(got, lifter.predict(seq, flip_test=flip).poses_3d, atol=1e-5)


def test_models_saved_before_the_flip_test_load_as_they_were():
    frame = LifterConfig.from_saved({"mode": "frame"})
    video = LifterConfig.from_saved({"mode": "video"})
    assert frame.flip_test is False and video.flip_test is True
    assert LifterConfig().flip_test is True
    with pytest.raises(ValueError, match="flip_test"):
        LifterConfig(flip_test=1)
