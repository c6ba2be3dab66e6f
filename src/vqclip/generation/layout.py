"""Object views: a Shapes prompt laid out in cells, each object scored alone in the middle.

With ``object_weight`` > 0 (the default), a prompt of the Shapes grammar gets a layout,
one cell per object: a single object's stated cell, or the middle when it states none;
for a pair, two cells drawn with the loop's seeded generator among those that keep the
prompt's relation; for a count, different cells, drawn likewise. Each step, beside the
whole-picture views, each object's window (a third of the side, centred on its cell's
anchor; a lone object's is wider, room for a large one) is pasted into the middle of a
flat canvas of the prompt's background and scored against the object's own caption ("a
small blue square in the center"). The embedded critic reads a lone object in the middle
far better than one object of several, so each window gets its shape from a caption of
the kind it was trained on, while the whole picture keeps its relation and count. It is
layout-first generation in the manner of layout-guided text-to-image methods: the layout
says where to look and what each place should show; it paints nothing. A laid-out pair
runs ``pair_steps`` times the iterations (:func:`run_iterations`): two objects and their
relation need more steps than one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vqclip.errors import VqclipError
from vqclip.generation.prompts import Prompt, parse_story
from vqclip.generation.settings import GenerateSettings
from vqclip.shapes.captions import article, parse_prompt
from vqclip.shapes.scene import ANCHORS, CELLS, JITTER, SIZES, Scene, relations_between

log = logging.getLogger(__name__)
SINGLE_WINDOW = SIZES["large"] + 2 * JITTER + 0.04  # a lone object may be large
LARGE_ZOOM = SIZES["large"] / SIZES["small"]  # a small object enlarged this much is large


@dataclass(frozen=True)
class ObjectView:
    """One object's window in the picture and the caption its view is scored against."""

    caption: str
    cell: str
    box: tuple[int, int, int, int]  # (y0, x0, height, width) in pixels
    zoom: float = 1.0  # how much the view enlarges the window
    weight: float = 1.0  # the prompt's weight and stop, which its object views share
    stop: float = -math.inf


def _caption(size: str | None, color: str | None, shape: str | None, background: str) -> str:
    words = " ".join(w for w in (size, color, shape or "shape") if w)
    return f"{article(words)} {words} in the center{background}"


def _window(cell: str, wh: tuple[int, int], side: float = 1 / 3) -> tuple[int, int, int, int]:
    """The window of ``side`` of each side, centred on ``cell``'s anchor, inside the canvas."""
    w, h = wh
    col, row = CELLS[cell]
    bw, bh = max(1, round(w * side)), max(1, round(h * side))
    x0 = min(max(0, round(ANCHORS[col] * w - bw / 2)), w - bw)
    y0 = min(max(0, round(ANCHORS[row] * h - bh / 2)), h - bh)
    return y0, x0, bh, bw


def _draw(n: int, g: torch.Generator) -> int:
    return int(torch.randint(0, n, (), generator=g, device=g.device))


def _layout(truth: Scene, g: torch.Generator) -> list[str]:
    """Cells for a pair (keeping its relation) or a count (all different), drawn from ``g``."""
    cells = list(CELLS)
    if truth.kind == "pair":
        assert truth.relation is not None
        rel = truth.relation.relation
        pairs = [(a, b) for a in cells for b in cells if a != b and rel in relations_between(a, b)]
        return list(pairs[_draw(len(pairs), g)])
    chosen: list[str] = []
    for _ in truth.objects:
        rest = [c for c in cells if c not in chosen]
        chosen.append(rest[_draw(len(rest), g)])
    return chosen


def shapes_prompt(prompts: str) -> tuple[Prompt, Scene] | None:
    """The one positive prompt of ``prompts`` and its scene, if it is of the Shapes grammar.

    None for anything else: several positive prompts, a story, a text outside the grammar.
    """
    scenes = parse_story(prompts) if prompts.strip() else []
    positive = [p for scene in scenes for p in scene if p.weight > 0]
    if len(scenes) != 1 or len(positive) != 1:
        return None
    (prompt,) = positive
    try:
        return prompt, parse_prompt(prompt.text)
    except VqclipError:
        return None  # not the Shapes grammar


def views_on(settings: GenerateSettings) -> bool:
    """Whether a run may lay its prompt out: off at weight 0 and from an init image, whose
    picture keeps its own layout."""
    return settings.object_weight > 0 and settings.init_image is None


def run_iterations(settings: GenerateSettings) -> int:
    """How many steps a run takes: ``pair_steps`` × ``iterations`` for a laid-out pair."""
    found = shapes_prompt(settings.prompts) if views_on(settings) else None
    if found is None or found[1].kind != "pair":
        return settings.iterations
    return max(1, round(settings.iterations * settings.pair_steps))


def plan_object_views(
    prompts: str, wh: tuple[int, int], g: torch.Generator, zoom: float = 1.0
) -> list[ObjectView]:
    """The object views for ``prompts``: one positive prompt of the Shapes grammar.

    Empty for anything else (several positive prompts, a story, a text outside the
    grammar). The views share the prompt's weight and stop. Draws the layout from ``g``
    (pairs and counts). With ``zoom`` of at least the ratio of the sizes (0.32 / 0.18),
    a pair's or count's captions name large objects.
    """
    found = shapes_prompt(prompts)
    if found is None:
        return []
    prompt, truth = found
    background = f" on a {truth.background} background" if truth.background else ""
    if truth.kind == "single":
        (obj,) = truth.objects
        cell = obj.cell or "center"  # an object with no stated place is put in the middle
        caption = _caption(obj.size, obj.color, obj.shape, background)
        window = _window(cell, wh, SINGLE_WINDOW)
        views = [ObjectView(caption, cell, window, weight=prompt.weight, stop=prompt.stop)]
    else:
        size = "large" if zoom >= LARGE_ZOOM else "small"
        views = []
        for obj, cell in zip(truth.objects, _layout(truth, g), strict=True):
            assert obj.color is not None and obj.shape is not None  # pair and count name both
            caption = _caption(size, obj.color, obj.shape, background)
            window = _window(cell, wh)
            views.append(ObjectView(caption, cell, window, zoom, prompt.weight, prompt.stop))
    log.debug("object views: %s", ", ".join(f"{v.caption!r} at {v.cell}" for v in views))
    return views


def object_canvases(
    images: torch.Tensor, views: list[ObjectView], background: torch.Tensor
) -> torch.Tensor:
    """Each view's window, enlarged by its zoom, pasted into the middle of a flat canvas.

    Args:
        images: (B, 3, H, W) in [0, 1].
        views: the object views (their boxes fit ``images``).
        background: (3,) the canvas colour in [0, 1].

    Returns:
        (B·J, 3, H, W), images-major (candidate 0's J views first); differentiable.
    """
    b, _, h, w = images.shape
    bg = background.to(images)[None, :, None, None]
    out = []
    for v in views:  # every candidate at once
        y0, x0, bh, bw = v.box
        window = images[:, :, y0 : y0 + bh, x0 : x0 + bw] - bg
        if v.zoom != 1:
            bh, bw = min(h, round(bh * v.zoom)), min(w, round(bw * v.zoom))
            window = F.interpolate(window, size=(bh, bw), mode="bilinear", align_corners=False)
        top, left = (h - bh) // 2, (w - bw) // 2
        out.append(F.pad(window, (left, w - bw - left, top, h - bh - top)) + bg)
    if not out:
        return images.new_zeros(0, 3, h, w)
    return torch.stack(out, dim=1).reshape(b * len(views), 3, h, w)  # images-major
