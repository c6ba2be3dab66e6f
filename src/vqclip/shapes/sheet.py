"""Contact sheets: a grid of images, each with its caption underneath."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont


def contact_sheet(
    images: Sequence[Image.Image],
    captions: Sequence[str],
    *,
    columns: int = 4,
    cell: int = 160,
    text_lines: int = 4,
) -> Image.Image:
    """Lays out images in a grid with their captions wrapped underneath.

    Args:
        images: the images (any size; each is scaled to ``cell`` pixels, nearest).
        captions: one caption per image.
        columns: images per row.
        cell: the side of each image on the sheet.
        text_lines: lines of caption text under each image.

    Returns:
        The sheet as an RGB image.
    """
    if len(images) != len(captions):
        raise ValueError("one caption per image")
    font = ImageFont.load_default()
    line_h = 12
    chars = max(10, cell // 6)
    rows = max(1, -(-len(images) // columns))
    pad = 6
    w = columns * (cell + pad) + pad
    h = rows * (cell + text_lines * line_h + 2 * pad) + pad
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (image, caption) in enumerate(zip(images, captions, strict=True)):
        x = pad + (k % columns) * (cell + pad)
        y = pad + (k // columns) * (cell + text_lines * line_h + 2 * pad)
        sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        draw.rectangle((x - 1, y - 1, x + cell, y + cell), outline=(160, 160, 160))
        lines = textwrap.wrap(caption, chars)[:text_lines]
        for j, line in enumerate(lines):
            draw.text((x, y + cell + 3 + j * line_h), line, fill=(0, 0, 0), font=font)
    return sheet
