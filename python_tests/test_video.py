"""Video DiffPose: windowing and stitching, the MixSTE-style encoder's temporal receptive field (offline and
causal), flip TTA, training on synthetic motion against the frame model, bounded memory for a 10-minute
sequence, and MixSTE's parameter layout loading into the encoder. Tiny models throughout."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffpose_fast import DiffPoseLifter
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.models.context_video import VideoContextEncoder
from diffpose_fast.data.frames import frames_from_sequences
from diffpose_fast.video import plan_windows
from diffpose_fast.models.flip_test import encode_with_flip_test, mirror_inputs, unmirror_context
from diffpose_fast.video.mixste import load_mixste

from _tiny import tiny

TINY = tiny(encoder_layers=2)
F_WIN = 27
LENGTHS = (1, 26, 27, 28, 500)


# ------------------------------------------------------------------------------------------ windowing
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("hop", [None, 1, 10, F_WIN])
@pytest.mark.parametrize("t", LENGTHS)
def test_every_frame_has_one_owner_in_order(t, hop, causal):
    plan = plan_windows(t, F_WIN, hop, causal)
    assert plan.owner.shape == (t,)
    assert np.all(np.diff(plan.owner) >= 0)  # frames stay in order
    idx = plan.indices()
    assert idx.shape == (plan.num_windows, F_WIN) and idx.min() >= 0 and idx.max() <= t - 1
    seen = np.concatenate([plan.owned(w)[0] for w in range(plan.num_windows)])
    np.testing.assert_array_equal(seen, np.arange(t))  # each frame exactly once, no gap, no seam
    for w in range(plan.num_windows):
        frames, pos = plan.owned(w)
        np.testing.assert_array_equal(idx[w, pos], frames)  # the owner's window holds that frame there
        if causal:
            h = 1 if hop is None else hop
            assert np.all(pos >= F_WIN - h)  # at least F - hop frames of past context


def test_offline_plan_is_the_field_protocol():
    plan = plan_windows(100, 27)
    np.testing.assert_array_equal(plan.starts, [0, 27, 54, 73])  # non-overlapping, last aligned to the end
    assert plan_windows(10, 27).starts.tolist() == [0]  # a short sequence: one right-edge-padded window
    with pytest.raises(ValueError, match="hop"):
        plan_windows(100, 27, hop=28)


# ---------------------------------------------------------------------------------------------- encoder
def _encoder(causal: bool) -> VideoContextEncoder:
    torch.manual_seed(0)
    return VideoContextEncoder(hidden=16, depth=2, heads=2, frames=F_WIN, causal=causal).eval()


@torch.no_grad()
def test_encoder_shapes_and_root():
    out = _encoder(False)(torch.randn(3, F_WIN, 17, 3))
    assert out.features.shape == (3, F_WIN, 17, 16)
    assert out.pose.shape == (3, F_WIN, 17, 3) and out.log_sigma_z.shape == (3, F_WIN, 17)
    assert torch.all(out.pose[..., 0, :] == 0)
    with pytest.raises(ValueError, match="frames=27"):
        _encoder(False)(torch.randn(1, F_WIN + 1, 17, 3))


@torch.no_grad()
def test_encoder_attends_over_time_and_causal_never_sees_the_future():
    x = torch.randn(1, F_WIN, 17, 3)
    y = x.clone()
    y[:, 10] += 0.5
    offline, causal = _encoder(False), _encoder(True)
    d_off = (offline(x).pose - offline(y).pose).abs().amax(dim=(0, 2, 3))
    d_cau = (causal(x).pose - causal(y).pose).abs().amax(dim=(0, 2, 3))
    assert d_off[0] > 1e-6 and d_off[-1] > 1e-6  # every frame of the window sees frame 10
    assert torch.all(d_cau[:10] == 0)  # earlier frames never see a later one
    assert torch.all(d_cau[10:] > 1e-6)


@torch.no_grad()
def test_flip_tta_is_exactly_flip_equivariant():
    enc = _encoder(False)
    x = torch.randn(2, F_WIN, 17, 3)
    a = encode_with_flip_test(enc, x, flip_test=True)
    b = unmirror_context(encode_with_flip_test(enc, mirror_inputs(x), flip_test=True))
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- the lifter
@pytest.fixture(scope="module")
def lifters():
    train = generate_sequences(6, 120, seed=0)
    out = {}
    # the causal model only serves the structural tests: a few steps are enough
    for name, kw, steps in (("frame", dict(mode="frame"), 100), ("video", dict(mode="video", frames=F_WIN), 100),
                            ("causal", dict(mode="video", frames=F_WIN, causal=True), 5)):
        lifter = DiffPoseLifter(seed=0, batch_size=2 * F_WIN, **kw, **TINY)
        history = lifter.fit(train, context_steps=steps, diffusion_steps=5, progress=False)
        out[name] = (lifter, history)
    return out


def _perturbed(seq, frame):
    kp = np.array(seq.keypoints_2d)
    kp[frame] += 25.0
    from diffpose_fast import PoseSequence
    return PoseSequence(kp, seq.poses_3d, seq.image_size, seq.confidence, camera=seq.camera)


@pytest.mark.parametrize("t", LENGTHS)
def test_predict_any_length_in_order(lifters, t):
    lifter, _ = lifters["video"]
    seq = generate_sequences(1, t, seed=3)[0]
    res = lifter.predict(seq, num_samples=2)
    assert res.poses_3d.shape == (t, 17, 3) and res.samples.shape == (2, t, 17, 3)
    assert np.isfinite(res.samples).all() and np.all(res.poses_3d[:, 0] == 0)
    # stitched = each frame's owner window run on its own (frames in order, nothing shifted)
    ctx = lifter.predict(seq, sampler="context", flip_test=False).poses_3d
    plan = plan_windows(t, F_WIN)
    inputs = frames_from_sequences([seq], lifter.config.default_confidence, require_poses=False).inputs
    with torch.no_grad():
        direct = lifter.model.encoder(inputs[torch.from_numpy(plan.indices())]).pose.numpy()
    for w in range(plan.num_windows):
        frames, pos = plan.owned(w)
        np.testing.assert_allclose(ctx[frames], direct[w, pos], rtol=1e-5, atol=1e-6)


def test_stitched_receptive_field(lifters):
    seq = generate_sequences(1, 100, seed=4)[0]
    changed = _perturbed(seq, 5)
    video, _ = lifters["video"]
    d = np.abs(video.predict(seq, sampler="context").poses_3d
               - video.predict(changed, sampler="context").poses_3d).max(axis=(1, 2))
    assert d[:F_WIN].min() > 0 and np.all(d[F_WIN:] == 0)  # only the window holding frame 5 changes
    causal, _ = lifters["causal"]
    changed = _perturbed(seq, 50)
    d = np.abs(causal.predict(seq, sampler="context").poses_3d
               - causal.predict(changed, sampler="context").poses_3d).max(axis=(1, 2))
    assert np.all(d[:50] == 0)  # never from the future
    assert d[50] > 0 and np.all(d[50 + F_WIN:] == 0)  # a frame sees the F - 1 frames before it


def test_video_training_lowers_velocity_error_vs_frame_model(lifters):
    """Same data, widths and steps: the video encoder's answer jitters far less (MPJVE) without being a worse
    pose (MPJPE). Tiny models and 100 steps: a robust comparison (a factor), not a benchmark."""
    test = generate_sequences(3, 150, seed=100)
    losses = np.asarray(lifters["video"][1]["context"])
    assert losses[-10:].mean() < 0.7 * losses[:10].mean(), "video stage 1 did not learn"
    frame = lifters["frame"][0].evaluate(test, sampler="context")
    video = lifters["video"][0].evaluate(test, sampler="context")
    assert video["mpjve_mm"] < 0.6 * frame["mpjve_mm"], (video, frame)
    assert video["mpjpe_mm"] < 1.5 * frame["mpjpe_mm"], (video, frame)  # not smooth by being wrong


def test_memory_is_bounded_by_the_window_for_a_10_minute_sequence(lifters, monkeypatch):
    """Every forward pass sees at most a fixed number of windows and frames, whatever T: peak activations
    scale with the window, not the sequence (30,000 frames = 10 minutes at 50 fps)."""
    lifter, _ = lifters["video"]
    seen = {"encoder": 0, "sampler": 0}
    enc_forward, sample = lifter.model.encoder.forward, lifter.model.sample

    def spy_encoder(x):
        seen["encoder"] = max(seen["encoder"], x.shape[0] * x.shape[1])
        return enc_forward(x)

    def spy_sample(frames, *args, **kwargs):
        seen["sampler"] = max(seen["sampler"], len(frames))
        return sample(frames, *args, **kwargs)

    monkeypatch.setattr(lifter.model.encoder, "forward", spy_encoder)
    monkeypatch.setattr(lifter.model, "sample", spy_sample)
    base = generate_sequences(1, 600, seed=9)[0]
    kp = np.tile(base.keypoints_2d, (50, 1, 1))  # 30,000 frames
    res = lifter.predict(kp, image_size=base.image_size, sampler="context")
    assert res.poses_3d.shape == (30000, 17, 3) and np.isfinite(res.poses_3d).all()
    # 4096 positions per encoder pass (152 windows of 27), doubled by the flip TTA; 4096 frames per sampler pass
    assert seen["encoder"] <= 2 * 4096 and seen["sampler"] <= 4096


def test_video_save_load_round_trip(lifters, tmp_path):
    lifter, _ = lifters["causal"]
    lifter.save(tmp_path / "m")
    again = DiffPoseLifter.load(tmp_path / "m")
    assert again.config.mode == "video" and again.config.causal and again.config.frames == F_WIN
    seq = generate_sequences(1, 40, seed=6)[0]
    np.testing.assert_array_equal(lifter.predict(seq, num_samples=2).samples, again.predict(seq, num_samples=2).samples)


# -------------------------------------------------------------------------------------- MixSTE weights
def _mixste_state_dict(c: int, depth: int, frames: int, generator: torch.Generator) -> dict:
    """Names and shapes of MixSTE2 (common/model_cross.py) with in_chans 2, mlp_ratio 2, qkv_bias True."""
    r = lambda *s: torch.randn(*s, generator=generator) * 0.2  # noqa: E731
    sd = {"Spatial_patch_to_embedding.weight": r(c, 2), "Spatial_patch_to_embedding.bias": r(c),
          "Spatial_pos_embed": r(1, 17, c), "Temporal_pos_embed": r(1, frames, c),
          "Spatial_norm.weight": 1 + r(c), "Spatial_norm.bias": r(c),
          "Temporal_norm.weight": 1 + r(c), "Temporal_norm.bias": r(c),
          "head.0.weight": 1 + r(c), "head.0.bias": r(c), "head.1.weight": r(3, c), "head.1.bias": r(3)}
    for kind in ("STEblocks", "TTEblocks"):
        for i in range(depth):
            p = f"{kind}.{i}."
            sd.update({p + "norm1.weight": 1 + r(c), p + "norm1.bias": r(c), p + "attn.qkv.weight": r(3 * c, c),
                       p + "attn.qkv.bias": r(3 * c), p + "attn.proj.weight": r(c, c), p + "attn.proj.bias": r(c),
                       p + "norm2.weight": 1 + r(c), p + "norm2.bias": r(c), p + "mlp.fc1.weight": r(2 * c, c),
                       p + "mlp.fc1.bias": r(2 * c), p + "mlp.fc2.weight": r(c, 2 * c), p + "mlp.fc2.bias": r(c)})
    return sd


def _mixste_forward(sd: dict, x: torch.Tensor, heads: int, depth: int) -> torch.Tensor:
    """MixSTE2's forward written from its description, on a state dict: x [B, T, J, 2] -> [B, T, J, 3]."""
    ln = lambda h, n: F.layer_norm(h, h.shape[-1:], sd[n + ".weight"], sd[n + ".bias"], eps=1e-6)  # noqa: E731

    def block(h, p):
        b, n, c = h.shape
        qkv = F.linear(ln(h, p + "norm1"), sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (c // heads) ** -0.5, -1)
        h = h + F.linear((a @ v).transpose(1, 2).reshape(b, n, c), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        m = F.gelu(F.linear(ln(h, p + "norm2"), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
        return h + F.linear(m, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])

    b, t, j, _ = x.shape
    h = F.linear(x, sd["Spatial_patch_to_embedding.weight"], sd["Spatial_patch_to_embedding.bias"])
    h = (h + sd["Spatial_pos_embed"]).reshape(b * t, j, -1)
    for i in range(depth):
        h = ln(block(h, f"STEblocks.{i}."), "Spatial_norm")
        h = h.reshape(b, t, j, -1).permute(0, 2, 1, 3).reshape(b * j, t, -1)
        if i == 0:
            h = h + sd["Temporal_pos_embed"]
        h = ln(block(h, f"TTEblocks.{i}."), "Temporal_norm")
        h = h.reshape(b, j, t, -1).permute(0, 2, 1, 3).reshape(b * t, j, -1)
    out = F.linear(ln(h, "head.0"), sd["head.1.weight"], sd["head.1.bias"])
    return out.reshape(b, t, j, 3)


@pytest.mark.parametrize("form", ["checkpoint_dict", "safetensors"])
def test_mixste_layout_loads_into_the_encoder(form, tmp_path):
    c, depth, heads, frames = 32, 2, 8, 9
    sd = _mixste_state_dict(c, depth, frames, torch.Generator().manual_seed(0))
    if form == "checkpoint_dict":  # what MixSTE's training script saves: DataParallel names under model_pos
        path = tmp_path / "mixste.bin"
        torch.save({"epoch": 3, "model_pos": {"module." + k: v for k, v in sd.items()}}, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "mixste.safetensors"
        save_file(sd, str(path))
    torch.manual_seed(1)
    enc = VideoContextEncoder(hidden=c, depth=depth, heads=heads, frames=frames).eval()
    log_sigma_before = enc.log_sigma_head.weight.clone()
    report = load_mixste(enc, path, strict=True)
    assert len(report.loaded) == len(sd) and not report.skipped
    assert report.untouched == ["log_sigma_head.bias", "log_sigma_head.weight"]
    own = dict(enc.named_parameters())
    for src, dst in report.loaded.items():
        if src == "Spatial_patch_to_embedding.weight":
            torch.testing.assert_close(own[dst][:, :2], sd[src])
            assert torch.all(own[dst][:, 2] == 0)  # the confidence input MixSTE lacks starts switched off
        else:
            torch.testing.assert_close(own[dst], sd[src], rtol=0, atol=0)
    assert torch.equal(enc.log_sigma_head.weight, log_sigma_before)
    # the mapped encoder computes MixSTE's function (root set to 0), whatever the confidence input
    x = torch.randn(2, frames, 17, 2)
    with torch.no_grad():
        ours = enc(torch.cat([x, torch.rand(2, frames, 17, 1)], -1)).pose
        ref = _mixste_forward(sd, x, heads, depth)
    ref[..., 0, :] = 0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_mixste_shape_mismatch_is_reported():
    sd = _mixste_state_dict(32, 2, 243, torch.Generator().manual_seed(0))
    enc = VideoContextEncoder(hidden=32, depth=1, heads=8, frames=27)
    report = load_mixste(enc, sd)
    assert "Temporal_pos_embed" in report.skipped and "STEblocks.1.norm1.weight" in report.skipped
    assert report.loaded["STEblocks.0.attn.qkv.weight"] == "spatial_blocks.0.attn.qkv.weight"
    with pytest.raises(ValueError, match="did not load"):
        load_mixste(enc, sd, strict=True)
