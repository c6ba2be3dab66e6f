"""The VQGAN+CLIP loop: optimise a latent grid so that CLIP sees the prompts in its decoding.

One function, :func:`generate`, with a per-step callback; it returns a
:class:`GenerateResult`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from vqclip.clip.model import ClipBundle
from vqclip.errors import VqclipError
from vqclip.generation.cutouts import Cutouts, states_position
from vqclip.generation.prompts import parse_noise_prompt, parse_story, parse_weighted_path
from vqclip.generation.settings import GenerateSettings
from vqclip.shapes.data import to_image, to_tensor
from vqclip.vqgan.model import VQGAN

log = logging.getLogger(__name__)
MAX_PIXELS = 1024 * 1024  # beyond this the decoder's activations do not fit a CPU's memory


@dataclass
class GenerateResult:
    """What a generation produced.

    Attributes:
        image: the final image (the best candidate when ``batch`` > 1).
        latent: its latent grid (D, h, w), quantised.
        losses: the total loss at each iteration.
        scores: CLIP similarity of each candidate to the positive text prompts.
        timings: seconds spent loading models and optimising.
        settings: the resolved settings (seed, size after rounding, ...).
        interrupted: True when Ctrl-C stopped the run early.
    """

    image: Image.Image
    latent: torch.Tensor
    losses: list[float]
    scores: list[float]
    timings: dict[str, float]
    settings: GenerateSettings
    interrupted: bool = False
    candidates: list[Image.Image] = field(default_factory=list)


class _ClampWithGrad(torch.autograd.Function):
    """Clamps to [lo, hi] but lets gradients through that pull values back into range."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        inward = grad * (grad * (x - x.clamp(ctx.lo, ctx.hi)) >= 0)
        return inward, None, None


def clamp_with_grad(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    out: torch.Tensor = _ClampWithGrad.apply(x, lo, hi)
    return out


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between normalised embeddings (..., D)."""
    return (a - b).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)


def quantize_st(vq: VQGAN, z: torch.Tensor) -> torch.Tensor:
    """Nearest codes with a straight-through gradient to ``z`` (B, D, h, w)."""
    codebook = vq.codebook
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    idx = torch.cdist(flat, codebook).argmin(dim=1)
    zq = codebook[idx].reshape(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
    return z + (zq - z).detach()


@dataclass
class _Target:
    embedding: torch.Tensor  # (D,)
    weight: float
    stop: float
    scene: int | None  # story scene it belongs to; None = always


def round_size(vq: VQGAN, size: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) rounded to the VQGAN's factor, with a note when changed."""
    f = vq.factor
    w, h = size or (vq.config.ddconfig.resolution,) * 2
    if w < f or h < f:
        raise VqclipError(f"--size {w} {h} is below the VQGAN's factor {f}; use at least {f}")
    if w * h > MAX_PIXELS:
        raise VqclipError(
            f"--size {w} {h} is {w * h:,} pixels; at most {MAX_PIXELS:,} fit in memory here"
        )
    rw, rh = max(f, round(w / f) * f), max(f, round(h / f) * f)
    if (rw, rh) != (w, h):
        log.info(
            "size %dx%d rounded to %dx%d (a multiple of the VQGAN's factor %d)", w, h, rw, rh, f
        )
    return rw, rh


def _targets(
    s: GenerateSettings, clip: ClipBundle, load_image: Callable[[Path], Image.Image]
) -> tuple[list[_Target], int]:
    out: list[_Target] = []
    scenes = parse_story(s.prompts) if s.prompts.strip() else []
    for k, scene in enumerate(scenes):
        emb = clip.encode_texts([p.text for p in scene])
        for p, e in zip(scene, emb, strict=True):
            out.append(_Target(e, p.weight, p.stop, k if len(scenes) > 1 else None))
    for spec in s.image_prompts:
        path, weight = parse_weighted_path(spec)
        out.append(
            _Target(clip.encode_images([load_image(Path(path))])[0], weight, -math.inf, None)
        )
    for spec in s.noise_prompts:
        seed, weight = parse_noise_prompt(spec)
        g = torch.Generator().manual_seed(seed)
        dim = clip.encode_texts(["x"]).shape[-1]
        noise = F.normalize(torch.randn(dim, generator=g), dim=0)
        out.append(_Target(noise.to(clip.device), weight, -math.inf, None))
    return out, max(1, len(scenes))


def _initial_latent(
    s: GenerateSettings, vq: VQGAN, wh: tuple[int, int], g: torch.Generator,
    load_image: Callable[[Path], Image.Image],
) -> torch.Tensor:  # fmt: skip
    w, h = wh
    f, n = vq.factor, s.batch
    with torch.no_grad():
        if s.init_image is not None:
            image = load_image(Path(s.init_image)).resize((w, h), Image.Resampling.LANCZOS)
            x = to_tensor(image)[None].repeat(n, 1, 1, 1)
            return vq.encode_latent(x * 2 - 1)
        if s.init_noise == "codes":
            idx = torch.randint(0, vq.config.n_embed, (n, h // f, w // f), generator=g)
            return vq.quantize.embed_indices(idx)
        if s.init_noise == "pixels":
            x = torch.rand(n, 3, h, w, generator=g)
        elif s.init_noise == "plain":  # one flat gray canvas
            x = torch.full((n, 3, h, w), 0.5)
        else:  # gradient: a smooth blend between two random colours
            a, b = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
            t = torch.linspace(0, 1, w).view(1, 1, 1, w)
            x = (a * (1 - t) + b * t).expand(n, 3, h, w)
        return vq.encode_latent(x * 2 - 1)


def _optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    classes: dict[str, Any] = {
        "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
        "radam": torch.optim.RAdam, "nadam": torch.optim.NAdam,
        "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
    }  # fmt: skip
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    opt: torch.optim.Optimizer = classes[name](params, lr=lr)
    return opt


def _lr(s: GenerateSettings, i: int) -> float:
    t = i / max(1, s.iterations - 1)
    if s.schedule == "cosine":
        return s.lr * 0.5 * (1 + math.cos(math.pi * t))
    if s.schedule == "linear":
        return s.lr * (1 - t)
    return s.lr


def generate(
    settings: GenerateSettings,
    *,
    clips: list[ClipBundle] | None = None,
    vqgan: VQGAN | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> GenerateResult:
    """Runs VQGAN+CLIP.

    Args:
        settings: what to make (see :class:`GenerateSettings`).
        clips: already loaded CLIPs (else loaded from ``settings.clip``).
        vqgan: an already loaded VQGAN (else loaded from ``settings.vqgan``).
        callback: called after each step with ``{"i", "loss", "image" (B,3,H,W), "z"}``.
        progress: show a progress bar with the loss.

    Returns:
        The result; on Ctrl-C, the result so far with ``interrupted`` set.
    """
    from tqdm import tqdm

    from vqclip.clip.load import load_clip
    from vqclip.shapes.files import load_image
    from vqclip.vqgan.load import load_vqgan

    s = settings.validate()
    t0 = time.perf_counter()
    clips = clips or [load_clip(spec) for spec in s.clip]
    vq = vqgan or load_vqgan(s.vqgan, config=s.vqgan_config, checkpoint=s.vqgan_checkpoint)
    vq.eval().requires_grad_(False)
    for c in clips:
        c.model.eval().requires_grad_(False)
    wh = round_size(vq, s.size)
    s = replace(s, size=wh)
    torch.manual_seed(s.seed)
    g = torch.Generator().manual_seed(s.seed)
    clip_weights = s.clip_weights or (1.0,) * len(clips)
    per_clip = [_targets(s, c, load_image) for c in clips]
    n_scenes = per_clip[0][1]
    every = s.story_every or math.ceil(s.iterations / n_scenes)
    texts = [
        p.text for scene in (parse_story(s.prompts) if s.prompts.strip() else []) for p in scene
    ]
    keep_position = s.prompt_aware and states_position(texts)
    if keep_position:
        log.info("a prompt states a position: flips, large shifts and small cutouts are off")
    cutters = [
        Cutouts(c.image_size, s.cutn, cut_pow=s.cut_pow, min_frac=s.cut_min,
                augments=s.augments, keep_position=keep_position)
        for c in clips
    ]  # fmt: skip
    z = _initial_latent(s, vq, wh, g, load_image).detach().clone()
    z0 = z.clone()
    z.requires_grad_(True)
    opt = _optimizer(s.optimizer, [z], s.lr)
    zmin = vq.codebook.min(dim=0).values[None, :, None, None]
    zmax = vq.codebook.max(dim=0).values[None, :, None, None]
    losses: list[float] = []
    t1 = time.perf_counter()
    interrupted = False
    bar = tqdm(range(s.iterations), desc="generate", disable=not progress)
    try:
        for i in bar:
            scene = min(i // every, n_scenes - 1)
            for group in opt.param_groups:
                group["lr"] = _lr(s, i)
            image = clamp_with_grad((vq.decode(quantize_st(vq, z)) + 1) / 2)  # (B, 3, H, W)
            total = torch.zeros(s.batch)
            for clip, cut, (targets, _), cw in zip(
                clips, cutters, per_clip, clip_weights, strict=True
            ):
                emb = clip.encode_pixels(cut(image, g)).reshape(s.batch, s.cutn, -1)
                for t in targets:
                    if t.scene is not None and t.scene != scene:
                        continue
                    d = spherical_distance(emb, t.embedding).mean(dim=1)  # (B,)
                    d = torch.maximum(d, torch.full_like(d, t.stop))  # no pull below stop
                    total = total + cw * t.weight * d
            if s.tv_weight > 0:
                dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(1, 2, 3))
                dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(1, 2, 3))
                total = total + s.tv_weight * (dx + dy)
            if s.init_weight > 0:
                w = s.init_weight * ((1 - i / s.iterations) if s.init_weight_decay else 1.0)
                total = total + w * ((z - z0) ** 2).mean(dim=(1, 2, 3))
            opt.zero_grad(set_to_none=True)
            total.sum().backward()
            opt.step()
            with torch.no_grad():
                z.copy_(torch.maximum(torch.minimum(z, zmax), zmin))
            losses.append(float(total.detach().sum()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if callback is not None:
                callback({"i": i, "loss": losses[-1], "image": image.detach(), "z": z.detach(),
                          "scene": scene})  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted at iteration %d; keeping the current image", len(losses))
    finally:
        bar.close()
    with torch.no_grad():
        zq = quantize_st(vq, z)
        final = ((vq.decode(zq) + 1) / 2).clamp(0, 1)
        scores = _scores(clips[0], final, per_clip[0][0])
    candidates = [to_image(x) for x in final]
    best = max(range(s.batch), key=lambda k: scores[k])
    return GenerateResult(
        image=candidates[best], latent=zq[best].detach(), losses=losses, scores=scores,
        timings={"load_s": t1 - t0, "optimise_s": time.perf_counter() - t1},
        settings=s, interrupted=interrupted, candidates=candidates,
    )  # fmt: skip


def _scores(clip: ClipBundle, images: torch.Tensor, targets: list[_Target]) -> list[float]:
    """Mean cosine similarity of each image to the positive prompts (no augmentation)."""
    positive = [t.embedding for t in targets if t.weight > 0]
    if not positive:
        return [0.0] * images.shape[0]
    emb = clip.encode_pixels(images)  # (B, D)
    return (emb @ torch.stack(positive).T).mean(dim=1).tolist()
