"""The judge: does an image show what a prompt asks for? Classical image analysis only.

The image is analysed once (:func:`analyse`): the background is read from the
border, every pixel is called foreground when it is nearer to some palette colour
than to the background, objects are the connected foreground regions above a
minimum area, and each object's colour, shape, size and cell come from its pixels
and geometry. :func:`compare` then checks a prompt against that analysis, part by
part. Nothing here is learned.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from vqclip.shapes.render import STAR_INNER, SUPERSAMPLE, draw_shape
from vqclip.shapes.scene import (
    BACKGROUNDS,
    CELLS,
    COLORS,
    SIZES,
    Scene,
    SceneObject,
    cell_of,
    relations_between,
)

_BG_NAMES = tuple(BACKGROUNDS)
_BG_RGB = np.array([BACKGROUNDS[n] for n in _BG_NAMES], dtype=np.float32) / 255.0
_COLOR_NAMES = tuple(COLORS)
_COLOR_RGB = np.array([COLORS[n] for n in _COLOR_NAMES], dtype=np.float32) / 255.0

MIN_AREA = 0.002  # of the canvas: smaller foreground specks are not objects
MAX_BG_DISTANCE = 0.3  # a border colour further than this from white/gray/black is no background
MAX_LUMA_NOISE = 0.3  # coverage noise above which luminance alone is not trusted
MAX_SHAPE_ERROR = 0.5  # a region that no shape template explains this well is "unknown"
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class DetectedObject:
    """An object found in an image, with the features its attributes were read from."""

    color: str
    shape: str
    size: str
    cell: str
    centroid: tuple[float, float]  # (x, y) as fractions of the canvas
    area: float  # coverage, as a share of the canvas
    box: float  # the fitted shape's box side, as a share of the canvas
    shape_error: float  # how badly the best shape template fits (0 = exactly)


@dataclass(frozen=True)
class Analysis:
    """What the judge sees in an image."""

    background: str | None
    objects: tuple[DetectedObject, ...]
    size: int


@dataclass(frozen=True)
class Part:
    """One checked part of a prompt: ``name`` passed, or failed for ``reason``."""

    name: str
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """The judge's answer: one :class:`Part` per checked attribute, and the overall pass."""

    parts: tuple[Part, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """True when every part passed."""
        return all(p.passed for p in self.parts)

    def failures(self) -> list[str]:
        """Returns ``"part: reason"`` for each failed part."""
        return [f"{p.name}: {p.reason}" for p in self.parts if not p.passed]


def _to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        arr = np.asarray(image, dtype=np.float32)
        if arr.max(initial=0.0) > 1.0:
            arr = arr / 255.0
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"the judge takes square RGB images, got shape {arr.shape}")
    return arr  # (S, S, 3) in [0, 1]


def _direction_match(diffs: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Cosine between the summed colour difference ``diffs`` (N, 3) and each palette colour."""
    total = diffs.sum(0)
    d = _COLOR_RGB - bg  # (8, 3)
    return (d @ total) / np.maximum(np.linalg.norm(d, axis=1) * np.linalg.norm(total), 1e-9)


# Area of each shape as a share of its box, and its centroid's offset below the box centre.
_UNIT_AREA: dict[str, float] = {
    "circle": math.pi / 4,
    "square": 1.0,
    "triangle": 0.5,
    "star": 5 * 0.5 * (0.5 * STAR_INNER) * math.sin(math.pi / 5),
    "cross": 5 / 9,
    "ring": 0.75 * math.pi / 4,
}
_CENTROID_DROP: dict[str, float] = {"triangle": 1 / 6}
_TEMPLATE_BLURS = (0.0, 1.0, 2.0)  # pixels; the image may be sharp, blurred or compressed
# The box is sized from the total coverage, which a washed-out colour estimate inflates.
_TEMPLATE_SCALES = (0.86, 0.93, 1.0, 1.075, 1.16)
_SMALL_LARGE_SPLIT = math.sqrt(SIZES["small"] * SIZES["large"])


# Colour spaces in which coverage is measured: plain RGB, and luminance alone (JPEG keeps
# luminance at full resolution but halves the colour planes).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_RGB_WEIGHTS = np.eye(3, dtype=np.float32)
_LUMA_WEIGHTS = np.outer(_LUMA, _LUMA)
_MIN_CONTRAST = 0.02


def _coverage(
    pixels: np.ndarray, bg: np.ndarray, color: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """How much of ``color`` (vs ``bg``) each pixel holds, measured in a weighted space.

    Returns zeros where the colour and background have no contrast in that space.
    """
    d = color - bg
    contrast = float(d @ weights @ d)
    if contrast < _MIN_CONTRAST**2:
        return np.zeros(pixels.shape[:2], dtype=np.float32)
    return ((pixels - bg) @ weights @ d) / contrast  # (h, w)


def _template(shape: str, box: float, cx: float, cy: float, hw: tuple[int, int]) -> np.ndarray:
    """Coverage (0..1) of ``shape`` with box side ``box`` centred at (cx, cy), window ``hw``."""
    k = SUPERSAMPLE
    canvas = Image.new("L", (hw[1] * k, hw[0] * k), 0)
    draw_shape(ImageDraw.Draw(canvas), shape, (cx * k, cy * k), box * k, 255, 0)
    small = canvas.resize((hw[1], hw[0]), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _match_shape(alpha: np.ndarray, near: np.ndarray) -> tuple[str, float, float]:
    """Finds the shape whose template best explains a coverage map.

    Each shape is sized to the map's total coverage (give or take a few scales)
    and placed at its centroid, then compared at a few blur levels. Returns
    ``(shape, box_side_px, error)``, the error being the squared difference
    relative to the coverage's energy, after scaling the template's height to fit
    (so a washed-out colour still matches).
    Templates are seen through the same ``near`` mask as the map.
    """
    area = float(alpha.sum())
    if area <= 0:
        return ("unknown", 0.0, math.inf)
    ys, xs = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]] + 0.5
    cx, cy = float((alpha * xs).sum()) / area, float((alpha * ys).sum()) / area
    energy = float((alpha * alpha).sum())
    best = ("circle", 0.0, math.inf)
    for shape, unit in _UNIT_AREA.items():
        for scale in _TEMPLATE_SCALES:
            box = scale * math.sqrt(area / unit)
            drop = _CENTROID_DROP.get(shape, 0.0) * box
            t = _template(shape, box, cx, cy - drop, alpha.shape)
            for sigma in _TEMPLATE_BLURS:
                tb = np.where(near, ndimage.gaussian_filter(t, sigma) if sigma else t, 0.0)
                gain = float((alpha * tb).sum()) / max(float((tb * tb).sum()), 1e-9)
                err = float(((alpha - gain * tb) ** 2).sum()) / energy
                if err < best[2]:
                    best = (shape, box, err)
    return best


def analyse(image: Image.Image | np.ndarray) -> Analysis:
    """Finds the background and the objects of an image.

    Args:
        image: a square RGB image (PIL, or an array in [0, 1] or [0, 255]).

    Returns:
        The detected background name (``None`` when the border matches none) and
        the objects, largest first.
    """
    arr = _to_array(image)
    side = arr.shape[0]
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])  # (4S, 3)
    bg_rgb = np.median(border, axis=0)
    bg_dist = np.linalg.norm(_BG_RGB - bg_rgb, axis=1)
    background = _BG_NAMES[int(bg_dist.argmin())] if bg_dist.min() < MAX_BG_DISTANCE else None

    d_bg = np.linalg.norm(arr - bg_rgb, axis=-1)  # (S, S)
    d_col = np.linalg.norm(arr[:, :, None, :] - _COLOR_RGB, axis=-1).min(-1)  # (S, S)
    fg = d_col < d_bg
    labels, _ = ndimage.label(fg, structure=_EIGHT)
    objects = []
    min_px = MIN_AREA * side * side
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        mask = labels[sl] == i
        if mask.sum() < min_px:
            continue
        window = tuple(slice(max(0, s_.start - 3), min(side, s_.stop + 3)) for s_ in sl)
        near = ndimage.binary_dilation(labels[window] == i, iterations=2)
        # The object's colour: blur and compression move colour around but keep its
        # total, so the summed difference from the background points at the colour.
        color = _COLOR_NAMES[int(_direction_match(arr[window][near] - bg_rgb, bg_rgb).argmax())]
        core = ndimage.binary_erosion(mask)
        rgb = arr[sl][core if core.sum() >= 3 else mask].mean(0)
        # Luminance is sharpest (JPEG halves the colour planes) but can be noisy for a
        # colour close to the background's brightness: use it when its noise is low.
        alpha = _coverage(arr[window], bg_rgb, rgb, _LUMA_WEIGHTS)
        outside = alpha[~near]
        if outside.size < 8 or float(outside.std()) > MAX_LUMA_NOISE or not alpha.any():
            alpha = _coverage(arr[window], bg_rgb, rgb, _RGB_WEIGHTS)
        alpha = np.where(near, alpha, 0.0)
        shape, box, err = _match_shape(alpha, near)
        total = float(alpha.sum())
        ys, xs = np.mgrid[window[0], window[1]] + 0.5
        cx = float((alpha * xs).sum()) / total / side
        cy = float((alpha * ys).sum()) / total / side
        objects.append(
            DetectedObject(
                color=color,
                shape=shape if err <= MAX_SHAPE_ERROR else "unknown",
                size="large" if box / side > _SMALL_LARGE_SPLIT else "small",
                cell=cell_of(cx, cy),
                centroid=(cx, cy),
                area=total / (side * side),
                box=box / side,
                shape_error=err,
            )
        )
    objects.sort(key=lambda o: -o.area)
    return Analysis(background=background, objects=tuple(objects), size=side)


def _object_parts(i: int, want: SceneObject, got: DetectedObject | None) -> list[Part]:
    parts = []
    for attr in ("color", "shape", "size", "cell"):
        wanted = getattr(want, attr)
        if wanted is None:
            continue
        name = f"object {i} {'colour' if attr == 'color' else attr}"
        if got is None:
            parts.append(Part(name, False, "object not found"))
        elif getattr(got, attr) != wanted:
            parts.append(Part(name, False, f"wanted {wanted}, found {getattr(got, attr)}"))
        else:
            parts.append(Part(name, True))
    return parts


def _relation_part(prompt: Scene, found: list[DetectedObject | None]) -> Part | None:
    rel = prompt.relation
    if rel is None:
        return None
    a, b = found[rel.subject], found[rel.object]
    if a is None or b is None:
        return Part("relation", False, "object not found")
    holds = relations_between(a.cell, b.cell)
    if rel.relation in holds:
        return Part("relation", True)
    return Part(
        "relation", False, f"object {rel.subject} is not {rel.relation} object {rel.object}"
    )


def compare(analysis: Analysis, prompt: Scene) -> Verdict:
    """Checks a prompt (or truth) against an analysed image.

    The image must hold exactly as many objects as the prompt names. When it holds
    several, prompt objects are matched to detected ones in the way that passes
    the most parts.

    Args:
        analysis: what :func:`analyse` found.
        prompt: the truth or prompt; ``None`` attributes are not checked.

    Returns:
        The verdict, one part per checked attribute plus the count and background.
    """
    parts: list[Part] = []
    if prompt.background is not None:
        if analysis.background == prompt.background:
            parts.append(Part("background", True))
        else:
            parts.append(
                Part(
                    "background", False, f"wanted {prompt.background}, found {analysis.background}"
                )
            )
    want_n, got_n = len(prompt.objects), len(analysis.objects)
    if want_n == got_n:
        parts.append(Part("count", True))
    else:
        parts.append(Part("count", False, f"wanted {want_n} object(s), found {got_n}"))
    best: list[Part] | None = None
    detected: list[DetectedObject | None] = list(analysis.objects)
    detected += [None] * max(0, want_n - got_n)
    for perm in itertools.permutations(detected, want_n):
        found = list(perm)
        candidate = [p for i, w in enumerate(prompt.objects) for p in _object_parts(i, w, found[i])]
        rel = _relation_part(prompt, found)
        if rel is not None:
            candidate.append(rel)
        if best is None or sum(p.passed for p in candidate) > sum(p.passed for p in best):
            best = candidate
        if all(p.passed for p in candidate):
            break
    return Verdict(tuple(parts + (best or [])))


def judge(image: Image.Image | np.ndarray, prompt: Scene) -> Verdict:
    """Decides whether ``image`` shows what ``prompt`` asks for.

    Args:
        image: a square RGB image of any size.
        prompt: a scene truth or a parsed prompt (``None`` means "any").

    Returns:
        A :class:`Verdict` with a pass/fail and reason per part and an overall pass.
    """
    return compare(analyse(image), prompt)


__all__ = ["CELLS", "Analysis", "DetectedObject", "Part", "Verdict", "analyse", "compare", "judge"]
