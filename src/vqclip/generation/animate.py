"""Zoom/pan animations: each frame starts from the previous one, moved, and is optimised.

Frame 0 is an ordinary generation. Frame ``f`` > 0 takes frame ``f - 1`` from disk, zooms,
rotates and shifts it (about the centre, reflecting at the borders), saves that as its
init image (``inits/NNNNN.png``), lets the VQGAN re-encode it and optimises it for a
few iterations with seed ``seed + f``. Story prompts (``a ^ b ^ c``) are spread evenly
over the frames. Every frame is a PNG with its own settings (``--from`` repeats it), so
a run that stops keeps its frames, and running the same command again goes on from the
first missing frame with the same result as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from vqclip.errors import VqclipError
from vqclip.generation.settings import GenerateSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motion:
    """The move from one frame to the next: zoom factor, degrees, and pixels right/down."""

    zoom: float = 1.02
    rotate: float = 0.0
    translate: tuple[float, float] = (0.0, 0.0)

    def check(self) -> Motion:
        if not (math.isfinite(self.zoom) and 0.5 <= self.zoom <= 2.0):
            raise VqclipError(f"--zoom {self.zoom} is out of range; use 0.5..2 (1 = no zoom)")
        if not all(math.isfinite(v) for v in (self.rotate, *self.translate)):
            raise VqclipError("--rotate and --translate must be finite numbers")
        return self


def move(image: Image.Image, motion: Motion) -> Image.Image:
    """``image`` zoomed in by ``motion.zoom``, rotated and shifted (same size)."""
    from vqclip.io import to_image, to_tensor

    x = to_tensor(image)[None]
    _, _, h, w = x.shape
    a = math.radians(motion.rotate)
    dx, dy = motion.translate
    cos, sin = math.cos(a) / motion.zoom, math.sin(a) / motion.zoom
    # output -> input sampling, in normalised coordinates (x right, y down)
    theta = torch.tensor(
        [[cos, -sin * h / w, -2 * dx / w], [sin * w / h, cos, -2 * dy / h]], dtype=x.dtype
    )[None]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return to_image(y[0])


def frame_path(out_dir: Path, f: int) -> Path:
    return out_dir / f"{f:05d}.png"


def animate(
    settings: GenerateSettings,
    frames: int,
    motion: Motion,
    iterations_per_frame: int,
    out_dir: Path,
    *,
    progress: bool = False,
    models: tuple[list[Any], Any] | None = None,
    on_frame: Callable[[int, Path], None] | None = None,
) -> tuple[list[Path], bool]:
    """Makes (or completes) the frames of an animation in ``out_dir``.

    Returns:
        (the frame paths made so far, in order; whether Ctrl-C stopped the run).
    """
    from tqdm import tqdm

    from vqclip.generation.batch import load_models
    from vqclip.generation.generator import generate
    from vqclip.generation.outputs import save_result_png
    from vqclip.generation.prompts import parse_story
    from vqclip.io import ensure_dir, load_image, save_image

    if frames < 1 or iterations_per_frame < 1:
        raise VqclipError("--frames and --iterations-per-frame must be at least 1")
    motion.check()
    parse_story(settings.prompts)
    scenes = [t.strip() for t in settings.prompts.split("^")]
    ensure_dir(out_dir / "inits")
    clips, vq = models or load_models(settings)
    paths: list[Path] = []
    bar = tqdm(range(frames), desc="animate", disable=not progress)
    for f in bar:
        path = frame_path(out_dir, f)
        if path.is_file():  # made by an earlier run: its PNG is complete (atomic writes)
            paths.append(path)
            continue
        s = replace(settings, prompts=scenes[min(f * len(scenes) // frames, len(scenes) - 1)])
        if f > 0:
            init = out_dir / "inits" / f"{f:05d}.png"
            save_image(move(load_image(paths[-1]), motion), init)
            s = replace(s, init_image=str(init), init_noise="pixels",
                        iterations=iterations_per_frame, seed=settings.seed + f)  # fmt: skip
        result = generate(s, clips=clips, vqgan=vq)
        if result.interrupted:
            log.warning("stopped at frame %d; run the same command again to go on", f)
            return paths, True
        save_result_png(result.image, path, result.settings, device=result.device,
                        frame=f)  # fmt: skip
        paths.append(path)
        if on_frame is not None:
            on_frame(f, path)
    return paths, False
