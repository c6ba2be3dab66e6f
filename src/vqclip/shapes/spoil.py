"""Spoiled renders: a scene drawn almost right, as hard negatives for CLIP training.

A CLIP trained only on clean renders hardly tells a clean "red circle" from a red
blob with a few stray specks around it, and that is what a VQGAN+CLIP generator
finds first. A spoiled copy of a scene is drawn with one of these flaws:

- ``specks``: one to three small stray dots (palette colours) added;
- ``blob``: one object redrawn as a formless blob of its colour and place.

Trained as extra non-matching images for each caption, they teach CLIP that
such images are worse matches than the clean scene.

A *near miss* (:func:`near_miss`) is subtler: one object keeps its colour and place but
is squashed and rounded, as the generator's objects come out (a cross with rounded
arms, a star whose points have melted, an ellipse for a circle). The critic's training
can use it as a point whose slope should lead back to the clean scene
(``train-clip --align-near``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from PIL import Image, ImageDraw, ImageFilter

from vqclip.shapes.render import SUPERSAMPLE, draw_shape
from vqclip.shapes.scene import BACKGROUNDS, COLORS, SIZES, Scene

FLAWS = ("specks", "blob")


def _blob(cx: float, cy: float, side: float, rng: random.Random) -> list[tuple[float, float]]:
    """An irregular polygon about as large as a shape of box ``side``."""
    k = rng.randint(5, 9)
    start = rng.uniform(0, 2 * math.pi)
    points = []
    for i in range(k):
        a = start + 2 * math.pi * (i + rng.uniform(-0.3, 0.3)) / k
        r = side * rng.uniform(0.2, 0.6)
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _canvas(
    scene: Scene, size: int | None
) -> tuple[int, int, tuple[int, int, int], Image.Image, ImageDraw.ImageDraw]:
    """The output side, the supersampled side, the background and a canvas to draw on."""
    side = size or scene.size or 64
    big = side * SUPERSAMPLE
    assert scene.background is not None
    bg = BACKGROUNDS[scene.background]
    image = Image.new("RGB", (big, big), bg)
    return side, big, bg, image, ImageDraw.Draw(image)


def _placed(scene: Scene, big: int) -> Iterator[tuple[int, str, str, float, float, float]]:
    """Each object's index, colour and shape, centre and box side in supersampled pixels."""
    for i, o in enumerate(scene.objects):
        assert o.center is not None and o.size is not None and o.color is not None
        assert o.shape is not None
        yield i, o.color, o.shape, o.center[0] * big, o.center[1] * big, SIZES[o.size] * big


def spoil(scene: Scene, rng: random.Random, size: int | None = None) -> Image.Image:
    """Draws ``scene`` with one flaw chosen by ``rng`` (see the module's text)."""
    side, big, bg, image, draw = _canvas(scene, size)
    flaw = rng.choice(FLAWS)
    target = rng.randrange(len(scene.objects))
    for i, color, shape, cx, cy, d in _placed(scene, big):
        if flaw == "blob" and i == target:
            draw.polygon(_blob(cx, cy, d, rng), fill=COLORS[color])
            continue
        draw_shape(draw, shape, (cx, cy), d, COLORS[color], bg)
    if flaw == "specks":
        colors = list(COLORS.values())
        for _ in range(rng.randint(1, 3)):
            r = big * rng.uniform(0.025, 0.05)
            x, y = rng.uniform(r, big - r), rng.uniform(r, big - r)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.choice(colors))
    return image.resize((side, side), Image.Resampling.BOX)


def near_miss(scene: Scene, rng: random.Random, size: int | None = None) -> Image.Image:
    """Draws ``scene`` with one object (chosen by ``rng``) squashed and rounded.

    The object is drawn as a mask, squashed along x or y by a factor in [0.55, 0.8]
    about its centre, blurred with a radius of 8–14% of its box and thresholded at half,
    which rounds its corners and points, then filled with its colour.
    """
    side, big, bg, image, draw = _canvas(scene, size)
    target = rng.randrange(len(scene.objects))
    squash, along_x = rng.uniform(0.55, 0.8), rng.random() < 0.5
    blur = rng.uniform(0.08, 0.14)
    for i, color, shape, cx, cy, d in _placed(scene, big):
        if i != target:
            draw_shape(draw, shape, (cx, cy), d, COLORS[color], bg)
            continue
        mask = Image.new("L", (big, big), 0)
        draw_shape(ImageDraw.Draw(mask), shape, (cx, cy), d, 255, 0)
        sx, sy = (squash, 1.0) if along_x else (1.0, squash)
        # PIL's affine maps output to input pixels: x_in = (x_out - cx) / sx + cx
        mask = mask.transform(
            mask.size, Image.Transform.AFFINE,
            (1 / sx, 0, cx - cx / sx, 0, 1 / sy, cy - cy / sy), Image.Resampling.BILINEAR,
        )  # fmt: skip
        mask = mask.filter(ImageFilter.GaussianBlur(blur * d)).point(
            lambda v: 255 if v >= 128 else 0
        )
        image.paste(Image.new("RGB", (big, big), COLORS[color]), (0, 0), mask)
    return image.resize((side, side), Image.Resampling.BOX)
