"""The Martinez et al. 2017 MLP baseline: its architecture, the max-norm constraint, flip test-time averaging,
and that it learns to lift (far better than the mean pose) on held-out data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose_fast import PoseSequence
from diffpose_fast.baselines import MartinezLifter, MartinezMLP
from diffpose_fast.data.skeleton import flip_permutation
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.metrics import mpjpe


def test_architecture_is_the_papers():
    m = MartinezMLP()
    linears = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert [tuple(x.weight.shape) for x in linears] == [(1024, 34)] + [(1024, 1024)] * 4 + [(48, 1024)]
    norms = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm1d)]
    drops = [x for x in m.modules() if isinstance(x, torch.nn.Dropout)]
    assert len(norms) == 5 and len(drops) == 5 and all(d.p == 0.5 for d in drops)
    expected = (34 * 1024 + 1024) + 4 * (1024 * 1024 + 1024) + (1024 * 48 + 48) + 5 * 2 * 1024
    assert sum(p.numel() for p in m.parameters()) == expected
    x = torch.randn(4, 34)
    m.train()
    h = m.blocks[0](m.inp(x))
    m.eval()
    with torch.no_grad():  # residual: the block adds to its input
        z = m.inp(x)
        torch.testing.assert_close(m.blocks[0](z), z + m.blocks[0].layers(z))
    assert h.shape == (4, 1024)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    train = generate_sequences(12, 60, seed=0)
    mlp = MartinezLifter(seed=0, width=256)
    losses = mlp.fit(train, steps=400, batch_size=64)
    return mlp, losses


def test_max_norm_holds_after_training(trained):
    mlp, losses = trained
    assert len(losses) == 400 and np.mean(losses[-50:]) < 0.5 * np.mean(losses[:20])
    for m in mlp.model.modules():
        if isinstance(m, torch.nn.Linear):
            assert float(m.weight.detach().norm(dim=1).max()) <= 1.0 + 1e-5


def test_learns_to_lift_held_out_frames(trained):
    mlp, _ = trained
    test = generate_sequences(4, 40, seed=7)
    pred = np.concatenate([mlp.predict(s) for s in test])
    gt = np.concatenate([s.root_relative_poses() for s in test])
    assert pred.shape == gt.shape and np.all(pred[:, 0] == 0)
    mean_pose = np.broadcast_to(np.concatenate([s.root_relative_poses() for s in generate_sequences(12, 60, seed=0)])
                                .mean(0), gt.shape)
    assert mpjpe(pred, gt) < 0.6 * mpjpe(mean_pose, gt), (mpjpe(pred, gt), mpjpe(mean_pose, gt))


def test_flip_test_is_exactly_mirror_equivariant(trained):
    mlp, _ = trained
    seq = generate_sequences(1, 10, seed=9)[0]
    w, _ = seq.image_size
    kp = seq.keypoints_2d[:, flip_permutation()].copy()
    kp[..., 0] = w - kp[..., 0]
    mirrored = PoseSequence(kp, image_size=seq.image_size, confidence=seq.confidence[:, flip_permutation()])
    a = mlp.predict(seq, flip_test=True)
    b = mlp.predict(mirrored, flip_test=True)[:, flip_permutation()]
    b[..., 0] = -b[..., 0]
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(mlp.predict(seq) - a).max() > 1e-6  # the averaging changes the answer


def test_bad_input_is_refused():
    mlp = MartinezLifter(width=32)
    with pytest.raises(RuntimeError, match="fit"):
        mlp.predict(generate_sequences(1, 5, seed=0)[0])
    with pytest.raises(ValueError, match="steps"):
        mlp.fit(generate_sequences(1, 5, seed=0), steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        mlp.fit(generate_sequences(1, 5, seed=0), steps=1, batch_size=1)
    no_3d = PoseSequence(np.full((4, 17, 2), 500.0), image_size=(1000, 1000))
    with pytest.raises(ValueError, match="poses_3d"):
        mlp.fit([no_3d], steps=1)
