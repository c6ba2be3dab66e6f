"""One-attribute changes of a truth: each must fail the judge on the truth's image."""

from __future__ import annotations

from dataclasses import replace

from vqclip.shapes.scene import (
    BACKGROUNDS,
    CELLS,
    COLORS,
    RELATIONS,
    SHAPES,
    SIZES,
    Relation,
    Scene,
    SceneObject,
)

_REVERSE = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}


def _other(values: tuple[str, ...] | list[str], current: str | None) -> str:
    """The next value after ``current`` in ``values``, cyclically (deterministic)."""
    i = values.index(current) if current is not None and current in values else -1
    return values[(i + 1) % len(values)]


def mutations(truth: Scene) -> list[tuple[str, Scene]]:
    """Returns every copy of ``truth`` with exactly one attribute changed, named.

    Changes: each object's colour, shape, size and cell (to a cell no other object
    holds); the relation reversed; the count (for count scenes, one object more or
    fewer); the background.
    """
    out: list[tuple[str, Scene]] = []
    objs = list(truth.objects)
    used = {o.cell for o in objs}
    for i, o in enumerate(objs):
        free = [c for c in CELLS if c not in used]
        changes = {
            "colour": replace(o, color=_other(tuple(COLORS), o.color)),
            "shape": replace(o, shape=_other(SHAPES, o.shape)),
            "size": replace(o, size=_other(tuple(SIZES), o.size)),
            "cell": replace(o, cell=_other(free, o.cell), center=None),
        }
        for name, changed in changes.items():
            copy = [*objs]
            copy[i] = changed
            out.append((f"object {i} {name}", replace(truth, objects=tuple(copy))))
    if truth.relation is not None:
        r = truth.relation
        out.append(
            (
                "relation",
                replace(truth, relation=Relation(r.subject, _REVERSE[r.relation], r.object)),
            )
        )
    if truth.kind == "count":
        fewer = tuple(objs[:-1])
        extra = SceneObject(objs[0].color, objs[0].shape, objs[0].size, None, None)
        out.append(("count fewer", replace(truth, objects=fewer)))
        out.append(("count more", replace(truth, objects=(*objs, extra))))
    out.append(
        ("background", replace(truth, background=_other(tuple(BACKGROUNDS), truth.background)))
    )
    assert all(r in RELATIONS for r in _REVERSE)
    return out
