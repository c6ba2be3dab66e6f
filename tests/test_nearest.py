"""The true picture of a caption nearest to an image (the alignment term's target)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vqclip.shapes import analyse, judge, parse_prompt, render, sample_scene
from vqclip.shapes.nearest import nearest_truth


@pytest.mark.parametrize("start", [0, 1000])
def test_nearest_truth_always_satisfies_the_caption(start):
    """Whatever the image shows (another scene's render), the result passes the judge."""
    moved = 0
    for i in range(start, start + 150):
        truth = sample_scene(i)
        caption = truth.captions[0]
        seen = analyse(render(sample_scene(50_000 + i), 64))
        near = nearest_truth(truth, caption, seen)
        verdict = judge(render(near, 64), parse_prompt(caption))
        assert verdict.passed, (caption, verdict.failures(), near.dumps())
        moved += [o.cell for o in near.objects] != [o.cell for o in truth.objects]
    assert moved > 10  # the image's cells are taken, not just the truth's


def test_nearest_truth_of_the_scenes_own_render_is_the_scene():
    for i in range(100):
        truth = sample_scene(i)
        near = nearest_truth(truth, truth.captions[0], analyse(render(truth, 64)))
        assert sorted((o.color, o.shape, o.cell) for o in near.objects) == sorted(
            (o.color, o.shape, o.cell) for o in truth.objects
        )
        assert near.background == truth.background


def _single(caption: str, cell: str = "center", color: str = "red", background: str = "black"):
    truth = sample_scene(0, kind="single")
    o = truth.objects[0]
    return replace(
        truth, background=background, captions=(caption,),
        objects=(replace(o, color=color, shape="square", size="large", cell=cell),),
    )  # fmt: skip


def _image(color: str, cell: str, center: tuple[float, float], background: str = "white"):
    truth = sample_scene(0, kind="single")
    o = replace(truth.objects[0], color=color, shape="circle", size="small", cell=cell,
                center=center)  # fmt: skip
    return analyse(render(replace(truth, objects=(o,), background=background), 64))


def test_an_unplaced_object_moves_to_the_images_object_and_takes_what_the_caption_leaves():
    seen = _image("red", "top right", (0.8, 0.2))
    near = nearest_truth(_single("a red square"), "a red square", seen)
    (o,) = near.objects
    assert (o.cell, o.center, o.shape, o.size) == ("top right", (0.8, 0.2), "square", "small")
    assert near.background == "white"  # unnamed: the image's background
    near = nearest_truth(_single("a red shape"), "a red shape", seen)
    assert near.objects[0].shape == "circle"  # unnamed shape: the image's


def test_stated_cell_colour_and_background_are_kept():
    seen = _image("red", "top right", (0.8, 0.2))
    truth = _single("a red square in the center on a black background")
    near = nearest_truth(truth, truth.captions[0], seen)
    assert near.objects[0].cell == "center" and near.background == "black"
    blue = _image("blue", "top right", (0.8, 0.2))
    near = nearest_truth(_single("a red square"), "a red square", blue)
    assert near.objects[0].cell == "center" and near.objects[0].color == "red"


def test_a_pair_whose_relation_the_images_cells_would_break_keeps_the_truths_cells():
    truth = next(
        s for s in map(sample_scene, range(500))
        if s.kind == "pair" and s.relation and s.relation.relation == "to the left of"
    )  # fmt: skip
    subject, obj = truth.objects[truth.relation.subject], truth.objects[truth.relation.object]
    # The image holds the two objects swapped left to right: the relation would break.
    swapped = replace(truth, objects=(
        replace(subject, cell="right", center=(0.8, 0.5)),
        replace(obj, cell="left", center=(0.2, 0.5)),
    ), relation=replace(truth.relation, subject=0, object=1))  # fmt: skip
    near = nearest_truth(truth, truth.captions[0], analyse(render(swapped, 64)))
    assert [o.cell for o in near.objects] == [subject.cell, obj.cell]
    # In place, side by side the right way round: the image's cells are kept.
    kept = replace(swapped, objects=(
        replace(subject, cell="left", center=(0.2, 0.5)),
        replace(obj, cell="right", center=(0.8, 0.5)),
    ))  # fmt: skip
    near = nearest_truth(truth, truth.captions[0], analyse(render(kept, 64)))
    assert [o.cell for o in near.objects] == ["left", "right"]


def test_resampled_truths_are_other_right_pictures_of_the_caption():
    """Each draw satisfies the caption (the judge passes its render), keeps what the
    caption names and the truth's colours and shapes, and draws what it leaves open."""
    import random

    from vqclip.shapes.sampler import resample_truth

    rng = random.Random(0)
    cells: dict[str, set[str]] = {}
    for i in range(120):
        truth = sample_scene(i)
        caption = truth.captions[0]
        prompt = parse_prompt(caption)
        for _ in range(3):
            other = resample_truth(truth, caption, rng)
            verdict = judge(render(other, 64), prompt)
            assert verdict.passed, (caption, verdict.failures(), other.dumps())
            assert [(o.color, o.shape) for o in other.objects] == [
                (o.color, o.shape) for o in truth.objects
            ]
            if prompt.background is not None:
                assert other.background == prompt.background
            for want, got in zip(prompt.objects, other.objects, strict=True):
                assert want.cell in (None, got.cell) and want.size in (None, got.size)
            cells.setdefault(caption, set()).update(str(o.cell) for o in other.objects)
    open_cells = [c for c in cells if all(p.cell is None for p in parse_prompt(c).objects)]
    assert sum(len(cells[c]) > 2 for c in open_cells) > len(open_cells) // 2  # cells drawn
