from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader

from vqclip.shapes import ShapesDataset, judge, sample_scene
from vqclip.shapes.sampler import split_seed
from vqclip.shapes.spoil import spoil


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


def test_negatives_add_a_spoiled_render_that_the_judge_rejects():
    ds = ShapesDataset(split="eval", n=4, negatives=True)
    x, spoiled, caption = ds.item(1)
    again = ds.item(1)
    assert torch.equal(spoiled, again[1]) and caption == again[2]
    assert spoiled.shape == x.shape and not torch.equal(spoiled, x)
    failed = 0
    for i in range(150):
        seed = split_seed("eval", i)
        truth = sample_scene(seed)
        failed += not judge(spoil(truth, random.Random(seed)), truth).passed
    assert failed >= 0.8 * 150  # 440 of 500 in benchmarks/clip_gap.py (blobs can pass as circles)


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
