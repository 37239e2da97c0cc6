"""Pinhole cameras with the Human3.6M distortion model, screen-coordinate normalisation and quaternions.

Frames and units (the VideoPose3D conventions every lifting project uses):
- camera frame: x right, y down, z forward (depth), metres; points in front of the camera have z > 0;
- pixels: u to the right, v down, continuous coordinates with the origin at the image's top-left corner;
- quaternions are (w, x, y, z); an extrinsic orientation R rotates camera -> world:
  X_world = R X_cam + t, hence X_cam = R^-1 (X_world - t).

Every function accepts numpy arrays and torch tensors (anything with a trailing coordinate axis) and
returns the same kind, dtype and device it was given; torch is never imported here, so the numpy path
works without it.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = [
    "Camera", "project", "project_linear", "normalize_screen_coordinates", "image_coordinates",
    "qrot", "qinverse", "world_to_camera", "camera_to_world",
]


def _is_torch(x: Any) -> bool:
    # A tensor can only exist if torch was imported by someone, so this never imports torch itself.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_array(x: Any, name: str, last_dim: int, fn: str):
    """Return x unchanged if it is a tensor, else as a floating numpy array; check the trailing axis."""
    if not _is_torch(x):
        try:
            x = np.asarray(x)
        except Exception as exc:  # e.g. ragged lists
            raise TypeError(f"{fn}: {name} must be an array or tensor, got {type(x).__name__}") from exc
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{fn}: {name} must be a real numeric array, got dtype {x.dtype}")
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
    elif not x.is_floating_point():
        x = x.double()
    if x.ndim < 1 or x.shape[-1] != last_dim:
        raise ValueError(f"{fn}: {name} must have shape [..., {last_dim}], got {tuple(x.shape)}")
    return x


def _stack(parts, like):
    if _is_torch(like):
        return sys.modules["torch"].stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _clip(x, lo: float, hi: float):
    return x.clamp(lo, hi) if _is_torch(x) else np.clip(x, lo, hi)


def _cross(a, b):
    if _is_torch(a):
        return sys.modules["torch"].linalg.cross(a, b, dim=-1)
    return np.cross(a, b)


def _finite_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Camera: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Camera: {name} must be finite, got {value}")
    return value


@dataclass(frozen=True)
class Camera:
    """Intrinsics of one camera, in pixels.

    fx, fy: focal lengths (px, > 0); cx, cy: principal point (px).
    distortion: None (no distortion) or the 5 Human3.6M coefficients (k1, k2, k3, p1, p2): radial k1..k3,
        tangential p1, p2, in the order of the VideoPose3D 9-vector [fx, fy, cx, cy, k1, k2, k3, p1, p2].
    res_w, res_h: image size in pixels, both or neither (None: unknown).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: Optional[tuple[float, float, float, float, float]] = None
    res_w: Optional[int] = None
    res_h: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, _finite_float(getattr(self, name), name))
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"Camera: focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.distortion is not None:
            try:
                coeffs = tuple(self.distortion)
            except TypeError:
                raise TypeError("Camera: distortion must be None or a sequence of 5 numbers (k1, k2, k3, p1, p2), "
                                f"got {type(self.distortion).__name__}") from None
            if len(coeffs) != 5:
                raise ValueError("Camera: distortion must have 5 values (k1, k2, k3, p1, p2), "
                                 f"got {len(coeffs)}")
            coeffs = tuple(_finite_float(c, f"distortion[{i}]") for i, c in enumerate(coeffs))
            object.__setattr__(self, "distortion", coeffs)
        if (self.res_w is None) != (self.res_h is None):
            raise ValueError(f"Camera: give both res_w and res_h or neither, got res_w={self.res_w}, res_h={self.res_h}")
        if self.res_w is not None:
            for name in ("res_w", "res_h"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise TypeError(f"Camera: {name} must be an int, got {type(value).__name__}")
                if value <= 0:
                    raise ValueError(f"Camera: {name} must be positive, got {value}")
                object.__setattr__(self, name, int(value))

    @property
    def image_size(self) -> Optional[tuple[int, int]]:
        """(width, height) in pixels, or None when unknown."""
        return None if self.res_w is None else (self.res_w, self.res_h)

    def intrinsic_vector(self) -> np.ndarray:
        """The VideoPose3D 9-vector [fx, fy, cx, cy, k1, k2, k3, p1, p2] in pixels (float64; zeros if undistorted)."""
        dist = self.distortion if self.distortion is not None else (0.0,) * 5
        return np.array([self.fx, self.fy, self.cx, self.cy, *dist], dtype=np.float64)

    def normalized_intrinsics(self) -> np.ndarray:
        """[fx, fy, cx, cy] in normalised screen units (f * 2 / w, c through normalize_screen_coordinates).

        These are the per-camera 4-vectors DiffPose stores (e.g. [2.2901, 2.2876, 0.0251, 0.0289] for H36M
        camera 54138969). Needs the image size.
        """
        if self.res_w is None:
            raise ValueError("Camera.normalized_intrinsics: the camera has no image size (res_w, res_h)")
        w, h = self.res_w, self.res_h
        c = normalize_screen_coordinates(np.array([self.cx, self.cy]), w, h)
        return np.array([self.fx / w * 2, self.fy / w * 2, c[0], c[1]], dtype=np.float64)

    def flipped(self, image_width: Optional[float] = None) -> "Camera":
        """The camera that sees the horizontally mirrored image.

        Mirroring negates the normalised cx and the tangential p1: cx -> w - cx in pixels, p1 -> -p1. Then
        ``flipped().project(X with x negated) == w - project(X)`` in u, exactly, distortion included.
        """
        w = image_width if image_width is not None else self.res_w
        if w is None:
            raise ValueError("Camera.flipped: pass image_width, the camera has no res_w")
        dist = self.distortion
        if dist is not None:
            dist = (dist[0], dist[1], dist[2], -dist[3], dist[4])
        return Camera(self.fx, self.fy, float(w) - self.cx, self.cy, dist, self.res_w, self.res_h)

    def project(self, points_cam):
        """Project camera-frame points [..., 3] (metres, z > 0) to pixels [..., 2] with distortion."""
        return project(points_cam, self)

    def project_linear(self, points_cam):
        """Project camera-frame points [..., 3] (metres, z > 0) to pixels [..., 2], ignoring distortion."""
        return project_linear(points_cam, self)


def project(points_cam, camera: Camera):
    """Pixels [..., 2] of camera-frame points [..., 3] (metres) under the Human3.6M distortion model.

    The batched form of the original MATLAB script, as VideoPose3D's ``project_to_2d`` computes it:
        x' = clamp(X/Z, -1, 1), y' = clamp(Y/Z, -1, 1), r2 = x'^2 + y'^2,
        radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3,  tan = p1 x' + p2 y',
        x'' = x' (radial + tan) + p1 r2,  y'' = y' (radial + tan) + p2 r2,
        u = fx x'' + cx,  v = fy y'' + cy.
    (The tangential term is the H36M one, not OpenCV's.) The clamp keeps points far off-axis from blowing up
    the polynomial. Points must lie in front of the camera (Z > 0); this is not checked (hot path).
    Without distortion coefficients this equals ``project_linear`` (without the clamp).
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"project: camera must be a Camera, got {type(camera).__name__}")
    if camera.distortion is None:
        return project_linear(points_cam, camera)
    points_cam = _as_array(points_cam, "points_cam", 3, "project")
    k1, k2, k3, p1, p2 = camera.distortion
    z = points_cam[..., 2]
    x = _clip(points_cam[..., 0] / z, -1.0, 1.0)
    y = _clip(points_cam[..., 1] / z, -1.0, 1.0)
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    tan = p1 * x + p2 * y
    xd = x * (radial + tan) + p1 * r2
    yd = y * (radial + tan) + p2 * r2
    return _stack([camera.fx * xd + camera.cx, camera.fy * yd + camera.cy], points_cam)


def project_linear(points_cam, camera: Camera):
    """Pixels [..., 2] of camera-frame points [..., 3] under the undistorted pinhole: u = fx X/Z + cx."""
    if not isinstance(camera, Camera):
        raise TypeError(f"project_linear: camera must be a Camera, got {type(camera).__name__}")
    points_cam = _as_array(points_cam, "points_cam", 3, "project_linear")
    z = points_cam[..., 2]
    return _stack([camera.fx * points_cam[..., 0] / z + camera.cx,
                   camera.fy * points_cam[..., 1] / z + camera.cy], points_cam)


def _check_size(w: float, h: float, fn: str) -> None:
    for name, value in (("w", w), ("h", h)):
        if not (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)):
            raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{fn}: {name} must be positive and finite, got {value}")


def normalize_screen_coordinates(x, w: float, h: float):
    """Map pixels [..., 2] to screen coordinates: x in [-1, 1] across the width, y scaled by the same factor.

    x_n = 2 u / w - 1, y_n = 2 v / w - h / w (VideoPose3D): the aspect ratio is kept, so y spans
    [-h/w, h/w]. Mirroring the image is x_n -> -x_n, i.e. u -> w - u.
    """
    _check_size(w, h, "normalize_screen_coordinates")
    x = _as_array(x, "x", 2, "normalize_screen_coordinates")
    return _stack([x[..., 0] * (2.0 / w) - 1.0, x[..., 1] * (2.0 / w) - h / w], x)


def image_coordinates(x, w: float, h: float):
    """Inverse of ``normalize_screen_coordinates``: screen coordinates [..., 2] back to pixels."""
    _check_size(w, h, "image_coordinates")
    x = _as_array(x, "x", 2, "image_coordinates")
    return _stack([(x[..., 0] + 1.0) * (w / 2.0), (x[..., 1] + h / w) * (w / 2.0)], x)


def qinverse(q):
    """Inverse of unit quaternions [..., 4] (w, x, y, z): the conjugate."""
    q = _as_array(q, "q", 4, "qinverse")
    return _stack([q[..., 0], -q[..., 1], -q[..., 2], -q[..., 3]], q)


def qrot(q, v):
    """Rotate vectors v [..., 3] by quaternions q [..., 4] (w, x, y, z); q and v broadcast against each other.

    q is normalised first, so slightly non-unit stored quaternions still give a pure rotation.
    Uses v' = v + 2 w (u x v) + 2 u x (u x v) with u the vector part.
    """
    q = _as_array(q, "q", 4, "qrot")
    v = _as_array(v, "v", 3, "qrot")
    if _is_torch(v) and not _is_torch(q):
        q = sys.modules["torch"].as_tensor(q, dtype=v.dtype, device=v.device)
    elif _is_torch(q) and not _is_torch(v):
        v = sys.modules["torch"].as_tensor(v, dtype=q.dtype, device=q.device)
    norm = (q * q).sum(-1, keepdims=True) ** 0.5 if not _is_torch(q) else q.norm(dim=-1, keepdim=True)
    q = q / norm
    if _is_torch(q):
        shape = sys.modules["torch"].broadcast_shapes(q.shape[:-1], v.shape[:-1])
        q, v = q.expand(*shape, 4), v.expand(*shape, 3)
    else:
        shape = np.broadcast_shapes(q.shape[:-1], v.shape[:-1])
        q, v = np.broadcast_to(q, shape + (4,)), np.broadcast_to(v, shape + (3,))
    w, u = q[..., :1], q[..., 1:]
    uv = _cross(u, v)
    return v + 2.0 * (w * uv + _cross(u, uv))


def world_to_camera(points_world, orientation, translation):
    """Camera-frame points [..., 3] from world points [..., 3]: X_cam = R^-1 (X_world - t).

    orientation: quaternion [4] (w, x, y, z) rotating camera -> world; translation: camera position [3],
    in the units of the points (metres for this library; the H36M tables give mm, see h36m_cameras).
    """
    points_world = _as_array(points_world, "points_world", 3, "world_to_camera")
    orientation = _as_array(orientation, "orientation", 4, "world_to_camera")
    translation = _as_array(translation, "translation", 3, "world_to_camera")
    if _is_torch(points_world):
        torch = sys.modules["torch"]
        translation = torch.as_tensor(translation, dtype=points_world.dtype, device=points_world.device)
    return qrot(qinverse(orientation), points_world - translation)


def camera_to_world(points_cam, orientation, translation):
    """World points [..., 3] from camera-frame points [..., 3]: X_world = R X_cam + t (see world_to_camera)."""
    points_cam = _as_array(points_cam, "points_cam", 3, "camera_to_world")
    orientation = _as_array(orientation, "orientation", 4, "camera_to_world")
    translation = _as_array(translation, "translation", 3, "camera_to_world")
    rotated = qrot(orientation, points_cam)
    if _is_torch(rotated) and not _is_torch(translation):
        translation = sys.modules["torch"].as_tensor(translation, dtype=rotated.dtype, device=rotated.device)
    return rotated + translation
