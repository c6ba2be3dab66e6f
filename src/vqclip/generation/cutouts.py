"""Cutouts and augmentations: the views of the image that CLIP scores at each step.

Two ways to cut (``method``): random square ``crops`` (vqclip's default), or ``pooled``,
the reference loop's default (nerdyrodent ``generate.py``, cut method "latest"): the
whole image pooled to CLIP's input size, the mean of adaptive average and max pooling,
repeated ``cutn`` times and told apart by the augmentations only.

Augmentations: vqclip's own batched ones (``flip``, ``affine``, ``perspective``,
``color``, ``noise``, ``erase``) draw from the loop's seeded generator; the rest of the
reference's set comes from ``kornia.augmentation`` with the reference's parameters and
draws from torch's global stream (seeded by the loop too). Each is applied to each view
with probability ``p`` (the reference uses 0.7).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from vqclip.errors import VqclipError
from vqclip.generation.settings import AUGMENTS, CUT_METHODS, DEFAULT_WARP

_SPATIAL = re.compile(r"\b(left|right|top|bottom|above|below|center|centre|middle)\b", re.I)
_MOVES_THINGS = ("flip", "resized_crop")  # off when a prompt states a position


def states_position(texts: Sequence[str]) -> bool:
    """Whether any prompt names a position or a spatial relation."""
    return any(_SPATIAL.search(t) for t in texts)


def check_augments(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise VqclipError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTS)}")
    return tuple(names)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)


def _kornia(name: str, cut_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The reference's kornia augmentation called ``name`` (always applied: p is ours)."""
    import kornia.augmentation as K

    made: dict[str, Callable[[], torch.nn.Module]] = {
        "rotate": lambda: K.RandomRotation(degrees=15, p=1.0),
        "shear": lambda: K.RandomShear(shear=5.0, p=1.0),
        "sharpness": lambda: K.RandomSharpness(sharpness=0.3, p=1.0),
        "jitter": lambda: K.ColorJitter(
            brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1, p=1.0
        ),
        "resized_crop": lambda: K.RandomResizedCrop(
            size=(cut_size, cut_size),
            scale=(0.1, 1),
            ratio=(0.75, 1.333),
            cropping_mode="resample",
            p=1.0,
        ),
        "elastic": lambda: K.RandomElasticTransform(p=1.0),
        "thin_plate": lambda: K.RandomThinPlateSpline(scale=0.8, p=1.0),
    }
    module = made[name]()
    return lambda x: module(x)


class Cutouts:
    """Makes ``cutn`` random views of each image, resized to ``cut_size``.

    Args:
        cut_size: CLIP's input side.
        cutn: views per image.
        cut_pow: size distribution exponent (> 1 favours small cutouts); crops only.
        min_frac: smallest cutout side, as a share of the image side; crops only.
        augments: names from :data:`~vqclip.generation.settings.AUGMENTS`.
        keep_position: no flips, resized crops, shifts of at most 2% and whole-image
            views, so that "left" stays left (set when a prompt states a position).
        method: ``crops`` or ``pooled``.
        p: probability that each augmentation is applied to a view.
        warp: the affine warp's largest rotation (degrees), zoom (share) and shift (share
            of the side; at most 0.02 with ``keep_position``).
    """

    def __init__(
        self, cut_size: int, cutn: int, *, cut_pow: float = 1.0, min_frac: float = 0.8,
        augments: Sequence[str] = ("affine", "color", "noise"), keep_position: bool = False,
        method: str = "crops", p: float = 1.0,
        warp: tuple[float, float, float] = DEFAULT_WARP,
    ) -> None:  # fmt: skip
        if cutn < 1:
            raise VqclipError(f"--cutn must be at least 1, got {cutn}")
        if not 0 < min_frac <= 1:
            raise VqclipError(f"the smallest cutout fraction must be in (0, 1], got {min_frac}")
        if method not in CUT_METHODS:
            raise VqclipError(f"unknown cut method {method!r}; choose from crops, pooled")
        self.cut_size, self.cutn, self.cut_pow, self.min_frac = cut_size, cutn, cut_pow, min_frac
        self.augments = check_augments(augments)
        self.keep_position, self.method, self.p = keep_position, method, p
        self.warp = warp
        if keep_position:
            self.augments = tuple(a for a in self.augments if a not in _MOVES_THINGS)
            self.min_frac = 1.0
        self._kornia = {a: _kornia(a, cut_size) for a in self.augments if a not in _OWN}

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B·cutn, 3, cut, cut), images-major."""
        out = self._pooled(images) if self.method == "pooled" else self._crops(images, g)
        return self._augment(out, g)

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        c = (self.cut_size, self.cut_size)
        pooled = (F.adaptive_avg_pool2d(images, c) + F.adaptive_max_pool2d(images, c)) / 2
        return pooled.repeat_interleave(self.cutn, dim=0)  # (B·cutn, 3, c, c)

    def _crops(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _b, _, h, w = images.shape
        side = min(h, w)
        views = []
        for image in images:
            for _ in range(self.cutn):
                u = float(torch.rand((), generator=g, device=g.device))
                size = int(side * (self.min_frac + (1 - self.min_frac) * u**self.cut_pow))
                size = max(1, min(side, size))
                y = int(torch.randint(0, h - size + 1, (), generator=g, device=g.device))
                x = int(torch.randint(0, w - size + 1, (), generator=g, device=g.device))
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
        return torch.cat(views)  # (B·cutn, 3, c, c)

    def _maybe(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``y`` for each view with probability ``p``, else ``x``."""
        if self.p >= 1:
            return y
        keep = torch.rand(x.shape[0], generator=g, device=g.device) < self.p
        return torch.where(keep[:, None, None, None].to(x.device), y, x)

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        for name in self.augments:
            if name == "flip":
                flip = torch.rand(n, generator=g, device=g.device) < 0.5
                y = torch.where(flip[:, None, None, None].to(x.device), x.flip(-1), x)
            elif name == "affine" or (name == "perspective" and "affine" not in self.augments):
                y = self._warp(x, g)
            elif name == "perspective":
                continue  # folded into the affine warp
            elif name == "color":
                bright = _uniform(n, -0.05, 0.05, g).to(x)[:, None, None, None]
                contrast = _uniform(n, 0.9, 1.1, g).to(x)[:, None, None, None]
                mean = x.mean(dim=(1, 2, 3), keepdim=True)
                y = ((x - mean) * contrast + mean + bright).clamp(0, 1)
            elif name == "noise":
                sigma = _uniform(n, 0.0, 0.05, g).to(x)[:, None, None, None]
                y = x + sigma * torch.randn(x.shape, generator=g, device=g.device).to(x)
            elif name == "erase":
                y = self._erase(x, g)
            else:
                y = self._kornia[name](x)
            x = self._maybe(x, y, g)
        return x

    def _warp(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        degrees, zoom, shift = self.warp
        shift = min(shift, 0.02) if self.keep_position else shift
        angle = _uniform(n, -degrees, degrees, g) * math.pi / 180
        scale = _uniform(n, 1 - zoom, 1 + zoom, g)
        tx, ty = _uniform(n, -shift, shift, g), _uniform(n, -shift, shift, g)
        theta = torch.zeros(n, 3, 3, device=g.device)
        theta[:, 0, 0] = torch.cos(angle) / scale
        theta[:, 0, 1] = -torch.sin(angle) / scale
        theta[:, 1, 0] = torch.sin(angle) / scale
        theta[:, 1, 1] = torch.cos(angle) / scale
        theta[:, 0, 2], theta[:, 1, 2], theta[:, 2, 2] = tx * 2, ty * 2, 1.0
        if "perspective" in self.augments:
            theta[:, 2, 0] = _uniform(n, -0.1, 0.1, g)
            theta[:, 2, 1] = _uniform(n, -0.1, 0.1, g)
        if "affine" not in self.augments:  # perspective alone: no rotation, scale or shift
            theta[:, :2, :] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], device=g.device)
        size = x.shape[-1]
        lin = torch.linspace(-1, 1, size, device=g.device)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(-1, 3)  # (S², 3)
        warped = base @ theta.transpose(1, 2)  # (n, S², 3)
        grid = (warped[..., :2] / warped[..., 2:].clamp_min(1e-3)).reshape(n, size, size, 2)
        return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="border",
                             align_corners=True)  # fmt: skip

    def _erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, s, _ = x.shape
        mask = torch.ones(n, 1, s, s, device=g.device)
        for i in range(n):
            if float(torch.rand((), generator=g, device=g.device)) < 0.5:
                side = max(1, int(s * float(_uniform(1, 0.1, 0.25, g))))
                y = int(torch.randint(0, s - side + 1, (), generator=g, device=g.device))
                x0 = int(torch.randint(0, s - side + 1, (), generator=g, device=g.device))
                mask[i, :, y : y + side, x0 : x0 + side] = 0
        mask = mask.to(x)
        return x * mask + x.mean(dim=(2, 3), keepdim=True) * (1 - mask)


_OWN = ("flip", "affine", "perspective", "color", "noise", "erase")
