"""A code prior used on the loop's objects: resample each object's cells from the prior.

The issue's suggestion, measured as an ablation: a prior over the Shapes VQGAN's
16×16 code grids knows what objects look like in code space (a star's five points, a
ring's hole), which the critic's slope does not teach the loop. So after the loop, for
each region it drew (the cells that moved, as pruning finds them), the prior proposes
``--samples`` redrawings of the region's outline (or of the whole region), and the
critic, which reads clean shapes well, picks the best of them and the loop's own.
Two steps:

    python benchmarks/code_prior.py train --out runs/prior --time-budget 1200
    python benchmarks/code_prior.py sweep --prior runs/prior --n 50 --categories single,pair

``train`` fits a small bidirectional transformer (masked-code prediction, as MaskGIT
does) on the codes of rendered training scenes: ``--scenes`` scenes from the training
seeds, encoded by the embedded VQGAN; it writes ``prior.safetensors`` and
``prior.json``, and a second run into the same folder goes on from its weights, step
count and time (not its optimiser's moments). ``sweep`` generates ShapesEval's prompts and
seeds with the defaults, pruning off, and grades each loop's picture five ways, so
the rows differ only in what follows the loop: pruned as the defaults do; outlines
redrawn where the critic scores them higher, then pruned; outlines redrawn where the
critic's score stays within pruning's tolerance (0.03) of the loop's, then pruned;
whole regions redrawn within that tolerance, then pruned; and unpruned. Prints a
Markdown table of strict and lenient passes and the graded parts.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vqclip.errors import run_script

CATEGORY_NAMES = ("single", "position", "pair", "count", "held-out")
VARIANTS = ("pruned", "outline+pruned", "outline@tol+pruned", "region@tol+pruned", "unpruned")


class CodePrior(nn.Module):
    """Predicts masked codes of an (h, w) grid from the others (id ``n_codes`` = masked)."""

    def __init__(self, n_codes: int, cells: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.config = {"n_codes": n_codes, "cells": cells, "width": width, "layers": layers,
                       "heads": heads}  # fmt: skip
        self.embed = nn.Embedding(n_codes + 1, width)
        self.pos = nn.Parameter(torch.randn(cells, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)  # fmt: skip
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_codes)

    @property
    def mask_id(self) -> int:
        return int(self.config["n_codes"])

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, n_codes) for codes (B, L), masked ones set to :attr:`mask_id`."""
        return self.head(self.norm(self.body(self.embed(codes) + self.pos)))


def save_prior(prior: CodePrior, out: Path, state: dict[str, Any]) -> None:
    from safetensors.torch import save

    from vqclip.io import atomic_open

    with atomic_open(out / "prior.safetensors", "wb") as f:
        f.write(save({k: v.contiguous() for k, v in prior.state_dict().items()}))
    with atomic_open(out / "prior.json") as f:
        f.write(json.dumps({"config": prior.config, **state}))


def load_prior(folder: Path) -> tuple[CodePrior, dict[str, Any]]:
    from safetensors.torch import load_file

    meta = json.loads((folder / "prior.json").read_text())
    prior = CodePrior(**meta["config"])
    prior.load_state_dict(load_file(str(folder / "prior.safetensors")))
    return prior.eval(), meta


def scene_codes(n: int, first: int = 0) -> torch.Tensor:
    """The embedded VQGAN's codes (n, h·w) of training scenes ``first`` .. ``first + n - 1``."""
    from tqdm import tqdm

    from vqclip.io import to_tensor
    from vqclip.shapes import render, sample_scene, split_seed
    from vqclip.vqgan.load import load_vqgan

    vq = load_vqgan("shapes").eval()
    out = []
    with torch.no_grad():
        for start in tqdm(range(first, first + n, 256), desc="encoding scenes"):
            ids = range(start, min(start + 256, first + n))
            x = torch.stack([to_tensor(render(sample_scene(split_seed("train", i)))) for i in ids])
            out.append(vq.encode(x * 2 - 1)[2].flatten(1))
    return torch.cat(out)


def mask_batch(codes: torch.Tensor, mask_id: int, g: torch.Generator) -> tuple[Any, Any]:
    """MaskGIT's training masks: a share cos(π/2·u) of each grid's cells, u ~ U(0, 1)."""
    b, length = codes.shape
    share = torch.cos(math.pi / 2 * torch.rand(b, 1, generator=g))
    masked = torch.rand(b, length, generator=g) < share.clamp(min=1 / length)
    return torch.where(masked, mask_id, codes), masked


def train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    codes = scene_codes(args.scenes)
    held = scene_codes(512, first=args.scenes)  # training seeds never used for fitting
    out = Path(args.out)
    if (out / "prior.json").exists():
        prior, meta = load_prior(out)
        prior.train()
        step, spent = int(meta["step"]), float(meta["elapsed_s"])
    else:
        prior = CodePrior(256, codes.shape[1], args.width, args.layers, args.heads)
        step, spent = 0, 0.0
    opt = torch.optim.AdamW(prior.parameters(), lr=args.lr, weight_decay=0.01)
    t0 = time.perf_counter() - spent
    bar = tqdm(desc="code prior", total=None, initial=step)
    held_nll = float("nan")
    while time.perf_counter() - t0 < args.time_budget:
        progress = (time.perf_counter() - t0) / args.time_budget
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
        batch = codes[torch.randint(len(codes), (args.batch_size,), generator=g)]
        x, masked = mask_batch(batch, prior.mask_id, g)
        logits = prior(x)
        loss = nn.functional.cross_entropy(logits[masked], batch[masked])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", held=f"{held_nll:.3f}")
        if step % 500 == 0:
            held_nll = held_out_nll(prior, held)
            prior.train()
            save_prior(prior, out, {"step": step, "elapsed_s": time.perf_counter() - t0,
                                    "held_out_nll_half_masked": held_nll})  # fmt: skip
    held_nll = held_out_nll(prior, held)
    save_prior(prior, out, {"step": step, "elapsed_s": time.perf_counter() - t0,
                            "held_out_nll_half_masked": held_nll})  # fmt: skip
    params = sum(p.numel() for p in prior.parameters())
    print(json.dumps({"steps": step, "parameters": params,
                      "held_out_nll_half_masked": round(held_nll, 4)}))  # fmt: skip


def held_out_nll(prior: CodePrior, held: torch.Tensor) -> float:
    """Mean NLL (nats) of held-out codes with half of each grid masked (a fixed draw)."""
    prior.eval()
    g = torch.Generator().manual_seed(0)
    masked = torch.rand(held.shape, generator=g) < 0.5
    with torch.no_grad():
        logits = prior(torch.where(masked, prior.mask_id, held))
        return float(nn.functional.cross_entropy(logits[masked], held[masked]))


def redraw(prior: CodePrior, codes: torch.Tensor, mask: torch.Tensor, k: int,
           g: torch.Generator, steps: int = 6) -> torch.Tensor:  # fmt: skip
    """``k`` samples (k, L) of ``codes`` (L,) with the cells of ``mask`` (L,) redrawn.

    MaskGIT's decoding: every step predicts all masked cells, samples each, and keeps
    the most confident of them, a cosine-scheduled share, the rest masked again.
    """
    x = codes.expand(k, -1).clone()
    x[:, mask] = prior.mask_id
    todo = int(mask.sum())
    with torch.no_grad():
        for t in range(steps):
            still = x == prior.mask_id
            if not bool(still.any()):
                break
            probs = prior(x).softmax(-1)
            drawn = torch.multinomial(probs.flatten(0, 1), 1, generator=g).view(k, -1)
            conf = probs.gather(-1, drawn[..., None])[..., 0]
            conf = torch.where(still, conf, torch.full_like(conf, -1.0))
            left = math.floor(todo * math.cos(math.pi / 2 * (t + 1) / steps))
            n_fix = int(still[0].sum()) - left
            top = conf.topk(max(n_fix, 1), dim=1).indices
            fix = torch.zeros_like(still).scatter_(1, top, True) & still
            x = torch.where(fix, drawn, x)
    return x


def _refine(loop: Any, codes: torch.Tensor, regions: list[torch.Tensor], score: float,
            prior: CodePrior, samples: int, whole: bool, tolerance: float,
            g: torch.Generator) -> torch.Tensor:  # fmt: skip
    """The loop's codes (L,) with each region redrawn by the prior, chosen by the critic.

    ``codes`` and ``score`` are the loop's picture and the critic's score of it,
    ``regions`` what pruning finds in it. A region's best redrawing replaces it when the
    critic scores it above the picture so far (``tolerance`` 0) or, as pruning's Occam
    step, when the picture stays within ``tolerance`` of the loop's own score.
    """
    from scipy import ndimage

    from vqclip.generation.generator import _scores

    vq, h, w = loop.vq, *loop.z.shape[2:]
    best, floor, current = score, score - tolerance, codes
    for region in regions:
        area = ndimage.binary_dilation(region.numpy(), iterations=1)
        if not whole:  # keep the region's inside (its colour), redraw its outline
            area &= ~ndimage.binary_erosion(region.numpy(), iterations=1)
        drawn = redraw(prior, current, torch.from_numpy(area).flatten(), samples, g)
        scores = _scores(loop.clips[0], _decode(vq, drawn.view(samples, h, w)), loop.targets[0])
        k = max(range(samples), key=lambda i: scores[i])
        if scores[k] > best or (tolerance > 0 and scores[k] >= floor):
            best, current = scores[k], drawn[k]
    return current


def _decode(vq: Any, codes: torch.Tensor) -> torch.Tensor:
    """Pictures (B, 3, H, W) in [0, 1] from code grids (B, h, w)."""
    return ((vq.decode_indices(codes) + 1) / 2).clamp(0, 1)


def _work(job: tuple[int, str, str, str, int, dict[str, Any]]) -> dict[str, Any]:
    from vqclip.generation.generator import _scores, prune_candidates, quantize_st, setup, step
    from vqclip.generation.prune import THRESHOLDS, cell_change, regions_of
    from vqclip.generation.settings import GenerateSettings
    from vqclip.io import to_image
    from vqclip.shapes.captions import parse_prompt
    from vqclip.shapes.grade import grade

    torch.set_num_threads(1)
    k, category, text, prior_dir, samples, overrides = job
    clips, vq, prior = _models(prior_dir)
    s = GenerateSettings.from_json({**overrides, "prompts": text, "seed": k, "prune": None})
    tol = GenerateSettings().prune
    assert tol is not None
    loop = setup(s, clips, vq)
    for i in range(loop.s.iterations):
        step(loop, i)
    scene = parse_prompt(text)
    rec: dict[str, Any] = {"k": k, "category": category, "text": text}
    g = torch.Generator().manual_seed(k)
    with torch.no_grad():
        raw = quantize_st(vq, loop.z)
        t0 = time.perf_counter()
        codes = vq.quantize.nearest(raw)  # (1, h, w)
        picture, start = _decode(vq, codes), _decode(vq, vq.quantize.nearest(loop.z0))
        regions = regions_of(cell_change(picture[0], start[0], vq.factor), THRESHOLDS[0])
        score = _scores(loop.clips[0], picture, loop.targets[0])[0]
        common = (loop, codes.flatten(), regions, score, prior, samples)
        outline = _refine(*common, whole=False, tolerance=0.0, g=g)
        rec["refine_s"] = time.perf_counter() - t0
        outline_tol = _refine(*common, whole=False, tolerance=tol, g=g)
        region_tol = _refine(*common, whole=True, tolerance=tol, g=g)

        def latent(c: torch.Tensor) -> torch.Tensor:
            return vq.quantize.embed_indices(c.view(codes.shape))

        pictures = {"pruned": prune_candidates(loop, raw, tol),
                    "outline+pruned": prune_candidates(loop, latent(outline), tol),
                    "outline@tol+pruned": prune_candidates(loop, latent(outline_tol), tol),
                    "region@tol+pruned": prune_candidates(loop, latent(region_tol), tol),
                    "unpruned": raw}  # fmt: skip
        for name, z in pictures.items():
            gr = grade(to_image(((vq.decode(z) + 1) / 2).clamp(0, 1)[0]), scene)
            rec[name] = {"strict": gr.strict, "lenient": gr.lenient, "attributes": gr.attributes}
    return rec


_MODELS: Any = None


def _models(prior_dir: str) -> Any:
    global _MODELS
    if _MODELS is None:
        from vqclip.clip.load import load_clip
        from vqclip.vqgan.load import load_vqgan

        _MODELS = ([load_clip("shapes")], load_vqgan("shapes"), load_prior(Path(prior_dir))[0])
    return _MODELS


def table(records: list[dict[str, Any]]) -> str:
    """Markdown: per category and variant, the share passing each check."""
    rows = ["| category | variant | n | strict | lenient | colour | shape | count | no_extra |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in CATEGORY_NAMES:
        mine = [r for r in records if r["category"] == c]
        for v in VARIANTS if mine else ():
            grades = [r[v] for r in mine]

            def share(get: Any, grades: list[dict[str, Any]] = grades) -> str:
                return f"{100 * sum(bool(get(g)) for g in grades) / len(grades):.0f}%"

            parts = [share(lambda g, a=a: g["attributes"][a])
                     for a in ("colour", "shape", "count", "no_extra")]  # fmt: skip
            passes = [share(lambda g: g["strict"]), share(lambda g: g["lenient"])]
            rows.append(f"| {c} | {v} | {len(mine)} | " + " | ".join(passes + parts) + " |")
    return "\n".join(rows)


def sweep(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from vqclip.evaluate.generate_eval import CATEGORIES, prompts_for

    wanted = set(args.categories.split(","))
    every = [(c, t) for c in CATEGORIES for t in prompts_for(c, args.n)]  # seed k, as ShapesEval
    overrides = json.loads(args.settings)
    jobs = [(k, c, text, args.prior, args.samples, overrides)
            for k, (c, text) in enumerate(every) if c in wanted]  # fmt: skip
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = list(tqdm(pool.imap(_work, jobs), total=len(jobs), desc="prior sweep"))
    print(table(records))
    refine_s = sum(r["refine_s"] for r in records) / len(records)
    print(json.dumps({"outline_refine_s_per_image": round(refine_s, 2)}))
    if args.json:
        print(json.dumps(records))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit the prior on training scenes' codes")
    t.add_argument("--out", required=True)
    t.add_argument("--scenes", type=int, default=20000)
    t.add_argument("--time-budget", type=float, default=1200, help="seconds, across resumes")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--width", type=int, default=128)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("sweep", help="ShapesEval's prompts, with and without the prior")
    s.add_argument("--prior", required=True)
    s.add_argument("--n", type=int, default=20, help="prompts per category")
    s.add_argument("--categories", default="single,pair")
    s.add_argument("--samples", type=int, default=16, help="redrawings per region")
    s.add_argument("--settings", default="{}", help="JSON settings over the defaults")
    s.add_argument("--workers", type=int, default=1, help="processes of one thread each")
    s.add_argument("--json", action="store_true", help="also print every record")
    args = p.parse_args()
    if args.command == "train" and min(args.scenes, args.time_budget, args.batch_size) <= 0:
        p.error("--scenes, --time-budget and --batch-size must be positive")
    if args.command == "sweep":
        if not (Path(args.prior) / "prior.json").is_file():
            p.error(
                f"{args.prior} holds no prior.json; make one with: code_prior.py train --out DIR"
            )
        if min(args.n, args.samples, args.workers) < 1:
            p.error("--n, --samples and --workers must be at least 1")
    torch.set_num_threads(1)
    train(args) if args.command == "train" else sweep(args)


if __name__ == "__main__":
    run_script(main)
