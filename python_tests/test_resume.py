"""Resumable training: a run killed with SIGKILL and resumed ends bit-exactly where the uninterrupted run ends;
damaged checkpoints and checkpoints of another run are refused with CheckpointError before anything is loaded.

This file is also the killed worker: ``python test_resume.py DIR KILL_AT`` trains with checkpoints in DIR and
SIGKILLs itself during optimiser step KILL_AT (counted over both stages, from 1).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffpose_fast import DiffPoseLifter
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast.persistence import CheckpointError
from diffpose_fast.training.checkpoint import META_KEY, list_checkpoints, load_checkpoint

from _tiny import tiny

TINY = tiny(batch_size=16, dropout=0.1)  # dropout on: the global RNG must be re-seeded per step for resume to be exact
RUN = dict(context_steps=6, diffusion_steps=6, progress=False)
EVERY = 4  # checkpoints after steps 4, 6 (end of stage 1), 8, 12


def _train():
    return generate_sequences(2, 20, seed=0)


VIDEO = dict(mode="video", frames=5, encoder_layers=2)   # windows of 5 frames, 3 per step of 16


def _fit(video: bool = False, **kwargs):
    lifter = DiffPoseLifter(seed=0, **dict(TINY, **(VIDEO if video else {})))
    history = lifter.fit(_train(), **RUN, **kwargs)
    return lifter, history


def _assert_same(a, b):
    (la, ha), (lb, hb) = a, b
    assert ha["context"] == hb["context"] and ha["diffusion"] == hb["diffusion"]
    for name, value in la.model.state_dict().items():
        assert torch.equal(value, lb.model.state_dict()[name]), f"EMA weights differ at {name}"
        assert torch.equal(la._raw_state[name], lb._raw_state[name]), f"raw weights differ at {name}"


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: bit-exactness holds for a fixed thread count


@pytest.fixture(scope="module")
def reference():
    return _fit()


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    from diffpose_fast.training import checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    keep, checkpoint.KEEP_CHECKPOINTS = checkpoint.KEEP_CHECKPOINTS, 10  # keep all of them here
    try:
        return folder, _fit(checkpoint_dir=folder, checkpoint_every=EVERY)
    finally:
        checkpoint.KEEP_CHECKPOINTS = keep


def _worker(folder: Path, kill_at: int, video: bool = False) -> None:
    from diffpose_fast.training import trainer as trainer_module

    torch.set_num_threads(1)
    original = trainer_module.Trainer._optimise
    count = {"n": 0}

    def optimise(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    trainer_module.Trainer._optimise = optimise
    _fit(video, checkpoint_dir=folder, checkpoint_every=EVERY)


def test_sigkill_mid_run_then_resume_is_bit_exact(tmp_path, reference):
    kill_at = int(np.random.default_rng().integers(EVERY + 1, 12))  # after the first checkpoint, before the end
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, str(tmp_path), str(kill_at)], env=env, capture_output=True,
                          timeout=240)
    assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stdout[-2000:], proc.stderr[-2000:])
    found = list_checkpoints(tmp_path)
    assert found, f"killed at step {kill_at} but no checkpoint was written"
    newest = load_checkpoint(tmp_path)
    assert newest.global_step < kill_at
    resumed = _fit(checkpoint_dir=tmp_path, checkpoint_every=EVERY, resume=True)
    _assert_same(resumed, reference)


@pytest.mark.parametrize("step", [4, 6, 8, 12])  # inside stage 1, at the stage boundary, inside stage 2, at the end
def test_resume_from_every_kind_of_checkpoint_is_bit_exact(checkpointed, reference, step):
    folder, full = checkpointed
    _assert_same(full, reference)  # writing checkpoints changes nothing
    resumed = _fit(resume=folder / f"checkpoint-{step:08d}.safetensors")
    _assert_same(resumed, reference)


def test_checkpoint_contents(checkpointed):
    folder, _ = checkpointed
    assert [p.name for p in list_checkpoints(folder)] == [f"checkpoint-{s:08d}.safetensors" for s in (4, 6, 8, 12)]
    ckpt = load_checkpoint(folder)
    assert ckpt.stage == "diffusion" and ckpt.next_step == 6 and ckpt.global_step == 12
    assert {k.split(".")[0] for k in ckpt.tensors} == {"model", "ema", "opt", "hk", "raw"}  # raw: encoder pre-EMA
    assert ckpt.meta["scheduler"]["last_epoch"] == 6
    assert len(ckpt.meta["run_sha256"]) == 64 and ckpt.meta["run"]["config"]["dropout"] == 0.1
    assert not any(p.suffix == ".tmp" for p in folder.iterdir())


def test_resume_true_without_checkpoints_starts_afresh(tmp_path, reference):
    _assert_same(_fit(checkpoint_dir=tmp_path, checkpoint_every=2, resume=True), reference)
    # every 2 steps and at each stage's end; only the newest KEEP_CHECKPOINTS = 2 stay
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000010.safetensors",
                                                            "checkpoint-00000012.safetensors"]


def test_leftover_temporary_file_of_a_killed_write_is_ignored(checkpointed, tmp_path, reference):
    folder, _ = checkpointed
    src = folder / "checkpoint-00000008.safetensors"
    (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / "checkpoint-00000012.safetensors.abc123.tmp").write_bytes(src.read_bytes()[:100])
    _assert_same(_fit(resume=tmp_path), reference)


# ----------------------------------------------------------------------------------------- damaged files

def _copy(folder: Path, tmp_path: Path, step: int = 8) -> Path:
    dst = tmp_path / f"checkpoint-{step:08d}.safetensors"
    dst.write_bytes((folder / f"checkpoint-{step:08d}.safetensors").read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["truncated", "tensor_byte", "header_byte", "empty", "garbage"])
def test_damaged_checkpoint_is_a_clear_error_and_loads_nothing(checkpointed, tmp_path, damage):
    folder, _ = checkpointed
    path = _copy(folder, tmp_path)
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    elif damage == "tensor_byte":
        data[header + (len(data) - header) // 2] ^= 0x10
    elif damage == "header_byte":
        data[header // 2] = ord("}")
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(os.urandom(len(data)))
    path.write_bytes(bytes(data))
    lifter = DiffPoseLifter(seed=0, **TINY)
    before = {k: v.clone() for k, v in lifter.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="damaged|truncated|not a diffpose_fast"):
        lifter.fit(_train(), **RUN, resume=path)
    assert all(torch.equal(before[k], v) for k, v in lifter.model.state_dict().items())
    assert not lifter.trained


def test_checkpoint_of_another_run_is_refused_naming_the_fields(checkpointed):
    folder, _ = checkpointed
    lifter = DiffPoseLifter(seed=1, **dict(TINY, dropout=0.2))
    with pytest.raises(CheckpointError, match=r"config\.dropout: checkpoint 0\.1, now 0\.2") as info:
        lifter.fit(_train(), **RUN, resume=folder)
    assert "seed: checkpoint 0, now 1" in str(info.value)
    with pytest.raises(CheckpointError, match="batch_size: checkpoint 16, now 8"):
        DiffPoseLifter(seed=0, **TINY).fit(_train(), **RUN, batch_size=8, resume=folder)
    with pytest.raises(CheckpointError, match="data_sha256"):
        DiffPoseLifter(seed=0, **TINY).fit(generate_sequences(2, 20, seed=5), **RUN, resume=folder)


def test_checkpoint_that_does_not_fit_the_model_loads_nothing(checkpointed, tmp_path):
    """A checkpoint whose run matches but whose tensors do not (rewritten with a valid hash) is refused whole."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from diffpose_fast.training.checkpoint import tensors_sha256

    folder, _ = checkpointed
    src = folder / "checkpoint-00000008.safetensors"
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()[META_KEY])
    tensors = load_file(str(src))
    name = sorted(k for k in tensors if k.startswith("model.denoiser"))[-1]
    tensors[name] = torch.zeros(3, 3)
    meta["tensors_sha256"] = tensors_sha256(tensors)
    dst = tmp_path / src.name
    save_file(tensors, str(dst), metadata={META_KEY: json.dumps(meta)})
    lifter = DiffPoseLifter(seed=0, **TINY)
    before = {k: v.clone() for k, v in lifter.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not fit the model"):
        lifter.fit(_train(), **RUN, resume=dst)
    assert all(torch.equal(before[k], v) for k, v in lifter.model.state_dict().items())


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(checkpoint_every=4), ValueError, "needs checkpoint_dir"),
    (dict(checkpoint_dir="x", checkpoint_every=0), ValueError, "checkpoint_every must be >= 1"),
    (dict(checkpoint_dir="x", checkpoint_every=2.5), TypeError, "checkpoint_every must be an int"),
    (dict(checkpoint_dir=3), TypeError, "checkpoint_dir must be a path"),
    (dict(resume=True), ValueError, "checkpoint_dir, which is None"),
    (dict(resume=7), TypeError, "resume must be"),
    (dict(resume="/nonexistent/ckpt.safetensors"), CheckpointError, "does not exist"),
])
def test_checkpoint_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        DiffPoseLifter(seed=0, **TINY).fit(_train(), **RUN, **kwargs)


# ------------------------------------------------------------------------------------------- video mode
@pytest.fixture(scope="module")
def video_reference():
    return _fit(True)


def test_video_sigkill_mid_run_then_resume_is_bit_exact(tmp_path, video_reference):
    """Video training runs in the same Trainer (video.training.VideoStages): killed and resumed, it ends where
    the uninterrupted run ends, and writing checkpoints changes nothing."""
    kill_at = int(np.random.default_rng().integers(EVERY + 1, 12))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, str(tmp_path), str(kill_at), "video"], env=env,
                          capture_output=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stdout[-2000:], proc.stderr[-2000:])
    assert load_checkpoint(tmp_path).global_step < kill_at
    assert load_checkpoint(tmp_path).meta["run"]["stages"] == "video"
    _assert_same(_fit(True, checkpoint_dir=tmp_path, checkpoint_every=EVERY, resume=True), video_reference)


def test_video_checkpoint_is_not_a_frame_run(tmp_path):
    _fit(True, checkpoint_dir=tmp_path, checkpoint_every=EVERY)
    with pytest.raises(CheckpointError, match="mode|stages"):
        _fit(False, resume=tmp_path)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), int(sys.argv[2]), video=sys.argv[3:] == ["video"])
