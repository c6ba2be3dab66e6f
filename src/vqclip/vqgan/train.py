"""``vqclip train-vqgan``: a small VQGAN on Shapes world.

Loss: L1 + L2 reconstruction, the quantiser's codebook/commitment loss, and a
patch discriminator (hinge loss) switched on after ``disc_start`` steps. Codes
unused over the last ``reinit_every`` steps are re-initialised from encoder outputs,
so the codebook stays in use.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from vqclip.devices import bf16_autocast, pick_device
from vqclip.errors import VqclipError
from vqclip.shapes.data import ShapesDataset
from vqclip.training import (
    RunClock,
    cosine_lr,
    load_checkpoint,
    save_checkpoint,
)
from vqclip.vqgan.discriminator import PatchDiscriminator
from vqclip.vqgan.model import VQGAN, VQGANConfig
from vqclip.vqgan.quantize import VectorQuantizer
from vqclip.vqgan.shapes_config import SHAPES_VQGAN_CONFIG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VqganTrainSettings:
    """Everything a VQGAN training run depends on; saved beside its checkpoints."""

    out: str = "runs/vqgan"
    config: str = ""  # a VQGAN config JSON; empty = the embedded Shapes config
    steps: int = 4000
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup: int = 200
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    disc_start: float = 0.6  # fraction of the run after which the discriminator trains
    disc_weight: float = 0.05
    disc_lr: float = 2e-4
    reinit_every: int = 100
    seed: int = 0
    workers: int = 2
    save_every: int = 500
    device: str = "auto"
    # seconds of the run's wall time, resumes included; > 0 ends the run (schedule
    # included) by then
    time_budget: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean PSNR in dB of images in [0, 1] (per-image PSNR, averaged)."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def load_vqgan_config(path: str) -> VQGANConfig:
    if not path:
        return SHAPES_VQGAN_CONFIG
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise VqclipError(f"cannot read VQGAN config {path}: {e}") from None
    return VQGANConfig.from_dict(data)


class CodeUsage:
    """Counts code use; re-initialises codes unused since the last reset."""

    def __init__(self, n_codes: int, device: torch.device) -> None:
        self.counts = torch.zeros(n_codes, device=device)

    def update(self, indices: torch.Tensor) -> None:
        self.counts += torch.bincount(indices.flatten(), minlength=self.counts.numel())

    @torch.no_grad()
    def reinit_dead(self, quantizer: VectorQuantizer, latents: torch.Tensor) -> int:
        """Replaces unused codes by random latent vectors (B, D, h, w); returns how many."""
        dead = (self.counts == 0).nonzero().flatten()
        if dead.numel():
            flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
            pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
            quantizer.embedding.weight.data[dead] = flat[pick].to(quantizer.embedding.weight.dtype)
        self.counts.zero_()
        return int(dead.numel())


def train_vqgan(s: VqganTrainSettings, resume: bool = False, progress: bool = True) -> Path:
    """Trains a VQGAN on Shapes world; returns the folder of the final model.

    The model folder holds ``vqgan.safetensors`` and ``config.json``. Checkpoints
    (model, discriminator, both optimizers, step) go to ``out/checkpoint``.
    """
    device = pick_device(s.device)
    cfg = load_vqgan_config(s.config)
    if cfg.quantizer != "vq":
        raise VqclipError("train-vqgan trains the 'vq' quantiser only")
    torch.manual_seed(s.seed)
    model = VQGAN(cfg).to(device)
    disc = PatchDiscriminator().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=s.disc_lr, betas=(0.5, 0.9))
    out = Path(s.out)
    ckpt = out / "checkpoint"
    models = {"vqgan": model, "discriminator": disc}
    optimizers = {"optimizer": opt, "disc_optimizer": opt_d}
    step, spent = 0, 0.0
    if resume:
        state = load_checkpoint(ckpt, models, optimizers, device)
        step, spent = int(state["step"]), float(state.get("elapsed_s", 0.0))
        log.info("resumed from %s at step %d", ckpt, step)
    size = cfg.ddconfig.resolution
    data = ShapesDataset(split="train", size=size, start=step * s.batch_size)
    loader = DataLoader(
        data, batch_size=s.batch_size, num_workers=s.workers,
        pin_memory=device.type == "cuda", persistent_workers=s.workers > 0,
    )  # fmt: skip
    assert isinstance(model.quantize, VectorQuantizer)
    usage = CodeUsage(cfg.n_embed, device)

    def meta(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "settings": s.to_json(),
            "config": cfg.to_dict(),
            "elapsed_s": clock.elapsed(),
        }

    bar = tqdm(total=s.steps, initial=step, desc="train-vqgan", disable=not progress)
    t0, seen = time.perf_counter(), 0
    batches = iter(loader)
    clock = RunClock(s.steps, s.time_budget, step, spent)
    try:
        model.train()
        while not clock.done(step):
            images, _ = next(batches)
            x = images.to(device, non_blocking=True) * 2 - 1  # (B, 3, H, W) in [-1, 1]
            frac = clock.progress(step)
            lr = cosine_lr(step, lr=s.lr, min_lr=s.min_lr, warmup=s.warmup, progress=frac)
            for group in opt.param_groups:
                group["lr"] = lr
            use_disc = bool(frac >= s.disc_start and s.disc_weight > 0)
            with bf16_autocast(device):
                latent = model.encode_latent(x)
                quant, qloss, indices = model.quantize(latent.float())
                recon = model.decode(quant)
            recon = recon.float()
            rec = s.l1_weight * (recon - x).abs().mean() + s.l2_weight * ((recon - x) ** 2).mean()
            loss = rec + qloss
            if use_disc:
                with bf16_autocast(device):
                    g_loss = -disc(recon).float().mean()
                loss = loss + s.disc_weight * g_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if use_disc:
                with bf16_autocast(device):
                    real, fake = disc(x).float(), disc(recon.detach()).float()
                d_loss = 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            usage.update(indices)
            step += 1
            seen += x.shape[0]
            if s.reinit_every and step % s.reinit_every == 0:
                in_use = int((usage.counts > 0).sum())
                dead = usage.reinit_dead(model.quantize, latent.detach().float())
                bar.set_postfix_str(f"codes in use {in_use}/{cfg.n_embed}, reinit {dead}")
            if step % 10 == 0:
                with torch.no_grad():
                    p = psnr((recon.detach() + 1) / 2, (x + 1) / 2)
                rate = seen / (time.perf_counter() - t0)
                bar.set_description(f"train-vqgan loss {loss.item():.4f} psnr {p:.1f} {rate:.0f}/s")
            bar.update(1)
            if s.save_every and step % s.save_every == 0:
                save_checkpoint(ckpt, models, optimizers, meta(step))
                save_vqgan_dir(model, out / "model")
    finally:
        bar.close()
        if step > 0:
            save_checkpoint(ckpt, models, optimizers, meta(step))
            save_vqgan_dir(model, out / "model")
            log.info("step %d: checkpoint in %s, model in %s", step, ckpt, out / "model")
    return out / "model"


def save_vqgan_dir(model: VQGAN, folder: Path) -> None:
    """Writes ``folder/vqgan.safetensors`` + ``config.json``, atomically."""
    from vqclip.io import atomic_open, save_safetensors

    save_safetensors(model, folder / "vqgan.safetensors")
    with atomic_open(folder / "config.json") as f:
        json.dump(model.config.to_dict(), f, indent=2)
