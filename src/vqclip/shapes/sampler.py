"""Seeded scene sampling: the train and eval splits of Shapes world."""

from __future__ import annotations

import random
from dataclasses import replace

from vqclip.errors import VqclipError
from vqclip.shapes.captions import parse_prompt, sample_caption
from vqclip.shapes.scene import (
    ANCHORS,
    BACKGROUNDS,
    CELLS,
    COLORS,
    EVAL_SEED_START,
    HELD_OUT,
    JITTER,
    KIND_WEIGHTS,
    KINDS,
    SHAPES,
    SIZES,
    Relation,
    Scene,
    SceneObject,
    relations_between,
)


def _place(rng: random.Random, cell: str) -> tuple[float, float]:
    col, row = CELLS[cell]
    x = round(ANCHORS[col] + rng.uniform(-JITTER, JITTER), 4)
    y = round(ANCHORS[row] + rng.uniform(-JITTER, JITTER), 4)
    return (x, y)


def _color_shape(rng: random.Random, allow_held_out: bool) -> tuple[str, str]:
    while True:
        pair = (rng.choice(tuple(COLORS)), rng.choice(SHAPES))
        if allow_held_out or pair not in HELD_OUT:
            return pair


def sample_scene(seed: int, size: int = 64, kind: str | None = None) -> Scene:
    """Draws the scene of ``seed``: the same seed gives the same scene on any machine.

    Seeds below ``EVAL_SEED_START`` are the training split and never contain the
    held-out (colour, shape) pairs; seeds from ``EVAL_SEED_START`` up may.

    Args:
        seed: the scene's seed (>= 0).
        size: the canvas side in pixels, recorded in the truth.
        kind: force a kind (``single``, ``pair`` or ``count``); drawn when ``None``.

    Returns:
        The scene's truth, with one sampled caption.
    """
    if seed < 0:
        raise VqclipError(f"seed must be >= 0, got {seed}")
    rng = random.Random(seed)
    allow = seed >= EVAL_SEED_START
    drawn = rng.choices(KINDS, weights=[KIND_WEIGHTS[k] for k in KINDS])[0]
    kind = kind or drawn
    if kind not in KINDS:
        raise VqclipError(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}")
    background = rng.choice(tuple(BACKGROUNDS))
    relation = None
    if kind == "single":
        color, shape = _color_shape(rng, allow)
        cell = rng.choice(tuple(CELLS))
        objects: tuple[SceneObject, ...] = (
            SceneObject(color, shape, rng.choice(tuple(SIZES)), cell, _place(rng, cell)),
        )
    elif kind == "pair":
        cells = rng.sample(tuple(CELLS), 2)
        objects = tuple(
            SceneObject(*_color_shape(rng, allow), "small", c, _place(rng, c)) for c in cells
        )
        relation = Relation(0, rng.choice(relations_between(cells[0], cells[1])), 1)
    else:
        n = rng.choice((2, 3))
        color, shape = _color_shape(rng, allow)
        cells = rng.sample(tuple(CELLS), n)
        objects = tuple(SceneObject(color, shape, "small", c, _place(rng, c)) for c in cells)
    scene = Scene(
        kind=kind, objects=objects, background=background, relation=relation, seed=seed, size=size
    )
    return replace(scene, captions=(sample_caption(scene, rng),))


def split_seed(split: str, index: int) -> int:
    """Returns the seed of scene ``index`` of ``split`` (``train`` or ``eval``)."""
    if split == "train":
        return index
    if split == "eval":
        return EVAL_SEED_START + index
    raise VqclipError(f"unknown split {split!r}; expected 'train' or 'eval'")


def resample_truth(truth: Scene, caption: str, rng: random.Random) -> Scene:
    """Another full truth of ``caption``: what the caption leaves open is drawn afresh.

    A caption fixes some of its scene (colours, shapes, a cell, a relation) and leaves the
    rest to chance; the scene's render is one right picture of many. This keeps the
    truth's colours and shapes and draws again, where ``caption`` does not name them, the
    background, a single object's size and cell, the cells of a pair (until its relation
    holds) or of a count, and every object's jittered centre. The result always satisfies
    the caption, so its render is another right picture of it.

    Args:
        truth: a full truth that ``caption`` describes.
        caption: one of its captions, in the Shapes grammar.
        rng: the source of the new draws.
    """
    prompt = parse_prompt(caption)
    named_cells = any(p.cell is not None for p in prompt.objects)
    objects = list(truth.objects)
    if truth.kind == "single":
        p, o = prompt.objects[0], objects[0]
        cell = p.cell or rng.choice(tuple(CELLS))
        objects = [replace(o, size=p.size or rng.choice(tuple(SIZES)), cell=cell)]
    elif not named_cells and truth.kind == "pair" and truth.relation is not None:
        rel = truth.relation
        while True:
            cells = rng.sample(tuple(CELLS), len(objects))
            if rel.relation in relations_between(cells[rel.subject], cells[rel.object]):
                break
        objects = [replace(o, cell=c) for o, c in zip(objects, cells, strict=True)]
    elif not named_cells:
        cells = rng.sample(tuple(CELLS), len(objects))
        objects = [replace(o, cell=c) for o, c in zip(objects, cells, strict=True)]
    placed = tuple(replace(o, center=_place(rng, str(o.cell))) for o in objects)
    background = prompt.background or rng.choice(tuple(BACKGROUNDS))
    return replace(truth, objects=placed, background=background, captions=(caption,))
