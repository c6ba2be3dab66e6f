"""Samples of the critic's own gradient flow, kept in a replay buffer, for training the critic.

This is the energy-based recipe of JEM (Grathwohl et al., 2019) as CLIP-JEM (Ganz & Elad,
2024) applies it to CLIP: besides the contrastive loss, what the critic's gradient makes
for a caption ``c`` must score below the real picture of ``c``. The samples are
persistent chains in a :class:`ReplayBuffer`, so each training step pays for a few
sampling steps only. Two samplers:

- ``loop``: vqclip's own VQGAN+CLIP loop with the generator's default settings
  (straight-through quantisation, the same augmentations, Adam with the same learning
  rate), except the cutouts' count and size, whose defaults stay as the aligned critic
  (embedded until commit 0154954) was trained (``train-clip --sample-cutn`` 8,
  ``--sample-cut-min`` 0.8; the shipped critic's last stage passed 1.0). Each chain keeps its
  latent, its Adam moments and its age, so a chain *is* a generation run, spread over
  training steps, against a critic that keeps learning; at the generator's iteration
  count it starts again as the loop starts (its ``init_noise``: the flat background its
  caption names, or random codes; with ``--sample-render-start P``, with probability P
  at its scene's render instead, as contrastive divergence starts its chains at the
  data and the generator starts from an ``init_image``). A chain aims at a training
  scene drawn as the data draws them (``train-clip --sample-kinds`` narrows them to some
  kinds, e.g. ``pair``).
  With the loop's ``object_weight`` > 0 (``train-clip --sample-object-weight``) a chain
  also gets the generator's object views: its caption laid out in cells (the layout drawn
  from its scene's index, so it needs no state of its own), each object's window scored
  alone against its own caption; a laid-out pair then runs ``pair_steps`` times the
  iterations before it starts again (``--sample-pair-steps``), as the generator runs it.
- ``sgld``: Langevin dynamics on the pixels (JEM's sampler): a gradient step on the
  energy ``-scale · cos(image, caption)`` plus Gaussian noise.

The energy term (:func:`energy_loss`) compares the critic's score of each sample with
its score of the real render of the same caption, both seen through one of the loop's
augmented views: contrastive divergence, or its logistic (bounded) form. The alignment
term (:func:`align_loss`, ``--align-weight``) shapes the slope instead of the ranking:
on the path from a sample to its render, the critic's pixel gradient should point at
the render. ``--align-near K`` adds K near misses a step as samples (renders with one
object squashed and rounded, :func:`vqclip.shapes.spoil.near_miss`), whose path to
their render is a pure shape correction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqclip.clip.loss import logit_scale_value
from vqclip.clip.model import ClipBundle
from vqclip.errors import VqclipError
from vqclip.generation.cutouts import Cutouts, states_position
from vqclip.generation.generator import (
    background_canvas,
    clamp_with_grad,
    quantize_st,
    spherical_distance,
)
from vqclip.generation.layout import (
    ObjectView,
    object_canvases,
    plan_object_views,
    run_iterations,
)
from vqclip.generation.settings import GenerateSettings
from vqclip.io import to_tensor
from vqclip.shapes.judge import analyse
from vqclip.shapes.nearest import nearest_truth
from vqclip.shapes.render import render
from vqclip.shapes.sampler import resample_truth, sample_scene, split_seed
from vqclip.shapes.scene import KINDS
from vqclip.vqgan.model import VQGAN

SAMPLERS = ("none", "loop", "sgld", "both")
SCENES = 10_000_000  # chains aim at training scenes 0..SCENES-1
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the loop uses


@dataclass(frozen=True)
class SamplerSettings:
    """How the critic's samples are made (see the module docstring)."""

    kind: str = "loop"  # "loop" or "sgld"
    buffer_size: int = 256
    batch: int = 16  # chains refreshed (and scored) per training step
    steps: int = 2  # sampling steps per refresh
    reinit: float = 0.05  # chance that a picked chain starts afresh
    max_age: int = GenerateSettings.iterations  # a chain this old starts afresh
    sgld_step: float = 1.0
    sgld_noise: float = 0.01
    kinds: tuple[str, ...] = ()  # the scene kinds chains aim at; empty = all, as drawn
    render_start: float = 0.0  # chance that a chain starting afresh starts from its render

    def validate(self) -> SamplerSettings:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise VqclipError(
                f"unknown kind {unknown[0]!r} in --sample-kinds; choose from {', '.join(KINDS)}"
            )
        if self.kind not in ("loop", "sgld"):
            raise VqclipError(f"unknown sampler {self.kind!r}; choose from {', '.join(SAMPLERS)}")
        if self.buffer_size < 1:
            raise VqclipError(f"--buffer-size must be at least 1, got {self.buffer_size}")
        if not 1 <= self.batch <= self.buffer_size:
            raise VqclipError(
                f"--sample-batch must be in 1..--buffer-size ({self.buffer_size}), got {self.batch}"
            )
        if self.steps < 1 or self.max_age < 1:
            raise VqclipError("--sample-steps and the chain age must be at least 1")
        if not 0 <= self.reinit <= 1:
            raise VqclipError(f"--sample-reinit must be in [0, 1], got {self.reinit}")
        if not 0 <= self.render_start <= 1:
            raise VqclipError(f"--sample-render-start must be in [0, 1], got {self.render_start}")
        return self


class ReplayBuffer(nn.Module):
    """Persistent chains: their states, the scene each aims at, their ages and Adam moments.

    A module whose tensors are buffers, so that ``state_dict`` (and the training
    checkpoint) carries the chains and the buffer's random stream; ``load_state_dict``
    restores both.
    """

    def __init__(self, size: int, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("x", torch.zeros(size, *shape))
        self.register_buffer("m", torch.zeros(size, *shape))  # Adam moments (loop chains)
        self.register_buffer("v", torch.zeros(size, *shape))
        self.register_buffer("scene", torch.zeros(size, dtype=torch.long))
        self.register_buffer("age", torch.zeros(size, dtype=torch.long))
        self.register_buffer("fresh", torch.ones(size, dtype=torch.bool))  # never sampled yet
        self.g = torch.Generator().manual_seed(seed)
        self.register_buffer("rng", self.g.get_state())
        self.register_state_dict_pre_hook(_save_rng)
        self.register_load_state_dict_post_hook(_restore_rng)

    x: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    scene: torch.Tensor
    age: torch.Tensor
    fresh: torch.Tensor
    rng: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def pick(self, n: int, reinit: float, max_age: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` distinct chain indices, and a mask of those that must start afresh."""
        idx = torch.randperm(len(self), generator=self.g)[:n]
        again = torch.rand(n, generator=self.g) < reinit
        restart = self.fresh[idx].cpu() | again | (self.age[idx].cpu() >= max_age)
        return idx, restart


def _save_rng(module: ReplayBuffer, *_: object) -> None:
    module.rng.copy_(module.g.get_state())


def _restore_rng(module: ReplayBuffer, *_: object) -> None:
    module.g.set_state(module.rng.cpu())


def kind_of(scene_index: int) -> str:
    return str(sample_scene(split_seed("train", scene_index)).kind)


def caption_of(scene_index: int) -> str:
    return sample_scene(split_seed("train", scene_index)).captions[0]


def render_of(scene_index: int, size: int) -> torch.Tensor:
    """The clean render (3, S, S) in [0, 1] of training scene ``scene_index``."""
    return to_tensor(render(sample_scene(split_seed("train", scene_index), size)))


def other_render_of(scene_index: int, size: int, rng: random.Random) -> torch.Tensor:
    """The render (3, S, S) in [0, 1] of another right picture of training scene
    ``scene_index``'s caption: what the caption leaves open drawn again from ``rng`` (see
    :func:`vqclip.shapes.sampler.resample_truth`)."""
    truth = sample_scene(split_seed("train", scene_index))
    return to_tensor(render(resample_truth(truth, truth.captions[0], rng), size))


def nearest_render_of(scene_index: int, picture: torch.Tensor, size: int) -> torch.Tensor:
    """The render (3, S, S) of the true picture of scene ``scene_index``'s caption nearest to
    ``picture`` (3, H, W) in [0, 1]: see :func:`vqclip.shapes.nearest.nearest_truth`."""
    truth = sample_scene(split_seed("train", scene_index))
    seen = analyse(picture.detach().permute(1, 2, 0).cpu().float().numpy())
    return to_tensor(render(nearest_truth(truth, truth.captions[0], seen), size))


@dataclass(frozen=True)
class ObjectViews:
    """The object views of the chains refreshed in one step (see ``_object_views``)."""

    plans: list[list[ObjectView]]  # each chain's views (empty outside the grammar)
    owner: torch.Tensor  # (V,) the chain of each view
    texts: torch.Tensor  # (V, D) each view's caption embedded
    colours: torch.Tensor  # (B, 3) each chain's canvas colour
    keep: torch.Tensor  # (V,) whether each view keeps positions, as its chain does


class CriticSampler:
    """Refreshes chains of one kind and returns their current pictures.

    Args:
        settings: the sampler's settings.
        clip: the critic being trained (its model is used live, not copied).
        vqgan: the decoder the loop optimises through (``loop`` only).
        loop: the generator settings the loop follows (the defaults).
        seed: seeds the buffer's random stream.
    """

    def __init__(
        self, settings: SamplerSettings, clip: ClipBundle, vqgan: VQGAN | None = None,
        loop: GenerateSettings | None = None, seed: int = 0,
    ) -> None:  # fmt: skip
        self.s = settings.validate()
        self.clip, self.vq = clip, vqgan
        self.loop = loop or GenerateSettings()
        self.size = clip.image_size
        if self.s.kind == "loop":
            if vqgan is None:
                raise VqclipError("the loop sampler needs a VQGAN")
            vqgan.eval().requires_grad_(False)
            res, f = vqgan.config.ddconfig.resolution, vqgan.factor
            self.res = res
            shape: tuple[int, ...] = (vqgan.config.embed_dim, res // f, res // f)
            codes = vqgan.codebook.detach()
            self.zmin = codes.min(dim=0).values[None, :, None, None]
            self.zmax = codes.max(dim=0).values[None, :, None, None]
            lp = self.loop
            self.cutters = {
                keep: Cutouts(clip.image_size, lp.cutn, cut_pow=lp.cut_pow, min_frac=lp.cut_min,
                              augments=lp.augments, keep_position=keep, warp=lp.warp)
                for keep in (False, True)
            }  # fmt: skip
        else:
            shape = (3, self.size, self.size)
        self.buffer = ReplayBuffer(self.s.buffer_size, shape, seed=seed)
        self.view = {  # one augmented view of a picture, as the loop sees it
            keep: Cutouts(clip.image_size, 1, cut_pow=self.loop.cut_pow,
                          min_frac=self.loop.cut_min, augments=self.loop.augments,
                          keep_position=keep, warp=self.loop.warp)
            for keep in (False, True)
        }  # fmt: skip

    def to(self, device: torch.device) -> CriticSampler:
        self.buffer.to(device)
        if self.s.kind == "loop":
            self.zmin, self.zmax = self.zmin.to(device), self.zmax.to(device)
        return self

    def _restart(self, idx: torch.Tensor) -> None:
        b, g = self.buffer, self.buffer.g
        n = len(idx)
        scenes = torch.randint(0, SCENES, (n,), generator=g)
        for i in range(n if self.s.kinds else 0):  # some kinds only: draw again until one fits
            while kind_of(int(scenes[i])) not in self.s.kinds:
                scenes[i] = torch.randint(0, SCENES, (1,), generator=g)
        b.scene[idx] = scenes.to(b.scene.device)
        if self.s.kind == "loop":
            assert self.vq is not None
            with torch.no_grad():
                if self.loop.init_noise == "background":  # as the loop starts: a flat canvas
                    captions = [caption_of(int(k)) for k in b.scene[idx].tolist()]
                    x = background_canvas(captions, (self.res, self.res), b.x.device)
                    b.x[idx] = self.vq.encode_latent(x * 2 - 1)
                else:
                    h, w = b.x.shape[-2:]
                    codes = torch.randint(0, self.vq.config.n_embed, (n, h, w), generator=g)
                    b.x[idx] = self.vq.quantize.embed_indices(codes.to(b.x.device))
        else:
            b.x[idx] = torch.rand((n, *b.x.shape[1:]), generator=g).to(b.x.device)
        if self.s.render_start > 0:  # drawn only then: without it the stream is as before
            from_render = (torch.rand(n, generator=g) < self.s.render_start).nonzero().flatten()
            for i in from_render.tolist():
                self._start_at_render(int(idx[i]))
        b.m[idx], b.v[idx], b.age[idx], b.fresh[idx] = 0.0, 0.0, 0, False

    @torch.no_grad()
    def _start_at_render(self, i: int) -> None:
        """Chain ``i`` starts at its scene's render, as the generator starts from an
        ``init_image`` (its latent, for the loop; its pixels, for SGLD): contrastive
        divergence's chains start at the data, so what they climb to near it is pushed down."""
        b = self.buffer
        if self.s.kind == "loop":
            assert self.vq is not None
            x = render_of(int(b.scene[i]), self.res)[None].to(b.x.device)
            b.x[i] = self.vq.encode_latent(x * 2 - 1)[0]
        else:
            b.x[i] = render_of(int(b.scene[i]), self.size).to(b.x.device)

    def _views(
        self, images: torch.Tensor, keep: torch.Tensor, cut: dict[bool, Cutouts], per: int
    ) -> torch.Tensor:
        """``per`` augmented views (B·per, 3, S, S) of each image, images-major.

        Images whose caption states a position get the position-keeping cutter.
        """
        out: torch.Tensor | None = None
        for flag in (False, True):
            sel = (keep == flag).nonzero().flatten().to(images.device)
            if len(sel):
                views = cut[flag](images[sel], self.buffer.g)  # (len(sel)·per, 3, S, S)
                if out is None:
                    out = views.new_empty((images.shape[0], per, *views.shape[1:]))
                out[sel] = views.reshape(len(sel), per, *views.shape[1:])
        assert out is not None
        return out.flatten(0, 1)

    def refresh(self) -> tuple[torch.Tensor, list[int], list[str], torch.Tensor]:
        """Advances ``batch`` chains by ``steps`` steps against the critic as it is now.

        Returns:
            ``(pictures (B, 3, S, S) in [0, 1], the training scene each aims at, their
            captions, keep_position flags (B,))``.
        """
        s, b = self.s, self.buffer
        idx, restart = b.pick(s.batch, s.reinit, self._age_limit(s.max_age))
        old = ~restart  # a pair's chain runs longer: the others start again at max_age
        limits = [self._age_limit(s.max_age, caption_of(int(k))) for k in b.scene[idx].tolist()]
        restart |= old & (b.age[idx].cpu() >= torch.tensor(limits))
        if restart.any():
            self._restart(idx[restart])
        scenes = [int(k) for k in b.scene[idx].tolist()]
        captions = [caption_of(k) for k in scenes]
        keep = torch.tensor([self.loop.prompt_aware and states_position([c]) for c in captions])
        target = self.clip.encode_texts(captions)  # (B, D), no gradient
        objects = self._object_views(scenes, captions, keep) if s.kind == "loop" else None
        x, m, v, age = b.x[idx].clone(), b.m[idx].clone(), b.v[idx].clone(), b.age[idx].clone()
        for _ in range(s.steps):
            if s.kind == "loop":
                x, m, v = self._loop_step(x, m, v, age + 1, target, keep, objects)
            else:
                x = self._sgld_step(x, target)
            age += 1
        b.x[idx], b.m[idx], b.v[idx], b.age[idx] = x, m, v, age
        return self.pictures(x), scenes, captions, keep

    def _age_limit(self, max_age: int, caption: str | None = None) -> int:
        """How many steps a chain runs before it starts again: ``max_age``, or for a pair
        laid out in object views ``pair_steps`` times it (for ``caption`` None: the most
        any chain runs)."""
        lp = self.loop
        if self.s.kind != "loop" or lp.object_weight <= 0:
            return max_age
        if caption is None:
            return round(max_age * lp.pair_steps)  # pair_steps >= 1
        return run_iterations(GenerateSettings(prompts=caption, iterations=max_age,
                                               object_weight=lp.object_weight,
                                               pair_steps=lp.pair_steps))  # fmt: skip

    def _object_views(
        self, scenes: list[int], captions: list[str], keep: torch.Tensor
    ) -> ObjectViews | None:
        """The chains' object views (see :class:`ObjectViews`): each chain's layout, the chain
        of each view, its caption embedded, each chain's canvas colour and whether each view
        keeps positions; None when the loop has none."""
        if self.loop.object_weight <= 0:
            return None
        plans = []
        for k, caption in zip(scenes, captions, strict=True):
            g = torch.Generator().manual_seed(k)  # the chain's layout: fixed by its scene
            plans.append(plan_object_views(caption, (self.res, self.res), g, self.loop.object_zoom))
        owner = [i for i, p in enumerate(plans) for _ in p]
        if not owner:
            return None
        device = self.buffer.x.device
        texts = self.clip.encode_texts([v.caption for p in plans for v in p])
        colours = background_canvas(captions, (1, 1), device)[:, :, 0, 0]  # (B, 3)
        return ObjectViews(plans, torch.tensor(owner), texts, colours, keep[owner])

    @torch.no_grad()
    def pictures(self, x: torch.Tensor) -> torch.Tensor:
        if self.s.kind == "sgld":
            return x.clamp(0, 1)
        assert self.vq is not None
        return ((self.vq.decode(quantize_st(self.vq, x)) + 1) / 2).clamp(0, 1)

    def _loop_step(
        self, z: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: torch.Tensor,
        target: torch.Tensor, keep: torch.Tensor, objects: ObjectViews | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """One iteration of the generator's loop for every chain, Adam moments per chain:
        its whole-picture views and, with ``objects``, ``object_weight`` times its object
        views (each chain's objects summed, as the generator sums them)."""
        assert self.vq is not None
        z = z.detach().requires_grad_(True)
        image = clamp_with_grad((self.vq.decode(quantize_st(self.vq, z)) + 1) / 2)
        cutn = self.loop.cutn
        views = self._views(image, keep, self.cutters, cutn)
        emb = self.clip.encode_pixels(views).reshape(z.shape[0], cutn, -1)
        loss = spherical_distance(emb, target[:, None, :]).mean(dim=1).sum()
        if objects is not None:
            # (V, 3, H, W): every chain's views, in the order of objects.owner
            canvases = torch.cat(
                [
                    object_canvases(image[i : i + 1], plan, objects.colours[i])
                    for i, plan in enumerate(objects.plans)
                    if plan
                ]
            )
            seen = self._views(canvases, objects.keep, self.cutters, cutn)
            emb = self.clip.encode_pixels(seen).reshape(len(canvases), cutn, -1)
            dist = spherical_distance(emb, objects.texts[:, None, :]).mean(dim=1)
            loss = loss + self.loop.object_weight * dist.sum()
        (grad,) = torch.autograd.grad(loss, z)
        b1, b2 = ADAM_BETAS
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        tt = t.to(z.dtype).view(-1, 1, 1, 1)
        step = (m / (1 - b1**tt)) / ((v / (1 - b2**tt)).sqrt() + ADAM_EPS)
        z = z.detach() - self.loop.lr * step
        return torch.maximum(torch.minimum(z, self.zmax), self.zmin), m, v

    def _sgld_step(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        scale = float(logit_scale_value(self.clip.model.logit_scale.detach()))  # type: ignore[operator]
        energy = -(self.clip.encode_pixels(x) * target).sum() * scale
        (grad,) = torch.autograd.grad(energy, x)
        noise = torch.randn(x.shape, generator=self.buffer.g).to(x)
        return (x.detach() - self.s.sgld_step * grad + self.s.sgld_noise * noise).clamp(0, 1)

    def views(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """One augmented view (B, 3, S, S) of each picture, as the loop sees it."""
        return self._views(images, keep, self.view, 1)


def energy_loss(
    sample_f: torch.Tensor, real_f: torch.Tensor, text_f: torch.Tensor, temperature: float = 10.0
) -> torch.Tensor:
    """The energy term: ``softplus(τ · (cos(sample, c) − cos(real, c)))``, averaged.

    With the energy ``E(x, c) = −cos(x, c)``, ``τ = 0`` gives JEM's plain contrastive
    divergence ``E(real) − E(sample)``: it lowers the critic's score of what its own
    gradient made and raises the real picture's wherever the two stand. Unbounded, it
    drives the samples' scores towards −1 and costs zero-shot accuracy (measured: see
    the README); ``τ > 0`` is its logistic form, which pushes hardest while the sample
    scores near (or above) the real picture and lets go once it is well below.

    Args:
        sample_f: (B, D) image features of the samples made for captions ``c``.
        real_f: (B, D) image features of the real renders of those captions.
        text_f: (B, D) text features of the captions.
        temperature: τ; 0 for plain contrastive divergence.
    """
    gap = _score_gap(sample_f, real_f, text_f)
    if temperature == 0:
        return gap.mean()
    return F.softplus(temperature * gap).mean() / temperature


def _score_gap(sample_f: torch.Tensor, real_f: torch.Tensor, text_f: torch.Tensor) -> torch.Tensor:
    """(B,) ``cos(sample, c) − cos(real, c)``: how far each sample scores above its real picture."""
    t = F.normalize(text_f, dim=-1)
    return (F.normalize(sample_f, dim=-1) * t).sum(-1) - (F.normalize(real_f, dim=-1) * t).sum(-1)


def rank_loss(
    sample_f: torch.Tensor, real_f: torch.Tensor, text_f: torch.Tensor, margin: float = 0.05
) -> torch.Tensor:
    """The rank term: ``max(0, cos(sample, c) − cos(real, c) + margin)``, averaged.

    Where the energy term scores the samples through the loop's views, this one is meant
    for the whole pictures, as the generator picks its final picture and as
    ``benchmarks/clip_gap.py`` compares it with the render: a sample must score at least
    ``margin`` below the real picture of its caption. A hinge: samples already that far
    below add nothing, so the chains' young pictures (far below) leave it to the few
    that come near or above the render.

    Args:
        sample_f: (B, D) image features of the samples' whole pictures for captions ``c``.
        real_f: (B, D) image features of the real renders of those captions.
        text_f: (B, D) text features of the captions.
        margin: how far below the real picture a sample must score.
    """
    return F.relu(_score_gap(sample_f, real_f, text_f) + margin).mean()


def sampler_kinds(samples: str) -> list[str]:
    """The sampler kinds a ``--samples`` value asks for."""
    if samples not in SAMPLERS:
        raise VqclipError(f"unknown --samples {samples!r}; choose from {', '.join(SAMPLERS)}")
    return {"none": [], "loop": ["loop"], "sgld": ["sgld"], "both": ["loop", "sgld"]}[samples]


def align_loss(
    clip: ClipBundle, samples: torch.Tensor, reals: torch.Tensor, tokens: torch.Tensor,
    generator: torch.Generator | None = None, views: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Gradient alignment: the critic's pixel gradient should point from a sample to its render.

    The loop climbs the critic's score; the energy term only ranks what it finds. This
    term shapes the slope itself (perceptually aligned gradients, as Ganz, Kawar & Elad
    2023 train them): at a point ``x`` on the straight path from a sample to the real
    render of its caption ``c``, the gradient of ``cos(image(x), text(c))`` with respect
    to the pixels should point along ``real − sample``. The loss is one minus the cosine
    between the two, averaged over the pairs that differ; it is differentiated through
    the gradient (double backward), so both towers learn.

    Args:
        clip: the critic being trained (its model is used live).
        samples: (B, 3, S, S) pictures in [0, 1] the loop made for the captions.
        reals: (B, 3, S, S) the real renders of those captions.
        tokens: (B, L) the captions' tokens.
        generator: draws each pair's point on the path (uniform in [0, 1)).
        views: 0 scores the point as it is; N > 0 scores the mean over N views of it
            made as the generator makes them (whole-image views with its default
            augmentations: affine warp, colour, noise), so the slope aligned is the one
            the loop follows. Needs ``generator``.
    """
    direction = (reals - samples).detach()
    alpha = torch.rand(len(samples), 1, 1, 1, generator=generator, device=samples.device)
    x = samples.detach() + alpha * direction
    grad = _score_gradient(clip, x, tokens, generator, views)
    cos = F.cosine_similarity(grad.flatten(1), direction.flatten(1), dim=1, eps=1e-12)
    differ = direction.flatten(1).norm(dim=1) > 1e-3
    if not differ.any():
        return grad.sum() * 0.0  # in the graph, as a term that adds nothing
    return (1 - cos[differ]).mean()


def _score_gradient(
    clip: ClipBundle, points: torch.Tensor, tokens: torch.Tensor,
    generator: torch.Generator | None = None, views: int = 0,
) -> torch.Tensor:  # fmt: skip
    """The pixel gradient (B, 3, S, S) of each point's score ``cos(image(x), text(c))``
    (through ``views`` of it, as :func:`align_loss` says), kept in the graph (double
    backward) so that a loss on it trains both towers."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x = points.detach().requires_grad_(True)
    model = clip.model
    seen = x
    if views > 0:
        if generator is None:
            raise ValueError("align_loss needs a generator to draw its views")
        from vqclip.generation.cutouts import Cutouts

        cut = Cutouts(x.shape[-1], views, min_frac=1.0)  # the generator's default views
        seen = cut(x, generator)  # (B·views, 3, S, S), images-major
    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU/GPU kernels have no double backward
        image = F.normalize(model.encode_image(clip.normalize(seen)).float(), dim=-1)  # type: ignore[operator]
        text = F.normalize(model.encode_text(tokens).float(), dim=-1)  # type: ignore[operator]
        image = image.reshape(len(x), max(views, 1), -1).mean(dim=1)  # the mean score's image
        (grad,) = torch.autograd.grad((image * text).sum(), x, create_graph=True)
    return grad


def stationary_loss(clip: ClipBundle, reals: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The real picture as a stationary point of the critic: R1 (Mescheder, Geiger &
    Nowozin 2018, a GAN discriminator's penalty on its gradient at the data).

    Started from a render, the loop climbs the critic's slope there: a change of a few
    thousandths of the pixels that keeps the picture right raises its score above the
    render's. With no slope at the render (and the rank term pushing down what the
    chains find near it), the render is where the climb ends. The loss is the squared
    norm of the pixel gradient of ``cos(image(x), text(c))`` at each whole render ``x``,
    averaged over the batch, differentiated through the gradient (double backward).

    Args:
        clip: the critic being trained (its model is used live).
        reals: (B, 3, S, S) renders in [0, 1].
        tokens: (B, L) their captions' tokens.
    """
    grad = _score_gradient(clip, reals, tokens)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def gradient_cosine(clip: ClipBundle, x: torch.Tensor, real: torch.Tensor, text: str) -> float:
    """How well the critic's slope at ``x`` leads to ``real``: the cosine between the pixel
    gradient of its score of ``x`` (1, 3, H, W) for ``text`` and ``real − x``."""
    x = x.detach().clone().requires_grad_(True)
    score = (clip.encode_pixels(x) @ clip.encode_texts([text])[0]).sum()
    (grad,) = torch.autograd.grad(score, x)
    direction = (real - x).detach().flatten()
    return float(F.cosine_similarity(grad.flatten(), direction, 0))
