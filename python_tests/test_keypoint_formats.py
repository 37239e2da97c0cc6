"""Keypoint layout converters on hand-made keypoint sets: sides never swap, derived joints, missing stays missing."""
import numpy as np
import pytest

from diffpose_fast.data.keypoint_formats import FORMATS, convert_keypoints, get_format
from diffpose_fast.data.skeleton import JOINT_NAMES

H = {name: i for i, name in enumerate(JOINT_NAMES)}


def _labelled(fmt):
    """Keypoints whose x encodes the source index (x = 10 * i), y = 1, confidence = 0.5 + i / 100."""
    n = FORMATS[fmt].num_keypoints
    i = np.arange(n, dtype=np.float64)
    return np.stack([10 * i, np.ones(n), 0.5 + i / 100], axis=-1)[None]


@pytest.mark.parametrize("fmt, lhip, rhip, lsho, rsho, lwri, rwri, lank, rank", [
    ("coco", 11, 12, 5, 6, 9, 10, 15, 16),
    ("halpe26", 11, 12, 5, 6, 9, 10, 15, 16),
    ("body25", 12, 9, 5, 2, 7, 4, 14, 11),
    ("body25b", 11, 12, 5, 6, 9, 10, 15, 16),
    ("blazepose33", 23, 24, 11, 12, 15, 16, 27, 28),
])
def test_left_right_never_swap(fmt, lhip, rhip, lsho, rsho, lwri, rwri, lank, rank):
    xy, conf = convert_keypoints(_labelled(fmt), fmt)
    assert xy.shape == (1, 17, 2) and conf.shape == (1, 17)
    for h36m, src in (("LHip", lhip), ("RHip", rhip), ("LShoulder", lsho), ("RShoulder", rsho),
                      ("LWrist", lwri), ("RWrist", rwri), ("LFoot", lank), ("RFoot", rank)):
        assert xy[0, H[h36m], 0] == 10 * src, (fmt, h36m)
        assert conf[0, H[h36m]] == pytest.approx(0.5 + src / 100)


def test_coco_left_hip_goes_to_h36m_index_4_and_derived_joints():
    xy, conf = convert_keypoints(_labelled("coco"), "coco")
    assert xy[0, 4, 0] == 110 and xy[0, 1, 0] == 120              # COCO 11 left_hip -> LHip (4)
    assert xy[0, 0, 0] == pytest.approx(115)                      # pelvis = mid hips
    assert xy[0, 8, 0] == pytest.approx(55)                       # thorax = mid shoulders
    assert xy[0, 7, 0] == pytest.approx((115 + 55) / 2)           # spine = mid(pelvis, thorax)
    assert xy[0, 9, 0] == 0 and xy[0, 10, 0] == pytest.approx(15)  # nose, mid eyes
    assert conf[0, 0] == pytest.approx(0.61) and conf[0, 7] == pytest.approx(0.55)   # min of sources


def test_body25_and_halpe_specific_joints():
    xy, _ = convert_keypoints(_labelled("body25"), "body25")
    assert xy[0, 0, 0] == 80 and xy[0, 8, 0] == 10 and xy[0, 7, 0] == pytest.approx(45)
    xy, _ = convert_keypoints(_labelled("halpe26"), "halpe26")
    assert xy[0, 0, 0] == 190 and xy[0, 8, 0] == 180 and xy[0, 10, 0] == 170 and xy[0, 7, 0] == 185
    xy, _ = convert_keypoints(_labelled("body25b"), "body25b")
    assert xy[0, 10, 0] == 180                                     # HeadTop


def test_missing_sources_stay_missing():
    kps = _labelled("coco").repeat(3, axis=0)
    kps[0, 11, 2] = 0.0                     # left hip undetected (confidence 0)
    kps[1, 5, :2] = np.nan                  # left shoulder NaN
    xy, conf = convert_keypoints(kps, "coco")
    for j in (H["LHip"], H["Hip"], H["Spine"]):
        assert conf[0, j] == 0 and np.isnan(xy[0, j]).all()
    for j in (H["LShoulder"], H["Thorax"], H["Spine"]):
        assert conf[1, j] == 0 and np.isnan(xy[1, j]).all()
    assert conf[0, H["RHip"]] > 0 and conf[2].min() > 0 and np.isfinite(xy[2]).all()
    xy2, conf2 = convert_keypoints(kps, "coco", min_confidence=0.6)   # threshold marks low scores missing
    assert conf2[2, H["LHip"]] == pytest.approx(0.61) and conf2[2, H["LShoulder"]] == 0


def test_two_channel_input_and_leading_dims():
    kps = _labelled("coco")[..., :2].repeat(4, axis=0).reshape(2, 2, 17, 2)
    xy, conf = convert_keypoints(kps, "coco")
    assert xy.shape == (2, 2, 17, 2) and (conf == 1).all()


def test_identity_and_errors():
    kps = np.random.default_rng(0).uniform(size=(2, 17, 3))
    xy, conf = convert_keypoints(kps, "h36m")
    np.testing.assert_array_equal(xy, kps[..., :2])
    assert get_format("mediapipe").name == "blazepose33" and get_format("OpenPose").name == "body25"
    with pytest.raises(ValueError, match=r"format 'coco' must have shape \[\.\.\., 17, 2 or 3\], got \(1, 25, 3\)"):
        convert_keypoints(np.zeros((1, 25, 3)), "coco")
    with pytest.raises(ValueError, match="unknown keypoint format 'yolo'"):
        convert_keypoints(np.zeros((1, 17, 3)), "yolo")
