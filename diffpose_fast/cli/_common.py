"""What the commands share: the error they raise, argument types, the device and model loaders."""
from __future__ import annotations

import argparse
import os


PROG = "diffpose-fast"
# --format names -> keypoint_formats names
FORMAT_CHOICES = {"coco": "coco", "openpose": "body25", "body25": "body25", "body25b": "body25b",
                  "mediapipe": "blazepose33", "halpe": "halpe26", "h36m": "h36m"}
QUICK_ENV = "DIFFPOSE_FAST_DEMO_QUICK"


class CliError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def _number_type(cast, accept, expected: str):
    """An argparse ``type``: ``cast`` the text, keep values for which ``accept`` holds, else say what was
    ``expected`` and what came."""
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {v}")
        return v

    return parse


_positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number_type(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number_type(float, lambda v: v > 0, "a positive number")
_non_negative_float = _number_type(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def _add_sampling(p: argparse.ArgumentParser, default_sampler: str = "ddim") -> None:
    from ..config import SAMPLERS

    p.add_argument("--sampler", choices=SAMPLERS, default=default_sampler,
                   help="reverse process: ddim (few steps), ddpm (all K steps of Eq. 8), context (encoder alone); "
                        f"default {default_sampler}")
    p.add_argument("--num-samples", type=_positive_int, default=5, metavar="N", help="hypotheses (default 5)")
    p.add_argument("--steps", type=_positive_int, default=5, metavar="S",
                   help="DDIM steps (default 5; ignored by ddpm and context)")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, or auto (default cpu)")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CliError(f"--device: not a torch device: {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name}: torch sees no CUDA device (torch {torch.__version__}; a CPU build?)")
    return name


def _device_label(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu: {cpu}; torch threads {torch.get_num_threads()}, {os.cpu_count()} logical cores visible"


def _load_lifter(checkpoint: str, device: str):
    from ..lifter import DiffPoseLifter

    if not os.path.isdir(checkpoint):
        raise CliError(f"--checkpoint: no such model folder: {checkpoint!r}")
    try:
        return DiffPoseLifter.load(checkpoint, device=device)
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"--checkpoint: cannot load {checkpoint!r}: {exc}") from None


def _protocols(name: str):
    """A function of diffpose_fast.protocols, or a CliError saying it is missing from this installation."""
    try:
        from .. import protocols
    except ImportError as exc:
        raise CliError(f"the Human3.6M / 3DHP protocols (diffpose_fast.protocols) are not available in this "
                       f"installation: {exc}") from None
    fn = getattr(protocols, name, None)
    if fn is None:
        raise CliError(f"diffpose_fast.protocols has no {name}() in this installation (version mismatch?)")
    return fn


def _need(args: argparse.Namespace, data: str, *names: str) -> None:
    missing = ["--" + n.replace("_", "-") for n in names if getattr(args, n) is None]
    if missing:
        raise CliError(f"--data {data} needs {' and '.join(missing)}")
    for n in names:
        if not os.path.exists(getattr(args, n)):
            raise CliError(f"--{n.replace('_', '-')}: no such file: {getattr(args, n)!r}")
