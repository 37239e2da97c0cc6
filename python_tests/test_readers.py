"""Detector output readers: COCO-style JSON, OpenPose folders, npz/npy/csv; masking and interpolation."""
import json

import numpy as np
import pytest

from diffpose_fast.data.readers import (interpolate_missing, read_coco_json, read_keypoint_array,
                                        read_openpose_folder)


def _coco_kps(x0, score=0.9):
    """17 COCO keypoints, keypoint i at (x0 + i, 100 + i)."""
    return [v for i in range(17) for v in (x0 + i, 100.0 + i, score)]


def test_coco_json_tracks_and_masked_frames(tmp_path):
    dets = [
        {"image_id": 0, "category_id": 1, "keypoints": _coco_kps(10), "score": 0.9, "track_id": 1},
        {"image_id": 2, "category_id": 1, "keypoints": _coco_kps(12), "score": 0.9, "track_id": 1},
        {"image_id": 1, "category_id": 1, "keypoints": _coco_kps(50), "score": 0.8, "track_id": 2},
        {"image_id": 1, "category_id": 2, "keypoints": _coco_kps(99), "score": 0.8, "track_id": 2},  # not person
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(dets))
    t1, t2 = read_coco_json(path)
    assert t1.track_id == 1 and t1.frame_ids == (0, 1, 2) and t1.keypoints.shape == (3, 17, 2)
    assert t1.confidence[1].max() == 0 and np.isnan(t1.keypoints[1]).all()     # frame 1: no detection, masked
    assert t1.keypoints[0, 4, 0] == 10 + 11 and t1.keypoints[2, 1, 0] == 12 + 12   # LHip <- 11, RHip <- 12
    np.testing.assert_allclose(t1.confidence[0], 0.9)
    assert t2.detected().tolist() == [False, True, False]
    seq = t1.to_sequence((640, 480))
    assert seq.num_frames == 3

    filled, conf = interpolate_missing(t1.keypoints, t1.confidence, max_gap=1)
    np.testing.assert_allclose(filled[1], (t1.keypoints[0] + t1.keypoints[2]) / 2)
    np.testing.assert_allclose(conf[1], 0.9)
    same, conf0 = interpolate_missing(t1.keypoints, t1.confidence, max_gap=0)
    assert np.isnan(same[1]).all() and conf0[1].max() == 0


def test_coco_json_without_track_ids_keeps_best_per_frame(tmp_path):
    dets = [{"image_id": "f_10.jpg", "keypoints": _coco_kps(1), "score": 0.5},
            {"image_id": "f_10.jpg", "keypoints": _coco_kps(2), "score": 0.7},
            {"image_id": "f_9.jpg", "keypoints": _coco_kps(3), "score": 0.7}]
    path = tmp_path / "alphapose.json"
    path.write_text(json.dumps(dets))
    (track,) = read_coco_json(path)
    assert track.frame_ids == ("f_9.jpg", "f_10.jpg")                 # natural order
    assert track.keypoints[1, 9, 0] == 2 and track.keypoints[0, 9, 0] == 3


def test_coco_json_errors(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="no person detections"):
        read_coco_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .* as JSON"):
        read_coco_json(path)
    path.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 75}]))
    with pytest.raises(ValueError, match="cannot tell the keypoint format from 25 keypoints"):
        read_coco_json(path)
    with pytest.raises(FileNotFoundError):
        read_coco_json(tmp_path / "missing.json")


def test_openpose_folder(tmp_path):
    def person(x0, conf):
        return {"pose_keypoints_2d": [v for i in range(25) for v in (x0 + i, 200.0 + i, conf)]}
    frames = [[person(0, 0.5), person(100, 0.9)], [], [person(10, 0.8)]]
    for t, people in enumerate(frames):
        (tmp_path / f"video_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    track = read_openpose_folder(tmp_path)
    assert track.frame_ids[0] == "video_000000000000_keypoints"
    assert track.keypoints[0, 0, 0] == 100 + 8          # most confident person; Hip <- MidHip (8)
    assert track.keypoints[0, 4, 0] == 100 + 12         # LHip <- BODY_25 12
    assert track.confidence[1].max() == 0 and track.keypoints[2, 8, 0] == 10 + 1   # Thorax <- Neck (1)
    first = read_openpose_folder(tmp_path, person=0)
    assert first.keypoints[0, 0, 0] == 8
    with pytest.raises(ValueError, match="no .json files"):
        read_openpose_folder(tmp_path / "..")


def test_keypoint_arrays_npz_npy_csv(tmp_path):
    rng = np.random.default_rng(0)
    kps = np.concatenate([rng.uniform(0, 500, size=(4, 17, 2)), np.full((4, 17, 1), 0.8)], axis=-1)
    np.savez(tmp_path / "k.npz", keypoints=kps, fps=np.array(30))
    np.save(tmp_path / "k.npy", kps[..., :2])
    header = ",".join(f"{c}{i}" for i in range(17) for c in "xyc")
    np.savetxt(tmp_path / "k.csv", kps.reshape(4, -1), delimiter=",", header=header, comments="")
    a = read_keypoint_array(tmp_path / "k.npz", "coco")
    b = read_keypoint_array(tmp_path / "k.npy", "coco")
    c = read_keypoint_array(tmp_path / "k.csv", "coco")
    np.testing.assert_allclose(a.keypoints, b.keypoints)
    np.testing.assert_allclose(a.keypoints, c.keypoints)
    np.testing.assert_allclose(a.confidence, 0.8)
    np.testing.assert_allclose(b.confidence, 1.0)
    np.testing.assert_allclose(a.keypoints[:, 11], kps[:, 5, :2])      # LShoulder <- COCO 5
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="rows have 3 values"):
        read_keypoint_array(tmp_path / "bad.csv", "coco")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_keypoint_array(tmp_path / "x.txt", "coco")


def test_interpolation_never_extrapolates_and_respects_max_gap():
    t = 8
    kp = np.zeros((t, 1, 2))
    kp[:, 0, 0] = np.arange(t, dtype=float)
    conf = np.ones((t, 1))
    conf[[0, 2, 3, 4, 7], 0] = 0
    kp[conf[:, 0] == 0] = np.nan
    out, c = interpolate_missing(kp, conf, max_gap=None)
    assert np.isnan(out[0]).all() and np.isnan(out[7]).all() and c[0, 0] == 0 and c[7, 0] == 0
    np.testing.assert_allclose(out[2:5, 0, 0], [2, 3, 4])
    out2, c2 = interpolate_missing(kp, conf, max_gap=2)
    assert np.isnan(out2[2:5]).all() and (c2[2:5] == 0).all()
