"""``vqclip eval-clip``: zero-shot accuracy and retrieval recall of a CLIP on Shapes world."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from vqclip.clip.model import ClipBundle
from vqclip.clip.zeroshot import TEMPLATE_SETS, ZeroShotClassifier
from vqclip.shapes.captions import POSITIONS
from vqclip.shapes.judge import Analysis, DetectedObject, compare
from vqclip.shapes.render import render
from vqclip.shapes.sampler import sample_scene
from vqclip.shapes.scene import COLORS, EVAL_SEED_START, HELD_OUT, SHAPES, Scene

log = logging.getLogger(__name__)

STYLES: dict[str, tuple[str, ...]] = {
    "bare": TEMPLATE_SETS["none"],
    "template": TEMPLATE_SETS["photo"],
    "ensemble": TEMPLATE_SETS["shapes"],
}
TASKS = ("colour", "shape", "position", "colour+shape seen", "colour+shape held-out")


@dataclass
class ClipEvalReport:
    """Accuracies per task and prompt style, and retrieval recalls, each in [0, 1]."""

    n: int
    zero_shot: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> style -> acc
    retrieval: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"n": self.n, "zero_shot": self.zero_shot, "retrieval": self.retrieval}

    def table(self) -> str:
        """The report as a Markdown table."""
        styles = list(STYLES)
        rows = [
            "| task | " + " | ".join(styles) + " |",
            "|---|" + "---:|" * len(styles),
        ]
        for task, accs in self.zero_shot.items():
            rows.append(f"| {task} | " + " | ".join(f"{100 * accs[s]:.1f}%" for s in styles) + " |")
        lines = ["\n".join(rows), ""]
        if self.retrieval:
            lines.append("| retrieval | recall |")
            lines.append("|---|---:|")
            lines += [f"| {k} | {100 * v:.1f}% |" for k, v in self.retrieval.items()]
        return "\n".join(lines)


def _singles(n: int) -> list[Scene]:
    return [sample_scene(EVAL_SEED_START + i, kind="single") for i in range(n)]


def _truth_analysis(scene: Scene) -> Analysis:
    objs = tuple(
        DetectedObject(
            color=str(o.color), shape=str(o.shape), size=str(o.size), cell=str(o.cell),
            centroid=o.center or (0.5, 0.5), area=0.0, box=0.0, shape_error=0.0,
        )
        for o in scene.objects
    )  # fmt: skip
    return Analysis(background=scene.background, objects=objs, size=scene.size or 64)


def satisfies(truth: Scene, prompt: Scene) -> bool:
    """Whether a scene's truth satisfies a prompt, decided on the attributes alone."""
    return compare(_truth_analysis(truth), prompt).passed


def zero_shot(
    clip: ClipBundle, n: int = 2000, styles: dict[str, tuple[str, ...]] | None = None,
    progress: bool = False,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Zero-shot accuracy per task (colour, shape, position, colour+shape) and style."""
    styles = styles or STYLES
    scenes = _singles(n)
    images = [render(s, 64) for s in tqdm(scenes, desc="render", disable=not progress)]
    emb = clip.encode_images(images)
    objs = [s.objects[0] for s in scenes]
    color_names, shape_names, cells = list(COLORS), list(SHAPES), list(POSITIONS)
    pairs = [(c, s) for c in color_names for s in shape_names]
    # task -> (class texts, true class of each image)
    tasks = {
        "colour": (
            [f"{c} shape" for c in color_names],
            [color_names.index(str(o.color)) for o in objs],
        ),
        "shape": (shape_names, [shape_names.index(str(o.shape)) for o in objs]),
        "position": (
            [f"shape {POSITIONS[c]}" for c in cells],
            [cells.index(str(o.cell)) for o in objs],
        ),
        "colour+shape": (
            [f"{c} {s}" for c, s in pairs],
            [pairs.index((str(o.color), str(o.shape))) for o in objs],
        ),
    }
    held = torch.tensor([(o.color, o.shape) in HELD_OUT for o in objs])
    out: dict[str, dict[str, float]] = {t: {} for t in TASKS}
    for style, templates in styles.items():
        for task, (labels, truth) in tasks.items():
            clf = ZeroShotClassifier.build(clip, labels, templates)
            correct = (clf.predict(emb).cpu() == torch.tensor(truth)).float()
            if task == "colour+shape":
                out["colour+shape seen"][style] = float(correct[~held].mean())
                out["colour+shape held-out"][style] = float(correct[held].mean())
            else:
                out[task][style] = float(correct.mean())
    return out


def retrieval(clip: ClipBundle, n: int = 2000, progress: bool = False) -> dict[str, float]:
    """Recall@1 and @5 both ways on eval scenes; a hit is any item whose truth fits the query."""
    from vqclip.shapes.captions import parse_prompt

    scenes = [sample_scene(EVAL_SEED_START + i) for i in range(n)]
    images = [render(s, 64) for s in tqdm(scenes, desc="render", disable=not progress)]
    captions = [s.captions[0] for s in scenes]
    prompts = [parse_prompt(c) for c in captions]
    sim = clip.encode_texts(captions) @ clip.encode_images(images).T  # (text, image)
    top_images = sim.topk(5, dim=1).indices.cpu()  # (n, 5)
    top_texts = sim.T.topk(5, dim=1).indices.cpu()  # (n, 5)
    out: dict[str, float] = {}
    for k in (1, 5):
        t2i = sum(
            any(satisfies(scenes[j], prompts[q]) for j in top_images[q, :k].tolist())
            for q in range(n)
        )
        i2t = sum(
            any(satisfies(scenes[q], prompts[j]) for j in top_texts[q, :k].tolist())
            for q in range(n)
        )
        out[f"text-to-image R@{k}"] = t2i / n
        out[f"image-to-text R@{k}"] = i2t / n
    return out


def eval_clip(clip: ClipBundle, n: int = 2000, progress: bool = False) -> ClipEvalReport:
    """The full ``eval-clip`` table: zero-shot for every task and style, and retrieval."""
    return ClipEvalReport(
        n=n, zero_shot=zero_shot(clip, n, progress=progress), retrieval=retrieval(clip, n, progress)
    )
