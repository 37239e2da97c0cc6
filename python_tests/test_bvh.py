"""BVH motion capture (data.bvh): parsing, forward kinematics against scipy, the mapping of CMU / Mixamo / Rigify /
Biped skeletons to Human3.6M-17 with its derived points, units and axes, resampling, malformed files, the round
trip through export.write_bvh, and ``diffpose-fast train --bvh``.

Every BVH file is written here, as text, from numbers drawn by a seeded rng; the references are recomputed in
float64 (scipy's intrinsic Euler rotations for the forward kinematics)."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffpose_fast.cli import main
from diffpose_fast.data.bvh import (HEAD_TOP_FRACTION, NOSE_FRACTION, BVHError, bvh_forward_kinematics,
                                    bvh_to_h36m, load_bvh, normalize_joint_name, read_bvh, resample_poses)
from diffpose_fast.data.skeleton import JOINT_NAMES

ROT3 = ("Xrotation Yrotation Zrotation", "Xrotation Zrotation Yrotation", "Yrotation Xrotation Zrotation",
        "Yrotation Zrotation Xrotation", "Zrotation Xrotation Yrotation", "Zrotation Yrotation Xrotation")
ROOT6 = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
J = {name: i for i, name in enumerate(JOINT_NAMES)}
# BVH Y up (x, y, z) -> world Z up (x, -z, y)
Y_TO_Z = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


# ------------------------------------------------------------------------------------------------ helpers

def _file_order(joints):
    """Joints [(name, parent, offset, channels)] in the order the writer emits them (depth first)."""
    kids = {}
    for j in joints:
        kids.setdefault(j[1], []).append(j)
    out = []

    def walk(j):
        out.append(j)
        for c in kids.get(j[0], []):
            walk(c)

    walk(kids[None][0])
    return out


def _bvh_text(joints, values, frames, frame_time=1 / 30):
    """BVH text of joints [(name, parent or None, offset, channel names)] (End Sites named "<parent>/End") with
    values {joint name: [frames, channels]}; every number written with repr, so it reads back exactly."""
    order = _file_order(joints)
    kids = {}
    for j in joints:
        kids.setdefault(j[1], []).append(j)
    lines = ["HIERARCHY"]
    num = lambda v: repr(float(v))  # noqa: E731

    def emit(j, depth):
        name, parent, off, chans = j
        pad = "  " * depth
        if name.endswith("/End"):
            lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad}  OFFSET {' '.join(map(num, off))}", f"{pad}}}"])
            return
        lines.append(f"{pad}{'ROOT' if parent is None else 'JOINT'} {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(map(num, off))}")
        if chans:
            lines.append(f"{pad}  CHANNELS {len(chans)} {' '.join(chans)}")
        for c in kids.get(name, []):
            emit(c, depth + 1)
        lines.append(f"{pad}}}")

    emit(order[0], 0)
    cols = [np.asarray(values[j[0]], np.float64).reshape(frames, len(j[3])) for j in order if j[3]]
    motion = np.concatenate(cols, 1) if cols else np.zeros((frames, 0))
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time!r}"]
    lines += [" ".join(map(num, row)) for row in motion]
    return "\n".join(lines) + "\n"


def _write(path, joints, values, frames, frame_time=1 / 30):
    path.write_text(_bvh_text(joints, values, frames, frame_time), encoding="utf-8")
    return path


def _reference_fk(joints, values, frames, translation="replace", intrinsic=True):
    """{name: [F, 3]} global positions, recomputed with scipy's intrinsic Euler rotations (BVH convention)."""
    pos, rot = {}, {}
    for name, parent, off, chans in _file_order(joints):
        vals = np.asarray(values.get(name, np.zeros((frames, 0))), np.float64).reshape(frames, len(chans))
        off = np.asarray(off, np.float64)
        trans = np.tile(off, (frames, 1))
        for k, c in enumerate(chans):
            if c.endswith("position"):
                a = "XYZ".index(c[0])
                trans[:, a] = vals[:, k] if translation == "replace" else off[a] + vals[:, k]
        rk = [k for k, c in enumerate(chans) if c.endswith("rotation")]
        if rk:
            seq = "".join(chans[k][0] for k in rk)  # upper case: intrinsic, R = R1 R2 R3
            seq = seq if intrinsic else seq.lower()
            r = Rotation.from_euler(seq, vals[:, rk], degrees=True).as_matrix().reshape(frames, 3, 3)
        else:
            r = np.tile(np.eye(3), (frames, 1, 1))
        if parent is None:
            pos[name], rot[name] = trans, r
        else:
            pos[name] = pos[parent] + np.einsum("fij,fj->fi", rot[parent], trans)
            rot[name] = rot[parent] @ r
    return pos


# A humanoid, centimetres, Y up, facing +Z, its left on +X: (role, parent role, offset).
_ROLES = (
    ("top", None, (0.0, 0.0, 0.0)),
    ("hips", "top", (0.0, 0.0, 0.0)),
    ("luleg", "hips", (9.0, -6.0, 0.5)), ("lleg", "luleg", (0.0, -44.0, 1.0)), ("lfoot", "lleg", (0.0, -43.0, -1.5)),
    ("ltoe", "lfoot", (0.0, -5.0, 13.0)),
    ("ruleg", "hips", (-9.0, -6.0, 0.5)), ("rleg", "ruleg", (0.0, -44.0, 1.0)),
    ("rfoot", "rleg", (0.0, -43.0, -1.5)), ("rtoe", "rfoot", (0.0, -5.0, 13.0)),
    ("spine", "hips", (0.0, 9.0, 0.0)), ("spine1", "spine", (0.0, 14.0, 0.5)), ("spine2", "spine1", (0.0, 14.0, 0.0)),
    ("neck", "spine2", (0.0, 16.0, 1.0)), ("head", "neck", (0.0, 8.0, 6.0)), ("headtop", "head", (0.0, 12.0, 2.0)),
    ("lclav", "spine2", (3.0, 13.0, 0.0)), ("larm", "lclav", (14.0, 0.0, 0.0)), ("lfore", "larm", (28.0, 0.0, 0.0)),
    ("lhand", "lfore", (25.0, 0.0, 0.0)),
    ("rclav", "spine2", (-3.0, 13.0, 0.0)), ("rarm", "rclav", (-14.0, 0.0, 0.0)),
    ("rfore", "rarm", (-28.0, 0.0, 0.0)), ("rhand", "rfore", (-25.0, 0.0, 0.0)),
)
_ROLE = {r: (p, o) for r, p, o in _ROLES}
_LEAF_ENDS = {"ltoe": (0.0, 0.0, 4.0), "rtoe": (0.0, 0.0, 4.0), "lhand": (9.0, 0.0, 0.0), "rhand": (-9.0, 0.0, 0.0),
              "headtop": (0.0, 3.0, 0.0)}

CMU = {"hips": "Hips", "luleg": "LeftUpLeg", "lleg": "LeftLeg", "lfoot": "LeftFoot", "ltoe": "LeftToe",
       "ruleg": "RightUpLeg", "rleg": "RightLeg", "rfoot": "RightFoot", "rtoe": "RightToe", "spine": "Spine",
       "spine1": "Spine1", "spine2": "Spine2", "neck": "Neck", "head": "Head", "lclav": "LeftShoulder",
       "larm": "LeftArm", "lfore": "LeftForeArm", "lhand": "LeftHand", "rclav": "RightShoulder", "rarm": "RightArm",
       "rfore": "RightForeArm", "rhand": "RightHand"}


def _humanoid(names, scale=1.0, head_end=(0.0, 0.0, 0.0)):
    """Joints of the humanoid for names {role: joint name} (roles left out are absent: a missing hand or toe
    leaves an End Site at its place on the parent), offsets times ``scale``."""
    joints = []
    root = "top" if "top" in names else "hips"
    for role, parent, off in _ROLES:
        if role not in names:
            continue
        chans = ROOT6.split() if role == root else "Zrotation Xrotation Yrotation".split()
        joints.append((names[role], None if role == root else names[parent], tuple(scale * v for v in off), chans))
        leaf = [r for r, (p, _) in _ROLE.items() if p == role]
        present = [r for r in leaf if r in names]
        if leaf and present:
            continue
        if role == "head":
            end = head_end
        elif role in _LEAF_ENDS:
            end = _LEAF_ENDS[role]
        else:  # its child role is absent: the End Site sits where the child would be
            end = _ROLE[leaf[0]][1]
        joints.append((f"{names[role]}/End", names[role], tuple(scale * v for v in end), []))
    return joints


def _humanoid_motion(joints, frames, rng, scale=1.0, amplitude=25.0):
    """{name: channel values}: root moving around at hip height (cm x scale), every joint turning by random
    angles within +-amplitude degrees."""
    values = {}
    t = np.arange(frames)
    for name, parent, _, chans in joints:
        if not chans:
            continue
        ang = rng.uniform(-amplitude, amplitude, (frames, 3))
        if parent is None:
            root = np.stack([2.0 * t + 10, 95.0 + 2 * np.sin(t), 1.5 * t - 20], -1) * scale
            values[name] = np.concatenate([root, ang], -1)
        else:
            values[name] = ang
    return values


def _to_world(p_file, unit=0.01):
    return p_file * unit @ Y_TO_Z.T


# ------------------------------------------------------------------------------------------------ FK

def test_forward_kinematics_matches_scipy_with_any_channel_order(tmp_path):
    rng = np.random.default_rng(0)
    frames = 20
    off = lambda: tuple(rng.uniform(-20, 20, 3))  # noqa: E731
    order = [ROT3[int(i)].split() for i in rng.permutation(len(ROT3))]  # all six axis orders, shuffled
    joints = [("Root", None, off(), "Xposition Yposition Zposition".split() + order[0]),
              ("A", "Root", off(), order[1]), ("B", "A", off(), order[2]), ("C", "B", off(), order[3]),
              ("C/End", "C", off(), []), ("D", "A", off(), ["Yrotation"]), ("D/End", "D", off(), []),
              ("E", "Root", off(), ["Zrotation", "Xrotation"]), ("F", "E", off(), order[4]),
              ("F/End", "F", off(), []), ("G", "Root", off(), []), ("H", "G", off(), order[5]),
              ("H/End", "H", off(), [])]
    values = {}
    for name, parent, _, chans in joints:
        if chans:
            v = rng.uniform(-180, 180, (frames, len(chans)))
            if parent is None:
                v[:, :3] = rng.uniform(-100, 100, (frames, 3))
            values[name] = v
    path = _write(tmp_path / "fk.bvh", joints, values, frames, frame_time=0.04)
    motion = read_bvh(path)
    assert motion.names == [j[0] for j in _file_order(joints)]
    assert motion.parents[motion.names.index("C/End")] == motion.names.index("C")
    assert motion.channels[motion.names.index("E")] == ["Zrotation", "Xrotation"]
    assert motion.channels[motion.names.index("G")] == []
    assert motion.num_frames == frames and motion.fps == pytest.approx(25.0) and motion.source == str(path)
    got = bvh_forward_kinematics(motion)
    ref = _reference_fk(joints, values, frames)
    expect = np.stack([ref[n] for n in motion.names], 1)
    scale = np.abs(expect).max()
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-9 * scale)
    # the reference tells conventions apart: extrinsic rotations (R = R3 R2 R1) put the leaves elsewhere
    other = _reference_fk(joints, values, frames, intrinsic=False)
    assert min(np.abs(other[n] - ref[n]).max() for n in ("C/End", "F/End", "H/End")) > 1.0
    with pytest.raises(ValueError, match="translation"):
        bvh_forward_kinematics(motion, translation="offset")


def test_position_channels_replace_or_add_to_the_offset(tmp_path):
    rng = np.random.default_rng(1)
    frames = 12
    joints = [("Root", None, (3.0, 5.0, -2.0), ROOT6.split()),
              ("B", "Root", (4.0, -7.0, 6.0), "Xposition Yposition Zposition Zrotation Yrotation Xrotation".split()),
              ("C", "B", (-5.0, 3.0, 8.0), "Yposition Xrotation Yrotation Zrotation".split()),
              ("C/End", "C", (1.0, 9.0, -2.0), [])]
    values = {"Root": np.concatenate([rng.uniform(-50, 50, (frames, 3)), rng.uniform(-90, 90, (frames, 3))], -1),
              "B": np.concatenate([rng.uniform(-10, 10, (frames, 3)), rng.uniform(-90, 90, (frames, 3))], -1),
              "C": np.concatenate([rng.uniform(-10, 10, (frames, 1)), rng.uniform(-90, 90, (frames, 3))], -1)}
    motion = read_bvh(_write(tmp_path / "p.bvh", joints, values, frames))
    for translation in ("replace", "add"):
        ref = _reference_fk(joints, values, frames, translation)
        expect = np.stack([ref[n] for n in motion.names], 1)
        np.testing.assert_allclose(bvh_forward_kinematics(motion, translation), expect, rtol=0, atol=1e-10)
    replace, add = bvh_forward_kinematics(motion), bvh_forward_kinematics(motion, "add")
    np.testing.assert_allclose(add[:, 0] - replace[:, 0], np.tile([3.0, 5.0, -2.0], (frames, 1)), atol=1e-10)
    # the default is "replace"
    np.testing.assert_array_equal(bvh_forward_kinematics(motion, "replace"), replace)

    # position channels that hold their joint's OFFSET (Blender's export) = the same file without them
    same = dict(values)
    same["B"] = values["B"].copy()
    same["B"][:, :3] = [4.0, -7.0, 6.0]
    same["C"] = values["C"].copy()
    same["C"][:, 0] = 3.0
    with_pos = read_bvh(_write(tmp_path / "with.bvh", joints, same, frames))
    bare_joints = [joints[0], ("B", "Root", joints[1][2], joints[1][3][3:]), ("C", "B", joints[2][2], joints[2][3][1:]),
                   joints[3]]
    bare_values = {"Root": values["Root"], "B": same["B"][:, 3:], "C": same["C"][:, 1:]}
    bare = read_bvh(_write(tmp_path / "bare.bvh", bare_joints, bare_values, frames))
    assert bare.motion.shape == (frames, 6 + 3 + 3) and with_pos.motion.shape == (frames, 6 + 6 + 4)
    np.testing.assert_allclose(bvh_forward_kinematics(with_pos), bvh_forward_kinematics(bare), rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------------ H36M mapping

def _cmu_case(tmp_path, name="walk", frames=20, scale=1.0, head_end=(0.0, 0.0, 0.0), seed=2, names=CMU):
    joints = _humanoid(names, scale=scale, head_end=head_end)
    values = _humanoid_motion(joints, frames, np.random.default_rng(seed), scale=scale)
    path = _write(tmp_path / f"{name}.bvh", joints, values, frames)
    return path, joints, values


def test_cmu_skeleton_to_h36m_mapping_and_derived_points(tmp_path):
    frames = 20
    path, joints, values = _cmu_case(tmp_path, frames=frames)
    take = load_bvh(path)
    assert take.name == "walk" and take.fps == pytest.approx(30.0) and take.num_frames == frames
    assert take.poses_world.shape == (frames, 17, 3) and take.poses_world.dtype == np.float64
    assert take.mapping == {
        "Hip": "Hips", "RHip": "RightUpLeg", "RKnee": "RightLeg", "RFoot": "RightFoot", "LHip": "LeftUpLeg",
        "LKnee": "LeftLeg", "LFoot": "LeftFoot", "Spine": "derived", "Thorax": "Neck", "Neck/Nose": "derived",
        "Head": "derived", "LShoulder": "LeftArm", "LElbow": "LeftForeArm", "LWrist": "LeftHand",
        "RShoulder": "RightArm", "RElbow": "RightForeArm", "RWrist": "RightHand"}
    ref = {k: _to_world(v) for k, v in _reference_fk(joints, values, frames).items()}
    p = take.poses_world
    for joint, source in take.mapping.items():
        if source != "derived":
            np.testing.assert_allclose(p[:, J[joint]], ref[source], rtol=0, atol=1e-11, err_msg=joint)
    hip, thorax, head_joint = ref["Hips"], ref["Neck"], ref["Head"]
    s = np.linalg.norm(thorax - hip, axis=-1, keepdims=True)
    u = (head_joint - thorax) / np.linalg.norm(head_joint - thorax, axis=-1, keepdims=True)
    assert (NOSE_FRACTION, HEAD_TOP_FRACTION) == (0.235, 0.47)
    np.testing.assert_allclose(p[:, J["Spine"]], (hip + thorax) / 2, rtol=0, atol=1e-11)
    np.testing.assert_allclose(p[:, J["Neck/Nose"]], thorax + 0.235 * s * u, rtol=0, atol=1e-11)
    np.testing.assert_allclose(p[:, J["Head"]], thorax + 0.47 * s * u, rtol=0, atol=1e-11)
    # the zero-length head End Site was not taken for the head top (it would sit on the skull's base)
    assert np.linalg.norm(p[:, J["Head"]] - head_joint, axis=-1).min() > 0.05

    # a head End Site of real length is the head top
    path2, joints2, values2 = _cmu_case(tmp_path, name="withend", frames=frames, head_end=(0.0, 14.0, 3.0))
    take2 = load_bvh(path2)
    assert take2.mapping["Head"] == "Head/End"
    ref2 = _to_world(_reference_fk(joints2, values2, frames)["Head/End"])
    np.testing.assert_allclose(take2.poses_world[:, J["Head"]], ref2, rtol=0, atol=1e-11)


def test_units_are_detected_or_given(tmp_path):
    frames = 6
    cm_path, _, _ = _cmu_case(tmp_path, name="cm", frames=frames, seed=3)
    expect = load_bvh(cm_path).poses_world
    assert 0.5 < np.ptp(expect[..., 2], axis=1).max() < 2.5  # a person in metres
    for unit, scale in (("m", 0.01), ("mm", 10.0)):
        path, _, _ = _cmu_case(tmp_path, name=unit, frames=frames, seed=3, scale=scale)
        np.testing.assert_allclose(load_bvh(path).poses_world, expect, rtol=0, atol=1e-12)
        np.testing.assert_allclose(load_bvh(path, units=unit).poses_world, expect, rtol=0, atol=1e-12)
    np.testing.assert_allclose(load_bvh(cm_path, units="in").poses_world, expect * 2.54, rtol=0, atol=1e-12)
    inches, _, _ = _cmu_case(tmp_path, name="inches", frames=frames, seed=3, scale=1 / 2.54)   # an adult in inches
    with pytest.warns(UserWarning, match=r"inches\.bvh: the skeleton is .* read as centimetres .* units='in'"):
        read_as_cm = load_bvh(inches).poses_world
    np.testing.assert_allclose(read_as_cm, expect / 2.54, rtol=0, atol=1e-12)
    np.testing.assert_allclose(load_bvh(inches, units="in").poses_world, expect, rtol=0, atol=1e-12)
    tiny, _, _ = _cmu_case(tmp_path, name="tiny", frames=frames, seed=3, scale=0.001)  # 1.7 mm tall
    with pytest.raises(BVHError, match="cannot tell the units") as info:
        load_bvh(tiny)
    assert str(tiny) in str(info.value) and "units=" in str(info.value)
    for absurd in (0.1, 30.0):  # 17 and 5000 file units tall: between the ranges, or above them
        path, _, _ = _cmu_case(tmp_path, name=f"absurd{absurd}", frames=frames, seed=3, scale=absurd)
        with pytest.raises(BVHError, match="cannot tell the units"):
            load_bvh(path)
    np.testing.assert_allclose(load_bvh(tiny, units="m").poses_world, expect * 0.1, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="units"):
        load_bvh(cm_path, units="feet")
    with pytest.raises(ValueError, match="up_axis"):
        load_bvh(cm_path, up_axis="x")


def test_y_up_becomes_z_up_by_a_proper_rotation(tmp_path):
    frames = 3
    joints = _humanoid(CMU)
    values = {n: np.zeros((frames, len(c))) for n, _, _, c in joints if c}
    values["Hips"][:, :3] = [[10.0, 95.0, -20.0], [12.0, 96.0, -18.0], [15.0, 94.0, -15.0]]
    path = _write(tmp_path / "rest.bvh", joints, values, frames)
    take = load_bvh(path)
    p = take.poses_world
    # the BVH Spine joint, 9 cm straight above the root along +Y in the file, is straight above it in z
    spine = load_bvh(path, mapping={"Spine": "Spine"}).poses_world[:, J["Spine"]] - p[:, J["Hip"]]
    np.testing.assert_allclose(spine, [[0.0, 0.0, 0.09]] * frames, rtol=0, atol=1e-12)
    # the neck base: 53 cm up and 1.5 cm forward (+Z) in the file -> 0.53 m up, 0.015 m towards -y
    thorax_up = p[:, J["Thorax"]] - p[:, J["Hip"]]
    np.testing.assert_allclose(thorax_up, [[0.0, -0.015, 0.53]] * frames, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p[:, J["Hip"]], np.array(values["Hips"][:, :3]) * 0.01 @ Y_TO_Z.T, atol=1e-12)
    # not mirrored: the person's right x forward = up (forward = the way the face looks, +Z in the file)
    right = p[:, J["RHip"]] - p[:, J["LHip"]]
    forward = p[:, J["Neck/Nose"]] - p[:, J["Thorax"]]
    forward[:, 2] = 0.0
    up = np.cross(right, forward)
    assert (up[:, 2] > 0).all() and np.allclose(up[:, :2], 0.0, atol=1e-12)
    assert np.linalg.det(Y_TO_Z) == pytest.approx(1.0)
    # a Z-up file of the same pose (offsets and root rotated the same way) with up_axis="z"
    zjoints = [(n, par, tuple(Y_TO_Z @ np.asarray(o)), c) for n, par, o, c in joints]
    zvalues = dict(values)
    zvalues["Hips"] = values["Hips"].copy()
    zvalues["Hips"][:, :3] = values["Hips"][:, :3] @ Y_TO_Z.T
    ztake = load_bvh(_write(tmp_path / "zup.bvh", zjoints, zvalues, frames), up_axis="z")
    np.testing.assert_allclose(ztake.poses_world, p, rtol=0, atol=1e-12)


MIXAMO = {r: f"mixamorig:{n}" for r, n in CMU.items()} | {"ltoe": "mixamorig:LeftToeBase",
                                                          "rtoe": "mixamorig:RightToeBase",
                                                          "headtop": "mixamorig:HeadTop_End"}
RIGIFY = {"hips": "pelvis", "luleg": "thigh.L", "lleg": "shin.L", "lfoot": "foot.L", "ltoe": "toe.L",
          "ruleg": "thigh.R", "rleg": "shin.R", "rfoot": "foot.R", "rtoe": "toe.R", "spine": "spine",
          "spine1": "spine.001", "spine2": "spine.002", "neck": "neck", "head": "face", "lclav": "shoulder.L",
          "larm": "upper_arm.L", "lfore": "forearm.L", "rclav": "shoulder.R", "rarm": "upper_arm.R",
          "rfore": "forearm.R"}  # no hand joints: the wrists are the forearms' End Sites
BIPED = {"top": "Bip01", "hips": "Bip01 Pelvis", "luleg": "Bip01 L Thigh", "lleg": "Bip01 L Calf",
         "lfoot": "Bip01 L Foot", "ltoe": "Bip01 L Toe0", "ruleg": "Bip01 R Thigh", "rleg": "Bip01 R Calf",
         "rfoot": "Bip01 R Foot", "rtoe": "Bip01 R Toe0", "spine": "Bip01 Spine", "spine1": "Bip01 Spine1",
         "spine2": "Bip01 Spine2", "neck": "Bip01 Neck", "head": "Bip01 Head", "headtop": "Bip01 HeadNub",
         "lclav": "Bip01 L Clavicle", "larm": "Bip01 L UpperArm", "lfore": "Bip01 L Forearm",
         "lhand": "Bip01 L Hand", "rclav": "Bip01 R Clavicle", "rarm": "Bip01 R UpperArm",
         "rfore": "Bip01 R Forearm", "rhand": "Bip01 R Hand"}
_H36M_ROLE = {"Hip": "hips", "RHip": "ruleg", "RKnee": "rleg", "RFoot": "rfoot", "LHip": "luleg", "LKnee": "lleg",
              "LFoot": "lfoot", "Thorax": "neck", "LShoulder": "larm", "LElbow": "lfore", "LWrist": "lhand",
              "RShoulder": "rarm", "RElbow": "rfore", "RWrist": "rhand", "Head": "headtop"}


@pytest.mark.parametrize("rig", ["mixamo", "rigify", "rigify_def", "biped", "biped_underscores"])
def test_rig_name_variants_resolve(tmp_path, rig):
    names = {"mixamo": MIXAMO, "rigify": RIGIFY, "biped": BIPED,
             "rigify_def": {r: f"DEF-{n}" for r, n in RIGIFY.items()},
             "biped_underscores": {r: n.replace(" ", "_") for r, n in BIPED.items()}}[rig]
    frames = 5
    path, joints, values = _cmu_case(tmp_path, name=rig, frames=frames, names=names)
    take = load_bvh(path)
    expect = {}
    for joint in JOINT_NAMES:
        role = _H36M_ROLE.get(joint)
        if role in names:
            expect[joint] = names[role]
        elif joint in ("LWrist", "RWrist"):  # Rigify: no hand joint, the forearm's End Site is the wrist
            expect[joint] = names[role[0] + "fore"] + "/End"
        else:
            expect[joint] = "derived"
    assert take.mapping == expect
    ref = {k: _to_world(v) for k, v in _reference_fk(joints, values, frames).items()}
    for joint, source in take.mapping.items():
        if source != "derived":
            np.testing.assert_allclose(take.poses_world[:, J[joint]], ref[source], rtol=0, atol=1e-11)


def test_normalize_joint_name():
    for name in ("LeftUpLeg", "mixamorig:LeftUpLeg", "mixamorig1:leftupleg", "Left_Up_Leg"):
        assert normalize_joint_name(name) == "leftupleg"
    for name in ("thigh.L", "DEF-thigh.L", "ORG-thigh.L", "MCH-thigh_L"):
        assert normalize_joint_name(name) == "thighl"
    for name in ("Bip01 L Thigh", "Bip001 L Thigh", "Bip01_L_Thigh", "bip01-l-thigh"):
        assert normalize_joint_name(name) == "lthigh"


def test_mapping_overrides_and_errors(tmp_path):
    frames = 4
    path, joints, values = _cmu_case(tmp_path, frames=frames)
    ref = {k: _to_world(v) for k, v in _reference_fk(joints, values, frames).items()}
    take = load_bvh(path, mapping={"LShoulder": "LeftShoulder", "Spine": "Spine1", "head": "Head/End"})
    assert take.mapping["LShoulder"] == "LeftShoulder" and take.mapping["Spine"] == "Spine1"
    assert take.mapping["RShoulder"] == "RightArm"  # the others keep their candidates
    np.testing.assert_allclose(take.poses_world[:, J["LShoulder"]], ref["LeftShoulder"], rtol=0, atol=1e-11)
    np.testing.assert_allclose(take.poses_world[:, J["Spine"]], ref["Spine1"], rtol=0, atol=1e-11)
    with pytest.raises(BVHError, match="LeftKnee") as info:
        load_bvh(path, mapping={"LeftKnee": "LeftLeg"})
    assert str(path) in str(info.value)
    with pytest.raises(BVHError, match="Knee_L") as info:
        load_bvh(path, mapping={"LKnee": "Knee_L"})
    assert str(path) in str(info.value)
    no_knees = dict(CMU, lleg="LeftLowLeg", rleg="RightLowLeg")
    bad, _, _ = _cmu_case(tmp_path, name="noknees", frames=frames, names=no_knees)
    with pytest.raises(BVHError, match=r"\['RKnee', 'LKnee'\]") as info:
        load_bvh(bad)
    assert str(bad) in str(info.value) and "mapping=" in str(info.value)
    # ... and naming them fixes it
    fixed = load_bvh(bad, mapping={"LKnee": "LeftLowLeg", "RKnee": "RightLowLeg"})
    np.testing.assert_allclose(fixed.poses_world, load_bvh(path).poses_world, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ round trip

def test_round_trip_through_export_write_bvh(tmp_path):
    from diffpose_fast.data.synthetic import generate_sequences
    from diffpose_fast.export import write_bvh

    poses = generate_sequences(1, 30, seed=0)[0].root_relative_poses().astype(np.float64)
    path = tmp_path / "lifted.bvh"
    err = write_bvh(path, poses, fps=30)
    assert 0 <= err < 0.01
    # write_bvh's names: "Neck/Nose" -> "Neck_Nose", leaves are End Sites; "Thorax" is no candidate name
    take = load_bvh(path, mapping={"Thorax": "Thorax", "Spine": "Spine", "Neck/Nose": "Neck_Nose",
                                   "Head": "Neck_Nose/End", "head": "Neck_Nose/End"})
    assert take.mapping["RFoot"] == "RKnee/End" and take.mapping["LWrist"] == "LElbow/End"
    assert take.mapping["LShoulder"] == "LShoulder" and take.fps == pytest.approx(30.0)
    w = take.poses_world
    cam = np.stack([w[..., 0], -w[..., 2], w[..., 1]], -1)  # world (x, -z, y) of BVH (x, -y, -z) of camera
    dist = np.linalg.norm(cam - poses, axis=-1)
    assert dist.max() <= err + 1e-9, (dist.max(), err)
    assert dist.max() >= err - 1e-9  # the same figure: write_bvh measured this file


# ------------------------------------------------------------------------------------------------ resampling

def test_resample_poses():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(17, 3)), rng.normal(size=(17, 3))
    for fps_in, fps_out, t_in in ((24.0, 30.0, 25), (30.0, 24.0, 31), (24.0, 30.0, 10), (50.0, 30.0, 7)):
        poses = a + b * (np.arange(t_in) / fps_in)[:, None, None]
        out = resample_poses(poses, fps_in, fps_out)
        count = int(np.floor((t_in - 1) * fps_out / fps_in)) + 1
        assert out.shape == (count, 17, 3)
        assert (count - 1) / fps_out <= (t_in - 1) / fps_in < count / fps_out  # no frame after the last input
        np.testing.assert_allclose(out, a + b * (np.arange(count) / fps_out)[:, None, None], rtol=0, atol=1e-12)
    assert resample_poses(np.zeros((25, 17, 3)), 24, 30).shape[0] == 31
    assert resample_poses(np.zeros((31, 17, 3)), 30, 24).shape[0] == 25
    # any motion: linear interpolation in time, per coordinate (np.interp as the reference)
    poses = rng.normal(size=(13, 17, 3))
    out = resample_poses(poses, 30.0, 24.0)
    t_in, t_out = np.arange(13) / 30.0, np.arange(out.shape[0]) / 24.0
    ref = np.stack([np.interp(t_out, t_in, poses[:, j, c]) for j in range(17) for c in range(3)], -1)
    np.testing.assert_allclose(out.reshape(len(t_out), -1), ref, rtol=0, atol=1e-12)
    # equal rates (also "Frame Time: 0.033333" against 30 fps): the poses themselves, as a copy
    for fps_in in (30.0, 1 / 0.033333):
        same = resample_poses(poses, fps_in, 30.0)
        np.testing.assert_array_equal(same, poses)
        same[0] = 0.0
        assert poses[0, 0, 0] != 0.0
    for bad in ((0.0, 30.0), (30.0, -1.0), (float("nan"), 30.0)):
        with pytest.raises(ValueError, match="positive"):
            resample_poses(poses, *bad)


def test_load_bvh_resamples_to_fps(tmp_path):
    frames = 25
    joints = _humanoid(CMU)
    values = _humanoid_motion(joints, frames, np.random.default_rng(5))
    path = _write(tmp_path / "f24.bvh", joints, values, frames, frame_time=1 / 24)
    native = load_bvh(path)
    assert native.fps == pytest.approx(24.0) and native.num_frames == 25
    take = load_bvh(path, fps=30)
    assert take.fps == 30.0 and take.num_frames == 31
    np.testing.assert_allclose(take.poses_world, resample_poses(native.poses_world, 24.0, 30.0), atol=1e-12)
    np.testing.assert_allclose(take.poses_world[::5], native.poses_world[::4], atol=1e-12)  # common instants


# ------------------------------------------------------------------------------------------------ bad files

_GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 20 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 10 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 1 2 3
1 91 0 0 0 0 4 5 6
"""


def test_names_with_spaces_and_byte_order_mark(tmp_path):
    path = tmp_path / "good.bvh"
    path.write_text(_GOOD)
    base = read_bvh(path)
    assert base.names == ["Hips", "Chest", "Chest/End"]
    spaced = tmp_path / "spaced.bvh"
    # 3ds Max Biped names have spaces (Blender's importer reads them too); one with its brace on the line
    spaced.write_text(_GOOD.replace("ROOT Hips", "ROOT Bip01 Pelvis").replace("JOINT Chest\n  {",
                                                                            "JOINT Bip01 Spine {"))
    motion = read_bvh(spaced)
    assert motion.names == ["Bip01 Pelvis", "Bip01 Spine", "Bip01 Spine/End"] and motion.parents == [-1, 0, 1]
    np.testing.assert_array_equal(bvh_forward_kinematics(motion), bvh_forward_kinematics(base))
    packed = tmp_path / "packed.bvh"  # a brace and more on the name's line: the name ends at the brace
    packed.write_text(_GOOD.replace("JOINT Chest\n  {\n    OFFSET 0 20 0", "JOINT Chest { OFFSET 0 20 0"))
    assert "JOINT Chest { OFFSET" in packed.read_text()
    motion = read_bvh(packed)
    assert motion.names == base.names and motion.channels == base.channels
    np.testing.assert_array_equal(motion.offsets, base.offsets)
    bom = tmp_path / "bom.bvh"
    bom.write_bytes(b"\xef\xbb\xbf" + _GOOD.replace("\n", "\r\n").encode())  # Windows Notepad's UTF-8
    motion = read_bvh(bom)
    assert motion.names == base.names
    np.testing.assert_array_equal(motion.motion, base.motion)


@pytest.mark.parametrize("case,needle", [
    ("no_motion", "no MOTION section"),
    ("extra_brace", "unbalanced"),
    ("open_brace", "unclosed"),
    ("channel", "unknown channel"),
    ("few_values", "expected 2 frames of 9 channel values (18 numbers), got 17"),
    ("many_values", "got 19 numbers"),
    ("text_value", "not a number"),
    ("nan_value", "non-finite"),
    ("frame_time_zero", "Frame Time must be a positive"),
    ("offset_text", "OFFSET of 'Chest' must be numbers"),
    ("binary", "not a text file"),
])
def test_malformed_files_raise_bvh_error_naming_the_file(tmp_path, case, needle):
    text = {
        "no_motion": _GOOD.split("MOTION")[0],
        "extra_brace": _GOOD.replace("    }\n  }\n}", "    }\n  }\n}\n}"),
        "open_brace": _GOOD.replace("    }\n  }\n}", "    }\n  }"),
        "channel": _GOOD.replace("3 Zrotation Xrotation Yrotation", "3 Zrotation Wrotation Yrotation"),
        "few_values": _GOOD.replace("4 5 6", "4 5"),
        "many_values": _GOOD.replace("4 5 6", "4 5 6 7"),
        "text_value": _GOOD.replace("4 5 6", "4 five 6"),
        "nan_value": _GOOD.replace("4 5 6", "4 nan 6"),
        "frame_time_zero": _GOOD.replace("0.0333333", "0"),
        "offset_text": _GOOD.replace("OFFSET 0 20 0", "OFFSET 0 twenty 0"),
        "binary": None,
    }[case]
    path = tmp_path / f"{case}.bvh"
    if text is None:
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_text(text)
    with pytest.raises(BVHError, match=re.escape(needle)) as info:
        read_bvh(path)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{path}: ")
    with pytest.raises(BVHError, match=re.escape(needle)):  # load_bvh reports it the same way
        load_bvh(path)


def test_mapping_needs_a_head_and_no_frames(tmp_path):
    path = tmp_path / "empty.bvh"
    joints = _humanoid(CMU)
    path.write_text(_bvh_text(joints, {n: np.zeros((0, len(c))) for n, _, _, c in joints if c}, 0))
    with pytest.raises(BVHError, match="no frames"):
        load_bvh(path)
    motion = read_bvh(path)
    assert motion.num_frames == 0
    with pytest.raises(BVHError, match="Thorax"):  # the head joint sitting on the neck
        bvh_to_h36m(read_bvh(_cmu_case(tmp_path, frames=2)[0]), mapping={"head": "Neck"})


# ------------------------------------------------------------------------------------------------ CLI

TINY_CONFIG = {"embed_dim": 16, "context_dim": 16, "denoiser_heads": 2, "denoiser_blocks": 1, "encoder_layers": 1,
               "encoder_heads": 2, "gmm_samples": 16, "gmm_max_iter": 5, "num_diffusion_steps": 10,
               "sampling_steps": 2, "batch_size": 32}


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_train_on_bvh(tmp_path, capsys):
    from diffpose_fast.lifter import DiffPoseLifter

    frames = 120  # 2 s at 60 fps -> 60 frames at the default 30 fps
    joints = _humanoid(CMU)
    values = _humanoid_motion(joints, frames, np.random.default_rng(6), amplitude=15.0)
    path = _write(tmp_path / "take.bvh", joints, values, frames, frame_time=1 / 60)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    model = tmp_path / "model"
    code, out, err = _run(capsys, ["train", "--bvh", path, "--out", model, "--config", cfg, "--context-steps", 3,
                                   "--diffusion-steps", 3, "--no-progress"])
    assert code == 0, err
    assert "1 BVH take(s), 60 frames at 30 fps -> 1 clips" in out
    history = json.loads((model / "history.json").read_text())
    assert history["dataset"]["name"] == "bvh" and history["dataset"]["files"] == [os.path.abspath(path)]
    assert history["dataset"]["cameras"] == "h36m" and history["dataset"]["views"] == 1
    assert history["frames"] == 60 and history["sequences"] == 1
    assert len(history["context"]) == 3 and len(history["diffusion"]) == 3
    assert np.isfinite(history["context"]).all() and np.isfinite(history["diffusion"]).all()
    lifter = DiffPoseLifter.load(model)
    assert lifter.config.embed_dim == 16 and lifter.config.denoiser_blocks == 1


def test_cli_train_bvh_errors(tmp_path, capsys):
    good, _, _ = _cmu_case(tmp_path, name="good", frames=4)
    broken = tmp_path / "broken.bvh"
    broken.write_text(_GOOD.replace("4 5 6", "4 5"))
    noknees, _, _ = _cmu_case(tmp_path, name="noknees", frames=4, names=dict(CMU, lleg="LowLegL", rleg="LowLegR"))
    model = tmp_path / "m"
    cases = [
        (["--bvh", tmp_path / "nope.bvh"], f"--bvh: no such file: '{tmp_path / 'nope.bvh'}'"),
        (["--bvh", good, broken], f"--bvh: {broken}: expected 2 frames"),
        (["--bvh", noknees], "no joint found for ['RKnee', 'LKnee']"),
        (["--bvh", good, "--data", "synthetic"], "cannot be combined with --data synthetic"),
        (["--bvh", good, "--views", 5], "--views: Human3.6M has 4 cameras, got 5"),
        (["--data", "bvh"], "--data bvh needs --bvh FILE"),
    ]
    for argv, needle in cases:
        code, _, err = _run(capsys, ["train", "--out", model, "--no-progress"] + argv)
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("diffpose-fast train: error:"), err
        assert needle in lines[0], (needle, lines[0])
    assert not model.exists()  # nothing was trained
