"""The true picture of a caption nearest to what an image already shows.

A caption leaves much open (where a single object stands, its size, the background
unless named), and a scene's truth fixes all of it at random. As a target for an
image that already holds objects, "the scene" is far away (its objects stand
elsewhere); :func:`nearest_truth` keeps what the image got right and the caption
allows: each named object goes to the cell of a detected object of its colour,
unnamed sizes, colours, shapes and the background come from the image, and what the
image lacks comes from the truth. The result always satisfies the caption.
"""

from __future__ import annotations

from vqclip.shapes.captions import parse_prompt
from vqclip.shapes.judge import Analysis
from vqclip.shapes.scene import ANCHORS, CELLS, SHAPES, Relation, Scene, SceneObject
from vqclip.shapes.scene import relations_between as _relations


def _in_prompt_order(truth: Scene) -> tuple[SceneObject, ...]:
    """The truth's objects in the order its caption names them (a pair: subject, object)."""
    if truth.kind == "pair" and truth.relation is not None:
        return (truth.objects[truth.relation.subject], truth.objects[truth.relation.object])
    return truth.objects


def _anchor(cell: str) -> tuple[float, float]:
    col, row = CELLS[cell]
    return (ANCHORS[col], ANCHORS[row])


def nearest_truth(truth: Scene, caption: str, seen: Analysis) -> Scene:
    """A full truth of ``caption`` that keeps as much of the analysed image as it may.

    Args:
        truth: a full truth that ``caption`` describes (the scene it was drawn from).
        caption: one of its captions, in the Shapes grammar.
        seen: the judge's analysis of the image to stay near.

    Returns:
        A full truth (objects at their cells' anchors) whose render the judge passes
        for ``caption``. Each named object takes the largest free detected object that
        fits what the caption states of it (colour, cell): its cell, and where the
        caption is silent its colour, shape and (single objects) size. If the objects'
        cells would then collide or break the caption's relation, the truth's cells are
        kept for all of them.
    """
    prompt = parse_prompt(caption)
    wants = prompt.objects
    base = _in_prompt_order(truth)
    used: set[int] = set()
    placed: list[SceneObject] = []
    for want, t in zip(wants, base, strict=True):
        best = None
        for j, d in enumerate(seen.objects):
            free = j not in used and d.cell not in {o.cell for o in placed}
            fits = (want.color is None or d.color == want.color) and (
                want.cell is None or d.cell == want.cell
            )
            if free and fits and (best is None or d.area > seen.objects[best].area):
                best = j
        if best is None:
            placed.append(t)
            continue
        used.add(best)
        d = seen.objects[best]
        shape = want.shape or (d.shape if d.shape in SHAPES else t.shape)
        size = want.size or (d.size if prompt.kind == "single" else t.size)
        placed.append(SceneObject(want.color or d.color, shape, size, d.cell))
    cells = [o.cell for o in placed]
    relation = None
    if prompt.relation is not None:
        relation = Relation(0, prompt.relation.relation, 1)
    broken = len(set(cells)) < len(cells) or (
        relation is not None and relation.relation not in _relations(str(cells[0]), str(cells[1]))
    )
    if broken:
        placed = [replace_cell(o, str(t.cell)) for o, t in zip(placed, base, strict=True)]
    objects = tuple(replace_cell(o, str(o.cell)) for o in placed)
    background = prompt.background or seen.background or truth.background
    return Scene(
        kind=truth.kind, objects=objects, background=background, relation=relation,
        seed=truth.seed, size=truth.size, captions=(caption,),
    )  # fmt: skip


def replace_cell(o: SceneObject, cell: str) -> SceneObject:
    """``o`` moved to ``cell``'s anchor."""
    return SceneObject(o.color, o.shape, o.size, cell, _anchor(cell))
