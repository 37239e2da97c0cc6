"""skeleton.mirror: the one left/right mirror of per-joint values, numpy and torch, against a direct reading."""
import numpy as np
import torch

from diffpose_fast.data.skeleton import JOINT_NAMES, mirror


def test_mirror_swaps_named_sides_and_negates_x_for_numpy_and_torch():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(4, 17, 3))
    out = mirror(poses)
    for j, name in enumerate(JOINT_NAMES):
        other = {"L": "R", "R": "L"}.get(name[0])
        partner = JOINT_NAMES.index(other + name[1:]) if other else j   # LHip <-> RHip; Spine stays
        np.testing.assert_array_equal(out[:, partner, 0], -poses[:, j, 0])
        np.testing.assert_array_equal(out[:, partner, 1:], poses[:, j, 1:])
    np.testing.assert_array_equal(mirror(out), poses)            # its own inverse
    t = torch.from_numpy(poses.copy())
    torch.testing.assert_close(mirror(t), torch.from_numpy(out))
    assert torch.equal(t, torch.from_numpy(poses))                # the input is left as it was
