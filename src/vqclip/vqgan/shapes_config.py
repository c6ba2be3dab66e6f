"""The embedded Shapes VQGAN's architecture: 64×64 images, factor 4, a 16×16 code grid."""

from __future__ import annotations

from vqclip.vqgan.model import DDConfig, VQGANConfig

SHAPES_VQGAN_CONFIG = VQGANConfig(
    embed_dim=32,
    n_embed=256,
    ddconfig=DDConfig(
        ch=32,
        out_ch=3,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        resolution=64,
        z_channels=64,
    ),
    quantizer="vq",
    legacy=False,
)
