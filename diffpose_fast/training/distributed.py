"""Training and evaluation on several processes: torch.distributed + DistributedDataParallel, launched by torchrun.

    torchrun --standalone --nproc_per_node=4 train.py                  # one machine, 4 GPUs (or 4 CPU processes)
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
             --rdzv_backend=c10d --rdzv_endpoint=host0:29500 train.py    # two machines (run on each, node_rank 0/1)

``DiffPoseLifter.fit`` and ``evaluate`` call ``init_from_env`` themselves: under torchrun (WORLD_SIZE > 1) the
process group is initialised from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, with NCCL for CUDA
devices and Gloo for CPU. Nothing else is distributed by hand: gradients are averaged by DDP, and the only other
collectives are a sum of the step loss (for the log) and a sum of per-frame errors (evaluation).

How the work is split, so that W processes compute what one process computes:
- training: every rank builds the same global batch of step s (``batch_indices``: a permutation derived from
  (seed, stage, epoch)) and takes the contiguous slice ``shard(B, rank, W)``, the DistributedSampler split of one
  step. All in-step noise is drawn for the global batch and sliced (``step_noise``). Each rank's loss is scaled
  by W * B_local / B so that DDP's gradient average is the gradient of the global-batch mean loss.
- evaluation: whole sequences are assigned to ranks (longest first, to the least-loaded rank); each sequence is
  predicted with a generator derived from its index, so its hypotheses do not depend on who predicts it; the
  per-frame errors are summed into one global vector on every rank and the metrics are computed from it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import torch
from torch import nn

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclasses.dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank in 0..world_size-1 and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() else None


def is_initialized() -> bool:
    dist = _dist()
    return dist is not None and dist.is_initialized()


def local_device(device: torch.device, local_rank: int) -> torch.device:
    """'cuda' without an index means this process's GPU, cuda:LOCAL_RANK, under torchrun."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def init_from_env(device: torch.device | str = "cpu") -> DistContext:
    """The distributed context: the existing process group, one started from torchrun's environment, or none.

    Starts the process group when WORLD_SIZE > 1 and none exists: backend "nccl" for a CUDA ``device``,
    "gloo" otherwise, rendezvous through MASTER_ADDR / MASTER_PORT (init_method "env://").
    """
    device = torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dist = _dist()
    if dist is not None and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, local_device(device, local_rank))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=device)
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(f"distributed: WORLD_SIZE={world} but {missing} are not set; launch with torchrun "
                         "(which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)")
    if dist is None:
        raise RuntimeError("distributed: WORLD_SIZE > 1 but this torch build has no torch.distributed")
    device = local_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shard(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank's contiguous part [lo, hi) of n items; sizes differ by at most one (may be empty when n < W)."""
    return n * rank // world_size, n * (rank + 1) // world_size


def wrap(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """``module`` inside DistributedDataParallel when the job has several processes, else ``module`` itself."""
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def all_reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``value`` over the ranks (a copy on ``value``'s device; ``value`` itself when not distributed)."""
    if not ctx.enabled:
        return value
    dist = _dist()
    out = value.detach().to(ctx.device).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(value.device)


def assign_items(sizes: Sequence[int], world_size: int) -> list[int]:
    """Owner rank of each item: largest first to the least-loaded rank (ties: lower index, lower rank)."""
    load = [0] * world_size
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-int(sizes[i]), i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += int(sizes[i])
    return owner


def sequence_generators(generator: torch.Generator, count: int) -> list[torch.Generator]:
    """One CPU generator per sequence, seeded from one draw of ``generator`` and the sequence index, so a
    sequence's hypotheses do not depend on which rank predicts it or on the sequences before it."""
    base = int(torch.randint(0, 2**62, (1,), generator=generator))
    return [torch.Generator().manual_seed((base + 0x9E3779B97F4A7C15 * (i + 1)) % (2**63 - 1)) for i in range(count)]


def predict_sequences(lifter, sequences: Sequence, generator: torch.Generator, **predict_kwargs) -> list:
    """Per sequence, on every rank: the arrays (poses_3d [T, J, 3], std [T, J], calibrated_std [T, J] or None)
    of ``lifter.predict(seq)``.

    One process: each sequence in turn. In a process group: each rank predicts the sequences ``assign_items``
    gives it, then every prediction is broadcast from its owner (bit-exact copies), in sequence order.
    """
    import numpy as np

    from ..data.skeleton import NUM_JOINTS

    if not isinstance(generator, torch.Generator):
        raise TypeError(f"evaluate: generator must be a torch.Generator or None, got {type(generator).__name__}")
    gens = sequence_generators(generator, len(sequences))

    def arrays(res):
        cal = res.calibrated_std
        return (res.poses_3d, res.std, None if cal is None else np.asarray(cal))

    if not is_initialized() or _dist().get_world_size() == 1:
        return [arrays(lifter.predict(s, generator=g, **predict_kwargs)) for s, g in zip(sequences, gens)]
    dist = _dist()
    rank, world = dist.get_rank(), dist.get_world_size()
    owners = assign_items([s.num_frames for s in sequences], world)
    mine = {i: arrays(lifter.predict(s, generator=gens[i], **predict_kwargs))
            for i, s in enumerate(sequences) if owners[i] == rank}
    # whether results carry calibrated_std: the same model on every rank, so the same answer (lifter.predict)
    sampler, num_samples, _ = lifter._sampling_args(predict_kwargs.get("sampler"), predict_kwargs.get("num_samples"),
                                                    predict_kwargs.get("steps"))
    calibrated = lifter.calibration_map(1 if sampler == "context" else num_samples) is not None
    comm_device = lifter.device if dist.get_backend() == "nccl" else torch.device("cpu")
    out = []
    for i, seq in enumerate(sequences):
        shapes = [(seq.num_frames, NUM_JOINTS, 3), (seq.num_frames, NUM_JOINTS)]
        shapes += [(seq.num_frames, NUM_JOINTS)] if calibrated else []
        got = []
        for k, shape in enumerate(shapes):
            buf = (torch.from_numpy(np.ascontiguousarray(mine[i][k], dtype=np.float32)) if i in mine
                   else torch.empty(shape, dtype=torch.float32))
            buf = buf.to(comm_device)
            dist.broadcast(buf, src=owners[i])
            got.append(buf.cpu().numpy())
        out.append((got[0], got[1], got[2] if calibrated else None))
    return out

