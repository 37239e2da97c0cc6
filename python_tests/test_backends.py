"""One backend vocabulary ("reference", "native", "triton", "auto") honoured through predict(): by its backend
argument, by force_backend and by DIFFPOSE_FAST_BACKEND, each compared with the reference answer."""
import numpy as np
import pytest

from diffpose_fast import DiffPoseLifter
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.ops import force_backend

from _tiny import tiny

TINY = tiny(gmm_samples=32, sampling_steps=3)
# float32 throughout; the native EM and the fused denoiser sum in another order than the reference
ATOL_M = 1e-4


@pytest.fixture(scope="module")
def case():
    seq = generate_sequences(1, 6, seed=5)[0]
    lifter = DiffPoseLifter(seed=3, **TINY)
    return lifter, seq, lifter.predict(seq, num_samples=3, backend="reference").samples


@pytest.mark.parametrize("name", ["reference", "native"])
def test_force_backend_and_the_environment_reach_every_op_of_predict(case, name, monkeypatch):
    lifter, seq, ref = case
    with force_backend(name):
        np.testing.assert_allclose(lifter.predict(seq, num_samples=3).samples, ref, atol=ATOL_M)
    monkeypatch.setenv("DIFFPOSE_FAST_BACKEND", name)
    np.testing.assert_allclose(lifter.predict(seq, num_samples=3).samples, ref, atol=ATOL_M)


@pytest.mark.parametrize("name", ["native", "auto"])
def test_predict_backend_argument(case, name):
    lifter, seq, ref = case
    np.testing.assert_allclose(lifter.predict(seq, num_samples=3, backend=name).samples, ref, atol=ATOL_M)


def test_predict_triton_backend(case):
    pytest.importorskip("triton")
    import os

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton kernels run on the CPU only under TRITON_INTERPRET=1")
    lifter, seq, ref = case
    np.testing.assert_allclose(lifter.predict(seq, num_samples=3, backend="triton").samples, ref, atol=ATOL_M)


def test_unknown_names_are_refused_with_where_they_came_from(case, monkeypatch):
    lifter, seq, _ = case
    with pytest.raises(ValueError, match="force_backend: backend must be one of"):
        with force_backend("cuda"):
            pass
    monkeypatch.setenv("DIFFPOSE_FAST_BACKEND", "fastest")
    with pytest.raises(ValueError, match="DIFFPOSE_FAST_BACKEND names an unknown backend 'fastest'"):
        lifter.predict(seq, num_samples=2)
    monkeypatch.delenv("DIFFPOSE_FAST_BACKEND")
    with pytest.raises(ValueError, match="backend must be one of"):
        lifter.predict(seq, num_samples=2, backend="cuda")


def test_the_denoiser_old_name_torch_still_means_reference(case):
    import torch

    from diffpose_fast.ops.denoiser.fused import FusedDenoiser

    lifter, _, _ = case
    den = lifter.model.denoiser
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(4, 17, 3, generator=gen)
    ctx = torch.randn(4, 17, lifter.config.context_dim, generator=gen)
    fused = FusedDenoiser(den)
    torch.testing.assert_close(fused(h, ctx, 5, backend="torch"), fused(h, ctx, 5, backend="reference"))
