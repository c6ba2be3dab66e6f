"""The VQGAN autoencoder, written to taming-transformers' module and parameter names.

Those names are the checkpoint format: ``encoder.down[i].block[j]``, ``mid.attn_1``,
``quantize.embedding`` and so on must stay exactly as they are so that official
checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqclip.errors import VqclipError
from vqclip.vqgan.quantize import GumbelQuantize, VectorQuantizer


@dataclass(frozen=True)
class DDConfig:
    """taming's ``ddconfig``: the encoder/decoder shape."""

    ch: int = 128
    out_ch: int = 3
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    in_channels: int = 3
    resolution: int = 256
    z_channels: int = 256
    double_z: bool = False
    give_pre_end: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DDConfig:
        """Builds the config, refusing unknown keys (taming silently ignored them)."""
        return cls(**_checked(cls, d, "ddconfig"))


@dataclass(frozen=True)
class VQGANConfig:
    """A whole VQGAN: ``embed_dim``, ``n_embed``, ``ddconfig`` and the quantiser kind."""

    embed_dim: int = 256
    n_embed: int = 16384
    ddconfig: DDConfig = field(default_factory=DDConfig)
    quantizer: str = "vq"  # "vq" (taming VectorQuantizer2) or "gumbel"
    legacy: bool = True  # taming's legacy commitment-loss weighting
    beta: float = 0.25
    kl_weight: float = 1e-8

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VQGANConfig:
        """Builds the config from plain JSON-like data, refusing unknown keys."""
        d = _checked(cls, d, "vqgan config")
        if "ddconfig" in d:
            d["ddconfig"] = DDConfig.from_dict(d["ddconfig"])
        if d.get("quantizer", "vq") not in ("vq", "gumbel"):
            raise VqclipError(f"unknown quantizer {d['quantizer']!r}; expected 'vq' or 'gumbel'")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _checked(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise VqclipError(f"{what} must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise VqclipError(f"unknown {what} key(s) {unknown}; known: {sorted(names)}")
    out = dict(d)
    for f in dataclasses.fields(cls):
        if f.name in out and isinstance(out[f.name], list):
            out[f.name] = tuple(out[f.name])
    return out


def Normalize(in_channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class Upsample(nn.Module):
    def __init__(self, in_channels: int, with_conv: bool) -> None:
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2H, 2W)
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    def __init__(self, in_channels: int, with_conv: bool) -> None:
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:  # asymmetric padding, as taming does
            return self.conv(F.pad(x, (0, 1, 0, 1)))  # (B, C, H/2, W/2)
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    def __init__(self, *, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.norm = Normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, hh, ww = x.shape
        q = self.q(h).reshape(b, c, hh * ww).transpose(1, 2)  # (B, HW, C)
        k = self.k(h).reshape(b, c, hh * ww).transpose(1, 2)  # (B, HW, C)
        v = self.v(h).reshape(b, c, hh * ww).transpose(1, 2)  # (B, HW, C)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        out = out.transpose(1, 2).reshape(b, c, hh, ww)  # (B, C, H, W)
        return x + self.proj_out(out)


class _Level(nn.Module):
    """One resolution level: ``block``, ``attn`` and optionally ``downsample``/``upsample``."""

    downsample: nn.Module
    upsample: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class _Mid(nn.Module):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(in_channels=channels, out_channels=channels, dropout=dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(in_channels=channels, out_channels=channels, dropout=dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


def _levels(modules: nn.ModuleList) -> list[_Level]:
    return [m for m in modules if isinstance(m, _Level)]


class Encoder(nn.Module):
    levels = staticmethod(_levels)

    def __init__(self, cfg: DDConfig) -> None:
        super().__init__()
        self.num_resolutions = len(cfg.ch_mult)
        self.num_res_blocks = cfg.num_res_blocks
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, 1, 1)
        res = cfg.resolution
        in_mult = (1, *cfg.ch_mult)
        self.down = nn.ModuleList()
        block_in = cfg.ch
        for i in range(self.num_resolutions):
            level = _Level()
            block_in, block_out = cfg.ch * in_mult[i], cfg.ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks):
                level.block.append(
                    ResnetBlock(in_channels=block_in, out_channels=block_out, dropout=cfg.dropout)
                )
                block_in = block_out
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i != self.num_resolutions - 1:
                level.downsample = Downsample(block_in, cfg.resamp_with_conv)
                res //= 2
            self.down.append(level)
        self.mid = _Mid(block_in, cfg.dropout)
        self.norm_out = Normalize(block_in)
        z_out = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.conv_out = nn.Conv2d(block_in, z_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, ch, H, W)
        for i, level in enumerate(self.levels(self.down)):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            if i != self.num_resolutions - 1:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(swish(self.norm_out(h)))  # (B, z, H/f, W/f)


class Decoder(nn.Module):
    levels = staticmethod(_levels)

    def __init__(self, cfg: DDConfig) -> None:
        super().__init__()
        self.num_resolutions = len(cfg.ch_mult)
        self.give_pre_end = cfg.give_pre_end
        block_in = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, 1, 1)
        self.mid = _Mid(block_in, cfg.dropout)
        levels: list[_Level] = []
        for i in reversed(range(self.num_resolutions)):
            level = _Level()
            block_out = cfg.ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(
                    ResnetBlock(in_channels=block_in, out_channels=block_out, dropout=cfg.dropout)
                )
                block_in = block_out
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i != 0:
                level.upsample = Upsample(block_in, cfg.resamp_with_conv)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))  # (B, C, h, w)
        levels = self.levels(self.up)
        for i in reversed(range(self.num_resolutions)):
            level = levels[i]
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            if i != 0:
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        return self.conv_out(swish(self.norm_out(h)))  # (B, 3, H, W) in about [-1, 1]


class VQGAN(nn.Module):
    """Encoder, quantiser and decoder with taming's ``VQModel``/``GumbelVQ`` names.

    Images are (B, 3, H, W) in [-1, 1], as taming uses them.
    """

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.config = cfg
        dd = cfg.ddconfig
        self.encoder = Encoder(dd)
        self.decoder = Decoder(dd)
        self.quantize: VectorQuantizer | GumbelQuantize
        if cfg.quantizer == "gumbel":
            self.quantize = GumbelQuantize(
                dd.z_channels, cfg.embed_dim, cfg.n_embed, kl_weight=cfg.kl_weight
            )
        else:
            self.quantize = VectorQuantizer(
                cfg.n_embed, cfg.embed_dim, beta=cfg.beta, legacy=cfg.legacy
            )
        self.quant_conv = nn.Conv2d(dd.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, dd.z_channels, 1)

    @property
    def factor(self) -> int:
        """The downsampling factor f: a latent cell covers f×f pixels."""
        return int(2 ** (len(self.config.ddconfig.ch_mult) - 1))

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors (n_embed, embed_dim)."""
        return self.quantize.codebook

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The continuous latent before quantisation: (B, embed_dim, H/f, W/f)."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantised latent (B, D, h, w), the codebook loss, and code indices (B, h, w)."""
        return self.quantize(self.encode_latent(x))

    def decode(self, quant: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W), about [-1, 1], from a quantised latent (B, D, h, w)."""
        return self.decoder(self.post_quant_conv(quant))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from code indices (B, h, w)."""
        return self.decode(self.quantize.embed_indices(indices))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction (B, 3, H, W), codebook loss, and code indices (B, h, w)."""
        quant, qloss, indices = self.encode(x)
        return self.decode(quant), qloss, indices
