"""Cameras: projection (linear and H36M-distorted), screen normalisation, quaternions, the H36M tables."""
import math

import numpy as np
import pytest
import torch

from diffpose_fast.data.camera import (
    Camera, camera_to_world, image_coordinates, normalize_screen_coordinates, project, project_linear, qinverse,
    qrot, world_to_camera,
)
from diffpose_fast.data.h36m_cameras import (
    H36M_CAMERA_IDS, H36M_SUBJECTS, h36m_camera, h36m_camera_index, h36m_extrinsics,
)


def distorted_projection_loop(point, fx, fy, cx, cy, k1, k2, k3, p1, p2):
    """One point at a time, written straight from the H36M model (conventions 1.2), as the oracle."""
    X, Y, Z = (float(v) for v in point)
    x = min(max(X / Z, -1.0), 1.0)
    y = min(max(Y / Z, -1.0), 1.0)
    r2 = x ** 2 + y ** 2
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    tan = p1 * x + p2 * y
    return fx * (x * (radial + tan) + p1 * r2) + cx, fy * (y * (radial + tan) + p2 * r2) + cy


def random_points(rng, n):
    return np.stack([rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(2, 7, n)], axis=-1)


def test_linear_projection_hand_computed():
    cam = Camera(fx=1000.0, fy=900.0, cx=500.0, cy=400.0)
    uv = project_linear(np.array([0.5, -0.25, 5.0]), cam)
    np.testing.assert_allclose(uv, [1000 * 0.1 + 500, 900 * -0.05 + 400])
    # Without distortion coefficients project is the pinhole.
    np.testing.assert_allclose(project(np.array([0.5, -0.25, 5.0]), cam), uv)


def test_distorted_projection_matches_loop_oracle():
    rng = np.random.default_rng(0)
    pts = random_points(rng, 200)
    pts[:5, 0] = 20.0   # far off-axis: exercises the clamp
    for index in range(4):
        cam = h36m_camera(index)
        got = project(pts, cam)
        want = np.array([distorted_projection_loop(p, *cam.intrinsic_vector()) for p in pts])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def test_torch_projection_matches_numpy():
    rng = np.random.default_rng(1)
    pts = random_points(rng, 50).reshape(5, 10, 3)
    cam = h36m_camera(2)
    got = project(torch.from_numpy(pts), cam)
    assert isinstance(got, torch.Tensor) and got.shape == (5, 10, 2) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), project(pts, cam), rtol=1e-12)
    got32 = cam.project(torch.from_numpy(pts).float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), project(pts, cam), atol=1e-3)  # px
    assert project(pts.astype(np.float32), cam).dtype == np.float32


def test_distortion_is_small_near_the_centre():
    cam = h36m_camera(0)
    pts = np.array([[0.01, 0.02, 5.0]])
    np.testing.assert_allclose(project(pts, cam), project_linear(pts, cam), atol=0.05)


def test_normalize_round_trip_and_known_values():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1000, size=(7, 17, 2))
    n = normalize_screen_coordinates(x, 1000, 1002)
    np.testing.assert_allclose(image_coordinates(n, 1000, 1002), x, rtol=1e-12)
    np.testing.assert_allclose(normalize_screen_coordinates(np.array([[0.0, 0.0], [1000.0, 1002.0]]), 1000, 1002),
                               [[-1.0, -1.002], [1.0, 1.002]])
    t = normalize_screen_coordinates(torch.from_numpy(x).float(), 1000, 1002)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), n, atol=1e-6)


def test_flip_in_normalized_coordinates_is_w_minus_u():
    u = np.array([[123.0, 456.0]])
    mirrored = normalize_screen_coordinates(u, 1000, 1002) * np.array([-1.0, 1.0])
    np.testing.assert_allclose(image_coordinates(mirrored, 1000, 1002), [[1000 - 123.0, 456.0]])


def test_flipped_camera_projects_mirrored_points():
    rng = np.random.default_rng(3)
    pts = random_points(rng, 100)
    cam = h36m_camera(1)
    mirrored = pts * np.array([-1.0, 1.0, 1.0])
    uv = project(pts, cam)
    uv_flip = project(mirrored, cam.flipped())
    np.testing.assert_allclose(uv_flip[:, 0], cam.res_w - uv[:, 0], atol=1e-9)
    np.testing.assert_allclose(uv_flip[:, 1], uv[:, 1], atol=1e-9)


def test_quaternion_90_degrees_about_z():
    q = np.array([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
    np.testing.assert_allclose(qrot(q, np.array([1.0, 0.0, 0.0])), [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(qrot(q, np.array([0.0, 1.0, 0.0])), [-1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(qrot(qinverse(q), np.array([0.0, 1.0, 0.0])), [1.0, 0.0, 0.0], atol=1e-12)
    # Camera at (1, 2, 3) rotated +90 degrees about z: the world point one metre along world +y from it lies on
    # the camera's +x axis.
    cam_pt = world_to_camera(np.array([1.0, 3.0, 3.0]), q, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(cam_pt, [1.0, 0.0, 0.0], atol=1e-12)


def test_world_camera_round_trip_numpy_and_torch():
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(6, 17, 3))
    q, t = h36m_extrinsics("S9", 3)
    back = camera_to_world(world_to_camera(pts, q, t), q, t)
    np.testing.assert_allclose(back, pts, atol=1e-12)
    tp = world_to_camera(torch.from_numpy(pts), torch.from_numpy(q), torch.from_numpy(t))
    np.testing.assert_allclose(tp.numpy(), world_to_camera(pts, q, t), atol=1e-12)
    # A rotation keeps distances.
    cam = world_to_camera(pts, q, t)
    np.testing.assert_allclose(np.linalg.norm(cam[:, 1] - cam[:, 0], axis=-1),
                               np.linalg.norm(pts[:, 1] - pts[:, 0], axis=-1), rtol=1e-12)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(fx=0.0, fy=1.0, cx=0.0, cy=0.0), ValueError, "focal"),
    (dict(fx=1.0, fy=float("nan"), cx=0.0, cy=0.0), ValueError, "fy"),
    (dict(fx=1.0, fy=1.0, cx="a", cy=0.0), TypeError, "cx"),
    (dict(fx=1.0, fy=1.0, cx=0.0, cy=0.0, distortion=(1.0, 2.0)), ValueError, "distortion"),
    (dict(fx=1.0, fy=1.0, cx=0.0, cy=0.0, res_w=100), ValueError, "res_h"),
    (dict(fx=1.0, fy=1.0, cx=0.0, cy=0.0, res_w=100, res_h=-1), ValueError, "res_h"),
])
def test_camera_validation(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        Camera(**kwargs)


def test_project_validates_shapes():
    with pytest.raises(ValueError, match=r"points_cam must have shape \[\.\.\., 3\]"):
        project(np.zeros((4, 2)), h36m_camera(0))
    with pytest.raises(TypeError, match="camera"):
        project(np.ones((4, 3)), "cam")


def test_h36m_table_spot_checks():
    assert H36M_CAMERA_IDS == ("54138969", "55011271", "58860488", "60457274")
    cam = h36m_camera(0)
    assert (cam.fx, cam.fy) == (1145.0494384765625, 1143.7811279296875)
    assert (cam.cx, cam.cy) == (512.54150390625, 515.4514770507812)
    assert cam.image_size == (1000, 1002)
    assert h36m_camera("58860488") == h36m_camera(2) == h36m_camera(58860488)
    assert h36m_camera(3).distortion[4] == -0.0018133620033040643
    assert h36m_camera(1).image_size == (1000, 1000)
    # DiffPose's normalised intrinsics (conventions 1.2), to the 4 decimals it prints.
    np.testing.assert_allclose(h36m_camera(0).normalized_intrinsics(), [2.2901, 2.2876, 0.0251, 0.0289], atol=6e-5)
    np.testing.assert_allclose(h36m_camera(3).normalized_intrinsics(), [2.2910, 2.2895, 0.0299, 0.0018], atol=6e-5)
    q, t = h36m_extrinsics("S11", 1)
    np.testing.assert_allclose(t, [2.083182373046875, -4.9121728515625, 1.56107861328125])
    assert q[0] == 0.6189449429512024
    assert h36m_camera_index("60457274") == 3


def test_h36m_extrinsics_are_rotations_and_cameras_see_the_centre():
    for subject in H36M_SUBJECTS:
        for index in range(4):
            q, t = h36m_extrinsics(subject, index)
            assert abs(np.linalg.norm(q) - 1) < 1e-6
            assert 4.0 < np.linalg.norm(t[:2]) < 6.0 and 1.3 < t[2] < 1.7   # metres, about 1.5 m high
            # A person standing at the world origin is in front of the camera and inside the image.
            person = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 0.9], [0.0, 0.0, 1.7]])
            cam_pts = world_to_camera(person, q, t)
            assert (cam_pts[:, 2] > 3.5).all()
            uv = h36m_camera(index).project(cam_pts)
            assert ((uv > 0) & (uv < 1000)).all()
            # Head above feet in the image (camera y points down).
            assert uv[2, 1] < uv[0, 1]


def test_pose_five_metres_in_front_projects_inside():
    pose = np.zeros((17, 3))
    pose[:, 1] = np.linspace(-0.9, 0.8, 17)   # 1.7 m tall, camera y down
    pose[:, 0] = np.linspace(-0.4, 0.4, 17)
    pose[:, 2] = 5.0
    for index in range(4):
        cam = h36m_camera(index)
        uv = cam.project(pose)
        assert ((uv[:, 0] > 0) & (uv[:, 0] < cam.res_w) & (uv[:, 1] > 0) & (uv[:, 1] < cam.res_h)).all()


@pytest.mark.parametrize("args, exc", [(("S2", 0), ValueError), (("S1", 4), ValueError), ((1, 0), TypeError),
                                        (("S1", 1.5), TypeError)])
def test_h36m_extrinsics_errors(args, exc):
    with pytest.raises(exc):
        h36m_extrinsics(*args)
