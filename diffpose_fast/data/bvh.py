"""Motion capture in BVH files: parsing, forward kinematics, and the mapping to Human3.6M-17 joints.

    motion = read_bvh("take.bvh")                       # hierarchy + channel values, file units, file frame
    take = bvh_to_h36m(motion, fps=30)                  # MocapTake: world poses [T, 17, 3] metres, z up
    take = load_bvh("take.bvh", fps=30)                 # the two steps in one

Conventions of the file format, as this reader applies them:

* A joint's local transform is ``T(translation) R`` with R the product of its rotation channels *in the order
  they are listed* (``Zrotation Yrotation Xrotation`` means R = Rz Ry Rx), angles in degrees, so a child's
  position is ``p_parent + G_parent (offset or translation)`` and its orientation ``G_parent R``.
* Position channels on any joint give that joint's translation from its parent and *replace* its OFFSET
  (``translation="replace"``, the convention of Blender's importer and exporter, and of files where the root's
  OFFSET is its first position). ``translation="add"`` adds them to the OFFSET instead.
* End Sites become leaves named ``"<parent>/End"``.
* Units: ``units="auto"`` reads the size of the rest skeleton (its largest joint-to-joint distance): 0.5-3 is
  metres, 50-300 centimetres, 500-3000 millimetres; anything else must be given (``"m"``, ``"cm"``, ``"mm"``,
  ``"in"``). Inches cannot be told from centimetres by size (an adult is 60-80 in): a skeleton of 50-100 units
  read as centimetres gets a warning saying so. BVH is Y up; ``up_axis="z"`` for files that are Z up.

Mapping to Human3.6M-17 (``H36M_CANDIDATES``). Names are compared after ``normalize_joint_name`` (lower case,
namespace such as ``mixamorig:`` and prefixes ``DEF-``, ``ORG-``, ``Bip01`` removed, separators dropped), so
``LeftUpLeg``, ``mixamorig:LeftUpLeg``, ``thigh.L``, ``DEF-thigh.L`` and ``Bip01 L Thigh`` all resolve. For each
H36M joint the first candidate name present wins:

    Hip        the root-side pelvis joint: Hips, pelvis, hip, root
    R/LHip     RightUpLeg, thigh.R, RightThigh, RightUpperLeg, R Thigh, RightHip
    R/LKnee    RightLeg, shin.R, RightShin, RightLowerLeg, R Calf, RightKnee
    R/LFoot    RightFoot, foot.R, RightAnkle, R Foot; else the End Site of the knee joint (the ankle)
    Thorax     Neck (the base of the neck), neck.001 ...
    R/LShoulder the gleno-humeral joint: RightArm, upper_arm.R, RightUpperArm, R UpperArm; only when none of
               these exists, RightShoulder (in CMU / Mixamo rigs ``RightShoulder`` is the clavicle)
    R/LElbow   RightForeArm, forearm.R, RightLowerArm, R Forearm, RightElbow
    R/LWrist   RightHand, hand.R, RightWrist, R Hand; else the End Site of the elbow joint (the wrist)
    head joint Head, head, face: the skull's base

Derived points, where H36M has no bone end of its own (the same rule for every skeleton, so two rigs of one
actor give the same H36M pose):

    Spine      midpoint of Hip and Thorax
    Neck/Nose  Thorax + 0.235 s u, with s = |Thorax - Hip| the torso length and u the unit vector from Thorax to
               the head joint
    Head       the head top: a joint named HeadTop / HeadTop_End / head_end when present, else Thorax + 0.47 s u

(the 0.235 and 0.47 are the Human3.6M average thorax-to-nose and thorax-to-head-top distances over the torso
length.) ``mapping={"LShoulder": "clavicle_l", ...}`` overrides any entry by H36M joint name.
"""
from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import Mapping, Optional

import numpy as np

from .skeleton import JOINT_NAMES, NUM_JOINTS

__all__ = ["BVHError", "BvhMotion", "MocapTake", "H36M_CANDIDATES", "parse_bvh", "read_bvh",
           "bvh_forward_kinematics", "normalize_joint_name", "h36m_mapping", "bvh_to_h36m", "load_bvh",
           "resample_poses", "detect_units"]

UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
_INCH_DOUBT = 100.0   # units="auto": a skeleton under this many file units read as cm is warned about (inches?)
# Distances as a fraction of the torso length |Thorax - Hip|, from the Human3.6M average skeleton
# (thorax -> neck/nose 0.115 m, neck/nose -> head top 0.115 m, pelvis -> thorax 0.49 m).
NOSE_FRACTION = 0.235
HEAD_TOP_FRACTION = 0.47


class BVHError(ValueError):
    """A BVH file that cannot be read or mapped; the message names the file and what is wrong."""


@dataclasses.dataclass
class BvhMotion:
    """A parsed BVH file.

    names [J']: joint names, End Sites named ``"<parent>/End"``; parents [J'] (-1 for the root; parents come
    before children); offsets [J', 3] file units; channels: per joint its channel names (End Sites none);
    frame_time: seconds per frame; motion [F, C] every channel's value per frame (float64); source: where it
    was read from (for messages).
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray
    source: str = "<string>"

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


@dataclasses.dataclass
class MocapTake:
    """One take as Human3.6M-17 poses.

    poses_world [T, 17, 3]: metres, world frame with z up (the Human3.6M world convention), joint order of
    ``skeleton.JOINT_NAMES``; fps: frames per second of ``poses_world``; name: the take's label (file stem);
    mapping: H36M joint name -> the BVH joint it was read from, or ``"derived"``.
    """

    poses_world: np.ndarray
    fps: float
    name: str
    mapping: dict[str, str]

    @property
    def num_frames(self) -> int:
        return int(self.poses_world.shape[0])


_CHANNELS = {f"{a}{k}" for a in "XYZ" for k in ("position", "rotation")}


def parse_bvh(text: str, source: str = "<string>") -> BvhMotion:
    """Parse the text of a BVH file. Raises BVHError naming ``source`` and the problem."""
    head, sep, body = text.partition("MOTION")
    if not sep:
        raise BVHError(f"{source}: no MOTION section (is this a BVH file?)")
    tokens: list[str] = []
    for line in head.splitlines():  # a joint's name runs to the end of its line or a "{": "JOINT Bip01 L Thigh"
        parts = line.split()
        if len(parts) > 2 and parts[0] in ("ROOT", "JOINT"):
            end = next((k for k in range(2, len(parts)) if parts[k] == "{"), len(parts))
            parts = [parts[0], " ".join(parts[1:end])] + parts[end:]
        tokens.extend(parts)
    if not tokens or tokens[0] != "HIERARCHY":
        raise BVHError(f"{source}: expected the file to start with HIERARCHY, got {tokens[:1]}")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    pending: Optional[int] = None
    i = 1

    def need(count: int, what: str) -> list[str]:
        if i + count > len(tokens):
            raise BVHError(f"{source}: the hierarchy ends inside {what}")
        return tokens[i:i + count]

    def floats(values: list[str], what: str) -> list[float]:
        try:
            out = [float(v) for v in values]
        except ValueError:
            raise BVHError(f"{source}: {what} must be numbers, got {values}") from None
        if not np.isfinite(out).all():
            raise BVHError(f"{source}: {what} must be finite, got {values}")
        return out

    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            name = need(2, tok)[1]
            if tok == "ROOT" and stack:
                raise BVHError(f"{source}: ROOT {name!r} inside another joint")
            if tok == "JOINT" and not stack:
                raise BVHError(f"{source}: JOINT {name!r} outside the ROOT's braces")
            if tok == "ROOT" and names:
                raise BVHError(f"{source}: more than one ROOT (only one skeleton per file is read)")
            if name in names:
                raise BVHError(f"{source}: joint name {name!r} appears twice")
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            need(2, "End Site")
            if not stack or stack[-1] is None or names[stack[-1]].endswith("/End"):
                raise BVHError(f"{source}: End Site outside a joint")
            parent = stack[-1]
            names.append(f"{names[parent]}/End")
            parents.append(parent)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif tok == "{":
            if pending is None:
                raise BVHError(f"{source}: '{{' without a ROOT, JOINT or End Site before it")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise BVHError(f"{source}: unbalanced '}}' in the hierarchy")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            if not stack:
                raise BVHError(f"{source}: OFFSET outside a joint")
            offsets[stack[-1]] = floats(need(4, "OFFSET")[1:], f"OFFSET of {names[stack[-1]]!r}")
            i += 4
        elif tok == "CHANNELS":
            if not stack or names[stack[-1]].endswith("/End"):
                raise BVHError(f"{source}: CHANNELS outside a joint")
            count_text = need(2, "CHANNELS")[1]
            if not count_text.isdigit():
                raise BVHError(f"{source}: CHANNELS of {names[stack[-1]]!r} must give a count, got {count_text!r}")
            n = int(count_text)
            i += 2
            chans = need(n, f"CHANNELS of {names[stack[-1]]!r}")
            bad = [c for c in chans if c not in _CHANNELS]
            if bad:
                raise BVHError(f"{source}: joint {names[stack[-1]]!r} has unknown channel(s) {bad}; expected "
                               "X/Y/Z position and rotation")
            channels[stack[-1]] = list(chans)
            i += n
        else:
            raise BVHError(f"{source}: unexpected {tok!r} in the hierarchy")
    if stack:
        raise BVHError(f"{source}: the hierarchy has {len(stack)} unclosed '{{'")
    if not names:
        raise BVHError(f"{source}: the hierarchy has no ROOT")

    lines = body.strip().splitlines()
    if len(lines) < 2:
        raise BVHError(f"{source}: the MOTION section needs 'Frames:' and 'Frame Time:' lines")
    m_frames = re.fullmatch(r"\s*Frames:\s*(\d+)\s*", lines[0])
    m_time = re.fullmatch(r"\s*Frame Time:\s*([0-9.eE+-]+)\s*", lines[1])
    if m_frames is None or m_time is None:
        raise BVHError(f"{source}: expected 'Frames: N' and 'Frame Time: seconds', got {lines[0]!r}, {lines[1]!r}")
    frames = int(m_frames.group(1))
    try:
        frame_time = float(m_time.group(1))
    except ValueError:
        raise BVHError(f"{source}: Frame Time must be a number, got {m_time.group(1)!r}") from None
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise BVHError(f"{source}: Frame Time must be a positive number of seconds, got {frame_time}")
    total = sum(len(c) for c in channels)
    data = " ".join(lines[2:]).split()
    if len(data) != frames * total:
        raise BVHError(f"{source}: expected {frames} frames of {total} channel values ({frames * total} numbers), "
                       f"got {len(data)} numbers")
    try:
        motion = np.array(data, dtype=np.float64).reshape(frames, total)
    except ValueError:
        raise BVHError(f"{source}: the MOTION section holds something that is not a number") from None
    if not np.isfinite(motion).all():
        raise BVHError(f"{source}: the MOTION section holds non-finite values")
    return BvhMotion(names, parents, np.array(offsets, dtype=np.float64).reshape(-1, 3), channels, frame_time,
                     motion, source)


def read_bvh(path: str | os.PathLike) -> BvhMotion:
    """Parse a BVH file (any hierarchy, any channel order). Raises BVHError naming the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig", errors="strict") as f:  # -sig: a leading BOM is skipped
            text = f.read()
    except UnicodeDecodeError:
        raise BVHError(f"{path}: not a text file (a BVH file is plain text)") from None
    return parse_bvh(text, source=path)


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """[F, 3, 3] right-handed rotations by ``degrees`` [F] about the x, y or z axis."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        m = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        m = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        m = (c, -s, zero, s, c, zero, zero, zero, one)
    return np.stack(m, -1).reshape(a.shape + (3, 3))


def bvh_forward_kinematics(bvh: BvhMotion, translation: str = "replace") -> np.ndarray:
    """Global positions [F, J', 3] (file units, file frame) of every joint and End Site of ``bvh``.

    translation: "replace" (position channels are the joint's translation from its parent, replacing OFFSET)
    or "add" (they are added to OFFSET); see the module docstring.
    """
    if translation not in ("replace", "add"):
        raise ValueError(f"bvh_forward_kinematics: translation must be 'replace' or 'add', got {translation!r}")
    f = bvh.motion.shape[0]
    count = len(bvh.names)
    pos = np.zeros((f, count, 3))
    rot = np.zeros((f, count, 3, 3))
    starts = np.cumsum([0] + [len(c) for c in bvh.channels])
    for j in range(count):
        trans = np.tile(bvh.offsets[j], (f, 1))
        r = np.tile(np.eye(3), (f, 1, 1))
        replaced = set()
        for k, name in enumerate(bvh.channels[j]):
            values = bvh.motion[:, starts[j] + k]
            axis = name[0]
            if name.endswith("position"):
                a = "XYZ".index(axis)
                if translation == "replace" and a not in replaced:
                    trans[:, a] = 0.0
                    replaced.add(a)
                trans[:, a] += values
            else:
                r = r @ _axis_rotation(axis, values)
        p = bvh.parents[j]
        if p < 0:
            pos[:, j], rot[:, j] = trans, r
        else:
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], trans)
            rot[:, j] = rot[:, p] @ r
    return pos


# ------------------------------------------------------------------------------------------- H36M mapping

def normalize_joint_name(name: str) -> str:
    """Lower case, without namespace (``mixamorig:``), rig prefixes (``DEF-``, ``ORG-``, ``MCH-``, ``Bip01``,
    ``Bip001``) and separators (space, ``_``, ``.``, ``-``): ``"DEF-thigh.L"`` -> ``"thighl"``."""
    n = name.split(":")[-1].strip().lower()
    n = re.sub(r"^(def|org|mch)[-_.]", "", n)
    n = re.sub(r"^bip0*1[ _]?", "", n)
    return re.sub(r"[\s_.\-]", "", n)


def _sided(stems: tuple[str, ...], side: str) -> tuple[str, ...]:
    """Candidate names for one side: 'Right'+stem, stem+'.R' (Rigify), 'R'+stem (Biped), stem+'Right'."""
    long_, short = ("right", "r") if side == "R" else ("left", "l")
    out = []
    for s in stems:
        out += [long_ + s, s + short, short + s, s + long_]
    return tuple(out)


_LIMBS = {
    "Hip": ("upleg", "thigh", "upperleg", "hip"),
    "Knee": ("leg", "shin", "lowerleg", "calf", "knee"),
    "Foot": ("foot", "ankle"),
    "Shoulder": ("arm", "upperarm"),
    "Elbow": ("forearm", "lowerarm", "elbow"),
    "Wrist": ("hand", "wrist"),
}

H36M_CANDIDATES: dict[str, tuple[str, ...]] = {
    "Hip": ("hips", "pelvis", "hip", "root"),
    "Thorax": ("neck", "neck1", "neck001", "neckbase"),
    "head": ("head", "face", "skull"),                                      # the skull's base (not H36M's)
    "headtop": ("headtopend", "headtop", "headend", "headnub", "headtopnub"),  # H36M's "Head"
}
for _side in ("R", "L"):
    for _part, _stems in _LIMBS.items():
        H36M_CANDIDATES[f"{_side}{_part}"] = _sided(_stems, _side)
# When no upper-arm joint exists, the joint called shoulder is the gleno-humeral one.
_SHOULDER_FALLBACK = {side: _sided(("shoulder", "clavicle"), side)[:4] for side in ("R", "L")}


def h36m_mapping(bvh: BvhMotion, overrides: Optional[Mapping[str, str]] = None) -> dict[str, int]:
    """H36M joint name (and ``"head"``, the skull's base; ``"Head"`` is the head top) -> index into
    ``bvh.names``, from ``H36M_CANDIDATES``.

    overrides: {H36M joint name or "head": BVH joint name} taking precedence (Spine and Neck/Nose are derived
    unless given here). Missing required joints raise BVHError listing what was looked for; the head top is
    optional (derived when absent). End Sites shorter than a tenth of the file's longest OFFSET (placeholders
    such as a zero-length head end) are never matched by name.
    """
    longest = float(np.linalg.norm(bvh.offsets, axis=-1).max()) if len(bvh.offsets) else 0.0

    def usable(idx: int) -> bool:
        return not bvh.names[idx].endswith("/End") or np.linalg.norm(bvh.offsets[idx]) >= 0.1 * longest > 0

    normalized: dict[str, int] = {}
    for idx, name in enumerate(bvh.names):
        if usable(idx):
            normalized.setdefault(normalize_joint_name(name.replace("/End", "_end")), idx)
    valid_keys = set(JOINT_NAMES) | {"head"}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - valid_keys)
    if unknown:
        raise BVHError(f"{bvh.source}: mapping keys {unknown} are not H36M joints; expected some of "
                       f"{sorted(valid_keys)}")
    found: dict[str, int] = {}
    for key, target in overrides.items():
        if target not in bvh.names:
            raise BVHError(f"{bvh.source}: mapping {key!r} -> {target!r}: no joint of that name; joints are "
                           f"{bvh.names}")
        found[key] = bvh.names.index(target)
    for key, candidates in H36M_CANDIDATES.items():
        target_key = "Head" if key == "headtop" else key
        if target_key in found:
            continue
        for c in candidates:
            if c in normalized:
                found[target_key] = normalized[c]
                break
    for side in ("R", "L"):
        key = f"{side}Shoulder"
        if key not in found:
            for c in _SHOULDER_FALLBACK[side]:
                if c in normalized:
                    found[key] = normalized[c]
                    break
        # An ankle or wrist with no joint of its own: the End Site at the end of the shin or forearm.
        for end, parent in (("Foot", "Knee"), ("Wrist", "Elbow")):
            key = f"{side}{end}"
            if key not in found and f"{side}{parent}" in found:
                tip = _end_site(bvh, found[f"{side}{parent}"])
                if tip is not None and usable(tip):
                    found[key] = tip
    required = ["Hip", "Thorax", "head"] + [f"{s}{p}" for s in "RL" for p in _LIMBS]
    missing = [k for k in required if k not in found]
    if missing:
        raise BVHError(f"{bvh.source}: no joint found for {missing} (looked for names such as "
                       f"{[H36M_CANDIDATES[k][0] for k in missing]}); joints in the file: "
                       f"{[n for n in bvh.names if not n.endswith('/End')]}; pass mapping={{...}} to name them")
    return found


def _end_site(bvh: BvhMotion, joint: int) -> Optional[int]:
    """The End Site child of ``joint`` if it is its only child, else None."""
    children = [i for i, p in enumerate(bvh.parents) if p == joint]
    if len(children) == 1 and bvh.names[children[0]].endswith("/End"):
        return children[0]
    return None


def detect_units(bvh: BvhMotion, translation: str = "replace") -> str:
    """"m", "cm" or "mm" from the size of the skeleton in its first frame; BVHError if it is none of them."""
    first = BvhMotion(bvh.names, bvh.parents, bvh.offsets, bvh.channels, bvh.frame_time, bvh.motion[:1], bvh.source)
    pts = bvh_forward_kinematics(first, translation)[0]
    extent = float(np.max(np.linalg.norm(pts[:, None] - pts[None], axis=-1)))
    for unit, (lo, hi) in (("m", (0.5, 3.0)), ("cm", (50.0, 300.0)), ("mm", (500.0, 3000.0))):
        if lo <= extent <= hi:
            if unit == "cm" and extent < _INCH_DOUBT:
                # an adult in inches (60-80 units tall) falls in the centimetre range as a 0.6-0.8 m body
                warnings.warn(f"{bvh.source}: the skeleton is {extent:.4g} file units end to end, read as "
                              f"centimetres ({extent / 100:.2f} m); an adult in inches would be {extent * 0.0254:.2f} "
                              "m: pass units='in' if the file is in inches, units='cm' to keep this reading",
                              stacklevel=3)
            return unit
    raise BVHError(f"{bvh.source}: cannot tell the units from the skeleton's size ({extent:.4g} file units from "
                   "end to end); pass units='m', 'cm', 'mm' or 'in'")


def resample_poses(poses: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Poses [T, J, 3] at fps_in -> [T', J, 3] at fps_out by linear interpolation in time.

    T' = floor((T - 1) fps_out / fps_in) + 1 (the last output frame is not after the last input frame). Linear
    interpolation of positions is exact for equal rates and shortens bones by at most (omega dt)^2 / 8 of their
    length for a joint turning at omega rad/s (under 0.2 % at 5 rad/s and 30 fps).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if not (fps_in > 0 and fps_out > 0):
        raise ValueError(f"resample_poses: frame rates must be positive, got {fps_in}, {fps_out}")
    if poses.ndim < 1 or poses.shape[0] < 1:
        raise ValueError(f"resample_poses: poses must have at least one frame, got shape {poses.shape}")
    if abs(fps_in - fps_out) < 1e-3 * fps_in:  # "Frame Time: 0.033333" is 30 fps
        return poses.copy()
    count = int(np.floor((poses.shape[0] - 1) * fps_out / fps_in + 1e-9)) + 1
    t = np.arange(count) * (fps_in / fps_out)
    lo = np.minimum(np.floor(t).astype(int), poses.shape[0] - 1)
    hi = np.minimum(lo + 1, poses.shape[0] - 1)
    w = (t - lo).reshape((-1,) + (1,) * (poses.ndim - 1))
    return poses[lo] * (1 - w) + poses[hi] * w


def bvh_to_h36m(bvh: BvhMotion, *, fps: Optional[float] = None, mapping: Optional[Mapping[str, str]] = None,
                units: str = "auto", up_axis: str = "y", translation: str = "replace",
                name: Optional[str] = None) -> MocapTake:
    """Human3.6M-17 world poses (metres, z up) of a parsed BVH file; see the module docstring for the mapping.

    fps: resample to this rate (None: keep the file's). units: "auto", "m", "cm", "mm" or "in". up_axis: the
    file's vertical axis, "y" (BVH's usual) or "z". translation: see ``bvh_forward_kinematics``.
    """
    if up_axis not in ("y", "z"):
        raise ValueError(f"bvh_to_h36m: up_axis must be 'y' or 'z', got {up_axis!r}")
    if units != "auto" and units not in UNIT_SCALES:
        raise ValueError(f"bvh_to_h36m: units must be 'auto' or one of {list(UNIT_SCALES)}, got {units!r}")
    if bvh.num_frames < 1:
        raise BVHError(f"{bvh.source}: the file has no frames")
    found = h36m_mapping(bvh, mapping)
    unit = detect_units(bvh, translation) if units == "auto" else units
    pts = bvh_forward_kinematics(bvh, translation) * UNIT_SCALES[unit]
    if up_axis == "y":  # (x, y, z) Y up -> (x, -z, y) Z up: a proper rotation (det +1)
        pts = np.stack([pts[..., 0], -pts[..., 2], pts[..., 1]], -1)

    poses = np.zeros((bvh.num_frames, NUM_JOINTS, 3))
    for j, joint in enumerate(JOINT_NAMES):
        if joint in found:
            poses[:, j] = pts[:, found[joint]]
    hip, thorax, head = poses[:, 0], poses[:, 8], pts[:, found["head"]]
    torso = np.linalg.norm(thorax - hip, axis=-1, keepdims=True)
    if float(torso.min()) <= 0:
        raise BVHError(f"{bvh.source}: the Hip and Thorax joints coincide in some frame; check the mapping")
    up = head - thorax
    norm = np.linalg.norm(up, axis=-1, keepdims=True)
    if float(norm.min()) <= 0:
        raise BVHError(f"{bvh.source}: the head joint coincides with the Thorax (neck) in some frame; "
                       "check the mapping")
    u = up / norm
    derived = {"Spine": (hip + thorax) / 2, "Neck/Nose": thorax + NOSE_FRACTION * torso * u,
               "Head": thorax + HEAD_TOP_FRACTION * torso * u}
    for joint, value in derived.items():
        if joint not in found:
            poses[:, JOINT_NAMES.index(joint)] = value
    used = {joint: bvh.names[found[joint]] if joint in found else "derived" for joint in JOINT_NAMES}
    rate = bvh.fps
    if fps is not None:
        poses = resample_poses(poses, rate, float(fps))
        rate = float(fps)
    label = name if name is not None else os.path.splitext(os.path.basename(bvh.source))[0]
    return MocapTake(poses, rate, label, used)


def load_bvh(path: str | os.PathLike, **kwargs) -> MocapTake:
    """``bvh_to_h36m(read_bvh(path), **kwargs)``."""
    return bvh_to_h36m(read_bvh(path), **kwargs)
