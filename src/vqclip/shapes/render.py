"""Drawing Shapes world scenes, anti-aliased, at any size."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from vqclip.errors import VqclipError
from vqclip.shapes.scene import BACKGROUNDS, COLORS, SIZES, Scene, SceneObject

SUPERSAMPLE = 4
STAR_INNER = 0.4

# Unit outlines relative to a box [-0.5, 0.5]², y downwards.
_STAR = tuple(
    (
        (0.5 if i % 2 == 0 else 0.5 * STAR_INNER) * math.sin(math.pi * i / 5),
        -(0.5 if i % 2 == 0 else 0.5 * STAR_INNER) * math.cos(math.pi * i / 5),
    )
    for i in range(10)
)
_TRIANGLE = ((-0.5, 0.5), (0.5, 0.5), (0.0, -0.5))
_CROSS = tuple(
    (x / 6, y / 6)
    for x, y in ((-1, -3), (1, -3), (1, -1), (3, -1), (3, 1), (1, 1), (1, 3), (-1, 3), (-1, 1),
                 (-3, 1), (-3, -1), (-1, -1))
)  # fmt: skip


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    center: tuple[float, float],
    side: float,
    fill: tuple[int, int, int] | int,
    hole: tuple[int, int, int] | int,
) -> None:
    """Draws one shape whose box has side ``side`` pixels, centred on ``center`` (pixels).

    ``hole`` is the colour of a ring's hole (the background).
    """
    cx, cy = center
    d = side

    def poly(points: tuple[tuple[float, float], ...]) -> list[tuple[float, float]]:
        return [(cx + x * d, cy + y * d) for x, y in points]

    box = (cx - d / 2, cy - d / 2, cx + d / 2, cy + d / 2)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.polygon(poly(((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))), fill=fill)
    elif shape == "triangle":
        draw.polygon(poly(_TRIANGLE), fill=fill)
    elif shape == "star":
        draw.polygon(poly(_STAR), fill=fill)
    elif shape == "cross":
        draw.polygon(poly(_CROSS), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, fill=fill)
        draw.ellipse((cx - d / 4, cy - d / 4, cx + d / 4, cy + d / 4), fill=hole)
    else:
        raise VqclipError(f"cannot draw shape {shape!r}")


def _draw_object(draw: ImageDraw.ImageDraw, o: SceneObject, side: int, bg: tuple) -> None:
    if o.center is None or o.size is None or o.color is None or o.shape is None:
        raise VqclipError("cannot render an object without colour, shape, size and centre")
    center = (o.center[0] * side, o.center[1] * side)
    draw_shape(draw, o.shape, center, SIZES[o.size] * side, COLORS[o.color], bg)


def render(scene: Scene, size: int | None = None) -> Image.Image:
    """Draws a scene's truth as an RGB image.

    Objects are drawn at ``SUPERSAMPLE`` times the size and box-filtered down, so
    edges are anti-aliased. Objects never overlap, so a ring's hole is painted in
    the background colour.

    Args:
        scene: a full truth (every object has colour, shape, size and centre).
        size: the canvas side in pixels; defaults to ``scene.size`` or 64.

    Returns:
        A ``size``×``size`` RGB image.
    """
    side = size or scene.size or 64
    if side < 8:
        raise VqclipError(f"image size must be at least 8 pixels, got {side}")
    if scene.background is None:
        raise VqclipError("cannot render a scene without a background")
    bg = BACKGROUNDS[scene.background]
    big = side * SUPERSAMPLE
    image = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(image)
    for o in scene.objects:
        _draw_object(draw, o, big, bg)
    return image.resize((side, side), Image.Resampling.BOX)
