"""Flip test-time augmentation of a context encoder: its outputs averaged over the input and its mirror image.

Both context encoders (frame and video) read per-joint inputs [..., J, F] whose channel 0 is the screen-normalised
x (VideoPose3D's normalisation is centred, so the mirror negates it) and return a ``ContextOutput``. The mirror
image of a pose is the same pose seen in a mirror: x negated and left <-> right joints swapped
(``data.skeleton.mirror``). A network trained with flip augmentation should answer the mirror image with the
mirrored answer; averaging the two answers (un-mirrored) removes the part of its error that breaks that symmetry
(the field's flip test: VideoPose3D, MixSTE, DiffPose's video evaluation). On held-out real motion it takes about
4 % off the frame encoder's MPJPE (benchmarks/RESULTS.md "Flip test").

f_ST, the pose and log sigma_z are all averaged, so the features that condition the denoiser and the pose that
centres H_K stay consistent; training's stage 2 conditions on the same averaged outputs as inference
(``LifterConfig.flip_test``). The average is mirror-equivariant: encoding the mirrored input gives exactly the
mirror image of encoding the input.
"""
from __future__ import annotations

import torch

from ..data.skeleton import flip_permutation, mirror
from .context_frame import ContextOutput


def mirror_inputs(inputs: torch.Tensor) -> torch.Tensor:
    """Mirror encoder inputs [..., J, F]: normalised x negated, left <-> right joints (``skeleton.mirror``)."""
    return mirror(inputs)


def unmirror_context(context: ContextOutput) -> ContextOutput:
    """Bring the outputs for a mirrored input back to the original labelling: joints swapped back, pose x negated.

    Features [..., J, C] carry no x axis; swapping their joints back makes joint j's features describe joint j
    again. log_sigma_z [..., J] is swapped the same way (depth is not mirrored).
    """
    perm = torch.as_tensor(flip_permutation(context.pose.shape[-2]), device=context.pose.device)
    return ContextOutput(context.features[..., perm, :], mirror(context.pose), context.log_sigma_z[..., perm])


def encode_with_flip_test(encoder: torch.nn.Module, inputs: torch.Tensor, flip_test: bool) -> ContextOutput:
    """``encoder(inputs)``; with ``flip_test`` the mean of its outputs for ``inputs`` and for their mirror image,
    un-mirrored (one forward pass of twice the batch).

    inputs: [B, ...] what the encoder reads (frames [B, J, F], windows [W, T, J, F]).
    """
    if not flip_test:
        return encoder(inputs)
    both = encoder(torch.cat([inputs, mirror_inputs(inputs)], 0))
    b = inputs.shape[0]
    plain = ContextOutput(*(t[:b] for t in both))
    mirrored = unmirror_context(ContextOutput(*(t[b:] for t in both)))
    return ContextOutput(*(0.5 * (a + m) for a, m in zip(plain, mirrored)))
