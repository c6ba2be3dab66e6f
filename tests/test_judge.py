from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import add_noise, blur, jpeg
from vqclip.shapes import (
    EVAL_SEED_START,
    analyse,
    compare,
    judge,
    parse_prompt,
    render,
    sample_scene,
)
from vqclip.shapes.mutate import mutations


def _eval(n: int):
    return [sample_scene(EVAL_SEED_START + i) for i in range(n)]


def test_exact_on_1000_eval_scenes_and_every_mutation_fails():
    failures, missed = [], []
    for scene in _eval(1000):
        analysis = analyse(render(scene))
        verdict = compare(analysis, scene)
        if not verdict.passed:
            failures.append((scene.seed, verdict.failures()))
        for name, changed in mutations(scene):
            if compare(analysis, changed).passed:
                missed.append((scene.seed, name))
    assert not failures
    assert not missed


def test_every_mutation_kind_is_exercised():
    kinds = {name.split()[-1] for s in _eval(200) for name, _ in mutations(s)}
    assert {"colour", "shape", "size", "cell", "relation", "fewer", "more", "background"} <= kinds


@pytest.mark.parametrize(
    "degrade",
    [
        pytest.param(lambda im, rng: add_noise(im, 0.05, rng), id="noise"),
        pytest.param(lambda im, rng: jpeg(im, 75), id="jpeg75"),
        pytest.param(lambda im, rng: blur(im, 1), id="blur1"),
    ],
)
def test_robust_to_noise_jpeg_and_blur(degrade):
    rng = np.random.default_rng(0)
    scenes = _eval(600)
    passed = sum(judge(degrade(render(s, 64), rng), s).passed for s in scenes)
    assert passed / len(scenes) >= 0.995


def test_256_render_passes_like_64():
    for scene in _eval(150):
        assert judge(render(scene, 256), scene).passed


def test_four_tiled_copies_fail_a_one_object_prompt():
    scene = next(s for s in _eval(100) if s.kind == "single" and s.objects[0].size == "small")
    tile = render(scene, 64)
    tiled = Image.new("RGB", (128, 128))
    for x in (0, 64):
        for y in (0, 64):
            tiled.paste(tile, (x, y))
    o = scene.objects[0]
    prompt = parse_prompt(f"a {o.color} {o.shape}".replace("a o", "an o"))
    assert judge(tile, prompt).passed
    verdict = judge(tiled, prompt)
    assert not verdict.passed
    assert any(p.name == "count" and not p.passed for p in verdict.parts)


@pytest.mark.parametrize("bg", [(255, 255, 255), (128, 128, 128), (0, 0, 0)])
def test_blank_canvas_fails_every_prompt(bg):
    blank = Image.new("RGB", (64, 64), bg)
    for scene in _eval(50):
        assert not judge(blank, scene).passed
    assert not judge(blank, parse_prompt("a red shape")).passed


def test_verdict_gives_reasons():
    scene = next(s for s in _eval(50) if s.kind == "single")
    o = scene.objects[0]
    other = "blue" if o.color != "blue" else "red"
    verdict = judge(render(scene), parse_prompt(f"a {other} shape"))
    assert not verdict.passed
    assert any("wanted " + other in f for f in verdict.failures())


def test_noise_specks_are_not_objects():
    rng = np.random.default_rng(1)
    canvas = np.full((64, 64, 3), 255, dtype=np.uint8)
    for _ in range(20):  # isolated single red pixels
        y, x = rng.integers(2, 62, 2)
        canvas[y, x] = (220, 30, 30)
    assert analyse(Image.fromarray(canvas)).objects == ()
