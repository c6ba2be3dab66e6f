"""``vqclip eval-vqgan``: reconstruction quality of a VQGAN on Shapes eval scenes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from vqclip.io import to_image, to_tensor
from vqclip.shapes.judge import judge
from vqclip.shapes.render import render
from vqclip.shapes.sampler import sample_scene
from vqclip.shapes.scene import EVAL_SEED_START
from vqclip.vqgan.model import VQGAN


@dataclass
class VqganEvalReport:
    """PSNR (dB), judge pass rate on reconstructions, codebook use and perplexity."""

    n: int
    size: int
    psnr: float
    judge_pass: float
    codes_used: int
    codebook_size: int
    perplexity: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)

    def table(self) -> str:
        return "\n".join([
            "| metric | value |",
            "|---|---:|",
            f"| PSNR | {self.psnr:.2f} dB |",
            f"| reconstructions passing the judge | {100 * self.judge_pass:.2f}% |",
            f"| codebook in use | {self.codes_used}/{self.codebook_size} "
            f"({100 * self.codes_used / self.codebook_size:.1f}%) |",
            f"| code perplexity | {self.perplexity:.1f} |",
        ])  # fmt: skip


@torch.no_grad()
def eval_vqgan(
    model: VQGAN, n: int = 2000, size: int | None = None, batch_size: int = 64,
    progress: bool = False,
) -> VqganEvalReport:  # fmt: skip
    """Reconstructs ``n`` eval scenes and measures them.

    PSNR is computed on the 8-bit reconstructions against the 8-bit renders, per
    image, then averaged; the judge checks each reconstruction against its truth.
    """
    size = size or model.config.ddconfig.resolution
    device = next(model.parameters()).device
    counts = torch.zeros(model.config.n_embed, dtype=torch.long)
    psnrs: list[float] = []
    passed = 0
    for start in tqdm(range(0, n, batch_size), desc="eval-vqgan", disable=not progress):
        scenes = [
            sample_scene(EVAL_SEED_START + i) for i in range(start, min(n, start + batch_size))
        ]
        x = torch.stack([to_tensor(render(s, size)) for s in scenes]).to(device)
        recon, _, indices = model(x * 2 - 1)
        counts += torch.bincount(indices.flatten().cpu(), minlength=model.config.n_embed)
        for scene, truth, out in zip(scenes, x, recon, strict=True):
            image = to_image((out.float() + 1) / 2)
            rec = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
            mse = float(((rec - truth.cpu()) ** 2).mean())
            psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
            passed += judge(image, scene).passed
    p = counts.double() / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return VqganEvalReport(
        n=n, size=size, psnr=float(np.mean(psnrs)), judge_pass=passed / n,
        codes_used=int((counts > 0).sum()), codebook_size=model.config.n_embed,
        perplexity=math.exp(entropy),
    )  # fmt: skip
