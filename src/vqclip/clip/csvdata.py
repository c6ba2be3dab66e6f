"""Training on the user's own images: open_clip's CSV format (``filepath``,``title``)."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from vqclip.errors import VqclipError
from vqclip.io import load_image, to_tensor


def read_csv(path: Path) -> list[tuple[Path, str]]:
    """Returns (image path, caption) rows; paths are relative to the CSV's folder.

    Raises:
        VqclipError: unreadable file, missing columns, no rows, or missing images.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"filepath", "title"} <= set(reader.fieldnames):
                raise VqclipError(f"{path} needs the columns 'filepath' and 'title'")
            rows = [(path.parent / r["filepath"], r["title"]) for r in reader]
    except OSError as e:
        raise VqclipError(f"cannot read {path}: {e.strerror}") from None
    if not rows:
        raise VqclipError(f"{path} lists no images")
    missing = [p for p, _ in rows if not p.is_file()]
    if missing:
        raise VqclipError(
            f"{len(missing)} image(s) listed in {path} are missing, e.g. {missing[0]}"
        )
    return rows


class CsvDataset(IterableDataset):
    """(image, caption) pairs from a CSV, reshuffled each epoch, forever.

    Item ``i`` of the endless stream is row ``perm_e[i mod n]`` of epoch
    ``e = i // n``; workers and ranks take every ``W``-th item, like ShapesDataset.
    """

    def __init__(
        self, path: Path, *, size: int, start: int = 0, rank: int = 0, world_size: int = 1,
        seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.rows = read_csv(path)
        self.size, self.start, self.rank, self.world_size, self.seed = (
            size, start, rank, world_size, seed,
        )  # fmt: skip

    def _load(self, path: Path) -> torch.Tensor:
        im = load_image(path)
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        square = im.crop((left, top, left + side, top + side))
        return to_tensor(square.resize((self.size, self.size), Image.Resampling.BICUBIC))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        stride = workers * self.world_size
        i = self.start + self.rank * workers + worker
        n = len(self.rows)
        perm: list[int] = []
        epoch = -1
        while True:
            if i // n != epoch:
                epoch = i // n
                perm = list(range(n))
                random.Random(self.seed * 100_003 + epoch).shuffle(perm)
            path, title = self.rows[perm[i % n]]
            yield self._load(path), title
            i += stride
