"""CLIP throughput on this machine: training samples/s and zero-shot images/s.

For the shipped Shapes CLIP (64×64) and ViT-B-32's architecture (224×224, random
weights). Training: forward + backward + AdamW step on a fixed batch (data
loading excluded). Zero-shot: image encoding in eval mode, no gradients.

    python benchmarks/bench_clip.py [--steps 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import open_clip
import torch

from vqclip.clip.loss import clip_loss
from vqclip.clip.model import SHAPES_CLIP_CONFIG, build_model
from vqclip.errors import run_script

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe


def _time(fn, steps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench(name: str, cfg: dict, batch: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    size = cfg["vision_cfg"]["image_size"]
    ctx = cfg["text_cfg"].get("context_length", 77)
    images = torch.randn(batch, 3, size, size, device=device)
    tokens = torch.randint(0, cfg["text_cfg"]["vocab_size"], (batch, ctx), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        img_f, txt_f, _ = model(images, tokens)
        loss, _ = clip_loss(img_f, txt_f, model.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    @torch.no_grad()
    def encode() -> None:
        model.encode_image(images)
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    train_s = _time(train_step, steps)
    model.eval()
    enc_s = _time(encode, steps)
    return {
        "model": name,
        "batch": batch,
        "train_samples_per_s": round(batch / train_s, 1),
        "zero_shot_images_per_s": round(batch / enc_s, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    big = 256 if device.type == "cuda" else 32
    rows = [
        bench("shapes (shipped arch)", SHAPES_CLIP_CONFIG, 4 * big, args.steps, device),
        bench("ViT-B-32 (random)", open_clip.get_model_config("ViT-B-32"), big, args.steps, device),
    ]
    print(json.dumps({"machine": describe(), "device": str(device), "results": rows}, indent=2))


if __name__ == "__main__":
    run_script(main)
