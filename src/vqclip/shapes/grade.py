"""Graded verdicts: per-attribute accuracy and a lenient pass, beside the strict judge.

The strict judge (:func:`vqclip.shapes.judge.judge`) passes an image only when every
part holds, the exact object count included, so a picture with the right object plus
one stray speck fails like a blank canvas. :func:`grade` keeps that verdict and adds:

- one flag per attribute: ``colour`` (each named object's colour is there), ``shape``,
  ``cell``, ``size`` (when the prompt states them), ``relation``, ``background``,
  ``count`` (exactly as many objects as named) and ``no_extra`` (no more objects than
  named); ``None`` where the prompt does not ask for the attribute;
- a lenient pass in the style of GenEval: the named objects are present with their
  colours, shapes, cells and relation (and the background, when stated); extra
  objects are tolerated, except in count prompts, where the count must be exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from vqclip.shapes.judge import Verdict, analyse, compare
from vqclip.shapes.scene import Scene

ATTRIBUTES = ("colour", "shape", "cell", "size", "relation", "background", "count", "no_extra")


@dataclass(frozen=True)
class Grade:
    """The strict verdict, the lenient pass and one flag per attribute (None = not asked)."""

    verdict: Verdict
    lenient: bool
    attributes: dict[str, bool | None]

    @property
    def strict(self) -> bool:
        return self.verdict.passed


def _attribute(part_name: str) -> str:
    """``object 1 colour`` -> ``colour``; ``relation`` -> ``relation``."""
    return part_name.rsplit(" ", 1)[-1]


def grade(image: Image.Image | np.ndarray, prompt: Scene) -> Grade:
    """Grades ``image`` against ``prompt`` (see the module docstring)."""
    analysis = analyse(image)
    verdict = compare(analysis, prompt)
    attributes: dict[str, bool | None] = dict.fromkeys(ATTRIBUTES)
    for part in verdict.parts:
        name = _attribute(part.name)
        attributes[name] = part.passed and attributes[name] is not False
    attributes["no_extra"] = len(analysis.objects) <= len(prompt.objects)
    exact_count = prompt.kind == "count"
    lenient = all(p.passed for p in verdict.parts if p.name != "count" or exact_count)
    return Grade(verdict=verdict, lenient=lenient, attributes=attributes)
