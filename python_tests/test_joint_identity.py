"""Joint identity (docs/design.md "Joint identity"): without a joint embedding the frame encoder and the denoiser
are exactly equivariant to relabelling the joints by a symmetry of the skeleton (left <-> right), so they can
tell a left wrist from a right one only through its coordinates; with it (the default) a trained network is not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose_fast import DiffPoseLifter
from diffpose_fast.data.skeleton import flip_permutation, normalized_adjacency
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.models.context_frame import FrameContextEncoder
from diffpose_fast.models.denoiser import GCNAttentionDenoiser

from _tiny import tiny

PERM = torch.as_tensor(flip_permutation())
TINY = tiny(batch_size=32)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_left_right_relabelling_is_a_symmetry_of_the_graph():
    a = normalized_adjacency()
    p = flip_permutation()
    np.testing.assert_array_equal(a[np.ix_(p, p)], a)  # what makes the plain GCN equivariant


@torch.no_grad()
def test_plain_encoder_is_equivariant_and_the_embedded_one_is_not():
    torch.manual_seed(0)
    x = torch.randn(8, 17, 3, dtype=torch.float64)
    plain = FrameContextEncoder(in_features=3, hidden=32, num_layers=2, heads=4).double().eval()
    out, out_p = plain(x), plain(x[:, PERM])
    for field in ("features", "pose", "log_sigma_z"):
        a, b = getattr(out_p, field), getattr(out, field)[:, PERM]
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    embedded = FrameContextEncoder(in_features=3, hidden=32, num_layers=2, heads=4, joint_embedding=True).double().eval()
    assert _relative(embedded(x[:, PERM]).pose, embedded(x).pose[:, PERM]) > 1e-3


@torch.no_grad()
def test_plain_denoiser_is_equivariant_and_the_embedded_one_is_not():
    torch.manual_seed(1)
    h, ctx, k = torch.randn(6, 17, 3).double(), torch.randn(6, 17, 16).double(), torch.tensor([1, 3, 5, 7, 9, 2])
    plain = GCNAttentionDenoiser(context_dim=16, hidden=32, embed_dim=16, num_blocks=1, heads=2).double().eval()
    for p in plain.output_conv.parameters():  # zero-initialised: give it an output to compare
        p.normal_(0, 0.1)
    torch.testing.assert_close(plain(h[:, PERM], ctx[:, PERM], k), plain(h, ctx, k)[:, PERM], rtol=1e-10, atol=1e-10)
    embedded = GCNAttentionDenoiser(context_dim=16, hidden=32, embed_dim=16, num_blocks=1, heads=2,
                                    joint_embedding=True).double().eval()
    for p in embedded.output_conv.parameters():
        p.normal_(0, 0.1)
    c, c_p = embedded.condition(ctx), embedded.condition(ctx[:, PERM])
    assert _relative(embedded(h[:, PERM], c_p, k), embedded(h, c, k)[:, PERM]) > 1e-3


@pytest.fixture(scope="module")
def trained():
    lifter = DiffPoseLifter(seed=0, **TINY)
    lifter.fit(generate_sequences(3, 40, seed=0), context_steps=30, diffusion_steps=10, progress=False)
    return lifter


@torch.no_grad()
def test_trained_networks_are_not_left_right_equivariant(trained):
    """The default lifter's trained encoder and denoiser give a different answer for a pose whose joints are
    relabelled left <-> right than the relabelled answer (an equivariant network gives the same, to rounding)."""
    seq = generate_sequences(1, 20, seed=5)[0]
    from diffpose_fast.data.frames import frames_from_sequences

    frames = frames_from_sequences([seq], trained.config.default_confidence, require_poses=False)
    enc = trained.model.encoder
    x = frames.inputs
    out, out_p = enc(x), enc(x[:, PERM])
    assert _relative(out_p.pose, out.pose[:, PERM]) > 0.02
    den = trained.model.denoiser
    assert den.joint_embed is not None and float(den.joint_embed.std()) > 0
    h = out.pose + 0.05 * torch.randn_like(out.pose)
    k = torch.full((len(h),), 5)
    c, c_p = den.condition(out.features), den.condition(out.features[:, PERM])
    assert _relative(den(h[:, PERM], c_p, k), den(h, c, k)[:, PERM]) > 1e-4


@torch.no_grad()
def test_joint_embeddings_change_in_training(trained):
    """They are trained parameters, not constants: both moved away from their initial draw."""
    fresh = DiffPoseLifter(seed=0, **TINY)
    assert not torch.allclose(trained.model.encoder.joint_embed, fresh.model.encoder.joint_embed)
    assert not torch.allclose(trained.model.denoiser.joint_embed, fresh.model.denoiser.joint_embed)
