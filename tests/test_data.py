from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader

from vqclip.io import to_tensor
from vqclip.shapes import ShapesDataset, judge, sample_scene
from vqclip.shapes.render import render
from vqclip.shapes.sampler import split_seed
from vqclip.shapes.scene import COLORS, SIZES
from vqclip.shapes.spoil import near_miss, spoil


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


def test_a_near_miss_squashes_and_rounds_one_object_and_keeps_the_rest():
    for i in range(20):
        seed = split_seed("eval", i)
        scene = sample_scene(seed)
        got = near_miss(scene, random.Random(seed + 1))
        assert got.tobytes() == near_miss(scene, random.Random(seed + 1)).tobytes()
        a = to_tensor(got).permute(1, 2, 0) * 255
        b = to_tensor(render(scene)).permute(1, 2, 0) * 255
        changed = (a - b).abs().sum(-1) > 30
        assert changed.sum() >= 4, scene.captions[0]  # the object's outline moved
        ys, xs = torch.nonzero(changed, as_tuple=True)
        # every change lies in one object's box (its box, and a pixel of antialiasing)
        boxes = [(o.center[0] * 64, o.center[1] * 64, SIZES[o.size] * 64 / 2 + 1.5)
                 for o in scene.objects]  # fmt: skip
        inside = [
            ((xs + 0.5 - cx).abs() <= r) & ((ys + 0.5 - cy).abs() <= r) for cx, cy, r in boxes
        ]
        assert any(bool(m.all()) for m in inside), scene.captions[0]
        # the object keeps its colour: changed pixels are mostly palette or background (edges blend)
        colours = {tuple(COLORS[o.color]) for o in scene.objects}
        palette = torch.tensor([*sorted(colours), tuple(b[0, 0].tolist())])
        near = (a[changed][:, None] - palette[None]).abs().sum(-1).min(1).values
        assert float((near < 60).float().mean()) > 0.6


def test_near_misses_come_after_the_spoiled_render():
    ds = ShapesDataset(split="eval", n=4, negatives=True, near_misses=True)
    x, spoiled, near, caption = ds.item(2)
    assert not torch.equal(near, x) and not torch.equal(near, spoiled)
    x2, near2, caption2 = ShapesDataset(split="eval", n=4, near_misses=True).item(2)
    assert torch.equal(x, x2) and torch.equal(near, near2) and caption == caption2


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
