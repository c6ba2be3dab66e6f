"""CLIP models as open_clip builds them, the embedded Shapes configuration, and the bundle
of model + tokenizer + preprocessing that every CLIP user in vqclip receives."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from vqclip.clip import fastvit
from vqclip.devices import inference_autocast
from vqclip.errors import VqclipError

# The embedded model: a small ViT on 64×64 Shapes images and a small text transformer
# over the standard CLIP tokenizer. An ordinary open_clip configuration.
SHAPES_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 192, "patch_size": 8, "head_width": 48},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 4, "layers": 4},
}
SHAPES_PREPROCESS: dict[str, Any] = {
    "size": 64,
    "mode": "RGB",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def build_model(model_cfg: dict[str, Any]) -> open_clip.CLIP:
    """Builds an open_clip ``CLIP`` from a model configuration (random weights).

    Raises:
        VqclipError: the configuration has unknown or missing keys.
    """
    cfg = copy.deepcopy(model_cfg)
    cfg.pop("custom_text", None)
    try:
        return open_clip.CLIP(**cfg)
    except TypeError as e:
        raise VqclipError(f"invalid open_clip model config: {e}") from None


@dataclass
class ClipBundle:
    """A CLIP model with everything needed to use it.

    Attributes:
        model: the open_clip model (eval mode).
        tokenizer: turns a list of strings into a (N, context_length) token tensor.
        preprocess: PIL image -> normalised tensor (3, S, S) (resize, centre crop, normalise).
        image_size: the model's input side in pixels.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        name: where the model came from (``shapes``, ``ViT-B-32:openai``, a path).
        precision: the autocast of its forward passes (``auto``, ``fp32``, ``bf16``,
            ``fp16``): ``auto`` is bf16 (else fp16) on a GPU and float32 on the CPU; the
            CPU runs bf16 only when asked, and fp16 never.
    """

    model: torch.nn.Module
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    preprocess: Callable[[Image.Image], torch.Tensor]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    precision: str = "auto"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalises images (B, 3, H, W) in [0, 1] with the model's constants."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype)
        return (images - mean[:, None, None]) / std[:, None, None]

    def encode_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised embeddings (B, D) of images (B, 3, H, W) in [0, 1], resized as needed.

        Differentiable, so generation can pull gradients through it.
        """
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(
                images, size=(self.image_size, self.image_size), mode="bilinear",
                align_corners=False, antialias=True,
            )  # fmt: skip
        visual = getattr(self.model, "visual", None)
        with inference_autocast(images.device, self.precision):
            if fastvit.supports(visual):  # the same function, with less work (see fastvit)
                feats = fastvit.encode(visual, self.normalize(images))
            else:
                feats = self.model.encode_image(self.normalize(images))  # type: ignore[operator]
        return F.normalize(feats.float(), dim=-1)

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 256) -> torch.Tensor:
        """Normalised embeddings (N, D) of PIL images, preprocessed as the model expects."""
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.stack([self.preprocess(im) for im in images[i : i + batch_size]])
            with inference_autocast(self.device, self.precision):
                feats = self.model.encode_image(x.to(self.device))  # type: ignore[operator]
            out.append(F.normalize(feats.float(), dim=-1))
        return torch.cat(out) if out else torch.empty(0)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """Normalised embeddings (N, D) of texts."""
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i : i + batch_size])).to(self.device)
            with inference_autocast(self.device, self.precision):
                feats = self.model.encode_text(tokens)  # type: ignore[operator]
            out.append(F.normalize(feats.float(), dim=-1))
        return torch.cat(out) if out else torch.empty(0)


def make_bundle(
    model: torch.nn.Module,
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any] | None,
    name: str,
) -> ClipBundle:
    """Wraps a model with the tokenizer and preprocessing its configuration implies."""
    pp = PreprocessCfg(**(preprocess_cfg or {}))
    size = model_cfg["vision_cfg"].get("image_size", 224)
    pp.size = size
    context = model_cfg.get("text_cfg", {}).get("context_length", 77)
    tokenizer = open_clip.SimpleTokenizer(context_length=context)
    model.eval()
    return ClipBundle(
        model=model,
        tokenizer=tokenizer,
        preprocess=image_transform_v2(pp, is_train=False),
        image_size=int(size if isinstance(size, int) else size[0]),
        mean=(float(pp.mean[0]), float(pp.mean[1]), float(pp.mean[2])),
        std=(float(pp.std[0]), float(pp.std[1]), float(pp.std[2])),
        name=name,
    )


def save_model_dir(
    model: torch.nn.Module,
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any],
    folder: Path,
    half: bool = False,
) -> None:
    """Writes ``folder/open_clip_config.json`` + ``open_clip_model.safetensors``, atomically.

    This is open_clip's own ``local-dir:`` layout, so plain open_clip loads it too.
    """
    from vqclip.io import atomic_open, save_safetensors

    save_safetensors(model, folder / WEIGHTS_NAME, half=half)
    with atomic_open(folder / CONFIG_NAME) as f:
        json.dump({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, f, indent=2)
