"""DistributedDataParallel training and distributed evaluation: two Gloo processes on CPU, started the way
torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), against a one-process run.

This file is also the worker: ``python test_distributed.py OUT_DIR`` trains a tiny lifter and writes what it saw.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffpose_fast.training import distributed as dist_utils

from _tiny import tiny

TINY = tiny(encoder_dropout=0.0)  # dropout masks are drawn per rank, so only a dropout-free run equals one process
STEPS = dict(context_steps=4, diffusion_steps=4, batch_size=15)  # 40 frames: batches 15, 15, 10, 15 (uneven shards)


VIDEO = dict(mode="video", frames=5, encoder_layers=2)   # 3 windows of 5 frames per step: shards of 2 and 1


def _worker(out: Path, video: bool = False) -> None:
    from safetensors.torch import save_file

    from diffpose_fast import DiffPoseLifter
    from diffpose_fast.data.synthetic import generate_sequences

    torch.set_num_threads(1)
    train = generate_sequences(2, 20, seed=0)
    test = generate_sequences(3, 7, seed=1) + generate_sequences(1, 11, seed=2)  # 4 sequences, unequal lengths
    lifter = DiffPoseLifter(seed=0, **dict(TINY, **(VIDEO if video else {})))
    history = lifter.fit(train, progress=False, **STEPS)
    report = lifter.evaluate(test, num_samples=2, steps=2)
    rank = int(os.environ.get("RANK", "0"))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    local_report = lifter.evaluate(test, num_samples=2, steps=2)  # the same weights, one process
    (out / f"rank{rank}.json").write_text(json.dumps({"world": world, "video": video, "context": history["context"],
                                                      "diffusion": history["diffusion"], "report": report,
                                                      "local_report": local_report}))
    save_file({k: v.contiguous() for k, v in lifter.model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, world: int, video: bool = False) -> list[subprocess.Popen]:
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    base["OMP_NUM_THREADS"] = "1"
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = dict(base)
        if world > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, __file__, str(out)] + (["video"] if video else []), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return procs


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        text, _ = p.communicate(timeout=240)
        assert p.returncode == 0, text.decode()[-3000:]


@pytest.fixture(scope="module", params=["frame", "video"])
def runs(tmp_path_factory, request):
    """(one-process run, two-rank run) of the frame model, then of the video model (video.training.VideoStages in
    the same Trainer: its windows are shared out over the ranks)."""
    video = request.param == "video"
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    procs = _launch(two, 2, video)
    threads = torch.get_num_threads()
    try:
        _worker(one, video)  # the one-process reference, here while the two ranks run
    finally:
        torch.set_num_threads(threads)
    _wait(procs)
    return one, two


def _read(folder: Path, rank: int):
    from safetensors.torch import load_file

    return json.loads((folder / f"rank{rank}.json").read_text()), load_file(str(folder / f"rank{rank}.safetensors"))


def test_two_gloo_processes_match_one_process(runs):
    one, two = runs
    ref, ref_w = _read(one, 0)
    r0, w0 = _read(two, 0)
    r1, w1 = _read(two, 1)
    assert ref["world"] == 1 and r0["world"] == 2 and r1["world"] == 2
    for stage in ("context", "diffusion"):
        assert len(r0[stage]) == STEPS[f"{stage}_steps"]
        # every rank logs the global-batch loss; it is the one-process loss up to float rounding
        np.testing.assert_allclose(r0[stage], r1[stage], rtol=1e-6)
        np.testing.assert_allclose(r0[stage], ref[stage], rtol=2e-5, atol=1e-6)
    for k in ref_w:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)  # DDP keeps the replicas identical
        got, want = w0[k], ref_w[k]
        if ref["video"] and k.endswith("qkv.bias"):
            # The attention's key bias has a gradient of exactly zero (softmax ignores a shift shared by all keys),
            # so what it gets is rounding noise, which Adam scales up to steps of about the learning rate: only
            # bounded by steps x lr = 4e-3 here (the video encoder's attention shows it). The query and value
            # biases are compared like every weight.
            third = got.numel() // 3
            assert (got[third:2 * third] - want[third:2 * third]).abs().max() <= 4 * 1e-3
            got, want = torch.cat([got[:third], got[2 * third:]]), torch.cat([want[:third], want[2 * third:]])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=2e-5, msg=lambda m: f"{k}: {m}")


def test_distributed_evaluation_is_exactly_the_one_process_evaluation(runs):
    _, two = runs
    for rank in (0, 1):
        rep, _ = _read(two, rank)
        assert rep["report"] == rep["local_report"]  # bit-exact: every float equal
        assert rep["report"]["frames"] == 3 * 7 + 11


def test_shard_and_assignment_cover_everything():
    for n in (0, 1, 5, 15, 16):
        for world in (1, 2, 3, 8):
            parts = [dist_utils.shard(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1
    owners = dist_utils.assign_items([7, 7, 7, 11], 2)
    assert owners == [1, 1, 0, 0] or sorted(owners) == [0, 0, 1, 1]
    loads = [sum(s for s, o in zip([7, 7, 7, 11], owners) if o == r) for r in range(2)]
    assert max(loads) <= 18


def test_step_noise_slices_give_each_sample_the_same_draws():
    """The DDP property of stage 2's randomness: a rank's slice of the batch gets exactly the draws those samples
    get in the whole batch (H_K samples, k-means++ seeds, GMM paths). Training and inference share these
    functions (distribution.initial), so this also covers the inference path's H_K."""
    from diffpose_fast.config import LifterConfig
    from diffpose_fast.distribution.initial import fit_initial_distribution, hk_samples
    from diffpose_fast.training import step_noise as sn

    cfg = LifterConfig(gmm_samples=12, gmm_components=3, train_hypotheses=2)
    g = torch.Generator().manual_seed(0)
    b, j = 6, 17
    pose = torch.randn(b, j, 3, generator=g) * 0.3
    pose[:, 0] = 0
    log_sigma = torch.randn(b, j, generator=g) * 0.1 - 2.5
    kp = torch.rand(b, j, 2, generator=g) * 500 + 100
    conf = torch.rand(b, j, generator=g)
    kw = dict(sigma_min=cfg.keypoint_sigma_min, sigma_max=cfg.keypoint_sigma_max)

    def paths(lo, hi):
        noise = sn.diffusion_noise(b, cfg, j, False, torch.Generator().manual_seed(7)).rows(lo, hi)
        hk = hk_samples(pose[lo:hi], log_sigma[lo:hi], kp[lo:hi], conf[lo:hi], noise, **kw)
        dist = fit_initial_distribution(hk, noise.seed_u, scope=cfg.gmm_scope, num_components=cfg.gmm_components,
                                        covariance="full", max_iter=100, tol=1e-3, reg_covar=1e-3,
                                        backend="reference")
        return (hk,) + dist.draw(noise)

    full = paths(0, b)
    for lo, hi in ((0, 3), (3, 6), (2, 5)):
        for whole, part in zip(full, paths(lo, hi)):
            torch.testing.assert_close(part, whole[lo:hi], rtol=1e-5, atol=1e-6)


def test_no_env_means_one_process(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    ctx = dist_utils.init_from_env("cpu")
    assert not ctx.enabled and ctx.is_main and ctx.world_size == 1


def test_incomplete_torchrun_env_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        dist_utils.init_from_env("cpu")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), video=sys.argv[2:] == ["video"])
