"""Shapes world: the procedural image–caption domain, its renderer and its exact judge."""

from vqclip.shapes.captions import parse_prompt, sample_caption
from vqclip.shapes.data import ShapesDataset
from vqclip.shapes.judge import Analysis, DetectedObject, Part, Verdict, analyse, compare, judge
from vqclip.shapes.render import render
from vqclip.shapes.sampler import sample_scene, split_seed
from vqclip.shapes.scene import (
    BACKGROUNDS,
    CELLS,
    COLORS,
    EVAL_SEED_START,
    HELD_OUT,
    RELATIONS,
    SHAPES,
    SIZES,
    Relation,
    Scene,
    SceneObject,
)

__all__ = [
    "BACKGROUNDS",
    "CELLS",
    "COLORS",
    "EVAL_SEED_START",
    "HELD_OUT",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "Analysis",
    "DetectedObject",
    "Part",
    "Relation",
    "Scene",
    "SceneObject",
    "ShapesDataset",
    "Verdict",
    "analyse",
    "compare",
    "judge",
    "parse_prompt",
    "render",
    "sample_caption",
    "sample_scene",
    "split_seed",
]
