"""Reverse-diffusion speed: our reference path, our fast path and the official GCNdiff, in the same run.

What is timed: the reverse loop of one batch of frames (N hypotheses batched into the batch dimension, S
denoiser calls and S updates), inputs built outside the timed region, CUDA synchronised inside it:
- ``reference``: DDIMSampler.sample with the reference GCNAttentionDenoiser (paper widths: 256, 3 blocks);
- ``fast``: ``inference.reverse.reverse_diffusion(..., "auto")`` with the SAME weights (native fused forward on CPU;
  on CUDA the graph-captured loop);
- ``official``: our eager re-implementation of the official GCNdiff (hidden 96, 5 layers; 26.0 MFLOP per pose)
  with the official eta = 0 update (benchmarks/official_denoiser.py).
FLOPs per frame are counted with FlopCounterMode on one call of each denoiser (x N x S); the rate is
FLOPs per frame x frames/s. A correctness check (fast against reference) runs once before any timing. "% ceiling"
is that rate over the float32 matrix-product rate torch.mm measures on the same device in the same run (the
arithmetic roofline for these GEMM-dominated networks: the share of the machine the implementation uses).

Script (prints a table; CPU numbers in benchmarks/RESULTS.md were made with it):
    OMP_NUM_THREADS=1 python benchmarks/bench_denoiser.py --batches 1 64 1024 --steps 5
pytest-benchmark (smaller default grid, ratios in extra_info):
    OMP_NUM_THREADS=1 pytest benchmarks/bench_denoiser.py --benchmark-only
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_denoiser import OfficialGCNdiff, official_sample  # noqa: E402

from diffpose_fast.diffusion.schedule import DiffusionSchedule  # noqa: E402
from diffpose_fast.inference.reverse import reverse_diffusion  # noqa: E402
from diffpose_fast.models.denoiser import GCNAttentionDenoiser  # noqa: E402

N_HYP = 5
J = 17
IMPLS = ("reference", "fast", "official", "reference@128", "fast@128")
# "@128": our denoiser at about the official code's size (hidden 128 = 64 + 64, 5 blocks, 4 heads)
SMALL = dict(context_dim=64, embed_dim=64, hidden=128, num_blocks=5, heads=4)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, torch threads " \
           f"{torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"


class Setup:
    """Models and inputs for one device (weights random, shared by the reference and fast paths)."""

    def __init__(self, device: torch.device):
        torch.manual_seed(0)
        self.device = device
        self.ours = GCNAttentionDenoiser().eval().to(device)
        with torch.no_grad():
            for p in self.ours.output_conv.parameters():  # a non-trivial output (it is zero-initialised)
                p.normal_(0.0, 0.02)
        self.ours_small = GCNAttentionDenoiser(**SMALL).eval().to(device)
        with torch.no_grad():
            for p in self.ours_small.output_conv.parameters():
                p.normal_(0.0, 0.02)
        self.official = OfficialGCNdiff().eval().to(device)
        self.schedule = DiffusionSchedule(50)
        self.official_alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 2e-2, 50), 0)
        self.flops = {"ours": self._flops(self.ours), "official": self._flops(self.official),
                      "ours@128": self._flops(self.ours_small)}

    def _flops(self, model) -> float:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            if isinstance(model, OfficialGCNdiff):
                model(torch.zeros(2, J, 5, device=self.device), torch.zeros(2, device=self.device))
            else:
                model(torch.zeros(2, J, 3, device=self.device), torch.zeros(2, J, model.context_dim, device=self.device), 1)
        return counter.get_total_flops() / 2  # per pose per call

    def flops_per_frame(self, impl: str, steps: int) -> float:
        key = "official" if impl == "official" else ("ours@128" if impl.endswith("@128") else "ours")
        return self.flops[key] * N_HYP * steps

    def runner(self, impl: str, frames: int, steps: int):
        B = frames * N_HYP
        g = torch.Generator().manual_seed(frames)
        dev = self.device
        if impl == "official":
            x = torch.randn(B, J, 5, generator=g).to(dev)
            seq = list(range(0, 50, 50 // steps))[:steps]

            def run():
                with torch.no_grad():
                    return official_sample(self.official, x, seq, self.official_alpha_bar.to(dev))
            return run
        mu = (0.3 * torch.randn(B, J, 3, generator=g)).to(dev)
        h = mu + 0.1 * torch.randn(B, J, 3, generator=g).to(dev)
        model = self.ours_small if impl.endswith("@128") else self.ours
        feats = torch.randn(B, J, model.context_dim, generator=g).to(dev)
        backend = "reference" if impl.startswith("reference") else "auto"

        def run():
            with torch.no_grad():
                return reverse_diffusion(model, self.schedule, feats, h, mu, steps, backend)
        return run


def reference_of(impl: str) -> str:
    """The reference path of the same weights as ``impl`` (the ratio's denominator)."""
    return "reference@128" if impl.endswith("@128") else "reference"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(run, device) -> float:
    sync(device)
    t = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - t


def check_fast_against_reference(setup: Setup) -> float:
    ref = setup.runner("reference", 4, 5)()
    fast = setup.runner("fast", 4, 5)()
    err = ((fast - ref).abs().max() / ref.abs().max()).item()
    if not err < 1e-3:
        raise RuntimeError(f"fast path disagrees with the reference: max relative error {err:.3g}")
    return err


def measure(setup: Setup, frames: int, steps: int, repeats: int, impls=IMPLS) -> dict:
    """Best-of-``repeats`` seconds per call for each implementation, interleaved so load drifts hit all of them."""
    runs = {impl: setup.runner(impl, frames, steps) for impl in impls}
    for run in runs.values():  # warm-up (packing, caches, graph capture)
        run()
    best = {impl: float("inf") for impl in impls}
    for _ in range(repeats):
        for impl, run in runs.items():
            best[impl] = min(best[impl], time_once(run, setup.device))
    return best


def matmul_ceiling(device: torch.device, seconds: float = 1.0) -> float:
    """The device's measured float32 matrix-product rate (FLOP/s): the arithmetic ceiling the denoiser's rates
    are reported against. One large square product (2048 on the CPU, 8192 on a GPU, with torch's default
    float32 precision, so TF32 only where the user enabled it), best of a few timed calls after a warm-up."""
    n = 8192 if device.type == "cuda" else 2048
    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(n, n, generator=g).to(device) for _ in range(2))
    torch.mm(a, b)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end or best == float("inf"):
        best = min(best, time_once(lambda: torch.mm(a, b), device))
    return 2 * n ** 3 / best


def _ratio(table: dict, num: str, den: str) -> str:
    return f"{table[num] / table[den]:.2f}" if num in table and den in table else "-"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--steps", type=int, nargs="+", default=[5])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS,
                    help="which to time (ratios need 'official' and the matching 'reference')")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    setup = Setup(device)
    err = check_fast_against_reference(setup)
    ceiling = matmul_ceiling(device)
    print(f"# device: {device_name(device)}; torch {torch.__version__}; fast vs reference max rel err {err:.2e}")
    print(f"# measured float32 matmul ceiling (torch.mm, square): {ceiling / 1e9:.1f} GFLOP/s; '% ceiling' is each "
          f"row's GFLOP/s over it")
    print(f"# MFLOP per pose per call: ours {setup.flops['ours'] / 1e6:.1f}, ours@128 {setup.flops['ours@128'] / 1e6:.1f}, "
          f"official {setup.flops['official'] / 1e6:.1f}")
    print("| batch | S | impl | ms per batch | frames/s | ms per frame | MFLOP/frame | GFLOP/s | % ceiling | x reference | x official (frames/s) | x official (GFLOP/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        for frames in args.batches:
            best = measure(setup, frames, steps, args.repeats, args.impls)
            rate = {i: setup.flops_per_frame(i, steps) * frames / best[i] for i in args.impls}
            for impl in args.impls:
                fps = frames / best[impl]
                print(f"| {frames} | {steps} | {impl} | {best[impl] * 1e3:.1f} | {fps:.1f} | {best[impl] * 1e3 / frames:.3f} | "
                      f"{setup.flops_per_frame(impl, steps) / 1e6:.0f} | {rate[impl] / 1e9:.1f} | "
                      f"{100 * rate[impl] / ceiling:.0f}% | "
                      f"{_ratio(best, reference_of(impl), impl)} | {_ratio(best, 'official', impl)} | "
                      f"{_ratio(rate, impl, 'official')} |", flush=True)


# ------------------------------------------------------------------------------------------ pytest-benchmark
try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    _SETUP: dict = {}

    def _setup() -> Setup:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if dev not in _SETUP:
            _SETUP[dev] = Setup(dev)
            check_fast_against_reference(_SETUP[dev])
        return _SETUP[dev]

    _TIMES: dict = {}

    @pytest.mark.parametrize("impl", IMPLS[:3])
    @pytest.mark.parametrize("frames,steps", [(1, 5), (64, 5), (1, 50)])
    def test_reverse_loop(benchmark, impl, frames, steps):
        setup = _setup()
        run = setup.runner(impl, frames, steps)
        run()
        dev = setup.device
        benchmark.pedantic(lambda: (run(), sync(dev)), rounds=3, iterations=1)
        t = benchmark.stats.stats.min
        _TIMES[(impl, frames, steps)] = t
        benchmark.extra_info.update(
            device=device_name(dev), torch=torch.__version__, impl=impl, frames=frames, hypotheses=N_HYP,
            steps=steps, frames_per_s=frames / t, ms_per_frame=1e3 * t / frames,
            flops_per_frame=setup.flops_per_frame(impl, steps),
            gflops_per_s=setup.flops_per_frame(impl, steps) * frames / t / 1e9)
        for other in IMPLS:  # ratios against whatever ran earlier in this session
            if (other, frames, steps) in _TIMES and other != impl:
                benchmark.extra_info[f"speedup_vs_{other}"] = _TIMES[(other, frames, steps)] / t


if __name__ == "__main__":
    main()
