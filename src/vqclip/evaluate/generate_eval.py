"""ShapesEval (``vqclip eval-generate``): generate from Shapes prompts and let the judge decide.

Five categories of prompts, drawn from eval scenes: a single colour+shape, the same
with a position, a pair with a relation, a count, and a single colour+shape from
the six held-out pairs. Each prompt is generated with the given settings and judged
against the prompt's parse; the report gives the pass rate per category with a 95%
Wilson interval, the mean CLIP score and the seconds per image.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from vqclip.generation.generator import generate
from vqclip.generation.settings import GenerateSettings
from vqclip.shapes.captions import NUMBERS, PLURALS, POSITIONS, article
from vqclip.shapes.judge import judge
from vqclip.shapes.sampler import sample_scene
from vqclip.shapes.scene import EVAL_SEED_START, HELD_OUT, Scene

CATEGORIES = ("single", "position", "pair", "count", "held-out")
# The "plain" method of the ablation: no prompt-aware augmentation, no extras.
PLAIN: dict[str, Any] = {"prompt_aware": False, "augments": (), "cut_min": 0.5}


def _single(scene: Scene, with_position: bool) -> str:
    o = scene.objects[0]
    text = f"{article(str(o.color))} {o.color} {o.shape}"
    return text + (f" {POSITIONS[str(o.cell)]}" if with_position else "")


def prompts_for(category: str, n: int) -> list[str]:
    """``n`` prompts of a category, drawn deterministically from eval scenes."""
    return [text for text, _ in prompts_with_scenes(category, n)]


def prompts_with_scenes(category: str, n: int) -> list[tuple[str, Scene | None]]:
    """Like :func:`prompts_for`, with the eval scene each prompt describes (None for held-out)."""
    out: list[tuple[str, Scene | None]] = []
    seed = EVAL_SEED_START + 1_000_000 * (CATEGORIES.index(category) + 1)
    rng = random.Random(seed)
    held = sorted(HELD_OUT)
    while len(out) < n:
        seed += 1
        if category == "pair":
            s = sample_scene(seed, kind="pair")
            assert s.relation is not None
            a, b = s.objects
            text = (f"{article(str(a.color))} {a.color} {a.shape} {s.relation.relation} "
                    f"{article(str(b.color))} {b.color} {b.shape}")  # fmt: skip
        elif category == "count":
            s = sample_scene(seed, kind="count")
            o = s.objects[0]
            text = f"{NUMBERS[len(s.objects)]} {o.color} {PLURALS[str(o.shape)]}"
        elif category == "held-out":
            color, shape = held[rng.randrange(len(held))]
            out.append((f"{article(color)} {color} {shape}", None))
            continue
        else:
            s = sample_scene(seed, kind="single")
            o = s.objects[0]
            if (o.color, o.shape) in HELD_OUT:
                continue
            text = _single(s, category == "position")
        out.append((text, s))
    return out


def wilson(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a pass rate."""
    if n == 0:
        return (0.0, 1.0)
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class CategoryResult:
    passed: int = 0
    n: int = 0
    scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lo, hi = wilson(self.passed, self.n)
        return {
            "pass_rate": self.passed / max(1, self.n), "ci95": [lo, hi], "n": self.n,
            "clip_score": sum(self.scores) / max(1, len(self.scores)),
            "seconds_per_image": sum(self.seconds) / max(1, len(self.seconds)),
        }  # fmt: skip


SHEET_PER_CATEGORY = 6  # images per category on the contact sheet


def eval_generate(
    n: int, settings: GenerateSettings, *, progress: bool = False,
    keep: list[tuple[Image.Image, str]] | None = None,
    on_image: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Runs ShapesEval for one method; returns a summary per category.

    ``keep`` collects the first :data:`SHEET_PER_CATEGORY` images of each category
    with their verdicts; ``on_image`` gets the summaries so far after each image
    (categories not yet started are left out), so that a long run can save as it goes.
    """
    from vqclip.clip.load import load_clip
    from vqclip.shapes.captions import parse_prompt
    from vqclip.vqgan.load import load_vqgan

    clips = [load_clip(spec) for spec in settings.clip]
    vq = load_vqgan(settings.vqgan, config=settings.vqgan_config,
                    checkpoint=settings.vqgan_checkpoint)  # fmt: skip
    results = {c: CategoryResult() for c in CATEGORIES}
    jobs = [(c, p) for c in CATEGORIES for p in prompts_for(c, n)]
    for k, (category, text) in enumerate(tqdm(jobs, desc="eval-generate", disable=not progress)):
        t0 = time.perf_counter()
        r = generate(replace(settings, prompts=text, seed=settings.seed + k), clips=clips, vqgan=vq)
        res = results[category]
        res.seconds.append(time.perf_counter() - t0)
        res.scores.append(max(r.scores))
        verdict = judge(r.image, parse_prompt(text))
        res.passed += verdict.passed
        res.n += 1
        if keep is not None and res.n <= SHEET_PER_CATEGORY:
            keep.append((r.image, f"{'PASS' if verdict.passed else 'fail'}: {text}"))
        if on_image is not None:
            on_image({c: results[c].summary() for c in CATEGORIES if results[c].n})
    return {c: results[c].summary() for c in CATEGORIES}


def markdown(methods: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One table: a row per category, pass rate [95% CI] per method, score and time."""
    names = list(methods)
    head = "| category | " + " | ".join(f"{m} pass [95% CI]" for m in names)
    head += " | " + " | ".join(f"{m} CLIP score" for m in names) + " | s/image |"
    rows = [head, "|---" * (1 + 2 * len(names) + 1) + "|"]
    for c in CATEGORIES:
        if c not in methods[names[0]]:
            continue
        cells, scores = [], []
        for m in names:
            r = methods[m].get(c)  # None: an interrupted run did not reach this category
            if r is None:
                cells.append("—")
                scores.append("—")
                continue
            lo, hi = r["ci95"]
            cells.append(
                f"{100 * r['pass_rate']:.0f}% [{100 * lo:.0f}–{100 * hi:.0f}] (n={r['n']})"
            )
            scores.append(f"{r['clip_score']:.3f}")
        secs = methods[names[0]][c]["seconds_per_image"]
        rows.append(f"| {c} | " + " | ".join(cells + scores) + f" | {secs:.1f} |")
    return "\n".join(rows)


def write_outputs(
    out: Path, methods: dict[str, dict[str, dict[str, Any]]], sheet: list[tuple[Image.Image, str]]
) -> None:
    """``out/shapeseval.json``, ``out/shapeseval.md`` and ``out/sheet.png``, atomically."""
    from vqclip.io import atomic_open, save_image
    from vqclip.shapes.sheet import contact_sheet

    with atomic_open(out / "shapeseval.json") as f:
        json.dump(methods, f, indent=2)
    with atomic_open(out / "shapeseval.md") as f:
        f.write(markdown(methods) + "\n")
    if sheet:
        images, captions = zip(*sheet, strict=True)
        save_image(
            contact_sheet(list(images), list(captions), columns=6, cell=128), out / "sheet.png"
        )
