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
from vqclip.shapes.grade import ATTRIBUTES, grade
from vqclip.shapes.sampler import sample_scene
from vqclip.shapes.scene import EVAL_SEED_START, HELD_OUT, Scene

CATEGORIES = ("single", "position", "pair", "count", "held-out")
# The "plain" method of the ablation: no prompt-aware augmentation, no extras.
PLAIN: dict[str, Any] = {"prompt_aware": False, "augments": (), "cut_min": 0.5, "prune": None}


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
    lenient: int = 0
    n: int = 0
    scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    attributes: dict[str, list[int]] = field(default_factory=dict)  # name -> [passed, asked]

    def add(self, passed: bool, lenient: bool, attributes: dict[str, bool | None]) -> None:
        self.passed += passed
        self.lenient += lenient
        self.n += 1
        for name, ok in attributes.items():
            if ok is not None:
                counts = self.attributes.setdefault(name, [0, 0])
                counts[0] += ok
                counts[1] += 1

    def summary(self) -> dict[str, Any]:
        lo, hi = wilson(self.passed, self.n)
        llo, lhi = wilson(self.lenient, self.n)
        return {
            "pass_rate": self.passed / max(1, self.n), "ci95": [lo, hi], "n": self.n,
            "lenient_rate": self.lenient / max(1, self.n), "lenient_ci95": [llo, lhi],
            "attributes": {a: c[0] / c[1] for a in ATTRIBUTES if (c := self.attributes.get(a))},
            "clip_score": sum(self.scores) / max(1, len(self.scores)),
            "seconds_per_image": sum(self.seconds) / max(1, len(self.seconds)),
        }  # fmt: skip


SHEET_PER_CATEGORY = 6  # images per category on the contact sheet


def eval_generate(
    n: int, settings: GenerateSettings, *, progress: bool = False,
    keep: list[tuple[Image.Image, str]] | None = None,
    on_image: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    categories: tuple[str, ...] = CATEGORIES,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Runs ShapesEval for one method; returns a summary per category.

    Prompt ``k`` of the whole run (all categories) always gets seed ``settings.seed + k``,
    so running a subset of ``categories`` gives the same images as the full run.

    ``keep`` collects the first :data:`SHEET_PER_CATEGORY` images of each category
    with their verdicts; ``on_image`` gets the summaries so far after each image
    (categories not yet started are left out), so that a long run can save as it goes.
    Under torchrun (a process group initialised) each rank makes every ``world``-th
    image, as batch generation shares its items, and every rank returns the whole tally.
    """
    from vqclip.clip.load import load_clip
    from vqclip.shapes.captions import parse_prompt
    from vqclip.vqgan.load import load_vqgan

    clips = [load_clip(spec) for spec in settings.clip]
    vq = load_vqgan(settings.vqgan, config=settings.vqgan_config,
                    checkpoint=settings.vqgan_checkpoint)  # fmt: skip
    rank, world = _rank_world()
    jobs = [(k, c, p, j) for k, (c, p, j) in enumerate(
        (c, p, j) for c in CATEGORIES for j, p in enumerate(prompts_for(c, n)))
        if c in categories]  # fmt: skip
    records: list[dict[str, Any]] = []
    for k, category, text, j in tqdm(jobs[rank::world], desc="eval-generate",
                                     disable=not progress):  # fmt: skip
        t0 = time.perf_counter()
        r = generate(replace(settings, prompts=text, seed=settings.seed + k), clips=clips, vqgan=vq)
        scene = parse_prompt(text)
        g = grade(r.image, scene)
        records.append({"k": k, "category": category, "text": text, "strict": g.strict,
                        "lenient": g.lenient, "attributes": g.attributes,
                        "score": max(r.scores), "seconds": time.perf_counter() - t0,
                        "image": r.image if j < SHEET_PER_CATEGORY else None})  # fmt: skip
        if r.unpruned is not None:  # the same loop's picture before pruning: a paired row
            u = grade(r.unpruned, scene)
            records[-1]["unpruned"] = (u.strict, u.lenient, u.attributes)
        if on_image is not None and world == 1:
            on_image(_tally(records, None))
    if world > 1:  # torchrun: every rank made its share; all see the whole tally
        import torch.distributed as dist

        shares: list[Any] = [None] * world
        dist.all_gather_object(shares, records)
        records = sorted((r for share in shares for r in share), key=lambda r: r["k"])
    return _tally(records, keep)


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _tally(
    records: list[dict[str, Any]], keep: list[tuple[Image.Image, str]] | None
) -> dict[str, dict[str, Any]]:
    """The summary per category of the images made (in prompt order), and the sheet's."""
    results = {c: CategoryResult() for c in CATEGORIES}
    unpruned = {c: CategoryResult() for c in CATEGORIES}
    for rec in records:
        res = results[rec["category"]]
        res.seconds.append(rec["seconds"])
        res.scores.append(rec["score"])
        res.add(rec["strict"], rec["lenient"], rec["attributes"])
        if "unpruned" in rec:
            unpruned[rec["category"]].add(*rec["unpruned"])
        if keep is not None and rec["image"] is not None:
            marks = f"{'PASS' if rec['strict'] else 'fail'}/{'pass' if rec['lenient'] else 'fail'}"
            keep.append((rec["image"], f"{marks}: {rec['text']}"))
    out = {c: results[c].summary() for c in CATEGORIES if results[c].n}
    for c, summary in out.items():
        if unpruned[c].n:
            summary["unpruned"] = unpruned[c].summary()
    return out


def split_unpruned(
    name: str, summary: dict[str, dict[str, Any]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{name: ..., name + " unpruned": ...}``: the paired row of the same loop before pruning.

    The unpruned row has no CLIP score or time of its own: they are the pruned run's.
    """
    out = {name: {c: {k: v for k, v in s.items() if k != "unpruned"} for c, s in summary.items()}}
    before = {c: {**s["unpruned"], "clip_score": None,
                  "seconds_per_image": s["seconds_per_image"]}
              for c, s in summary.items() if "unpruned" in s}  # fmt: skip
    if before:
        out[f"{name} unpruned"] = before
    return out


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
            scores.append("—" if r["clip_score"] is None else f"{r['clip_score']:.3f}")
        secs = methods[names[0]][c]["seconds_per_image"]
        rows.append(f"| {c} | " + " | ".join(cells + scores) + f" | {secs:.1f} |")
    return "\n".join([*rows, "", graded_markdown(methods)])


def graded_markdown(methods: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per method and category: strict and lenient pass, and each attribute's accuracy."""
    head = "| method | category | strict | lenient | " + " | ".join(ATTRIBUTES) + " |"
    rows = [head, "|---" * (4 + len(ATTRIBUTES)) + "|"]
    for m, cats in methods.items():
        for c in CATEGORIES:
            r = cats.get(c)
            if r is None:
                continue
            attrs = r.get("attributes", {})
            cells = [f"{100 * attrs[a]:.0f}%" if a in attrs else "—" for a in ATTRIBUTES]
            rates = f"{100 * r['pass_rate']:.0f}% | {100 * r.get('lenient_rate', 0):.0f}%"
            rows.append(f"| {m} | {c} | {rates} | " + " | ".join(cells) + " |")
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
