"""Scene files: exporting a split to disk and reading ``scenes.jsonl`` back."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from vqclip.errors import VqclipError
from vqclip.io import atomic_open, ensure_dir, save_image
from vqclip.shapes.render import render
from vqclip.shapes.sampler import sample_scene, split_seed
from vqclip.shapes.scene import Scene

log = logging.getLogger(__name__)


def export_split(
    out: Path, *, split: str, n: int, size: int = 64, start: int = 0, progress: bool = True
) -> int:
    """Writes ``n`` scenes of ``split`` to ``out``.

    Writes ``out/images/<seed>.png``, ``out/scenes.jsonl`` (one truth per line) and
    ``out/captions.csv`` (open_clip's ``filepath``,``title`` CSV). Every file is
    written atomically. If interrupted (Ctrl-C), the index files are still written
    for the scenes completed so far, and the interruption is re-raised.

    Returns:
        The number of scenes written.
    """
    if n < 0:
        raise VqclipError(f"--n must be >= 0, got {n}")
    if size < 8:
        raise VqclipError(f"--size must be at least 8, got {size}")
    split_seed(split, 0)
    images = ensure_dir(out / "images")
    done: list[Scene] = []
    try:
        for index in tqdm(range(start, start + n), desc=f"export {split}", disable=not progress):
            seed = split_seed(split, index)
            scene = sample_scene(seed, size)
            rel = f"images/{seed}.png"
            save_image(render(scene), images / f"{seed}.png")
            done.append(replace(scene, image=rel))
    finally:
        with atomic_open(out / "scenes.jsonl") as f:
            for scene in done:
                f.write(scene.dumps() + "\n")
        with atomic_open(out / "captions.csv", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["filepath", "title"])
            for scene in done:
                writer.writerow([scene.image, scene.captions[0]])
        if len(done) < n:
            log.warning("interrupted: %s holds the %d complete scenes of %d", out, len(done), n)
    return len(done)


def read_scenes(path: Path) -> Iterator[Scene]:
    """Yields the scenes of a ``scenes.jsonl`` file, naming the line of any error."""
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise VqclipError(f"cannot read {path}: {e.strerror}") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield Scene.loads(line)
            except VqclipError as e:
                raise VqclipError(f"{path}:{lineno}: {e}") from None
