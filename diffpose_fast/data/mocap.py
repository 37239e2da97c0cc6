"""Training data from motion capture: a take's world poses seen by cameras, with detector-like 2D noise.

    takes = [load_bvh(p, fps=30) for p in paths]            # data.bvh: Human3.6M-17 world poses, z up
    sequences = mocap_sequences(takes, seed=0)              # PoseSequences, as from a 2D detector

Each take is cut into clips of ``clip_seconds``; each clip is turned to a random heading, moved so that its
mean root position lies near the middle of the capture area (within ``area_radius_m`` of
``synthetic.AREA_CENTRE_M``), its lowest ankle of the clip on the floor, and seen by ``views`` cameras:

* ``cameras="h36m"``: the four real Human3.6M cameras (intrinsics with distortion, 1000 x 1002 px), with the
  extrinsics of a random Human3.6M subject; the views of one clip are different cameras.
* ``cameras="random"``: pinhole cameras placed around the clip at a random azimuth, 3.5-6 m away, 0.8-2.2 m
  high, looking at the clip's centre, focal length 900-1500 px on a 1000 x 1000 image.

The 2D keypoints are the projection of the 3D joints corrupted by ``synthetic.add_detector_noise`` (per-joint
Gaussian noise, outliers, left/right swaps, a confidence that falls with the error). A joint that falls
outside the image or less than 0.1 m in front of the camera is missing (NaN, confidence 0), as a detector
would miss it. The 3D ground truth is the clip in the camera frame, metres.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from .bvh import MocapTake
from .camera import Camera, world_to_camera
from .h36m_cameras import H36M_SUBJECTS, h36m_camera, h36m_extrinsics
from .sequence import PoseSequence
from .skeleton import NUM_JOINTS
from .synthetic import AREA_CENTRE_M, SyntheticConfig, add_detector_noise, detector_heatmaps

__all__ = ["MocapViewConfig", "mocap_sequences", "look_at"]

_ANKLE_HEIGHT_M = 0.08
_MIN_DEPTH_M = 0.1


@dataclasses.dataclass(frozen=True)
class MocapViewConfig:
    """How takes become sequences. Lengths in metres, times in seconds.

    clip_seconds: length of the clips a take is cut into (the last, shorter one is kept if at least half as
        long; a take shorter than one clip is one clip).
    cameras: "h36m" or "random" (module docstring); views: cameras per clip (at most 4 for "h36m").
    area_radius_m: the clip's mean root position is drawn uniformly within this distance of the area centre.
    detector: the 2D noise settings (the detector fields of ``synthetic.SyntheticConfig``).
    """

    clip_seconds: float = 5.0
    cameras: str = "h36m"
    views: int = 1
    area_radius_m: float = 0.5
    detector: SyntheticConfig = SyntheticConfig()

    def __post_init__(self) -> None:
        if self.cameras not in ("h36m", "random"):
            raise ValueError(f"MocapViewConfig: cameras must be 'h36m' or 'random', got {self.cameras!r}")
        if not (isinstance(self.views, (int, np.integer)) and not isinstance(self.views, bool) and self.views >= 1):
            raise ValueError(f"MocapViewConfig: views must be an int >= 1, got {self.views!r}")
        if self.cameras == "h36m" and self.views > 4:
            raise ValueError(f"MocapViewConfig: Human3.6M has 4 cameras, got views={self.views}")
        if not self.clip_seconds > 0:
            raise ValueError(f"MocapViewConfig: clip_seconds must be positive, got {self.clip_seconds}")
        if not self.area_radius_m >= 0:
            raise ValueError(f"MocapViewConfig: area_radius_m must be >= 0, got {self.area_radius_m}")
        if not isinstance(self.detector, SyntheticConfig):
            raise TypeError(f"MocapViewConfig: detector must be a SyntheticConfig, got {type(self.detector).__name__}")


def _rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix [3, 3] (Shepperd's method, stable for any angle)."""
    t = np.trace(r)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = np.zeros(4)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q)


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Orientation (w, x, y, z; camera -> world) of a level camera at ``position`` looking at ``target``.

    World z is up; the camera frame is x right, y down, z forward (``camera.world_to_camera``).
    """
    forward = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: the camera looks straight up or down")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return _rotation_to_quaternion(np.stack([right, down, forward], axis=1))


def _clips(frames: int, length: int) -> list[tuple[int, int]]:
    if frames <= length:
        return [(0, frames)]
    out = [(s, s + length) for s in range(0, frames - length + 1, length)]
    rest = frames - out[-1][1]
    if 2 * rest >= length:  # at least half a clip (and never an empty one)
        out.append((frames - rest, frames))
    return out


def _place(clip: np.ndarray, rng: np.random.Generator, radius: float) -> np.ndarray:
    """Turn a clip [T, 17, 3] (world, z up) about the vertical, centre it in the area, ankles on the floor."""
    yaw = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    centre = clip[:, 0, :2].mean(0)
    out = (clip - np.array([*centre, 0.0])) @ rot.T
    r, a = radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    shift = np.asarray(AREA_CENTRE_M) + r * np.array([np.cos(a), np.sin(a)])
    floor = out[:, [3, 6], 2].min()
    return out + np.array([shift[0], shift[1], _ANKLE_HEIGHT_M - floor])


def _random_camera(clip: np.ndarray, rng: np.random.Generator) -> tuple[Camera, np.ndarray, np.ndarray]:
    centre = clip[:, 0].mean(0)
    azimuth, distance, height = rng.uniform(0, 2 * np.pi), rng.uniform(3.5, 6.0), rng.uniform(0.8, 2.2)
    position = np.array([centre[0] + distance * np.cos(azimuth), centre[1] + distance * np.sin(azimuth), height])
    target = np.array([centre[0], centre[1], rng.uniform(0.7, 1.1)])
    focal = rng.uniform(900.0, 1500.0)
    camera = Camera(fx=focal, fy=focal, cx=500.0 + rng.normal(0, 5), cy=500.0 + rng.normal(0, 5),
                    res_w=1000, res_h=1000)
    return camera, look_at(position, target), position


def mocap_sequences(takes: Sequence[MocapTake], seed: int,
                    config: Optional[MocapViewConfig] = None) -> list[PoseSequence]:
    """PoseSequences (2D keypoints px with confidence, 3D camera-frame poses m, camera) from mocap takes.

    Deterministic for (seed, take order); sequence labels: subject = take name, action = take name with the
    clip index ("walk 3"). See the module docstring for the placement, cameras and noise.
    """
    config = config if config is not None else MocapViewConfig()
    if isinstance(takes, MocapTake):
        takes = [takes]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"mocap_sequences: seed must be a non-negative int, got {seed!r}")
    out: list[PoseSequence] = []
    if config.detector.heatmap_size is not None:
        from .heatmaps import auto_boxes   # here: heatmaps need torch, the rest of this module does not

    for t_index, take in enumerate(takes):
        if not isinstance(take, MocapTake):
            raise TypeError(f"mocap_sequences: takes[{t_index}] must be a MocapTake (data.bvh.load_bvh), "
                            f"got {type(take).__name__}")
        poses = np.asarray(take.poses_world, np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or not np.isfinite(poses).all():
            raise ValueError(f"mocap_sequences: takes[{t_index}].poses_world must be finite [T, 17, 3], "
                             f"got shape {poses.shape}")
        fps = take.fps
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
                or not np.isfinite(fps) or fps <= 0:
            # a hand-built take: a zero or NaN rate would make every clip one frame long, or crash round()
            raise ValueError(f"mocap_sequences: takes[{t_index}].fps must be a positive finite number of "
                             f"frames per second, got {fps!r}")
        length = max(1, int(round(config.clip_seconds * float(fps))))
        for c_index, (lo, hi) in enumerate(_clips(poses.shape[0], length)):
            rng = np.random.default_rng([int(seed), t_index, c_index])
            clip = _place(poses[lo:hi], rng, config.area_radius_m)
            cams = rng.permutation(4)[:config.views] if config.cameras == "h36m" else range(config.views)
            subject = H36M_SUBJECTS[int(rng.integers(len(H36M_SUBJECTS)))]
            for cam in cams:
                if config.cameras == "h36m":
                    camera = h36m_camera(int(cam))
                    quat, trans = h36m_extrinsics(subject, int(cam))
                else:
                    camera, quat, trans = _random_camera(clip, rng)
                cam_poses = world_to_camera(clip, quat, trans)
                clean = camera.project(np.where(cam_poses[..., 2:] > _MIN_DEPTH_M, cam_poses,
                                                np.array([0.0, 0.0, 1.0])))
                noise = add_detector_noise(clean, rng, config.detector)
                w, h = camera.image_size
                unseen = ((cam_poses[..., 2] <= _MIN_DEPTH_M) | (clean[..., 0] < 0) | (clean[..., 0] > w)
                          | (clean[..., 1] < 0) | (clean[..., 1] > h))
                keypoints = np.where(unseen[..., None], np.nan, noise.keypoints)
                confidence = np.where(unseen, 0.0, noise.confidence)
                maps = boxes = None
                if config.detector.heatmap_size is not None:   # H_K from heatmaps (unseen joints: uniform maps)
                    # a frame the camera misses entirely still needs a box: where its joints would project
                    seen_any = np.isfinite(keypoints).all(-1).any(1)
                    place = np.where(seen_any[:, None, None], keypoints, noise.keypoints)
                    if noise.second_px is not None:   # and around the second peaks, as render_heatmaps would
                        place = np.concatenate([place, noise.second_px], axis=1)
                    boxes = auto_boxes(place, config.detector.heatmap_size,
                                       min_side_px=6.0 * np.maximum(noise.sigma_px, 1.0).max(1))
                    maps, boxes = detector_heatmaps(noise._replace(keypoints=keypoints), config.detector, boxes)
                out.append(PoseSequence(keypoints, cam_poses, camera.image_size, confidence, maps, boxes,
                                        camera=camera, subject=take.name, action=f"{take.name} {c_index}"))
    return out
