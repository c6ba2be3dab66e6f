"""The VQGAN+CLIP loop: optimise a latent grid so that CLIP sees the prompts in its decoding.

One function, :func:`generate`, with a per-step callback; it returns a
:class:`GenerateResult`.
"""

from __future__ import annotations

import json
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
from vqclip.generation.layout import (
    ObjectView,
    object_canvases,
    plan_object_views,
    run_iterations,
    views_on,
)
from vqclip.generation.optimizers import make_optimizer
from vqclip.generation.prompts import parse_image_prompt, parse_noise_prompt, parse_story
from vqclip.generation.settings import GenerateSettings
from vqclip.io import to_image, to_tensor
from vqclip.shapes.captions import named_background
from vqclip.shapes.scene import BACKGROUNDS
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
        candidates: every candidate's image, in batch order.
        device: where it ran.
        unpruned: the chosen candidate before pruning (None when ``prune`` is off).
    """

    image: Image.Image
    latent: torch.Tensor
    losses: list[float]
    scores: list[float]
    timings: dict[str, float]
    settings: GenerateSettings
    interrupted: bool = False
    candidates: list[Image.Image] = field(default_factory=list)
    device: str = "cpu"  # where it ran
    unpruned: Image.Image | None = None  # the image before pruning, when ``prune`` is on


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


class _ReplaceGrad(torch.autograd.Function):
    """Forward ``x_forward``; backward the gradient to ``x_backward`` (the reference's trick)."""

    @staticmethod
    def forward(ctx: Any, x_forward: torch.Tensor, x_backward: torch.Tensor) -> torch.Tensor:
        ctx.shape = x_backward.shape
        return x_forward

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, grad.sum_to_size(ctx.shape)


def replace_grad(x_forward: torch.Tensor, x_backward: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = _ReplaceGrad.apply(x_forward, x_backward)
    return out


def prompt_loss(
    emb: torch.Tensor, target: torch.Tensor, weight: float, stop: float
) -> torch.Tensor:
    """One prompt's loss per image, with the reference loop's semantics.

    ``d`` is the spherical distance of every cutout to every target embedding, signed by
    the weight; the value is ``|w| · mean(sign(w)·d)`` = ``w · mean(d)``, and the gradient
    is masked per cutout where ``sign(w)·d`` is already below ``stop`` (the value itself
    is never clamped).

    Args:
        emb: (B, cutn, D) normalised cutout embeddings.
        target: (K, D) normalised target embeddings (K = 1 for text, cutn for images).
        weight: the prompt's weight (negative pushes away).
        stop: the prompt's stop.

    Returns:
        (B,) the loss of each image.
    """
    d = spherical_distance(emb[:, :, None, :], target[None, None, :, :])  # (B, cutn, K)
    d = d * math.copysign(1.0, weight)
    masked = replace_grad(d, torch.maximum(d, torch.full_like(d, stop)))
    return abs(weight) * masked.mean(dim=(1, 2))


@dataclass
class _Target:
    embedding: torch.Tensor  # (K, D)
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
    s: GenerateSettings, clip: ClipBundle, cut: Cutouts, wh: tuple[int, int],
    g: torch.Generator, load_image: Callable[[Path], Image.Image],
) -> tuple[list[_Target], int]:  # fmt: skip
    """Every prompt's target embeddings for one CLIP, and the number of story scenes."""
    out: list[_Target] = []
    scenes = parse_story(s.prompts) if s.prompts.strip() else []
    for k, scene in enumerate(scenes):
        emb = clip.encode_texts([p.text for p in scene])
        for p, e in zip(scene, emb, strict=True):
            out.append(_Target(e[None], p.weight, p.stop, k if len(scenes) > 1 else None))
    for spec in s.image_prompts:  # the reference embeds the image prompt's own cutouts
        path, weight, stop = parse_image_prompt(spec)
        image = _fit(load_image(Path(path)), wh)
        x = to_tensor(image)[None].to(clip.device)
        with torch.no_grad():
            out.append(_Target(clip.encode_pixels(cut(x, g)), weight, stop, None))
    for spec in s.noise_prompts:
        seed, weight = parse_noise_prompt(spec)
        gen = torch.Generator().manual_seed(seed)
        dim = clip.encode_texts(["x"]).shape[-1]
        noise = F.normalize(torch.randn(dim, generator=gen), dim=0)
        out.append(_Target(noise.to(clip.device)[None], weight, -math.inf, None))
    return out, max(1, len(scenes))


def _fit(image: Image.Image, wh: tuple[int, int]) -> Image.Image:
    """Resized to the area of ``wh``, keeping its aspect ratio (as the reference does)."""
    ratio = image.size[0] / image.size[1]
    area = min(image.size[0] * image.size[1], wh[0] * wh[1])
    size = max(1, round((area * ratio) ** 0.5)), max(1, round((area / ratio) ** 0.5))
    return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _initial_latent(
    s: GenerateSettings, vq: VQGAN, wh: tuple[int, int], g: torch.Generator,
    load_image: Callable[[Path], Image.Image],
) -> torch.Tensor:  # fmt: skip
    w, h = wh
    f, n, dev = vq.factor, s.batch, g.device
    with torch.no_grad():
        if s.init_image is not None:
            image = load_image(Path(s.init_image)).resize((w, h), Image.Resampling.LANCZOS)
            x = to_tensor(image)[None].repeat(n, 1, 1, 1).to(dev)
            return vq.encode_latent(x * 2 - 1)
        if s.init_noise == "codes":
            idx = torch.randint(0, vq.config.n_embed, (n, h // f, w // f), generator=g, device=dev)
            return vq.quantize.embed_indices(idx)
        if s.init_noise == "pixels":
            x = torch.rand(n, 3, h, w, generator=g, device=dev)
        elif s.init_noise == "plain":  # one flat gray canvas
            x = torch.full((n, 3, h, w), 0.5, device=dev)
        elif s.init_noise == "background":  # the flat background the prompt names
            x = background_canvas([s.prompts] * n, (h, w), dev)
        else:  # gradient: a smooth blend between two random colours
            a = torch.rand(n, 3, 1, 1, generator=g, device=dev)
            b = torch.rand(n, 3, 1, 1, generator=g, device=dev)
            t = torch.linspace(0, 1, w, device=dev).view(1, 1, 1, w)
            x = (a * (1 - t) + b * t).expand(n, 3, h, w)
        return vq.encode_latent(x * 2 - 1)


def prompt_background(prompts: str) -> tuple[int, int, int]:
    """The Shapes background colour the first prompt naming one states; white if none does."""
    return BACKGROUNDS[named_background(prompts) or "white"]


def background_canvas(
    prompts: list[str], hw: tuple[int, int], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Flat canvases (B, 3, H, W) in [0, 1], one per prompt, of the background it names."""
    rgb = torch.tensor([prompt_background(p) for p in prompts], dtype=torch.float32) / 255
    return rgb.to(device)[:, :, None, None].expand(len(prompts), 3, *hw)


def _lr(s: GenerateSettings, i: int) -> float:
    t = i / max(1, s.iterations - 1)
    if s.schedule == "cosine":
        return s.lr * 0.5 * (1 + math.cos(math.pi * t))
    if s.schedule == "linear":
        return s.lr * (1 - t)
    return s.lr


def keeps_position(s: GenerateSettings) -> bool:
    """Whether the loop keeps positions (no flips, small shifts, whole views) for ``s``."""
    scenes = parse_story(s.prompts) if s.prompts.strip() else []
    return s.prompt_aware and states_position([p.text for scene in scenes for p in scene])


@dataclass
class Loop:
    """The state of one run: models, targets, cutters, the latent and its optimiser."""

    s: GenerateSettings
    clips: list[ClipBundle]
    vq: VQGAN
    device: torch.device
    g: torch.Generator
    cutters: list[Cutouts]
    targets: list[list[_Target]]
    clip_weights: tuple[float, ...]
    n_scenes: int
    every: int
    z: torch.Tensor  # (B, D, h, w), the optimised latent
    z0: torch.Tensor
    zmin: torch.Tensor
    zmax: torch.Tensor
    opt: torch.optim.Optimizer
    losses: list[float] = field(default_factory=list)
    object_views: list[ObjectView] = field(default_factory=list)
    object_targets: list[torch.Tensor] = field(default_factory=list)  # per CLIP, (J, D)
    object_background: torch.Tensor = field(default_factory=lambda: torch.ones(3))  # (3,) canvas


def setup(
    settings: GenerateSettings, clips: list[ClipBundle] | None = None, vqgan: VQGAN | None = None
) -> Loop:
    """Validates the settings, loads (or moves) the models and builds the run's state."""
    from vqclip.clip.load import load_clip
    from vqclip.devices import pick_device
    from vqclip.io import load_image
    from vqclip.vqgan.load import load_vqgan

    s = settings.validate()
    device = pick_device(s.device)
    clips = clips or [load_clip(spec) for spec in s.clip]
    vq = vqgan or load_vqgan(s.vqgan, config=s.vqgan_config, checkpoint=s.vqgan_checkpoint)
    vq.to(device).eval().requires_grad_(False)
    for c in clips:
        c.model.to(device).eval().requires_grad_(False)
        c.precision = s.precision
    wh = round_size(vq, s.size)
    s = replace(s, size=wh)
    if (n := run_iterations(s)) != s.iterations:  # a laid-out pair: resolved, as saved
        s = replace(s, iterations=n, pair_steps=1.0)
    torch.manual_seed(s.seed)
    g = torch.Generator(device=device).manual_seed(s.seed)
    keep_position = keeps_position(s)
    if keep_position:  # debug: eval-generate makes hundreds; the generate command says it once
        log.debug("a prompt states a position: flips, large shifts and small cutouts are off")
    cutters = [
        Cutouts(c.image_size, s.cutn, cut_pow=s.cut_pow, min_frac=s.cut_min,
                augments=s.augments, keep_position=keep_position, method=s.cut_method,
                p=s.augment_p, warp=s.warp)
        for c in clips
    ]  # fmt: skip
    per_clip = [
        _targets(s, c, cut, wh, g, load_image) for c, cut in zip(clips, cutters, strict=True)
    ]
    n_scenes = per_clip[0][1]
    z = _initial_latent(s, vq, wh, g, load_image).detach().clone()
    z0 = z.clone()
    z.requires_grad_(True)
    views = plan_object_views(s.prompts, wh, g, s.object_zoom) if views_on(s) else []
    return Loop(
        s=s, clips=clips, vq=vq, device=device, g=g, cutters=cutters,
        targets=[t for t, _ in per_clip], clip_weights=s.clip_weights or (1.0,) * len(clips),
        n_scenes=n_scenes, every=s.story_every or math.ceil(s.iterations / n_scenes),
        z=z, z0=z0, zmin=vq.codebook.min(dim=0).values[None, :, None, None],
        zmax=vq.codebook.max(dim=0).values[None, :, None, None],
        opt=make_optimizer(s.optimizer, [z], s.lr), object_views=views,
        object_targets=[c.encode_texts([v.caption for v in views]) for c in clips] if views else [],
        object_background=background_canvas([s.prompts], (1, 1), device)[0, :, 0, 0],
    )  # fmt: skip


def loss(loop: Loop, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The loss of each candidate at iteration ``i``: ``(loss (B,), image (B,3,H,W), scene)``."""
    s, z = loop.s, loop.z
    scene = min(i // loop.every, loop.n_scenes - 1)
    image = clamp_with_grad((loop.vq.decode(quantize_st(loop.vq, z)) + 1) / 2)  # (B, 3, H, W)
    total = torch.zeros(s.batch, device=loop.device)
    for clip, cut, targets, cw in zip(
        loop.clips, loop.cutters, loop.targets, loop.clip_weights, strict=True
    ):
        emb = clip.encode_pixels(cut(image, loop.g)).reshape(s.batch, s.cutn, -1)
        for t in targets:
            if t.scene is not None and t.scene != scene:
                continue
            total = total + cw * prompt_loss(emb, t.embedding, t.weight, t.stop)
    if loop.object_views:
        total = total + s.object_weight * _object_loss(loop, image)
    if s.tv_weight > 0:
        dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(1, 2, 3))
        dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        total = total + s.tv_weight * (dx + dy)
    if s.init_weight > 0:
        w = s.init_weight * ((1 - i / s.iterations) if s.init_weight_decay else 1.0)
        total = total + w * ((z - loop.z0) ** 2).mean(dim=(1, 2, 3))
    return total, image, scene


def _object_loss(loop: Loop, image: torch.Tensor) -> torch.Tensor:
    """(B,) each candidate's object views against their own captions, summed over objects."""
    views, background = loop.object_views, loop.object_background
    canvases = object_canvases(image, views, background)  # (B·J, 3, H, W)
    total = torch.zeros(image.shape[0], device=image.device)
    for clip, cut, targets, cw in zip(
        loop.clips, loop.cutters, loop.object_targets, loop.clip_weights, strict=True
    ):
        emb = clip.encode_pixels(cut(canvases, loop.g))
        emb = emb.reshape(image.shape[0], len(views), cut.cutn, -1)
        for j, v in enumerate(views):
            total = total + cw * prompt_loss(emb[:, j], targets[j : j + 1], v.weight, v.stop)
    return total


def step(loop: Loop, i: int) -> dict[str, Any]:
    """One optimiser step; returns the callback's state ``{"i", "loss", "image", "z", "scene"}``."""
    for group in loop.opt.param_groups:
        group["lr"] = _lr(loop.s, i)
    total, image, scene = loss(loop, i)
    loop.opt.zero_grad(set_to_none=True)
    total.sum().backward()
    loop.opt.step()
    with torch.no_grad():
        loop.z.copy_(torch.maximum(torch.minimum(loop.z, loop.zmax), loop.zmin))
    loop.losses.append(float(total.detach().sum()))
    return {"i": i, "loss": loop.losses[-1], "image": image.detach(), "z": loop.z.detach(),
            "scene": scene}  # fmt: skip


STATE_KEY = "vqclip_state"


def save_state(loop: Loop, next_i: int, path: Path) -> None:
    """Writes what a run needs to go on from iteration ``next_i`` (safetensors, atomically).

    Tensors: the latent, its start, the optimiser's tensors and both random streams;
    the rest (iteration, losses, settings, the optimiser's numbers) is JSON metadata.
    Nothing in the file is code: loading it runs none.
    """
    from safetensors.torch import save

    from vqclip.io import atomic_open

    opt = loop.opt.state_dict()
    tensors = {"z": loop.z.detach(), "z0": loop.z0, "rng.loop": loop.g.get_state(),
               "rng.torch": torch.get_rng_state()}  # fmt: skip
    numbers: dict[str, dict[str, Any]] = {}
    for k, entry in opt["state"].items():
        for name, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{k}.{name}"] = v
            else:
                numbers.setdefault(str(k), {})[name] = v
    meta = {"next": next_i, "losses": loop.losses, "settings": loop.s.to_json(),
            "optimizer": {"numbers": numbers, "param_groups": opt["param_groups"]}}  # fmt: skip
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_open(path, "wb") as f:
        f.write(save(data, metadata={STATE_KEY: json.dumps(meta)}))


def load_state(loop: Loop, path: Path) -> int:
    """Restores a state written by :func:`save_state` into ``loop``; returns the next iteration.

    Raises:
        VqclipError: missing or unreadable file, or a state made with other settings.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[STATE_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise VqclipError(f"state file not found: {path}") from None
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise VqclipError(f"{path} is not a vqclip state file ({e})") from None
    if not isinstance(meta, dict) or not {"settings", "next", "losses", "optimizer"} <= set(meta):
        raise VqclipError(f"{path} is not a vqclip state file (its metadata is incomplete)")
    saved = GenerateSettings.from_json(meta["settings"])
    if saved != loop.s:
        now = loop.s.to_json()
        differ = [k for k, v in saved.to_json().items() if now.get(k) != v]
        raise VqclipError(
            f"{path} was saved by a run with other settings ({', '.join(differ)} differ); "
            "rerun with the same flags"
        )
    with torch.no_grad():
        loop.z.copy_(tensors["z"].to(loop.z))
        loop.z0.copy_(tensors["z0"].to(loop.z0))
    loop.g.set_state(tensors["rng.loop"])
    torch.set_rng_state(tensors["rng.torch"])
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, k, name = key.split(".", 2)
            state.setdefault(int(k), {})[name] = v.to(loop.device)
    for k, entry in meta["optimizer"]["numbers"].items():
        state.setdefault(int(k), {}).update(entry)
    loop.opt.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    loop.losses = [float(x) for x in meta["losses"]]
    return int(meta["next"])


def generate(
    settings: GenerateSettings,
    *,
    clips: list[ClipBundle] | None = None,
    vqgan: VQGAN | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
    save_state_every: int = 0,
    state_path: Path | None = None,
    resume_state: Path | None = None,
) -> GenerateResult:
    """Runs VQGAN+CLIP.

    Args:
        settings: what to make (see :class:`GenerateSettings`).
        clips: already loaded CLIPs (else loaded from ``settings.clip``); they are
            moved to the settings' device.
        vqgan: an already loaded VQGAN (else loaded from ``settings.vqgan``).
        callback: called after each step with ``{"i", "loss", "image" (B,3,H,W), "z"}``.
        progress: show a progress bar with the loss (log lines are written above it).
        save_state_every: write the run's state to ``state_path`` every N iterations
            (0: never); a run that finishes removes it.
        state_path: where :func:`save_state` writes.
        resume_state: a state file to go on from (same settings).

    Returns:
        The result; on Ctrl-C, the result so far with ``interrupted`` set.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    t0 = time.perf_counter()
    with logging_redirect_tqdm():  # notices go above the bar, never into it
        loop = setup(settings, clips, vqgan)
        s = loop.s
        start = load_state(loop, resume_state) if resume_state is not None else 0
        t1 = time.perf_counter()
        interrupted = False
        bar = tqdm(range(start, s.iterations), desc="generate", disable=not progress,
                   initial=start, total=s.iterations)  # fmt: skip
        try:
            for i in bar:
                state = step(loop, i)
                bar.set_postfix(loss=f"{state['loss']:.4f}")
                if callback is not None:
                    callback(state)
                last = i + 1 == s.iterations
                if save_state_every and state_path and (i + 1) % save_state_every == 0 and not last:
                    save_state(loop, i + 1, state_path)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted at iteration %d; keeping the current image", len(loop.losses))
        finally:
            bar.close()
    if not interrupted and state_path is not None and save_state_every:
        state_path.unlink(missing_ok=True)  # finished: nothing left to resume
    with torch.no_grad():
        zq = raw = quantize_st(loop.vq, loop.z)
        tolerance = None if interrupted else s.prune  # Ctrl-C keeps the picture as it was
        if tolerance is not None:
            zq = prune_candidates(loop, raw, tolerance)
        final = ((loop.vq.decode(zq) + 1) / 2).clamp(0, 1)
        scores = _scores(loop.clips[0], final, loop.targets[0])
        best = max(range(s.batch), key=lambda k: scores[k])
        unpruned = None
        if tolerance is not None:
            unpruned = to_image(((loop.vq.decode(raw[best : best + 1]) + 1) / 2).clamp(0, 1)[0])
    candidates = [to_image(x) for x in final]
    return GenerateResult(
        image=candidates[best], latent=zq[best].detach().cpu(), losses=loop.losses,
        scores=scores, timings={"load_s": t1 - t0, "optimise_s": time.perf_counter() - t1},
        settings=s, interrupted=interrupted, candidates=candidates, device=str(loop.device),
        unpruned=unpruned,
    )  # fmt: skip


def prune_candidates(loop: Loop, zq: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Each candidate of ``zq`` (B, D, h, w) pruned towards the start (see :mod:`.prune`)."""
    from vqclip.generation.prune import prune_latent

    last = loop.n_scenes - 1  # a story's picture is the last scene's
    targets = [t for t in loop.targets[0] if t.scene is None or t.scene == last]
    if not any(t.weight > 0 for t in targets):
        return zq  # nothing to keep the picture close to: nothing is pruned

    def score(images: torch.Tensor) -> list[float]:
        return _scores(loop.clips[0], images, targets)

    start = quantize_st(loop.vq, loop.z0)
    out = []
    for z, z0 in zip(zq, start, strict=True):
        pruned, report = prune_latent(loop.vq, z, z0, score, tolerance)
        log.debug("pruned cells below %.2f and %d of %d regions: score %.4f -> %.4f",
                  report.threshold, report.removed, report.regions, report.score_before,
                  report.score_after)  # fmt: skip
        out.append(pruned)
    return torch.stack(out)


def _scores(clip: ClipBundle, images: torch.Tensor, targets: list[_Target]) -> list[float]:
    """Mean cosine similarity of each image to the positive prompts (no augmentation)."""
    positive = [t.embedding.mean(dim=0) for t in targets if t.weight > 0]
    if not positive:
        return [0.0] * images.shape[0]
    emb = clip.encode_pixels(images)  # (B, D)
    return (emb @ torch.stack(positive).T).mean(dim=1).tolist()
