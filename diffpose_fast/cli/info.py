"""The ``info`` command: the build (native modules, CUDA architectures) and the torch device."""
from __future__ import annotations

import argparse

from ._common import _device_label


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from .._build_info import format_build_info

    print(format_build_info(), flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch device: {_device_label(device)}", flush=True)
    return 0
