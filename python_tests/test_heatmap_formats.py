"""Detector heatmaps (COCO-17, Halpe-26, SimCC) to H36M-17 maps, against brute-force and analytic references."""
import numpy as np
import pytest

from diffpose_fast.data.heatmap_formats import heatmaps_to_h36m, mean_point_map, simcc_to_heatmaps
from diffpose_fast.data.heatmaps import heatmap_to_keypoints, render_heatmaps
from diffpose_fast.data.keypoint_formats import convert_keypoints


def _brute_mean_map(maps):
    """The mean of n independent points' cell indices, enumerated cell tuple by cell tuple (float64)."""
    n, hh, wh = maps.shape
    maps = maps / maps.sum(axis=(1, 2), keepdims=True)
    out = np.zeros((hh, wh))
    grids = np.meshgrid(*([np.arange(hh * wh)] * n), indexing="ij")
    mass = np.ones(grids[0].shape)
    rows = np.zeros(grids[0].shape)
    cols = np.zeros(grids[0].shape)
    for k, g in enumerate(grids):
        mass = mass * maps[k].reshape(-1)[g]
        rows = rows + g // wh
        cols = cols + g % wh
    rows, cols = rows / n, cols / n
    for r_lo_w in (0, 1):
        for c_lo_w in (0, 1):
            r = np.floor(rows).astype(int) + r_lo_w
            c = np.floor(cols).astype(int) + c_lo_w
            wr = (1 - (rows - np.floor(rows))) if r_lo_w == 0 else (rows - np.floor(rows))
            wc = (1 - (cols - np.floor(cols))) if c_lo_w == 0 else (cols - np.floor(cols))
            np.add.at(out, (np.minimum(r, hh - 1).ravel(), np.minimum(c, wh - 1).ravel()), (mass * wr * wc).ravel())
    return out


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mean_point_map_matches_brute_force(n):
    rng = np.random.default_rng(n)
    maps = rng.random((n, 5, 4)) ** 3          # fresh, lumpy, not normalised
    np.testing.assert_allclose(mean_point_map(maps), _brute_mean_map(maps), atol=1e-12)


def test_the_mid_hip_map_is_the_distribution_of_the_midpoint_not_a_product():
    box = np.array([[0.0, 0.0, 64.0, 64.0]])
    a = render_heatmaps(np.array([[[20.0, 30.0]]]), np.array([[4.0]]), box, size=(64, 64))[0][0, 0]
    b = render_heatmaps(np.array([[[40.0, 34.0]]]), np.array([[3.0]]), box, size=(64, 64))[0][0, 0]
    mid = mean_point_map(np.stack([a, b]))
    centres = np.arange(64) + 0.5
    mx, my = (mid.sum(0) * centres).sum(), (mid.sum(1) * centres).sum()
    assert mx == pytest.approx(30.0, abs=1e-4) and my == pytest.approx(32.0, abs=1e-4)   # float32 maps
    var_x = (mid.sum(0) * (centres - mx) ** 2).sum()
    # (4^2 + 3^2) / 4 plus binning: each source's cell^2/12, halved twice, plus at most a quarter cell^2 split
    assert 25 / 4 <= var_x <= 25 / 4 + 2 * (1 / 12) / 4 + 0.25 + 1e-9
    product = a * b / (a * b).sum()
    assert (product.sum(0) * (centres - (product.sum(0) * centres).sum()) ** 2).sum() < 6.0  # sharper: wrong


def test_two_peaked_hip_gives_a_two_peaked_pelvis_half_as_far_apart():
    box = np.array([[0.0, 0.0, 128.0, 128.0]])
    left = render_heatmaps(np.array([[[40.0, 64.0]]]), np.array([[2.0]]), box, size=(64, 64),
                           second_mode=(np.array([[0.4]]), np.array([[[100.0, 64.0]]])))[0][0, 0]
    right = render_heatmaps(np.array([[[60.0, 64.0]]]), np.array([[2.0]]), box, size=(64, 64))[0][0, 0]
    mid = mean_point_map(np.stack([left, right])).sum(0)       # x marginal, cells of 2 px
    peaks = [i for i in range(1, 63) if mid[i] > mid[i - 1] and mid[i] >= mid[i + 1] and mid[i] > 0.01]
    centres = (np.array(peaks) + 0.5) * 2.0
    np.testing.assert_allclose(centres, [50.0, 80.0], atol=2.0)   # (40+60)/2 and (100+60)/2: 30 px, half of 60


def test_coco17_maps_read_back_as_convert_keypoints_would():
    rng = np.random.default_rng(4)
    t = 3
    boxes = np.tile([100.0, 50.0, 292.0, 306.0], (t, 1))        # a 192 x 256 crop
    coco = rng.uniform([130, 80], [260, 280], size=(t, 17, 2))
    hm = render_heatmaps(coco, np.full((t, 17), 5.0), boxes, size=(64, 48))[0] * 7.0   # any scale
    out, out_boxes = heatmaps_to_h36m(hm, boxes, "coco17")
    assert out.shape == (t, 17, 64, 48) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=(2, 3)), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out_boxes, boxes)
    np.testing.assert_allclose(out[:, 13], hm[:, 9] / hm[:, 9].sum(axis=(1, 2), keepdims=True), atol=1e-6)  # LWrist
    kp_coco, _ = heatmap_to_keypoints(hm, boxes, method="mean")
    expected, _ = convert_keypoints(kp_coco, "coco")
    got, _ = heatmap_to_keypoints(out, boxes, method="mean")
    np.testing.assert_allclose(got, expected, atol=0.05)        # the mean of a mean map is the mean of the means


def test_halpe26_and_h36m17_layouts_and_bad_input():
    rng = np.random.default_rng(5)
    boxes = np.tile([0.0, 0.0, 48.0, 64.0], (2, 1))
    halpe = rng.random((2, 26, 16, 12))
    out, _ = heatmaps_to_h36m(halpe, boxes, "halpe26")
    np.testing.assert_allclose(out[:, 0], halpe[:, 19] / halpe[:, 19].sum(axis=(1, 2), keepdims=True), atol=1e-6)
    same, _ = heatmaps_to_h36m(halpe[:, :17], boxes, "h36m17")
    np.testing.assert_allclose(same, halpe[:, :17] / halpe[:, :17].sum(axis=(2, 3), keepdims=True), atol=1e-6)
    with pytest.raises(ValueError, match=r"layout 'coco17' must have shape \[T, 17"):
        heatmaps_to_h36m(halpe, boxes, "coco17")
    with pytest.raises(ValueError, match="non-negative"):
        heatmaps_to_h36m(-halpe[:, :17], boxes)
    with pytest.raises(ValueError, match="boxes"):
        heatmaps_to_h36m(halpe[:, :17], boxes[:1])
    with pytest.raises(ValueError, match="layout must be one of"):
        heatmaps_to_h36m(halpe[:, :17], boxes, "openpose")


def test_simcc_decodes_where_rtmpose_decodes():
    """A SimCC distribution peaked at bin b decodes (RTMPose: argmax / split_ratio) to input coordinate b / r; the
    map built from it must put that point at the same image pixel."""
    rng = np.random.default_rng(6)
    t, k, w_in, h_in, r = 2, 17, 192, 256, 2.0
    bx = rng.integers(40, int(w_in * r) - 40, size=(t, k))
    by = rng.integers(40, int(h_in * r) - 40, size=(t, k))
    bins_x, bins_y = np.arange(int(w_in * r)), np.arange(int(h_in * r))
    logit_x = -0.5 * ((bins_x - bx[..., None]) / 3.0) ** 2        # Gaussian logits, sigma 3 bins
    logit_y = -0.5 * ((bins_y - by[..., None]) / 3.0) ** 2
    boxes = np.tile([300.0, 100.0, 300.0 + 1.5 * w_in, 100.0 + 1.5 * h_in], (t, 1))   # 1.5 image px per input px
    maps, grid_boxes = simcc_to_heatmaps(logit_x, logit_y, boxes, r, size=(256, 192))
    assert maps.shape == (t, k, 256, 192)
    kp, _ = heatmap_to_keypoints(maps, grid_boxes, method="mean")
    expected = np.stack([300.0 + 1.5 * bx / r, 100.0 + 1.5 * by / r], axis=-1)
    np.testing.assert_allclose(kp, expected, atol=0.05)
    masses, _ = simcc_to_heatmaps(np.exp(logit_x), np.exp(logit_y), boxes, r, logits=False, size=(256, 192))
    np.testing.assert_allclose(masses, maps, atol=1e-6)
    with pytest.raises(ValueError, match="same T and K"):
        simcc_to_heatmaps(logit_x[:, :5], logit_y, boxes, r)
    with pytest.raises(ValueError, match="split_ratio"):
        simcc_to_heatmaps(logit_x, logit_y, boxes, 0)


def test_read_heatmap_file_coco_and_simcc(tmp_path):
    from diffpose_fast.data.heatmap_formats import read_heatmap_file

    rng = np.random.default_rng(7)
    t = 2
    boxes = np.tile([10.0, 20.0, 202.0, 276.0], (t, 1))
    coco = rng.uniform([40, 60], [170, 240], size=(t, 17, 2))
    maps, _ = render_heatmaps(coco, 4.0, boxes, size=(64, 48))
    np.savez(tmp_path / "a.npz", heatmaps=maps, boxes=boxes, image_size=np.array([640, 480]))
    got = read_heatmap_file(tmp_path / "a.npz")
    assert got.image_size == (640.0, 480.0) and got.heatmaps.shape == (t, 17, 64, 48)
    np.testing.assert_allclose(got.keypoints[:, 13], coco[:, 9], atol=1.0)     # COCO left wrist -> H36M 13
    bins = np.arange(384)
    sx = -0.5 * ((bins - 2 * coco[..., 0:1] + 20) / 4.0) ** 2                 # input px = image px - box origin
    sy = -0.5 * ((np.arange(512) - 2 * coco[..., 1:2] + 40) / 4.0) ** 2
    np.savez(tmp_path / "s.npz", simcc_x=sx, simcc_y=sy, boxes=boxes, split_ratio=np.array(2.0),
             layout=np.array("coco17"))
    got = read_heatmap_file(tmp_path / "s.npz")
    np.testing.assert_allclose(got.keypoints[:, 13], coco[:, 9], atol=1.5)
    np.savez(tmp_path / "bad.npz", heatmaps=maps)
    with pytest.raises(ValueError, match="no 'boxes' array"):
        read_heatmap_file(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        read_heatmap_file(tmp_path / "none.npz")
