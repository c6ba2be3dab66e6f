"""Zero-shot classification: class names become sentences, the nearest sentence wins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from vqclip.clip.model import ClipBundle
from vqclip.errors import VqclipError
from vqclip.shapes.captions import FRAMES

# Template sets. "{}" is the class name; "a {}" becomes "an {}" before a vowel.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "none": ("{}",),
    "photo": ("a photo of a {}.",),
    "shapes": (
        "a {}",
        *(f"{frame} a {{}}" for frame in FRAMES),
        "a {} on a white background",
        "a {} on a gray background",
        "a {} on a black background",
    ),
    "imagenet80": tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES),
}
_ARTICLE = re.compile(r"\b([Aa]) \{\}")


def resolve_templates(spec: str) -> tuple[str, ...]:
    """Returns a named template set, or the lines of a file (each with one ``{}``).

    Raises:
        VqclipError: unknown name, unreadable file, or a template without ``{}``.
    """
    if spec in TEMPLATE_SETS:
        return TEMPLATE_SETS[spec]
    path = Path(spec)
    if not path.exists():
        raise VqclipError(
            f"unknown templates {spec!r}: use one of {', '.join(TEMPLATE_SETS)} or a file"
        )
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise VqclipError(f"cannot read templates file {path}: {e}") from None
    bad = [ln for ln in lines if ln.count("{}") != 1]
    if not lines or bad:
        raise VqclipError(f"each line of {path} must hold exactly one '{{}}' (bad: {bad[:1]})")
    return tuple(lines)


def fill(template: str, label: str) -> str:
    """Puts ``label`` into ``template``, with ``an`` before a vowel ("an orange star")."""
    if label[:1].lower() in "aeiou":
        template = _ARTICLE.sub(lambda m: ("An" if m[1] == "A" else "an") + " {}", template)
    return template.replace("{}", label)


@dataclass
class ZeroShotClassifier:
    """Class embeddings computed once; :meth:`logits` scores images against them.

    Attributes:
        labels: the class names.
        weights: (C, D) normalised class embeddings (mean of the normalised template
            embeddings per class, re-normalised).
    """

    labels: tuple[str, ...]
    weights: torch.Tensor

    @classmethod
    def build(
        cls, clip: ClipBundle, labels: Sequence[str], templates: Sequence[str] = ("{}",)
    ) -> ZeroShotClassifier:
        """Encodes every (template, label) sentence once and ensembles per class."""
        labels = tuple(lb.strip() for lb in labels if lb.strip())
        if not labels:
            raise VqclipError("no labels given: pass --labels 'a,b' or --labels-file FILE")
        if len(set(labels)) != len(labels):
            raise VqclipError("labels must be distinct")
        texts = [fill(t, lb) for lb in labels for t in templates]
        emb = clip.encode_texts(texts).reshape(len(labels), len(templates), -1)  # (C, T, D)
        weights = torch.nn.functional.normalize(emb.mean(dim=1), dim=-1)  # (C, D)
        return cls(labels=labels, weights=weights)

    def logits(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarities (N, C) of normalised image embeddings to each class."""
        return image_embeddings @ self.weights.to(image_embeddings.device).T

    def predict(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """The index (N,) of the best class for each image."""
        return self.logits(image_embeddings).argmax(dim=-1)
