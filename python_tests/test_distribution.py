"""H_K (paper Sec. 4.1) and its GMM (Eq. 6): construction checked against the definitions by hand."""
import math

import numpy as np
import pytest
import torch

from diffpose_fast.data.heatmaps import render_heatmaps
from diffpose_fast.distribution.depth import DepthHistogram
from diffpose_fast.config import LifterConfig
from diffpose_fast.distribution.initial import (InitialDistribution, fit_initial_distribution, hk_samples,
                                                weak_perspective_scale)
from diffpose_fast.distribution.noise import draw_hk_noise
from diffpose_fast.distribution.spread2d import confidence_to_sigma_px, heatmap_mean_px, pose_size_px


def _noise(b, samples, gen, sets=1, heatmaps=False, **config):
    cfg = LifterConfig(gmm_samples=samples, **config)
    return draw_hk_noise(b, cfg, 17, sets, heatmaps, gen)


def _pose(gen, b=3):
    pose = torch.randn((b, 17, 3), generator=gen, dtype=torch.float64) * 0.3
    pose[:, 0] = 0.0
    return pose


def test_weak_perspective_scale_recovers_a_known_scale():
    gen = torch.Generator().manual_seed(0)
    pose = _pose(gen)
    scale = torch.tensor([800.0, 1200.0, 300.0], dtype=torch.float64)
    keypoints = pose[..., :2] * scale[:, None, None] + torch.tensor([500.0, 480.0], dtype=torch.float64)
    conf = torch.ones(3, 17, dtype=torch.float64)
    assert torch.allclose(weak_perspective_scale(pose[..., :2], keypoints, conf), scale, rtol=1e-12)
    # Missing joints (confidence 0, NaN keypoints) are ignored, not propagated.
    keypoints[0, 5] = float("nan")
    conf[0, 5] = 0.0
    assert torch.allclose(weak_perspective_scale(pose[..., :2], keypoints, conf), scale, rtol=1e-12)


def test_confidence_maps_linearly_to_spread():
    conf = torch.tensor([[1.0, 0.5, 0.0]])
    size = torch.tensor([400.0])
    sigma = confidence_to_sigma_px(conf, size, 0.01, 0.10)
    assert torch.allclose(sigma, torch.tensor([[4.0, 22.0, 40.0]]))
    kp = torch.tensor([[[0.0, 0.0], [30.0, 40.0], [float("nan"), 0.0]]])
    assert pose_size_px(kp, torch.tensor([[1.0, 1.0, 0.0]])).item() == pytest.approx(50.0)


def test_hk_from_keypoints_has_the_stated_spread():
    gen = torch.Generator().manual_seed(1)
    pose = _pose(gen, b=2)
    log_sigma_z = torch.full((2, 17), math.log(0.05), dtype=torch.float64)
    scale = 1000.0
    keypoints = pose[..., :2] * scale + 500.0
    conf = torch.full((2, 17), 0.5, dtype=torch.float64)
    s = hk_samples(pose, log_sigma_z, keypoints, conf, _noise(2, 20000, gen), sigma_min=0.01, sigma_max=0.10)
    assert s.shape == (2, 20000, 17, 3)
    assert bool((s[:, :, 0] == 0).all())
    mean = s.mean(1)
    assert torch.allclose(mean[:, 1:], pose[:, 1:], atol=4 * 0.05 / math.sqrt(20000) + 1e-3)
    expected_xy = (confidence_to_sigma_px(conf, pose_size_px(keypoints, conf), 0.01, 0.10) / scale)[:, 1:]
    std = s.std(1)
    assert torch.allclose(std[:, 1:, 0], expected_xy, rtol=0.03)
    assert torch.allclose(std[:, 1:, 2], torch.full_like(std[:, 1:, 2], 0.05), rtol=0.03)


def test_hk_depth_spread_is_bounded_whatever_the_encoder_asks():
    """An encoder that asks for a depth sigma of 20 m (briefly trained, off-distribution input) gets 0.5 m:
    hypotheses metres wide say nothing about a joint within about 1 m of the pelvis."""
    from diffpose_fast.distribution.initial import MAX_DEPTH_SIGMA_M

    gen = torch.Generator().manual_seed(5)
    pose = _pose(gen, b=2)
    log_sigma_z = torch.full((2, 17), math.log(20.0), dtype=torch.float64)
    log_sigma_z[1, 3] = math.log(0.08)                     # a sane request stays as it is
    keypoints = pose[..., :2] * 1000.0 + 500.0
    conf = torch.full((2, 17), 0.9, dtype=torch.float64)
    s = hk_samples(pose, log_sigma_z, keypoints, conf, _noise(2, 20000, gen), sigma_min=0.01, sigma_max=0.10)
    std_z = s[..., 2].std(1)
    assert torch.allclose(std_z[0, 1:], torch.full_like(std_z[0, 1:], MAX_DEPTH_SIGMA_M), rtol=0.03)
    assert std_z[1, 3].item() == pytest.approx(0.08, rel=0.03)


def test_hk_from_heatmaps_keeps_a_second_mode():
    gen = torch.Generator().manual_seed(2)
    pose = _pose(gen, b=1)
    keypoints = (pose[..., :2] * 1000.0 + 500.0).numpy()
    alt = keypoints.copy()
    alt[0, 13] += np.array([80.0, 0.0])  # a confusable second peak 80 px right of the left wrist
    hm, boxes = render_heatmaps(keypoints, 4.0, size=(64, 64), second_mode=(0.3, alt))
    hm_t, boxes_t = torch.from_numpy(hm).double(), torch.from_numpy(boxes).double()
    s = hk_samples(pose, torch.full((1, 17), -3.0, dtype=torch.float64), torch.from_numpy(keypoints),
                   torch.ones(1, 17, dtype=torch.float64), _noise(1, 4000, gen, heatmaps=True), sigma_min=0.01,
                   sigma_max=0.1, heatmaps=hm_t, heatmap_boxes=boxes_t)
    x = s[0, :, 13, 0]
    # Two clusters 0.08 m apart (80 px at 1000 px/m) holding ~70% and ~30% of the samples. Offsets are taken
    # from the heatmap's mean (24 px right of the main mode), so the midpoint between modes is pose_x + 16 px.
    far = (x > pose[0, 13, 0] + 0.016).double().mean().item()
    assert far == pytest.approx(0.3, abs=0.05)
    mean = heatmap_mean_px(hm_t, boxes_t)[0, 13, 0].item()
    cell = (boxes[0, 2] - boxes[0, 0]) / 64
    assert mean == pytest.approx(keypoints[0, 13, 0] + 0.3 * 80.0, abs=cell / 2)  # up to the grid's resolution


def test_depth_histogram_samples_the_training_depths():
    gen = torch.Generator().manual_seed(3)
    poses = torch.randn((5000, 17, 3), generator=gen, dtype=torch.float64) * 0.2 + 0.1
    poses[:, 0] = 0.0
    hist = DepthHistogram.fit(poses, bins=40)
    z = hist.sample(3, 4000, gen)
    assert z.shape == (3, 17, 4000)
    assert bool((z[:, 0].abs() < 1e-5).all())  # the root never moves in depth
    assert torch.allclose(z[:, 1:].mean(-1), poses[:, 1:, 2].mean(0).expand(3, 16), atol=0.02)
    assert bool((z >= hist.edges[None, :, :1]).all()) and bool((z <= hist.edges[None, :, -1:]).all())
    again = DepthHistogram.from_state_dict(hist.state_dict())
    assert torch.allclose(again.pmf, hist.pmf, rtol=1e-14, atol=0) and torch.equal(again.edges, hist.edges)


@pytest.mark.parametrize("scope,cov", [("per_joint", "full"), ("whole_pose", "diag")])
def test_fitted_gmm_draws_paths_from_hk(scope, cov):
    gen = torch.Generator().manual_seed(4)
    pose = _pose(gen, b=2).float()
    noise = _noise(2, 256, gen, sets=2000, gmm_scope=scope, gmm_components=3)
    s = hk_samples(pose, torch.full((2, 17), math.log(0.04)), pose[..., :2] * 900 + 400, torch.ones(2, 17), noise,
                   sigma_min=0.01, sigma_max=0.1)
    dist = fit_initial_distribution(s, noise.seed_u, scope=scope, num_components=3, covariance=cov, max_iter=50,
                                    tol=1e-5, reg_covar=1e-3, backend="reference")
    mu, eps = dist.draw(noise)
    assert mu.shape == eps.shape == (2, 2000, 17, 3)
    assert bool((mu[:, :, 0] == 0).all()) and bool((eps[:, :, 0] == 0).all())
    h_k = mu + eps  # samples of the fitted GMM: same first two moments as H_K
    assert torch.allclose(h_k.mean(1), s.mean(1), atol=0.01)
    assert torch.allclose(h_k.std(1)[:, 1:], s.std(1)[:, 1:], rtol=0.15, atol=2e-3)


def test_standard_scope_is_the_unit_gaussian():
    dist = InitialDistribution(batch=2, num_joints=17, scope="standard")
    mu, eps = dist.draw(_noise(2, 16, torch.Generator().manual_seed(5), sets=4000, forward_process="standard"))
    assert bool((mu == 0).all())
    assert eps[:, :, 1:].std().item() == pytest.approx(1.0, abs=0.02)


def test_hk_takes_the_detectors_own_keypoint_spread():
    """keypoint_sigma [B, J, 2] px sets H_K's x and y spread per joint and axis; NaN joints keep the
    confidence-derived spread exactly (the same draws give the same samples there)."""
    gen = torch.Generator().manual_seed(7)
    pose = _pose(gen, b=2)
    log_sigma_z = torch.full((2, 17), math.log(0.05), dtype=torch.float64)
    scale = 1000.0
    keypoints = pose[..., :2] * scale + 500.0
    conf = torch.full((2, 17), 0.5, dtype=torch.float64)
    sigma = torch.rand(2, 17, 2, generator=gen, dtype=torch.float64) * 20.0 + 2.0   # 2..22 px, x != y
    sigma[1, 4:9] = float("nan")                                                    # these from the confidence
    noise = _noise(2, 20000, gen)
    s = hk_samples(pose, log_sigma_z, keypoints, conf, noise, sigma_min=0.01, sigma_max=0.10, keypoint_sigma=sigma)
    plain = hk_samples(pose, log_sigma_z, keypoints, conf, noise, sigma_min=0.01, sigma_max=0.10)
    given = ~torch.isnan(sigma[..., 0])
    given[:, 0] = False                                                             # the root is zero
    std = s.std(1)[..., :2]                                                         # [B, J, 2] metres
    torch.testing.assert_close(std[given], (sigma / scale)[given], rtol=0.03, atol=0.0)
    assert torch.equal(s[1, :, 4:9], plain[1, :, 4:9])
    assert not torch.allclose(s[0, :, 1:, :2], plain[0, :, 1:, :2])
