from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from vqclip.shapes import ShapesDataset


def _collect(loader):
    images, captions = [], []
    for x, c in loader:
        images.append(x)
        captions.extend(c)
    return torch.cat(images), captions


def test_dataset_items_are_deterministic_tensors():
    ds = ShapesDataset(split="train", n=4)
    x, caption = ds.item(3)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    y, caption2 = ds.item(3)
    assert torch.equal(x, y) and caption == caption2


def test_several_workers_give_the_same_items_once_each():
    ds = ShapesDataset(split="eval", n=24, size=32)
    single = list(ds)
    multi = list(DataLoader(ds, batch_size=None, num_workers=2))
    key = lambda item: (item[1], item[0].sum().item())  # noqa: E731
    assert sorted(map(key, single)) == sorted(map(key, multi))
    assert len(multi) == 24


def test_ranks_partition_the_stream():
    full = [c for _, c in ShapesDataset(split="train", n=12, size=16)]
    parts = [
        [c for _, c in ShapesDataset(split="train", n=12, size=16, rank=r, world_size=3)]
        for r in range(3)
    ]
    assert sorted(c for p in parts for c in p) == sorted(full)
    assert all(len(p) == 4 for p in parts)
