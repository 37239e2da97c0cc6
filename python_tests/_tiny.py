"""The tiny model the end-to-end tests train in seconds (widths 16, one denoiser block, K = 10 steps): one
definition, each test file naming only what it changes (``tiny(batch_size=32)``)."""

TINY = dict(embed_dim=16, context_dim=16, denoiser_heads=2, denoiser_blocks=1, encoder_layers=1, encoder_heads=2,
            gmm_samples=16, gmm_max_iter=10, num_diffusion_steps=10, sampling_steps=2)


def tiny(**changes) -> dict:
    """TINY with ``changes`` (a new dict every call)."""
    return dict(TINY, **changes)
