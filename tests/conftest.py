"""Shared helpers for the tests: image degradations used by the robustness tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def add_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = arr + rng.normal(0.0, sigma, arr.shape)
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def blur(image: Image.Image, radius: float = 1.0) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=radius))
