"""Heatmaps: rendering is a pmf of the cell-integrated Gaussian, read-back, sampling statistics, second mode."""
import math

import numpy as np
import pytest
import torch

from diffpose_fast.data.heatmaps import auto_boxes, cell_centers, heatmap_to_keypoints, render_heatmaps, sample_heatmaps


def keypoints(rng, t=4, j=17):
    return rng.uniform(200, 800, size=(t, j, 2))


def test_pmf_sums_to_one_and_is_non_negative():
    rng = np.random.default_rng(0)
    kp = keypoints(rng)
    kp[1, 3] = np.nan                          # missing: uniform map
    hm, boxes = render_heatmaps(kp, rng.uniform(0.5, 20, size=(4, 17)), size=(32, 48))
    assert hm.shape == (4, 17, 32, 48) and hm.dtype == np.float32 and boxes.shape == (4, 4)
    assert (hm >= 0).all()
    np.testing.assert_allclose(hm.sum(axis=(2, 3)), 1.0, atol=1e-5)
    np.testing.assert_allclose(hm[1, 3], 1.0 / (32 * 48), rtol=1e-6)
    # Auto boxes have square cells and contain every keypoint.
    cw = (boxes[:, 2] - boxes[:, 0]) / 48
    ch = (boxes[:, 3] - boxes[:, 1]) / 32
    np.testing.assert_allclose(cw, ch)
    finite = np.nan_to_num(kp, nan=500.0)
    assert (finite[..., 0] > boxes[:, None, 0]).all() and (finite[..., 0] < boxes[:, None, 2]).all()


def test_cell_masses_match_the_gaussian_integral():
    box = np.array([[0.0, 0.0, 64.0, 64.0]])
    mu = np.array([[[20.3, 40.7]]])
    sigma = 3.0
    hm, _ = render_heatmaps(mu, sigma, box, size=(64, 64))

    def mass(a, b, m):
        cdf = lambda z: 0.5 * (1 + math.erf((z - m) / (sigma * math.sqrt(2))))
        return cdf(b) - cdf(a)

    for i, j in [(40, 20), (41, 22), (35, 18), (45, 25)]:
        want = mass(j, j + 1, 20.3) * mass(i, i + 1, 40.7)
        assert hm[0, 0, i, j] == pytest.approx(want, rel=1e-4, abs=1e-9)


def test_far_outside_and_tiny_sigma_are_handled():
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    hm, _ = render_heatmaps(np.array([[[1e5, 5.3], [2.5, 2.5]]]), np.array([[1.0, 1e-3]]), box, size=(10, 10))
    assert np.isfinite(hm).all()
    assert hm[0, 0, :, 9].sum() == pytest.approx(1.0, abs=1e-6)    # all mass on the nearest column
    assert hm[0, 1, 2, 2] == pytest.approx(1.0, abs=1e-6)    # sigma << cell: one cell


def test_argmax_readback_near_keypoint():
    rng = np.random.default_rng(1)
    kp = keypoints(rng)
    hm, boxes = render_heatmaps(kp, 6.0, size=(64, 64))
    cell = (boxes[:, 2] - boxes[:, 0]) / 64
    got, conf = heatmap_to_keypoints(hm, boxes)
    err = np.abs(got - kp).max(axis=-1)
    assert (err <= 0.5 * cell[:, None] + 1e-3).all()
    mean, _ = heatmap_to_keypoints(hm, boxes, method="mean")
    np.testing.assert_allclose(mean, kp, atol=0.05 * cell.max())
    assert ((conf > 0) & (conf <= 1)).all()


def test_confidence_falls_with_spread():
    kp = np.full((1, 2, 2), 320.0)
    box = np.array([[0.0, 0.0, 640.0, 640.0]])
    hm, _ = render_heatmaps(kp, np.array([[5.0, 40.0]]), box)
    _, conf = heatmap_to_keypoints(hm, box)
    assert conf[0, 0] > 0.5 > 0.1 > conf[0, 1]


def test_cell_centre_mapping_documented():
    boxes = np.array([[10.0, 20.0, 74.0, 52.0]])
    xs, ys = cell_centers(boxes, (16, 32))
    np.testing.assert_allclose(xs[0, :2], [10 + 0.5 * 2, 10 + 1.5 * 2])
    np.testing.assert_allclose(ys[0, -1], 20 + 15.5 * 2)
    # A keypoint exactly at a cell centre has its argmax there.
    hm, _ = render_heatmaps(np.array([[[xs[0, 7], ys[0, 3]]]]), 1.0, boxes, size=(16, 32))
    assert np.unravel_index(hm[0, 0].argmax(), (16, 32)) == (3, 7)


def test_sample_mean_and_std_match_the_rendered_gaussian():
    kp = np.array([[[300.0, 410.0], [333.3, 377.7]]])
    sigma = np.array([[12.0, 5.0]])
    box = np.array([[200.0, 300.0, 456.0, 556.0]])                  # 4 px cells
    hm, _ = render_heatmaps(kp, sigma, box, size=(64, 64))
    n = 40000
    s = sample_heatmaps(hm, box, n, torch.Generator().manual_seed(0)).double().numpy()
    assert s.shape == (1, 2, n, 2)
    cell = 4.0
    # Cell masses at cell centres have variance sigma^2 + cell^2/12 (Sheppard), the uniform jitter adds cell^2/12.
    want_std = np.sqrt(sigma[0] ** 2 + cell ** 2 / 6)
    for j in range(2):
        np.testing.assert_allclose(s[0, j].mean(axis=0), kp[0, j], atol=4 * want_std[j] / math.sqrt(n))
        np.testing.assert_allclose(s[0, j].std(axis=0), want_std[j], rtol=0.03)
    # Samples stay inside the box and inside their cells' grid.
    assert (s[..., 0] >= 200).all() and (s[..., 0] < 456).all()


def test_sampling_is_reproducible_with_generator():
    rng = np.random.default_rng(3)
    hm, boxes = render_heatmaps(keypoints(rng), 8.0)
    a = sample_heatmaps(hm, boxes, 5, torch.Generator().manual_seed(7))
    b = sample_heatmaps(torch.from_numpy(hm), boxes, 5, torch.Generator().manual_seed(7))
    assert a.shape == (4, 17, 5, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)


def test_second_mode_weight_and_location():
    kp = np.array([[[300.0, 400.0]]])
    alt = np.array([[[420.0, 400.0]]])
    w = 0.3
    hm, box = render_heatmaps(kp, 6.0, None, (64, 64), second_mode=(w, alt))
    assert box[0, 0] < 300 - 18 and box[0, 2] > 420 + 18               # auto box holds both modes
    np.testing.assert_allclose(hm.sum(), 1.0, atol=1e-5)
    s = sample_heatmaps(hm, box, 20000, torch.Generator().manual_seed(1)).numpy()[0, 0]
    near_alt = np.linalg.norm(s - alt[0, 0], axis=-1) < 30
    near_main = np.linalg.norm(s - kp[0, 0], axis=-1) < 30
    assert near_alt.mean() == pytest.approx(w, abs=4 * math.sqrt(w * (1 - w) / 20000))
    assert (near_alt | near_main).mean() > 0.99
    # A NaN alternate drops the second mode.
    hm_nan, _ = render_heatmaps(kp, 6.0, box, (64, 64), second_mode=(w, np.full_like(alt, np.nan)))
    hm_one, _ = render_heatmaps(kp, 6.0, box, (64, 64))
    np.testing.assert_allclose(hm_nan, hm_one, atol=1e-7)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: render_heatmaps(np.zeros((2, 17, 3)), 1.0), ValueError, "keypoints must have shape"),
    (lambda: render_heatmaps(np.zeros((2, 17, 2)), -1.0), ValueError, "sigma_px must be positive"),
    (lambda: render_heatmaps(np.zeros((2, 17, 2)), np.ones(3)), ValueError, "sigma_px must be a scalar or broadcastable"),
    (lambda: render_heatmaps(np.zeros((2, 17, 2)), 1.0, np.zeros((2, 4))), ValueError, "boxes must be finite"),
    (lambda: render_heatmaps(np.full((1, 17, 2), np.nan), 1.0), ValueError, "no finite keypoint"),
    (lambda: render_heatmaps(np.zeros((1, 17, 2)), 1.0, second_mode=(2.0, np.zeros((1, 17, 2)))), ValueError,
     "weight must lie in"),
    (lambda: sample_heatmaps(np.ones((1, 1, 2, 2)), np.array([[0, 0, 1, 1.0]]), 0), ValueError, "num_samples"),
    (lambda: sample_heatmaps(np.zeros((1, 1, 2, 2)), np.array([[0, 0, 1, 1.0]]), 3), ValueError, "positive mass"),
    (lambda: heatmap_to_keypoints(np.ones((1, 1, 2, 2)), np.array([[0, 0, 1, 1.0]]), "max"), ValueError, "method"),
])
def test_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_auto_boxes_min_side():
    b = auto_boxes(np.array([[[10.0, 10.0]]]), (64, 64), min_side_px=np.array([30.0]))
    np.testing.assert_allclose(b, [[-5.0, -5.0, 25.0, 25.0]])


def test_mixing_sequences_with_and_without_heatmaps_says_what_it_does():
    from diffpose_fast.data.synthetic import SyntheticConfig, generate_sequences
    from diffpose_fast.data.frames import frames_from_sequences

    with_maps = generate_sequences(1, 4, seed=0, config=SyntheticConfig(heatmap_size=(16, 16)))
    without = generate_sequences(1, 4, seed=1)
    assert frames_from_sequences(with_maps, 0.8, require_poses=True).heatmaps is not None
    with pytest.warns(UserWarning, match="1 of 2 sequences carry heatmaps.*Gaussian for all.*keypoint_sigma"):
        frames = frames_from_sequences(with_maps + without, 0.8, require_poses=True)
    assert frames.heatmaps is None
    # the maps' spread is kept as keypoint_sigma for their frames (checked by sampling a map), NaN for the others
    from diffpose_fast.data.frames import heatmap_std_px

    sigma = frames.keypoint_sigma.numpy()
    assert np.isfinite(sigma[:4]).all() and np.isnan(sigma[4:]).all()
    maps, boxes = np.asarray(with_maps[0].heatmaps, np.float64), np.asarray(with_maps[0].heatmap_boxes, np.float64)
    np.testing.assert_allclose(sigma[:4], heatmap_std_px(maps, boxes), rtol=1e-5)
    rng = np.random.default_rng(0)
    p = maps[2, 5].ravel() / maps[2, 5].sum()
    cell = rng.choice(p.size, size=200_000, p=p)
    hh, wh = maps.shape[2:]
    x = boxes[2, 0] + (cell % wh + rng.random(cell.size)) * (boxes[2, 2] - boxes[2, 0]) / wh
    y = boxes[2, 1] + (cell // wh + rng.random(cell.size)) * (boxes[2, 3] - boxes[2, 1]) / hh
    np.testing.assert_allclose(sigma[2, 5], [x.std(), y.std()], rtol=0.01)
