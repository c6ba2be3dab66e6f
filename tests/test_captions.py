from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqclip.errors import VqclipError
from vqclip.shapes import EVAL_SEED_START, judge, parse_prompt, render, sample_caption, sample_scene


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 * EVAL_SEED_START), caption_seed=st.integers(0, 2**32))
def test_every_sampled_caption_parses_to_a_prompt_its_scene_passes(seed, caption_seed):
    scene = sample_scene(seed)
    caption = sample_caption(scene, random.Random(caption_seed))
    prompt = parse_prompt(caption)
    assert prompt.kind == scene.kind
    verdict = judge(render(scene), prompt)
    assert verdict.passed, (caption, verdict.failures())


def test_each_optional_part_appears_in_at_least_half_the_captions():
    counts = {"size": 0, "position": 0, "background": 0, "colour": 0, "shape": 0}
    singles = captions = 0
    for seed in range(3000):
        scene = sample_scene(seed)
        caption = scene.captions[0]
        captions += 1
        counts["background"] += " background" in caption
        if scene.kind == "single":
            singles += 1
            prompt = parse_prompt(caption)
            o = prompt.objects[0]
            counts["size"] += o.size is not None
            counts["position"] += o.cell is not None
            counts["colour"] += o.color is not None
            counts["shape"] += o.shape is not None
            assert o.color is not None or o.shape is not None
    assert counts["background"] / captions >= 0.5
    for key in ("size", "position", "colour", "shape"):
        assert counts[key] / singles >= 0.5, key


def test_parse_examples():
    p = parse_prompt("A Small red circle in the top left on a grey background.")
    o = p.objects[0]
    assert (o.color, o.shape, o.size, o.cell, p.background) == (
        "red", "circle", "small", "top left", "gray"
    )  # fmt: skip
    assert parse_prompt("a red shape in the middle").objects[0].cell == "center"
    assert parse_prompt("a large ring").objects[0].color is None
    pair = parse_prompt("an orange star to the left of a blue cross")
    assert pair.relation is not None and pair.relation.relation == "to the left of"
    assert [o.color for o in pair.objects] == ["orange", "blue"]
    count = parse_prompt("an image of three green crosses")
    assert len(count.objects) == 3 and count.objects[0].shape == "cross"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a orange star", "an orange"),
        ("an red circle", "a red"),
        ("a mauve circle", "mauve"),
        ("a red hexagon", "hexagon"),
        ("a shape", "colour or a shape"),
        ("red circle", "grammar"),
        ("", "empty"),
        ("two red circle", "grammar"),
        ("a red circle above", "grammar"),
    ],
)
def test_text_outside_the_grammar_is_a_clear_error(text, message):
    with pytest.raises(VqclipError, match=re.escape(message)):
        parse_prompt(text)
