"""Shapes world scenes: the palette, seeded sampling, and the JSON truth form.

Everything here follows ``SHAPES.md``. A :class:`Scene` is both the *truth* of a
rendered image (every field set) and a *prompt* to judge against (any field may
be ``None``, meaning "any").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vqclip.errors import VqclipError

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "cyan": (30, 200, 210),
    "blue": (30, 70, 220),
    "purple": (140, 50, 190),
    "pink": (245, 120, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
SIZES: dict[str, float] = {"small": 0.18, "large": 0.32}
# Cell name -> (column, row), each 0..2.
CELLS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
ANCHORS: tuple[float, float, float] = (0.2, 0.5, 0.8)
JITTER = 0.03
RELATIONS: tuple[str, ...] = ("to the left of", "to the right of", "above", "below")
KINDS: tuple[str, ...] = ("single", "pair", "count")
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "ring"),
        ("orange", "star"),
        ("yellow", "cross"),
        ("green", "triangle"),
        ("blue", "square"),
        ("purple", "circle"),
    }
)
EVAL_SEED_START = 10_000_000
# How often each kind is drawn by the sampler.
KIND_WEIGHTS: dict[str, float] = {"single": 0.5, "pair": 0.25, "count": 0.25}


def cell_of(x: float, y: float) -> str:
    """Returns the name of the 3×3 grid cell holding the point ``(x, y)`` (fractions)."""
    col = min(2, max(0, int(x * 3)))
    row = min(2, max(0, int(y * 3)))
    for name, cr in CELLS.items():
        if cr == (col, row):
            return name
    raise AssertionError("unreachable")


def relations_between(cell_a: str, cell_b: str) -> list[str]:
    """Returns every relation that holds for an object in ``cell_a`` relative to ``cell_b``."""
    (ca, ra), (cb, rb) = CELLS[cell_a], CELLS[cell_b]
    out = []
    if ca < cb:
        out.append("to the left of")
    if ca > cb:
        out.append("to the right of")
    if ra < rb:
        out.append("above")
    if ra > rb:
        out.append("below")
    return out


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene; in a prompt any field may be ``None`` ("any")."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    cell: str | None = None
    center: tuple[float, float] | None = None


@dataclass(frozen=True)
class Relation:
    """``objects[subject]`` stands in ``relation`` to ``objects[object]``."""

    subject: int
    relation: str
    object: int


@dataclass(frozen=True)
class Scene:
    """A scene's truth, or a prompt when some fields are ``None``."""

    kind: str | None = None
    objects: tuple[SceneObject, ...] = ()
    background: str | None = None
    relation: Relation | None = None
    seed: int | None = None
    size: int | None = None
    captions: tuple[str, ...] = field(default=())
    image: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form of ``SHAPES.md`` (absent attributes are omitted)."""
        out: dict[str, Any] = {}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.size is not None:
            out["size"] = self.size
        if self.kind is not None:
            out["kind"] = self.kind
        if self.background is not None:
            out["background"] = self.background
        objs = []
        for o in self.objects:
            d: dict[str, Any] = {}
            for key in ("color", "shape", "size", "cell"):
                if getattr(o, key) is not None:
                    d[key] = getattr(o, key)
            if o.center is not None:
                d["center"] = list(o.center)
            objs.append(d)
        out["objects"] = objs
        out["relation"] = (
            None
            if self.relation is None
            else {
                "subject": self.relation.subject,
                "relation": self.relation.relation,
                "object": self.relation.object,
            }
        )
        if self.captions:
            out["captions"] = list(self.captions)
        if self.image is not None:
            out["image"] = self.image
        return out

    def dumps(self) -> str:
        """Returns the JSON form as one line."""
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Any) -> Scene:
        """Builds a scene (or prompt) from its JSON form, validating every value.

        Raises:
            VqclipError: a value is unknown or a field has the wrong type.
        """
        if not isinstance(data, dict):
            raise VqclipError("a scene must be a JSON object")
        known = {"seed", "size", "kind", "background", "objects", "relation", "captions", "image"}
        extra = set(data) - known
        if extra:
            raise VqclipError(f"unknown scene field(s) {sorted(extra)}; known: {sorted(known)}")
        kind = data.get("kind")
        _check_choice("kind", kind, KINDS)
        background = data.get("background")
        _check_choice("background", background, tuple(BACKGROUNDS))
        raw_objects = data.get("objects", [])
        if not isinstance(raw_objects, list):
            raise VqclipError("'objects' must be a list")
        objects = tuple(_object_from_json(o) for o in raw_objects)
        rel = data.get("relation")
        relation = None
        if rel is not None:
            if not isinstance(rel, dict) or set(rel) != {"subject", "relation", "object"}:
                raise VqclipError("'relation' must be null or {subject, relation, object}")
            _check_choice("relation", rel["relation"], RELATIONS)
            for k in ("subject", "object"):
                if not isinstance(rel[k], int) or not 0 <= rel[k] < len(objects):
                    raise VqclipError(f"relation {k} {rel[k]!r} is not an object index")
            relation = Relation(rel["subject"], rel["relation"], rel["object"])
        captions = data.get("captions", [])
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise VqclipError("'captions' must be a list of strings")
        for key in ("seed", "size"):
            if data.get(key) is not None and not isinstance(data[key], int):
                raise VqclipError(f"'{key}' must be an integer")
        image = data.get("image")
        if image is not None and not isinstance(image, str):
            raise VqclipError("'image' must be a path string")
        return cls(
            kind=kind,
            objects=objects,
            background=background,
            relation=relation,
            seed=data.get("seed"),
            size=data.get("size"),
            captions=tuple(captions),
            image=image,
        )

    @classmethod
    def loads(cls, line: str) -> Scene:
        """Parses one JSON line.

        Raises:
            VqclipError: the line is not valid JSON or not a valid scene.
        """
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise VqclipError(f"malformed JSON ({e.msg} at column {e.colno})") from None
        return cls.from_json(data)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise VqclipError(f"unknown {name} {value!r}; expected one of: {', '.join(choices)}")


def _object_from_json(o: Any) -> SceneObject:
    if not isinstance(o, dict):
        raise VqclipError("each object must be a JSON object")
    extra = set(o) - {"color", "shape", "size", "cell", "center"}
    if extra:
        raise VqclipError(f"unknown object field(s) {sorted(extra)}")
    _check_choice("colour", o.get("color"), tuple(COLORS))
    _check_choice("shape", o.get("shape"), SHAPES)
    _check_choice("size", o.get("size"), tuple(SIZES))
    _check_choice("cell", o.get("cell"), tuple(CELLS))
    center = o.get("center")
    if center is not None:
        if (
            not isinstance(center, list)
            or len(center) != 2
            or not all(isinstance(v, (int, float)) for v in center)
        ):
            raise VqclipError("'center' must be [x, y]")
        center = (float(center[0]), float(center[1]))
    return SceneObject(o.get("color"), o.get("shape"), o.get("size"), o.get("cell"), center)
