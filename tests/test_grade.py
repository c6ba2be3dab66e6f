from __future__ import annotations

from vqclip.shapes import parse_prompt, render, sample_scene
from vqclip.shapes.captions import NUMBERS, PLURALS, article
from vqclip.shapes.grade import grade


def _object_text(o) -> str:
    return f"{article(str(o.color))} {o.color} {o.shape}"


def test_an_extra_object_fails_strict_but_passes_lenient():
    scene = sample_scene(123, kind="pair")
    image = render(scene)
    g = grade(image, parse_prompt(_object_text(scene.objects[0])))
    assert not g.strict and g.lenient
    a = g.attributes
    assert a["colour"] and a["shape"] and a["count"] is False and a["no_extra"] is False
    assert a["relation"] is None and a["cell"] is None  # not asked
    whole = grade(image, scene)  # its own truth: everything holds
    assert whole.strict and whole.lenient and all(v is not False for v in whole.attributes.values())


def test_count_prompts_need_the_exact_count_even_when_lenient():
    scene = sample_scene(7, kind="count")
    n, o = len(scene.objects), scene.objects[0]
    image = render(scene)
    right = grade(image, parse_prompt(f"{NUMBERS[n]} {o.color} {PLURALS[str(o.shape)]}"))
    assert right.strict and right.lenient
    wrong = 2 if n == 3 else 3
    fewer = grade(image, parse_prompt(f"{NUMBERS[wrong]} {o.color} {PLURALS[str(o.shape)]}"))
    assert not fewer.strict and not fewer.lenient and fewer.attributes["count"] is False


def test_a_wrong_colour_fails_both():
    scene = sample_scene(5, kind="single")
    o = scene.objects[0]
    other = "blue" if o.color != "blue" else "red"
    g = grade(render(scene), parse_prompt(f"{article(other)} {other} {o.shape}"))
    assert not g.strict and not g.lenient
    assert g.attributes["colour"] is False and g.attributes["shape"] is True
