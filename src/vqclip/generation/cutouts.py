"""Cutouts and augmentations: the views of the image that CLIP scores at each step."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vqclip.errors import VqclipError

AUGMENTS: tuple[str, ...] = ("flip", "affine", "perspective", "color", "noise", "erase")
_SPATIAL = re.compile(r"\b(left|right|top|bottom|above|below|center|centre|middle)\b", re.I)


def states_position(texts: Sequence[str]) -> bool:
    """Whether any prompt names a position or a spatial relation."""
    return any(_SPATIAL.search(t) for t in texts)


def check_augments(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise VqclipError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTS)}")
    return tuple(names)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


class Cutouts:
    """Makes ``cutn`` random views of each image, resized to ``cut_size``.

    Args:
        cut_size: CLIP's input side.
        cutn: views per image.
        cut_pow: size distribution exponent (> 1 favours small cutouts).
        min_frac: smallest cutout side, as a share of the image side.
        augments: names from :data:`AUGMENTS`.
        keep_position: no flips, shifts of at most 2% and whole-image views, so
            that "left" stays left (set when a prompt states a position).
    """

    def __init__(
        self, cut_size: int, cutn: int, *, cut_pow: float = 1.0, min_frac: float = 0.8,
        augments: Sequence[str] = ("affine", "color", "noise"), keep_position: bool = False,
    ) -> None:  # fmt: skip
        if cutn < 1:
            raise VqclipError(f"--cutn must be at least 1, got {cutn}")
        if not 0 < min_frac <= 1:
            raise VqclipError(f"the smallest cutout fraction must be in (0, 1], got {min_frac}")
        self.cut_size, self.cutn, self.cut_pow, self.min_frac = cut_size, cutn, cut_pow, min_frac
        self.augments = check_augments(augments)
        self.keep_position = keep_position
        if keep_position:
            self.augments = tuple(a for a in self.augments if a != "flip")
            self.min_frac = 1.0

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B·cutn, 3, cut, cut), images-major."""
        _b, _, h, w = images.shape
        side = min(h, w)
        views = []
        for image in images:
            for _ in range(self.cutn):
                u = float(torch.rand((), generator=g))
                size = int(side * (self.min_frac + (1 - self.min_frac) * u**self.cut_pow))
                size = max(1, min(side, size))
                y = int(torch.randint(0, h - size + 1, (), generator=g))
                x = int(torch.randint(0, w - size + 1, (), generator=g))
                crop = image[None, :, y : y + size, x : x + size]
                views.append(
                    F.interpolate(
                        crop,
                        size=(self.cut_size, self.cut_size),
                        mode="bilinear",
                        align_corners=False,
                        antialias=size > self.cut_size,
                    )
                )
        out = torch.cat(views)  # (B·cutn, 3, c, c)
        return self._augment(out, g)

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        if "flip" in self.augments:
            flip = torch.rand(n, generator=g) < 0.5
            x = torch.where(flip[:, None, None, None].to(x.device), x.flip(-1), x)
        if "affine" in self.augments or "perspective" in self.augments:
            x = self._warp(x, g)
        if "color" in self.augments:
            bright = _uniform(n, -0.05, 0.05, g).to(x)[:, None, None, None]
            contrast = _uniform(n, 0.9, 1.1, g).to(x)[:, None, None, None]
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * contrast + mean + bright).clamp(0, 1)
        if "noise" in self.augments:
            sigma = _uniform(n, 0.0, 0.05, g).to(x)[:, None, None, None]
            x = x + sigma * torch.randn(x.shape, generator=g).to(x)
        if "erase" in self.augments:
            x = self._erase(x, g)
        return x

    def _warp(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        shift = 0.02 if self.keep_position else 0.08
        angle = _uniform(n, -10, 10, g) * math.pi / 180
        scale = _uniform(n, 0.95, 1.05, g)
        tx, ty = _uniform(n, -shift, shift, g), _uniform(n, -shift, shift, g)
        theta = torch.zeros(n, 3, 3)
        theta[:, 0, 0] = torch.cos(angle) / scale
        theta[:, 0, 1] = -torch.sin(angle) / scale
        theta[:, 1, 0] = torch.sin(angle) / scale
        theta[:, 1, 1] = torch.cos(angle) / scale
        theta[:, 0, 2], theta[:, 1, 2], theta[:, 2, 2] = tx * 2, ty * 2, 1.0
        if "perspective" in self.augments:
            theta[:, 2, 0] = _uniform(n, -0.1, 0.1, g)
            theta[:, 2, 1] = _uniform(n, -0.1, 0.1, g)
        if "affine" not in self.augments:  # perspective alone: no rotation, scale or shift
            theta[:, :2, :] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
        size = x.shape[-1]
        lin = torch.linspace(-1, 1, size)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(-1, 3)  # (S², 3)
        warped = base @ theta.transpose(1, 2)  # (n, S², 3)
        grid = (warped[..., :2] / warped[..., 2:].clamp_min(1e-3)).reshape(n, size, size, 2)
        return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="border",
                             align_corners=True)  # fmt: skip

    def _erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, s, _ = x.shape
        mask = torch.ones(n, 1, s, s)
        for i in range(n):
            if float(torch.rand((), generator=g)) < 0.5:
                side = max(1, int(s * float(_uniform(1, 0.1, 0.25, g))))
                y = int(torch.randint(0, s - side + 1, (), generator=g))
                x0 = int(torch.randint(0, s - side + 1, (), generator=g))
                mask[i, :, y : y + side, x0 : x0 + side] = 0
        mask = mask.to(x)
        return x * mask + x.mean(dim=(2, 3), keepdim=True) * (1 - mask)
