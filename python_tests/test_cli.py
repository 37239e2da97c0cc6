"""The command line: the demo end to end (tiny), lift on every input format, train / evaluate / bench / info,
every --help, and the user errors (exit code 2, one line naming the problem)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from diffpose_fast.cli import main
from diffpose_fast.data.skeleton import JOINT_NAMES
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.export import UNITS

COMMANDS = ("demo", "lift", "train", "evaluate", "bench", "info")
T = 5


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The quick demo, run once: its model folder serves the lift tests."""
    out = tmp_path_factory.mktemp("demo")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["demo", "--quick", "--out", str(out), "--no-progress"])
    return code, out, buf.getvalue()


@pytest.fixture(scope="module")
def h36m_2d():
    seq = generate_sequences(1, T, seed=11)[0]
    return np.asarray(seq.keypoints_2d, np.float64), tuple(seq.image_size)


def _coco17(kp):
    """H36M-17 keypoints [T, 17, 2] -> COCO-17 [T, 17, 3] (eyes and ears placed around the head)."""
    head = kp[:, 10]
    up = np.array([0.0, -3.0])
    side = np.array([4.0, 0.0])
    rows = [kp[:, 9], head + side + up, head - side + up, head + 2 * side, head - 2 * side,
            kp[:, 11], kp[:, 14], kp[:, 12], kp[:, 15], kp[:, 13], kp[:, 16],
            kp[:, 4], kp[:, 1], kp[:, 5], kp[:, 2], kp[:, 6], kp[:, 3]]
    out = np.stack(rows, 1)
    return np.concatenate([out, np.full(out.shape[:2] + (1,), 0.9)], -1)


def _body25(kp):
    c = _coco17(kp)
    z = np.zeros((kp.shape[0], 3))
    mid = lambda a, b: np.concatenate([(c[:, a, :2] + c[:, b, :2]) / 2, c[:, a, 2:]], -1)  # noqa: E731
    rows = [c[:, 0], mid(5, 6), c[:, 6], c[:, 8], c[:, 10], c[:, 5], c[:, 7], c[:, 9], mid(11, 12),
            c[:, 12], c[:, 14], c[:, 16], c[:, 11], c[:, 13], c[:, 15], c[:, 2], c[:, 1], c[:, 4], c[:, 3],
            z, z, z, z, z, z]
    return np.stack(rows, 1)


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _check_outputs(folder, name, frames, lifted=None, n=2):
    with np.load(folder / f"{name}.npz", allow_pickle=False) as z:
        assert z["mean"].shape == (frames, 17, 3) and z["samples"].shape == (n, frames, 17, 3)
        assert z["std"].shape == (frames, 17) and str(z["units"]) == UNITS
        ok = z["lifted"]
        if lifted is not None:
            np.testing.assert_array_equal(ok, lifted)
        assert np.isfinite(z["mean"][ok]).all() and np.isnan(z["mean"][~ok]).all()
        np.testing.assert_allclose(z["mean"][ok][:, 0], 0.0, atol=1e-5)  # root-relative
    doc = json.loads((folder / f"{name}.json").read_text())
    assert doc["units"] == "metres, root-relative, camera frame (x right, y down, z forward)"
    assert doc["joint_names"] == list(JOINT_NAMES) and len(doc["mean"]) == frames
    assert np.array(doc["samples"], dtype=float).shape == (n, frames, 17, 3)


# ------------------------------------------------------------------------------------------------ demo

def test_demo_quick_end_to_end(demo):
    code, out, text = demo
    assert code == 0
    for name in ("demo.png", "demo.gif", "heldout.npz", "heldout.json", "heldout.bvh", "results.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 100, name
    assert (out / "model").is_dir() and any((out / "model").iterdir())
    assert "MPJPE mm" in text and "P-MPJPE mm" in text
    assert any(line.startswith("context") for line in text.splitlines())
    assert any(line.startswith("ddim") for line in text.splitlines())
    assert str(out.resolve()) in text
    results = json.loads((out / "results.json").read_text())
    assert [r["sampler"] for r in results["rows"]] == ["context", "ddim"]
    assert results["settings"]["context_steps"] == 2  # the quick settings, recorded
    import imageio.v2 as iio

    img = iio.imread(out / "demo.png")[..., :3].astype(int)
    assert (np.abs(img - 255).sum(-1) > 30).mean() > 0.02


def test_demo_table_is_the_saved_models_evaluation(demo):
    """Each row is one ``evaluate`` pass of the saved model over the held-out set; the spread line is the calibrated
    one (the quick demo holds out a calibration set) from that same DDIM pass."""
    from diffpose_fast.demo import DemoSettings
    from diffpose_fast.lifter import DiffPoseLifter

    _, out, _ = demo
    results = json.loads((out / "results.json").read_text())
    s = DemoSettings.quick()
    test = generate_sequences(s.test_sequences, s.test_frames, seed=s.test_seed)
    lifter = DiffPoseLifter.load(out / "model")
    assert lifter.calibration is not None
    for row in results["rows"]:
        rep = lifter.evaluate(test, sampler=row["sampler"], num_samples=s.num_samples,
                              steps=s.sampling_steps if row["sampler"] == "ddim" else None)
        assert row["frames"] == rep["frames"] == s.test_sequences * s.test_frames
        assert row["mpjpe_mm"] == pytest.approx(rep["mpjpe_mm"], rel=1e-9)
        assert row["p_mpjpe_mm"] == pytest.approx(rep["p_mpjpe_mm"], rel=1e-9)
    assert results["uncertainty"]["std"] == "calibrated"
    assert results["uncertainty"]["within_1std"] == pytest.approx(rep["uncertainty"]["within_1std"], rel=1e-9)


# ------------------------------------------------------------------------------------------------ lift

def test_lift_coco_json_two_tracks(tmp_path, capsys, demo, h36m_2d):
    kp, size = h36m_2d
    coco = _coco17(kp)
    dets = []
    for t in range(T):
        dets.append({"image_id": t, "category_id": 1, "track_id": 1, "score": 0.9,
                     "keypoints": coco[t].ravel().tolist()})
        if t != 3:  # track 2 is not detected in frame 3
            other = coco[t].copy()
            other[:, 0] += 150
            dets.append({"image_id": t, "category_id": 1, "track_id": 2, "score": 0.8,
                         "keypoints": other.ravel().tolist()})
    path = tmp_path / "results.json"
    path.write_text(json.dumps(dets))
    out = tmp_path / "out"
    code, text, err = _run(capsys, ["lift", path, "--checkpoint", demo[1] / "model", "--image-size", *size,
                                    "--out", out, "--num-samples", 2, "--steps", 2, "--bvh", "--no-progress"])
    assert code == 0, err
    _check_outputs(out, "results_track1", T, np.ones(T, bool))
    lifted = np.ones(T, bool)
    lifted[3] = False
    _check_outputs(out, "results_track2", T, lifted)
    assert (out / "results_track1.bvh").is_file() and "results_track2" in text


def test_lift_openpose_folder(tmp_path, capsys, demo, h36m_2d):
    kp, size = h36m_2d
    body = _body25(kp)
    folder = tmp_path / "op"
    folder.mkdir()
    for t in range(T):
        people = [] if t == 0 else [{"pose_keypoints_2d": body[t].ravel().tolist()}]
        (folder / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    code, _, err = _run(capsys, ["lift", folder, "--checkpoint", demo[1] / "model", "--format", "openpose",
                                 "--image-size", *size, "--num-samples", 2, "--steps", 2, "--no-progress"])
    assert code == 0, err
    lifted = np.ones(T, bool)
    lifted[0] = False
    _check_outputs(tmp_path / "op_3d", "op", T, lifted)


def test_lift_npz_with_recorded_image_size_and_render(tmp_path, capsys, demo, h36m_2d):
    kp, size = h36m_2d
    path = tmp_path / "kps.npz"
    np.savez(path, keypoints=kp, image_size=np.array(size))
    code, text, err = _run(capsys, ["lift", path, "--checkpoint", demo[1] / "model", "--format", "h36m",
                                    "--out", tmp_path / "o", "--num-samples", 2, "--steps", 2, "--render",
                                    "--render-frames", 2, "--no-progress"])
    assert code == 0, err
    _check_outputs(tmp_path / "o", "kps", T)
    assert (tmp_path / "o" / "kps.png").is_file() and (tmp_path / "o" / "kps.gif").is_file()


def test_lift_csv_and_context_sampler(tmp_path, capsys, demo, h36m_2d):
    kp, size = h36m_2d
    coco = _coco17(kp)
    path = tmp_path / "kps.csv"
    header = ",".join(f"{n}_{c}" for n in range(17) for c in "xyc")
    rows = [",".join(f"{v:.3f}" for v in frame.ravel()) for frame in coco]
    path.write_text("\n".join([header] + rows) + "\n")
    code, _, err = _run(capsys, ["lift", path, "--checkpoint", demo[1] / "model", "--format", "coco",
                                 "--image-size", *size, "--out", tmp_path / "o", "--sampler", "context"])
    assert code == 0, err
    _check_outputs(tmp_path / "o", "kps", T, n=1)


def test_lift_errors(tmp_path, capsys, demo, h36m_2d):
    kp, size = h36m_2d
    ckpt = demo[1] / "model"
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps([{"image_id": 0, "keypoints": _coco17(kp)[0].ravel().tolist()}]))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    frame = tmp_path / "000_keypoints.json"
    frame.write_text(json.dumps({"people": []}))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([{"image_id": 0, "category_id": 2, "keypoints": [1.0, 2.0, 1.0] * 17}]))
    zero = tmp_path / "zero.npz"
    np.savez(zero, keypoints=np.zeros((3, 17, 3)))
    arr = tmp_path / "a.npz"
    np.savez(arr, keypoints=kp)
    cases = [
        (["lift", tmp_path / "nope.json"], "no such file"),
        (["lift", bad], "cannot read"),
        (["lift", frame], "single OpenPose frame"),
        (["lift", coco], "--image-size W H is required"),
        (["lift", coco, "--format", "openpose", "--image-size", *size], "has 25 keypoints"),
        (["lift", empty, "--image-size", *size], "no person detections"),
        (["lift", zero, "--format", "h36m", "--image-size", *size], "empty detections"),
        (["lift", arr, "--image-size", *size], "--format is required"),
        (["lift", tmp_path / "x.txt", "--image-size", *size], "no such file"),
        (["lift", arr, "--format", "h36m", "--image-size", 10, 10], "image-size"),
    ]
    (tmp_path / "x.txt").write_text("hello")
    cases[-2] = (["lift", tmp_path / "x.txt", "--image-size", *size], "unsupported input")
    for argv, needle in cases:
        code, _, err = _run(capsys, argv + ["--checkpoint", ckpt])
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("diffpose-fast lift: error:"), err
        assert needle in lines[0], (needle, lines[0])
    code, _, err = _run(capsys, ["lift", arr, "--format", "h36m", "--image-size", *size,
                                 "--checkpoint", tmp_path / "missing"])
    assert code == 2 and "no such model folder" in err
    code, _, err = _run(capsys, ["lift", arr, "--format", "yolo", "--checkpoint", ckpt])
    assert code == 2 and "invalid choice: 'yolo'" in err


# ------------------------------------------------------------------------------------------------ the rest

@pytest.mark.parametrize("command", COMMANDS)
def test_help(capsys, command):
    code, out, _ = _run(capsys, [command, "--help"])
    assert code == 0 and out.startswith("usage: diffpose-fast " + command)


def test_top_level_help_and_missing_command(capsys):
    code, out, _ = _run(capsys, ["--help"])
    assert code == 0 and all(c in out for c in COMMANDS)
    code, _, err = _run(capsys, [])
    assert code == 2 and "required" in err


def test_info(capsys):
    code, out, _ = _run(capsys, ["info"])
    assert code == 0 and "native module" in out and "torch device:" in out


def test_train_evaluate_bench_synthetic(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("embed_dim: 32\ncontext_dim: 32\ndenoiser_heads: 4\nencoder_layers: 1\ngmm_samples: 16\n"
                   "batch_size: 16\n")
    model = tmp_path / "m"
    code, out, err = _run(capsys, ["train", "--data", "synthetic", "--config", cfg, "--out", model,
                                   "--train-sequences", 2, "--frames", 8, "--context-steps", 1,
                                   "--diffusion-steps", 1, "--no-progress"])
    assert code == 0, err
    assert (model / "history.json").is_file() and "model folder" in out
    code, out, err = _run(capsys, ["evaluate", "--checkpoint", model, "--data", "synthetic", "--sequences", 2,
                                   "--frames", 4, "--num-samples", 2, "--steps", 1, "--json", tmp_path / "r.json",
                                   "--plot-calibration", tmp_path / "cal.png"])
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert "MPJPE" in out and report["protocol"] == "synthetic"
    # 16 training frames are too few to hold out a calibration slice: the report reads the raw spread
    assert report["uncertainty"]["std"] == "raw" and "Uncertainty (raw std" in out
    assert len(report["uncertainty"]["coverage_observed"]) == 19
    assert (tmp_path / "cal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = _run(capsys, ["evaluate", "--checkpoint", model, "--data", "synthetic", "--sequences", 1,
                                   "--frames", 4, "--sampler", "context", "--plot-calibration", tmp_path / "c.png"])
    assert code == 2 and "--plot-calibration: the model gave no spread" in err.strip().splitlines()[-1]
    code, out, err = _run(capsys, ["bench", "--checkpoint", model, "--frames", 8, "--batch-size", 8,
                                   "--repeats", 1, "--backends", "reference", "--steps", 1, "--num-samples", 2])
    assert code == 0, err
    assert "frames/s" in out and "cpu" in out


def test_bench_untrained_video_model(capsys):
    code, out, err = _run(capsys, ["bench", "--mode", "video", "--frames", 4, "--batch-size", 4, "--repeats", 1,
                                   "--backends", "auto", "--steps", 1, "--num-samples", 1])
    assert code == 0, err
    assert "video (window 243 frames)" in out and "backend auto" in out and "frames/s" in out


def test_train_and_evaluate_errors(tmp_path, capsys):
    cases = [
        (["train", "--data", "h36m", "--out", tmp_path / "m"], "--data h36m needs --data-3d and --data-2d"),
        (["train", "--data", "3dhp", "--out", tmp_path / "m"], "--train-npz"),
        (["train", "--data", "synthetic", "--out", tmp_path / "m", "--config", tmp_path / "none.json"],
         "no such file"),
        (["evaluate", "--data", "h36m", "--checkpoint", tmp_path, "--data-3d", tmp_path / "x.npz",
          "--data-2d", tmp_path / "y.npz"], "no such file"),
        (["evaluate", "--data", "synthetic", "--checkpoint", tmp_path / "none"], "no such model folder"),
        (["train", "--data", "synthetic", "--out", tmp_path / "m", "--device", "cuda:7"], "--device"),
    ]
    bad_cfg = tmp_path / "bad.json"
    bad_cfg.write_text(json.dumps({"embed_dimension": 3}))
    cases.append((["train", "--data", "synthetic", "--out", tmp_path / "m", "--config", bad_cfg], "unknown key"))
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        cases.append((["train", "--data", "synthetic", "--out", tmp_path / "m", "--tensorboard", tmp_path / "tb"],
                      "pip install tensorboard"))
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        cases = [c for c in cases if "--device" not in c[0]]
    for argv, needle in cases:
        code, _, err = _run(capsys, argv)
        assert code == 2, (argv, err)
        assert needle in err and len(err.strip().splitlines()) == 1, (needle, err)
    assert not os.path.exists(tmp_path / "m")  # nothing was trained


def test_hostile_and_corrupt_inputs_give_one_line_and_exit_2(tmp_path, capsys, demo, h36m_2d):
    """Files that fail deep inside the readers (a forged pickle, a corrupt member, JSON nested past the recursion
    limit, a truncated model file) end in one line naming the problem, exit 2, no traceback."""
    import zipfile

    from _hostile import ForgedArray, ForgedDtype, write_object_npz

    kp, size = h36m_2d
    ckpt = demo[1] / "model"
    plain = tmp_path / "plain.npz"
    np.savez(plain, keypoints=kp)
    forged = tmp_path / "forged.npz"
    write_object_npz(forged, ForgedArray((1, (2,), ForgedDtype("O8", (3, "|", None, None, None, -1, -1, 0)),
                                            False, b"\x41" * 16)), (2,))
    corrupt = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(corrupt, "w") as archive:
        archive.writestr("keypoints.npy", b"junk that is not an array")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 200_000 + "]" * 200_000)
    broken_model = tmp_path / "broken_model"
    import shutil

    shutil.copytree(ckpt, broken_model)
    meta = json.loads((broken_model / "config.json").read_text())
    weights = broken_model / meta["tensors"]["weights_ema"]
    weights.write_bytes(weights.read_bytes()[:100])
    cases = [
        (["lift", forged, "--format", "h36m", "--image-size", *size, "--checkpoint", ckpt], "refusing"),
        (["lift", corrupt, "--format", "h36m", "--image-size", *size, "--checkpoint", ckpt], "not a .npy"),
        (["lift", nested, "--format", "coco", "--image-size", *size, "--checkpoint", ckpt], nested.name),
        (["lift", plain, "--format", "h36m", "--image-size", *size, "--checkpoint", broken_model], "damaged"),
    ]
    for argv, needle in cases:
        code, _, err = _run(capsys, argv)
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("diffpose-fast lift: error:"), err
        assert needle in lines[0] and "Traceback" not in err, (needle, err)


def test_evaluate_flip_tta_defaults_to_the_protocols_own(tmp_path, capsys, monkeypatch):
    """3DHP's protocol flips by default (as the official code); the CLI passes --flip-tta / --no-flip-tta only
    when given, so `evaluate --data 3dhp` and `protocols.evaluate_3dhp` agree."""
    import inspect

    from diffpose_fast import cli, protocols

    seen = []

    def fake(name):
        if name == "format_report":
            return lambda report: "report"
        real = getattr(protocols, name)

        def run(*args, **kwargs):
            flip = kwargs.get("flip_tta", inspect.signature(real).parameters["flip_tta"].default)
            seen.append((name, flip))
            return {}
        return run

    monkeypatch.setattr(cli.evaluate, "_protocols", fake)   # the evaluate command's own lookup
    (tmp_path / "m").mkdir()
    for name in ("t.npz", "a.npz", "b.npz"):   # existence is checked by the CLI; the fake protocol reads nothing
        (tmp_path / name).write_bytes(b"")
    base = ["evaluate", "--checkpoint", tmp_path / "m"]
    for extra, want in (([], True), (["--no-flip-tta"], False), (["--flip-tta"], True)):
        code, _, err = _run(capsys, base + ["--data", "3dhp", "--test-npz", tmp_path / "t.npz"] + extra)
        assert code == 0, err
        assert seen[-1] == ("evaluate_3dhp", want)
    for extra, want in (([], False), (["--flip-tta"], True)):
        code, _, err = _run(capsys, base + ["--data", "h36m", "--data-3d", tmp_path / "a.npz", "--data-2d",
                                            tmp_path / "b.npz"] + extra)
        assert code == 0, err
        assert seen[-1] == ("evaluate_h36m", want)


def test_lift_never_joins_frames_across_a_gap(tmp_path, capsys, demo, monkeypatch):
    """Frames without enough joints split the track: each run of consecutive frames is lifted on its own, and
    the gap stays NaN in the outputs."""
    from diffpose_fast import DiffPoseLifter

    seq = generate_sequences(1, 9, seed=12)[0]
    kp = np.concatenate([np.asarray(seq.keypoints_2d, np.float64), np.ones((9, 17, 1))], -1)
    kp[3:5, :, 2] = 0.0                       # frames 3 and 4: nothing detected
    path = tmp_path / "gap.npy"
    np.save(path, kp)
    lengths = []
    real = DiffPoseLifter.predict

    def spy(self, x, **kwargs):
        lengths.append(x.num_frames)
        return real(self, x, **kwargs)

    monkeypatch.setattr(DiffPoseLifter, "predict", spy)
    code, _, err = _run(capsys, ["lift", path, "--checkpoint", demo[1] / "model", "--format", "h36m",
                                 "--image-size", *seq.image_size, "--out", tmp_path / "o", "--num-samples", 2,
                                 "--steps", 1, "--no-progress"])
    assert code == 0, err
    assert lengths == [3, 4]
    with np.load(tmp_path / "o" / "gap.npz", allow_pickle=False) as z:
        mean = z["mean"]
    assert np.isnan(mean[3:5]).all() and np.isfinite(mean[[0, 1, 2, 5, 6, 7, 8]]).all()


def test_lift_from_a_heatmap_file(tmp_path, capsys, demo, h36m_2d, monkeypatch):
    """--heatmaps alone: keypoints read from COCO-17 maps, converted to H36M, and the maps themselves handed to
    predict to build H_K; with INPUT too, its keypoints and the maps' H_K, frames matched."""
    from diffpose_fast import DiffPoseLifter
    from diffpose_fast.data.heatmaps import render_heatmaps
    from diffpose_fast.data.keypoint_formats import convert_keypoints

    kp, size = h36m_2d
    coco = _coco17(kp)[..., :2]
    lo, hi = coco.min(1) - 40, coco.max(1) + 40
    boxes = np.concatenate([lo, hi], -1)
    maps, _ = render_heatmaps(coco, 3.0, boxes, size=(64, 48))
    path = tmp_path / "maps.npz"
    np.savez(path, heatmaps=maps * 255.0, boxes=boxes, image_size=np.array(size), layout=np.array("coco17"))
    seen = []
    real = DiffPoseLifter.predict

    def spy(self, x, **kwargs):
        seen.append(x)
        return real(self, x, **kwargs)

    monkeypatch.setattr(DiffPoseLifter, "predict", spy)
    code, out, err = _run(capsys, ["lift", "--heatmaps", path, "--checkpoint", demo[1] / "model", "--out",
                                   tmp_path / "o", "--num-samples", 2, "--steps", 1, "--no-progress"])
    assert code == 0, err
    _check_outputs(tmp_path / "o", "maps", T)
    (seq,) = seen
    assert seq.heatmaps.shape == (T, 17, 64, 48)
    expected, _ = convert_keypoints(coco, "coco")
    np.testing.assert_allclose(seq.keypoints_2d, expected, atol=1.5)   # soft-argmax of 3 px maps with 4 px cells
    npy = tmp_path / "kps.npy"
    np.save(npy, kp)
    code, _, err = _run(capsys, ["lift", npy, "--format", "h36m", "--heatmaps", path, "--checkpoint",
                                 demo[1] / "model", "--out", tmp_path / "o2", "--num-samples", 2, "--steps", 1,
                                 "--no-progress"])
    assert code == 0, err
    np.testing.assert_array_equal(seen[-1].keypoints_2d, kp.astype(np.float32))
    assert seen[-1].heatmaps is not None
    np.save(npy, kp[:3])
    code, _, err = _run(capsys, ["lift", npy, "--format", "h36m", "--heatmaps", path, "--checkpoint",
                                 demo[1] / "model", "--out", tmp_path / "o3", "--no-progress"])
    assert code == 2 and "same person and frames" in err
    bad = tmp_path / "bad.npz"
    np.savez(bad, boxes=boxes)
    code, _, err = _run(capsys, ["lift", "--heatmaps", bad, "--checkpoint", demo[1] / "model", "--no-progress"])
    assert code == 2 and "neither 'heatmaps' nor 'simcc_x'" in err
    code, _, err = _run(capsys, ["lift", "--checkpoint", demo[1] / "model"])
    assert code == 2 and "give INPUT" in err


def test_lift_with_a_camera_writes_the_trajectory(tmp_path, capsys, demo):
    """--camera: the outputs hold the pelvis trajectory, equal to trajectory.root_trajectory of the written mean,
    and the BVH's root moves with it."""
    from diffpose_fast.data.camera import Camera
    from diffpose_fast.export import read_bvh, read_json
    from diffpose_fast.trajectory import root_trajectory

    seq = generate_sequences(1, 6, seed=13)[0]
    cam = seq.camera
    path = tmp_path / "k.npy"
    np.save(path, np.asarray(seq.keypoints_2d, np.float64))
    code, _, err = _run(capsys, ["lift", path, "--format", "h36m", "--image-size", *seq.image_size, "--camera",
                                 cam.fx, cam.fy, cam.cx, cam.cy, "--checkpoint", demo[1] / "model", "--out",
                                 tmp_path / "o", "--num-samples", 2, "--steps", 1, "--bvh", "--no-progress"])
    assert code == 0, err
    with np.load(tmp_path / "o" / "k.npz", allow_pickle=False) as z:
        traj, mean, conf = z["trajectory"], z["mean"], z["confidence"]
    expected = root_trajectory(mean, seq.keypoints_2d, Camera(cam.fx, cam.fy, cam.cx, cam.cy), conf)
    np.testing.assert_allclose(traj, expected, rtol=1e-4, atol=1e-4)
    assert (traj[:, 2] > 1.0).all()                         # metres in front of the camera
    np.testing.assert_allclose(read_json(tmp_path / "o" / "k.json")["trajectory"], traj, atol=1e-5)
    root_channels = read_bvh(tmp_path / "o" / "k.bvh").motion[:, :3] / 100.0   # the root's X Y Z, cm -> m
    # BVH axes (X, -Y, -Z) of the camera frame: the root follows the trajectory, not the origin
    np.testing.assert_allclose(np.abs(root_channels), np.abs(traj), atol=2e-3)
    code, _, err = _run(capsys, ["lift", path, "--format", "h36m", "--image-size", *seq.image_size, "--camera",
                                 -1, 1, 0, 0, "--checkpoint", demo[1] / "model", "--no-progress"])
    assert code == 2 and "--camera: " in err and "focal lengths must be positive" in err


def test_lift_smoothing_option(tmp_path, capsys, demo, h36m_2d):
    """--smoothing 0 keeps each frame's hypotheses as sampled; a long time constant holds each hypothesis's offset
    from the encoder's pose nearly still, so the hypotheses move less from frame to frame."""
    kp, size = h36m_2d
    path = tmp_path / "kps.npz"
    np.savez(path, keypoints=kp, image_size=np.array(size))
    motion = {}
    for tau in (0, 50):
        code, _, err = _run(capsys, ["lift", path, "--checkpoint", demo[1] / "model", "--format", "h36m",
                                     "--out", tmp_path / f"o{tau}", "--num-samples", 3, "--steps", 2,
                                     "--smoothing", tau, "--no-progress"])
        assert code == 0, err
        with np.load(tmp_path / f"o{tau}" / "kps.npz") as z:
            motion[tau] = np.abs(np.diff(z["samples"] - z["samples"].mean(0), axis=1)).mean()
    assert motion[50] < 0.5 * motion[0]
    code, _, err = _run(capsys, ["lift", path, "--checkpoint", demo[1] / "model", "--format", "h36m",
                                 "--smoothing", "-1"])
    assert code == 2 and "--smoothing" in err and "Traceback" not in err
