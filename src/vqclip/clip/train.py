"""``vqclip train-clip``: contrastive pretraining, on one process or data-parallel (torchrun)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from vqclip.clip.loss import MAX_LOGIT_SCALE, clip_loss
from vqclip.clip.model import (
    SHAPES_CLIP_CONFIG,
    SHAPES_PREPROCESS,
    build_model,
    make_bundle,
    save_model_dir,
)
from vqclip.clip.samples import align_loss, energy_loss, rank_loss, stationary_loss
from vqclip.devices import bf16_autocast, dist_info, pick_device
from vqclip.errors import VqclipError
from vqclip.shapes.data import ShapesDataset
from vqclip.training import (
    RunClock,
    cosine_lr,
    load_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)
ALIGN_TARGETS = ("scene", "nearest")


@dataclass(frozen=True)
class ClipTrainSettings:
    """Everything a CLIP training run depends on; saved beside its checkpoints."""

    out: str = "runs/clip"
    data: str = "shapes"  # "shapes" or a CSV file (filepath,title)
    model_config: str = ""  # a JSON model config; empty = the embedded Shapes config
    steps: int = 2000
    batch_size: int = 256  # per process
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    workers: int = 2
    save_every: int = 500
    eval_every: int = 500
    eval_n: int = 500
    noise_aug: float = 0.03  # max σ of Gaussian pixel noise added to half the images
    device: str = "auto"
    # seconds of the run's wall time, resumes included; > 0 ends the run (schedule
    # included) by then
    time_budget: float = 0.0
    init: str = ""  # a CLIP to start from (e.g. "shapes" or a model folder); empty = random
    hard_negatives: bool = False  # add a spoiled render of each scene as a negative
    samples: str = "none"  # the critic's own samples as an energy term: none|loop|sgld|both
    energy_weight: float = 1.0  # weight of the energy term
    energy_temperature: float = 10.0  # its logistic temperature; 0 = contrastive divergence
    buffer_size: int = 256  # persistent chains per sampler
    sample_batch: int = 16  # chains refreshed and scored per step
    sample_steps: int = 2  # sampling steps per refresh
    sample_reinit: float = 0.05  # chance a picked chain restarts from noise
    sample_vqgan: str = "shapes"  # the VQGAN the loop sampler decodes with
    # cutouts per loop-chain step: 8, as the aligned critics were trained (the generator's
    # default then; the chains otherwise follow the generator's defaults)
    sample_cutn: int = 8
    # the smallest cutout side of the loop chains (share of the image side): 0.8, as the
    # aligned critic (embedded until 0154954) was trained, whatever the generator's
    # default becomes (the shipped critic's last stage passed 1.0: whole views)
    sample_cut_min: float = 0.8
    # the loop chains' object views (the generator's --object-weight: a Shapes caption laid
    # out in cells, each object's window scored alone against its own caption) and pair
    # steps (--pair-steps: a laid-out pair runs that many times the iterations before it
    # starts again); 0 and 1, as every critic up to the shipped one was trained, whatever
    # the generator's defaults (2 and 1.33) are
    sample_object_weight: float = 0.0
    sample_pair_steps: float = 1.0
    align_weight: float = 0.0  # weight of the gradient-alignment term on the samples; 0 = off
    # where the alignment term's slope points: "scene" (the render of the chain's scene) or
    # "nearest" (the true picture of its caption nearest to the sample: its objects' cells)
    align_target: str = "scene"
    # views the alignment term scores each point through: 0 = the point as it is (as the
    # aligned critic was trained); N = the mean over N views made as the generator's
    # defaults make them (whole image, affine warp, colour, noise): the slope the loop
    # follows (the shipped critic's last stage used 4)
    align_views: int = 0
    # near misses per step (renders with one object squashed and rounded, as the loop's
    # objects come out) whose slope the alignment term also leads to their clean render;
    # 0 = off (needs --align-weight > 0)
    align_near: int = 0
    # the scene kinds the chains aim at, comma-separated (e.g. "pair,count"); empty = all,
    # drawn as the training data draws them (half single, a quarter each pair and count)
    sample_kinds: str = ""
    # the rank term: each sample's whole picture (no views: as the generator scores its
    # final picture and benchmarks/clip_gap.py compares it with the render) must score at
    # least --rank-margin below its scene's render, a hinge max(0, s - r + margin) on the
    # cosines; 0 = off
    rank_weight: float = 0.0
    rank_margin: float = 0.05
    # the rank term against more right pictures: besides its scene's render, each sample
    # must score --rank-margin below K other renders of its caption (what the caption
    # leaves open, such as cell, size, background and jitter, drawn again each step), so
    # that the loop's best right picture cannot beat the render by standing elsewhere;
    # 0 = its scene's render only
    rank_truths: int = 0
    # the rank term against the sample's own arrangement: each sample must also score this
    # margin below the render of its caption's true picture nearest to it (its objects'
    # cells, sizes and colours where the caption leaves them open: vqclip.shapes.nearest),
    # so that the critic cannot prefer the loop's rendering of a layout to the clean one of
    # the same layout (benchmarks/clip_gap.py's "generated_above_nearest_truth"); 0 = off
    # (needs --rank-weight > 0, which weighs it)
    rank_nearest: float = 0.0
    # the chance that a chain starting afresh starts at its scene's render (as the generator
    # does from an --init-image: contrastive divergence's data-started chains) instead of
    # where the loop starts; 0 = never, as every critic up to the shipped one was trained
    sample_render_start: float = 0.0
    # R1 at the renders: the squared norm of the critic's pixel gradient at each chain's
    # scene's render (its whole picture), so that the loop, started there, has no slope
    # to climb above it; 0 = off
    stationary_weight: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on gains, biases, embeddings' scalars and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class _Batches:
    """Collates (image, caption) pairs into (images, tokens) inside the loader's workers."""

    def __init__(self, context_length: int) -> None:
        import open_clip

        self.tokenizer = open_clip.SimpleTokenizer(context_length=context_length)

    def __call__(self, items: list[tuple[Any, ...]]) -> tuple[torch.Tensor, ...]:
        images = tuple(torch.stack([item[k] for item in items]) for k in range(len(items[0]) - 1))
        return (*images, self.tokenizer([item[-1] for item in items]))


def load_model_config(path: str) -> dict[str, Any]:
    """Reads a model config JSON (plain, or open_clip's ``{"model_cfg": ...}`` form)."""
    if not path:
        return json.loads(json.dumps(SHAPES_CLIP_CONFIG))
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise VqclipError(f"cannot read model config {path}: {e}") from None
    return dict(cfg.get("model_cfg", cfg))


def _dataset(s: ClipTrainSettings, start: int, rank: int, world: int, size: int) -> IterableDataset:
    if s.data == "shapes":
        return ShapesDataset(
            split="train", size=size, start=start, rank=rank, world_size=world,
            negatives=s.hard_negatives, near_misses=s.align_near > 0,
        )  # fmt: skip
    if s.hard_negatives or s.align_near:
        raise VqclipError("--hard-negatives and --align-near need --data shapes (its scenes)")
    from vqclip.clip.csvdata import CsvDataset

    return CsvDataset(Path(s.data), size=size, start=start, rank=rank, world_size=world)


def _samplers(s: ClipTrainSettings, bundle: Any, device: torch.device, rank: int) -> list[Any]:
    """One :class:`~vqclip.clip.samples.CriticSampler` per kind ``--samples`` asks for."""
    from vqclip.clip.samples import CriticSampler, SamplerSettings, sampler_kinds
    from vqclip.generation.settings import GenerateSettings

    kinds = sampler_kinds(s.samples)
    if kinds and s.data != "shapes":
        raise VqclipError("--samples needs --data shapes (the chains aim at its scenes)")
    if kinds and (s.energy_weight < 0 or s.energy_temperature < 0):
        raise VqclipError("--energy-weight and --energy-temperature must be >= 0")
    if s.align_weight < 0:
        raise VqclipError(f"--align-weight must be >= 0, got {s.align_weight}")
    if not (s.rank_weight >= 0 and 0 <= s.rank_margin <= 2):
        raise VqclipError(
            "--rank-weight must be >= 0 and --rank-margin in [0, 2], got "
            f"{s.rank_weight} and {s.rank_margin}"
        )
    if not s.stationary_weight >= 0:
        raise VqclipError(f"--stationary-weight must be >= 0, got {s.stationary_weight}")
    if s.stationary_weight > 0 and not kinds:
        raise VqclipError(
            "--stationary-weight needs --samples loop|sgld|both (it acts at their renders)"
        )
    if s.rank_truths < 0 or (s.rank_truths > 0 and s.rank_weight <= 0):
        raise VqclipError(
            f"--rank-truths must be >= 0 and needs --rank-weight > 0, got {s.rank_truths}"
        )
    if not 0 <= s.rank_nearest <= 2 or (s.rank_nearest > 0 and s.rank_weight <= 0):
        raise VqclipError(
            f"--rank-nearest must be in [0, 2] and needs --rank-weight > 0, got {s.rank_nearest}"
        )
    if s.rank_weight > 0 and not kinds:
        raise VqclipError("--rank-weight needs --samples loop|sgld|both (it ranks their pictures)")
    if s.align_weight > 0 and not kinds:
        raise VqclipError(
            "--align-weight needs --samples loop|sgld|both (it aligns on their pictures)"
        )
    if s.sample_render_start and not kinds:
        raise VqclipError("--sample-render-start needs --samples loop|sgld|both (their chains)")
    if s.sample_kinds and not kinds:
        raise VqclipError("--sample-kinds needs --samples loop|sgld|both (it picks their scenes)")
    if kinds and s.sample_cutn < 1:
        raise VqclipError(f"--sample-cutn must be at least 1, got {s.sample_cutn}")
    if kinds and not 0 < s.sample_cut_min <= 1:
        raise VqclipError(f"--sample-cut-min must be in (0, 1], got {s.sample_cut_min}")
    if kinds and not (s.sample_object_weight >= 0 and 1 <= s.sample_pair_steps <= 10):
        raise VqclipError(
            "--sample-object-weight must be >= 0 and --sample-pair-steps in [1, 10], got "
            f"{s.sample_object_weight} and {s.sample_pair_steps}"
        )
    if s.align_target not in ALIGN_TARGETS:
        raise VqclipError(
            f"unknown --align-target {s.align_target!r}; choose from {', '.join(ALIGN_TARGETS)}"
        )
    if s.align_views < 0:
        raise VqclipError(f"--align-views must be >= 0, got {s.align_views}")
    if not 0 <= s.align_near <= s.batch_size:
        raise VqclipError(
            f"--align-near must be between 0 and --batch-size ({s.batch_size}), got {s.align_near}"
        )
    if s.align_near and s.align_weight <= 0:
        raise VqclipError("--align-near needs --align-weight > 0 (it is part of that term)")
    if s.align_weight > 0 and dist_info()[1] > 1:
        raise VqclipError(
            "--align-weight runs on one process (DDP has no double backward); drop torchrun"
        )
    out = []
    for k, kind in enumerate(kinds):
        settings = SamplerSettings(
            kind=kind, buffer_size=s.buffer_size, batch=s.sample_batch, steps=s.sample_steps,
            reinit=s.sample_reinit, render_start=s.sample_render_start,
            kinds=tuple(k.strip() for k in s.sample_kinds.split(",") if k.strip()),
        ).validate()  # fmt: skip
        vq = None
        if kind == "loop":
            from vqclip.vqgan.load import load_vqgan

            vq = load_vqgan(s.sample_vqgan).to(device)
        seed = s.seed * 1000 + 100 * rank + k
        loop = GenerateSettings(cutn=s.sample_cutn, cut_min=s.sample_cut_min,
                                object_weight=s.sample_object_weight,
                                pair_steps=s.sample_pair_steps)  # fmt: skip
        out.append(CriticSampler(settings, bundle, vq, loop, seed=seed).to(device))
    return out


class _Refreshed(NamedTuple):
    """What :func:`_energy` returns for one training step."""

    views: torch.Tensor  # the samples' views, then their renders' views (the energy term)
    captions: list[str]
    n: int  # samples refreshed
    whole: torch.Tensor | None  # whole pictures, then their alignment targets
    renders: torch.Tensor | None  # whole renders of the samples' scenes
    others: torch.Tensor | None  # other right pictures of each sample's caption
    nearest: torch.Tensor | None  # each sample's nearest true picture's render


def _energy(
    samplers: list[Any], device: torch.device, size: int | None, target: str = "scene",
    truths: int = 0, rng: random.Random | None = None, nearest: bool = False,
) -> _Refreshed:  # fmt: skip
    """Refreshes every sampler; returns what the step's terms score (see :class:`_Refreshed`).

    The views are what the energy term scores; the whole pictures (at the critic's
    ``size``) and the renders they should lead to (``target``: see ``--align-target``)
    what the alignment term uses; the whole renders of the samples' scenes what the rank
    term compares them with, then ``truths`` other right pictures of each sample's caption
    (drawn from ``rng``, sample by sample; None when ``truths`` is 0), then (``nearest``)
    the render of each sample's caption's true picture nearest to it. ``size`` None (no
    whole-picture term) leaves the last four None.
    """
    from vqclip.clip.samples import nearest_render_of, other_render_of, render_of

    samples, reals, captions, raw, raw_aim, raw_real, others = [], [], [], [], [], [], []
    near: list[torch.Tensor] = []
    for sm in samplers:
        pics, scenes, caps, keep = sm.refresh()
        real = torch.stack([render_of(k, pics.shape[-1]) for k in scenes]).to(device)
        views = sm.views(torch.cat([pics, real]), torch.cat([keep, keep]))
        samples.append(views[: len(caps)])
        reals.append(views[len(caps) :])
        if size is not None:
            raw.append(F.interpolate(pics, size=(size, size), mode="area"))
            raw_real.append(F.interpolate(real, size=(size, size), mode="area"))
            aim = raw_real[-1]
            if target == "nearest" or nearest:
                side = pics.shape[-1]
                pairs = zip(scenes, pics, strict=True)
                closest = torch.stack([nearest_render_of(k, p, side) for k, p in pairs])
                closest = F.interpolate(closest.to(device), size=(size, size), mode="area")
                aim = closest if target == "nearest" else aim
                if nearest:
                    near.append(closest)
            raw_aim.append(aim)
            if truths:
                assert rng is not None
                side = pics.shape[-1]
                drawn = [other_render_of(k, side, rng) for k in scenes for _ in range(truths)]
                others.append(F.interpolate(torch.stack(drawn).to(device), size=(size, size),
                                            mode="area"))  # fmt: skip
        captions += caps
    views = torch.cat(samples + reals).detach()
    if size is None:
        return _Refreshed(views, captions, len(captions), None, None, None, None)
    whole = torch.cat(raw + raw_aim).detach()
    more = torch.cat(others).detach() if others else None
    closest_all = torch.cat(near).detach() if near else None
    return _Refreshed(views, captions, len(captions), whole, torch.cat(raw_real).detach(), more,
                      closest_all)  # fmt: skip


def train_clip(s: ClipTrainSettings, resume: bool = False, progress: bool = True) -> Path:
    """Trains a CLIP; returns the folder of the final model (open_clip ``local-dir`` layout).

    Checkpoints go to ``out/checkpoint`` every ``save_every`` steps and at exit,
    Ctrl-C included; ``resume`` continues from there, data stream and all.
    """
    rank, world, local_rank = dist_info()
    device = pick_device(s.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(s.out)
    ckpt = out / "checkpoint"
    model_cfg = load_model_config(s.model_config)
    torch.manual_seed(s.seed)
    model = build_model(model_cfg).to(device)
    if s.init and not resume:
        _load_init(model, s.init)
    opt = torch.optim.AdamW(
        _param_groups(model, s.weight_decay), lr=s.lr, betas=(0.9, 0.98), eps=1e-6
    )
    bundle = make_bundle(model, model_cfg, SHAPES_PREPROCESS, "training")
    samplers = _samplers(s, bundle, device, rank)
    buffers = {f"buffer_{sm.s.kind}_rank{rank}": sm.buffer for sm in samplers}
    step, spent = 0, 0.0
    if resume:
        state = load_checkpoint(ckpt, {"model": model}, {"optimizer": opt}, device)
        step, spent = int(state["step"]), float(state.get("elapsed_s", 0.0))
        if buffers:
            load_checkpoint(ckpt, buffers, {}, device)
        log.info("resumed from %s at step %d", ckpt, step)
    net: torch.nn.Module = model
    if world > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    size = model_cfg["vision_cfg"]["image_size"]
    data = _dataset(s, step * s.batch_size * world, rank, world, size)
    loader = DataLoader(
        data, batch_size=s.batch_size, num_workers=s.workers,
        collate_fn=_Batches(model_cfg["text_cfg"].get("context_length", 77)),
        pin_memory=device.type == "cuda", persistent_workers=s.workers > 0,
    )  # fmt: skip
    tokenize = _Batches(model_cfg["text_cfg"].get("context_length", 77)).tokenizer
    gen = torch.Generator(device=device).manual_seed(s.seed * 1000 + rank + step)

    def meta(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "settings": s.to_json(),
            "model_cfg": model_cfg,
            "elapsed_s": clock.elapsed(),
        }

    bar = tqdm(total=s.steps, initial=step, desc="train-clip", disable=not progress or rank > 0)
    t0, seen = time.perf_counter(), 0
    batches = iter(loader)
    clock = RunClock(s.steps, s.time_budget, step, spent)
    try:
        model.train()
        while not clock.done(step):
            *parts, tokens = next(batches)
            if s.align_near:  # near misses and their clean renders, for the alignment term
                near = (parts.pop()[: s.align_near].to(device), parts[0][: s.align_near].to(device))
            images = torch.cat(parts).to(device, non_blocking=True)  # clean, then spoiled
            tokens = tokens.to(device, non_blocking=True)
            if s.noise_aug > 0:
                sigma = torch.rand(images.shape[0], 1, 1, 1, device=device, generator=gen)
                keep = torch.rand(images.shape[0], 1, 1, 1, device=device, generator=gen) < 0.5
                noise = torch.randn(images.shape, device=device, generator=gen)
                images = (images + noise * sigma * s.noise_aug * keep).clamp(0, 1)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(
                    step, lr=s.lr, min_lr=s.min_lr, warmup=s.warmup, progress=clock.progress(step)
                )
            n_real, n_e, n_rank = tokens.shape[0], 0, 0
            if samplers:  # the critic's own samples, then the real renders they aim at
                whole_needed = s.align_weight > 0 or s.rank_weight > 0 or s.stationary_weight > 0
                truth_rng = random.Random(s.seed * 1_000_003 + 7919 * rank + step)
                extra, captions, n_e, whole, renders, others, closest = _energy(
                    samplers, device, size if whole_needed else None, s.align_target,
                    s.rank_truths, truth_rng, s.rank_nearest > 0,
                )  # fmt: skip
                images = torch.cat([images, extra])
                tokens = torch.cat([tokens, tokenize(captions).to(device)])
                if s.rank_weight > 0:  # whole pictures, scenes' renders, other truths, nearest
                    assert whole is not None and renders is not None
                    more = [t for t in (others, closest) if t is not None]
                    images = torch.cat([images, whole[:n_e], renders, *more])
                    n_rank = (2 + s.rank_truths + (closest is not None)) * n_e
            with bf16_autocast(device):
                img_f, txt_f, _ = net(bundle.normalize(images), tokens)
            img_f, rank_f = img_f[: len(img_f) - n_rank], img_f[len(img_f) - n_rank :]
            img_f, sample_f = img_f[: len(img_f) - 2 * n_e], img_f[len(img_f) - 2 * n_e :]
            img_f, neg_f = img_f[:n_real], img_f[n_real:]
            txt_f, cap_f = txt_f[:n_real], txt_f[n_real:]
            loss, acc = clip_loss(
                img_f.float(), txt_f.float(), model.logit_scale,
                neg_f.float() if len(neg_f) else None,
            )  # fmt: skip
            if n_e:
                energy = energy_loss(sample_f[:n_e].float(), sample_f[n_e:].float(), cap_f.float(),
                                     s.energy_temperature)  # fmt: skip
                loss = loss + s.energy_weight * energy
                if n_rank:
                    k = s.rank_truths  # each sample against its render, then its k others
                    n_truths = (1 + k) * n_e
                    ranked = rank_loss(
                        torch.cat([rank_f[:n_e], rank_f[:n_e].repeat_interleave(k, 0)]).float(),
                        rank_f[n_e : n_e + n_truths].float(),
                        torch.cat([cap_f, cap_f.repeat_interleave(k, 0)]).float(),
                        s.rank_margin,
                    )
                    if s.rank_nearest > 0:  # last: each sample's nearest true picture
                        ranked = ranked + rank_loss(
                            rank_f[:n_e].float(), rank_f[n_e + n_truths :].float(),
                            cap_f.float(), s.rank_nearest,
                        )  # fmt: skip
                    loss = loss + s.rank_weight * ranked
                if whole is not None and s.align_weight > 0:
                    align = align_loss(
                        bundle, whole[:n_e], whole[n_e:], tokens[n_real:], gen, s.align_views
                    )
                    loss = loss + s.align_weight * align
            if n_e and s.stationary_weight > 0:
                assert renders is not None
                still = stationary_loss(bundle, renders, tokens[n_real:])
                loss = loss + s.stationary_weight * still
            if s.align_near:
                align_near = align_loss(bundle, *near, tokens[: s.align_near], gen, s.align_views)
                loss = loss + s.align_weight * align_near
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
            step += 1
            seen += n_real * world
            if rank == 0:
                rate = seen / (time.perf_counter() - t0)
                post = {"loss": f"{loss.item():.3f}", "acc": f"{acc.item():.2f}"}
                if n_e:
                    post["energy"] = f"{energy.item():+.3f}"
                if n_rank:
                    post["rank"] = f"{ranked.item():.3f}"
                if n_e and s.align_weight > 0:
                    post["align"] = f"{align.item():.3f}"
                if n_e and s.stationary_weight > 0:
                    post["r1"] = f"{still.item():.2e}"
                if s.align_near:
                    post["near"] = f"{align_near.item():.3f}"
                bar.set_postfix(**post, sps=f"{rate:.0f}")
                bar.update(1)
            if s.save_every and step % s.save_every == 0:
                _save_buffers(ckpt, buffers, rank)
            if rank == 0:
                if s.save_every and step % s.save_every == 0:
                    save_checkpoint(ckpt, {"model": model}, {"optimizer": opt}, meta(step))
                    save_model_dir(model, model_cfg, SHAPES_PREPROCESS, out / "model", half=True)
                if s.eval_every and step % s.eval_every == 0:
                    _log_eval(model, model_cfg, s.eval_n, step)
                    model.train()
    finally:
        bar.close()
        if step > 0:
            _save_buffers(ckpt, buffers, rank)
        if rank == 0 and step > 0:
            save_checkpoint(ckpt, {"model": model}, {"optimizer": opt}, meta(step))
            save_model_dir(model, model_cfg, SHAPES_PREPROCESS, out / "model", half=True)
            log.info("step %d: checkpoint in %s, model in %s", step, ckpt, out / "model")
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return out / "model"


def _save_buffers(ckpt: Path, buffers: dict[str, torch.nn.Module], rank: int) -> None:
    """Each process writes its own replay buffers (before rank 0's ``state.json``)."""
    if buffers:
        save_checkpoint(ckpt, buffers, {}, {}, meta_name=f"buffers_rank{rank}.json")


def _load_init(model: torch.nn.Module, spec: str) -> None:
    """Copies the weights of CLIP ``spec`` into ``model`` (same architecture)."""
    from vqclip.clip.load import load_clip

    state = {k: v.float() for k, v in load_clip(spec).model.state_dict().items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise VqclipError(
            f"--init {spec}: its weights do not fit the model config ({first})"
        ) from None
    log.info("starting from the weights of %s", spec)


def _log_eval(model: torch.nn.Module, model_cfg: dict[str, Any], n: int, step: int) -> None:
    from vqclip.evaluate.clip_eval import STYLES, zero_shot

    bundle = make_bundle(model, model_cfg, SHAPES_PREPROCESS, "training")
    accs = zero_shot(bundle, n, styles={"ensemble": STYLES["ensemble"]})
    text = ", ".join(f"{task} {100 * v['ensemble']:.1f}%" for task, v in accs.items())
    log.info("step %d zero-shot (n=%d): %s", step, n, text)
