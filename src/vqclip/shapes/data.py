"""Torch datasets of Shapes world, streamed from seeds."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from vqclip.errors import VqclipError
from vqclip.io import to_tensor
from vqclip.shapes.render import render
from vqclip.shapes.sampler import sample_scene, split_seed
from vqclip.shapes.spoil import near_miss, spoil


class ShapesDataset(IterableDataset):
    """(image tensor, caption) pairs streamed from consecutive seeds of a split.

    Scene ``i`` of the split is drawn from ``split_seed(split, start + i)``. The
    stream is sharded across DataLoader workers (and, with ``rank``/``world_size``,
    across processes): worker ``w`` of ``W`` takes every ``W``-th index, so the
    union over workers is exactly the single-process stream, each item once, and
    every item depends only on its seed.

    Args:
        split: ``train`` or ``eval``.
        size: image side in pixels.
        start: index of the first scene.
        n: number of scenes; ``None`` streams forever.
        transform: applied to each image tensor.
        rank: this process's rank, for data-parallel training.
        world_size: number of processes.
        negatives: also yield a spoiled render of each scene (see
            :mod:`vqclip.shapes.spoil`): items become (image, spoiled, caption).
        near_misses: also yield a near miss of each scene (one object squashed and
            rounded, :func:`vqclip.shapes.spoil.near_miss`), after the spoiled render
            if any: items become (image, [spoiled,] near miss, caption).
    """

    def __init__(
        self,
        *,
        split: str = "train",
        size: int = 64,
        start: int = 0,
        n: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        rank: int = 0,
        world_size: int = 1,
        negatives: bool = False,
        near_misses: bool = False,
    ) -> None:
        super().__init__()
        split_seed(split, 0)  # validates the split name
        if n is not None and n < 0:
            raise VqclipError(f"n must be >= 0, got {n}")
        if not 0 <= rank < world_size:
            raise VqclipError(f"rank {rank} is outside world size {world_size}")
        self.split, self.size, self.start, self.n = split, size, start, n
        self.transform, self.rank, self.world_size = transform, rank, world_size
        self.negatives, self.near_misses = negatives, near_misses

    def item(self, index: int) -> tuple[Any, ...]:
        """Returns the (image, caption) pair of scene ``index`` of the split.

        With ``negatives``, (image, spoiled image, caption); ``near_misses`` adds the
        near miss before the caption.
        """
        seed = split_seed(self.split, self.start + index)
        scene = sample_scene(seed, self.size)
        images = [to_tensor(render(scene))]
        if self.negatives:
            images.append(to_tensor(spoil(scene, random.Random(seed))))
        if self.near_misses:
            images.append(to_tensor(near_miss(scene, random.Random(seed + 1))))
        if self.transform is not None:
            images = [self.transform(x) for x in images]
        return (*images, scene.captions[0])

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        stride = workers * self.world_size
        index = self.rank * workers + worker
        while self.n is None or index < self.n:
            yield self.item(index)
            index += stride
