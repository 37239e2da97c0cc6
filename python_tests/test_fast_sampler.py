"""The fast reverse loop (diffpose_fast.inference.reverse / cuda_graph) against DDIMSampler.sample with the reference
denoiser, and the pipeline's backend switch."""
import numpy as np
import pytest
import torch
from torch import nn

from diffpose_fast.diffusion.samplers import DDIMSampler
from diffpose_fast.diffusion.schedule import DiffusionSchedule
from diffpose_fast.inference.cuda_graph import bucket_size
from diffpose_fast.ops.denoiser.fused import FusedDenoiser
from diffpose_fast.inference.reverse import fast_sample, reverse_diffusion
from diffpose_fast.models.denoiser import GCNAttentionDenoiser
from diffpose_fast.ops._dispatch import BackendUnavailableError

SMALL = dict(context_dim=32, embed_dim=32, hidden=64, num_blocks=2, heads=4)


def _model(seed=0):
    torch.manual_seed(seed)
    m = GCNAttentionDenoiser(**SMALL).eval()
    with torch.no_grad():
        for p in m.output_conv.parameters():
            p.normal_(0.0, 0.05)
        for mod in m.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.normal_(1.0, 0.2)
    return m


def _problem(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = 0.3 * torch.randn(B, 17, 3, generator=g, dtype=torch.float64)
    h_K = mu + 0.1 * torch.randn(B, 17, 3, generator=g, dtype=torch.float64)
    feats = torch.randn(B, 17, 32, generator=g, dtype=torch.float64)
    return h_K, mu, feats


def _reference(m, schedule, feats, h_K, mu, steps, dtype, **kw):
    m = m.to(dtype)
    with torch.no_grad():
        out = DDIMSampler(schedule).sample(lambda h, k: m(h, feats.to(dtype), k), h_K.to(dtype), mu.to(dtype),
                                           steps, **kw)
    m.float()
    return out.double()


@pytest.mark.parametrize("steps", [1, 5])
def test_fast_loop_matches_reference_within_float32_error(steps):
    m, s = _model(), DiffusionSchedule(50)
    h_K, mu, feats = _problem(10, seed=steps)
    ref64 = _reference(m, s, feats, h_K, mu, steps, torch.float64)
    ref32 = _reference(m, s, feats, h_K, mu, steps, torch.float32)
    with torch.inference_mode():
        got = fast_sample(FusedDenoiser(m), feats.float(), h_K.float(), mu.float(), s, steps,
                          denoiser_backend="native").double()
    scale = ref64.abs().max()
    assert (got - ref64).abs().max() <= 2 * (ref32 - ref64).abs().max() + 1e-5 * scale


def test_fast_loop_with_eta_uses_the_same_noise():
    m, s = _model(1), DiffusionSchedule(50)
    h_K, mu, feats = _problem(4, seed=3)
    std = torch.full_like(h_K, 0.05)
    ref = _reference(m, s, feats, h_K, mu, 5, torch.float64, eta=0.8, noise_std=std,
                     generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        got = fast_sample(FusedDenoiser(m.double()), feats, h_K, mu, s, 5, eta=0.8, noise_std=std,
                          generator=torch.Generator().manual_seed(7), denoiser_backend="torch")
    m.float()
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_reverse_diffusion_backends():
    m, s = _model(2), DiffusionSchedule(50)
    h_K, mu, feats = (t.float() for t in _problem(6, seed=4))
    ref = reverse_diffusion(m, s, feats, h_K, mu, 5, "reference")
    for backend in ("auto", "fast", "native"):
        got = reverse_diffusion(m, s, feats, h_K, mu, 5, backend)
        assert ((got - ref).abs().max() / ref.abs().max()).item() < 1e-4, backend
    with pytest.raises(ValueError, match="backend"):
        reverse_diffusion(m, s, feats, h_K, mu, 5, "bogus")
    with pytest.raises(BackendUnavailableError, match="float32"):
        reverse_diffusion(m.double(), s, feats.double(), h_K.double(), mu.double(), 5, "native")
    m.float()


def test_lifter_predict_uses_the_fast_path_and_agrees(monkeypatch):
    """predict(backend="auto") goes through fast_sample; "reference" does not. The untrained network amplifies
    float32 rounding over the steps (the float64 oracle test above bounds that), so the agreement checked here is
    loose on the worst element and tight on the typical one."""
    from diffpose_fast.inference import reverse as fast_sampler
    from diffpose_fast.lifter import DiffPoseLifter

    calls = []
    real = fast_sampler.fast_sample
    monkeypatch.setattr(fast_sampler, "fast_sample", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    lifter = DiffPoseLifter()
    with torch.no_grad():
        for p in lifter.model.denoiser.output_conv.parameters():
            p.normal_(0.0, 0.02)
    kp = np.random.default_rng(0).uniform(200, 700, (3, 17, 2)).astype(np.float32)
    ref = lifter.predict(kp, image_size=(1000, 1000), backend="reference").samples
    assert not calls
    fast = lifter.predict(kp, image_size=(1000, 1000), backend="auto").samples
    assert calls
    err, scale = np.abs(fast - ref), np.abs(ref).max()
    assert err.max() <= 1e-2 * scale and np.median(err) <= 1e-5 * scale


def test_bucket_sizes():
    assert [bucket_size(b) for b in (1, 64, 65, 1000, 5120)] == [64, 64, 128, 1024, 8192]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("B", [5, 70, 320])
def test_graph_captured_sampler_equals_eager(B):
    from diffpose_fast.inference.cuda_graph import graphed_sample

    m, s = _model(3).cuda(), DiffusionSchedule(50)
    h_K, mu, feats = (t.float().cuda() for t in _problem(B, seed=B))
    fused = FusedDenoiser(m)
    with torch.inference_mode():
        eager = fast_sample(fused, feats, h_K, mu, s, 5)
    for _ in range(2):  # the first call captures, the second replays
        graphed = graphed_sample(fused, feats, h_K, mu, s, 5)
        torch.testing.assert_close(graphed, eager, rtol=0, atol=0)
