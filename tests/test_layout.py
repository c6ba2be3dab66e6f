from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.test_generate import gen, models  # noqa: F401  (a fixture)
from vqclip.generation.generator import generate, setup
from vqclip.generation.layout import _window, object_canvases, plan_object_views
from vqclip.generation.settings import GenerateSettings, SettingError
from vqclip.shapes.scene import CELLS, relations_between


def plan(prompts: str, seed: int = 0, zoom: float = 1.0):
    return plan_object_views(prompts, (64, 64), torch.Generator().manual_seed(seed), zoom)


@pytest.mark.parametrize("relation", ["to the left of", "to the right of", "above", "below"])
def test_a_pairs_layout_keeps_its_relation(relation):
    seen = set()
    for seed in range(40):
        a, b = plan(f"a red circle {relation} a blue square on a black background", seed)
        assert relation in relations_between(a.cell, b.cell)
        assert a.caption == "a small red circle in the center on a black background"
        assert b.caption == "a small blue square in the center on a black background"
        seen.add((a.cell, b.cell))
    assert len(seen) > 5  # drawn from the seed, not one fixed layout


def test_a_counts_objects_get_different_cells_and_zoom_names_them_large():
    for seed in range(20):
        views = plan("three green triangles", seed, zoom=1.78)
        assert len({v.cell for v in views}) == 3
        assert all(v.caption == "a large green triangle in the center" for v in views)


@pytest.mark.parametrize(
    "prompts",
    ["a watercolor lighthouse", "two red circles ^ three blue stars",
     "two red circles | a blue star", ""],
)  # fmt: skip
def test_no_layout_for_other_grammars_stories_or_several_prompts(prompts):
    assert plan(prompts) == []


@pytest.mark.parametrize(
    ("prompt", "caption"),
    [("a red circle in the top left", "a red circle in the center"),
     ("a large circle on the right on a gray background",
      "a large circle in the center on a gray background"),
     ("a pink shape in the bottom left", "a pink shape in the center"),
     ("an orange star at the bottom", "an orange star in the center"),
     ("a large blue shape on a black background",
      "a large blue shape in the center on a black background"),
     ("a red circle | a green star:-1", "a red circle in the center")],
)  # fmt: skip
def test_a_single_object_is_viewed_in_its_cell_with_room_for_a_large_one(prompt, caption):
    (view,) = plan(prompt)
    assert view.caption == caption and view.cell in prompt + " center"  # no place: the middle
    _, _, bh, bw = view.box
    assert min(bh, bw) >= 0.32 * 64 + 2 * 0.03 * 64  # a large object's box with its jitter fits


def test_object_canvas_moves_the_cells_window_to_the_middle_on_the_background():
    (view,) = plan("two red circles")[:1]
    y0, x0, bh, bw = view.box
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    background = torch.tensor([0.0, 0.5, 1.0])
    canvas = object_canvases(image, [view], background)
    top, left = (64 - bh) // 2, (64 - bw) // 2
    window = canvas[0, :, top : top + bh, left : left + bw]
    assert torch.allclose(window, image[0, :, y0 : y0 + bh, x0 : x0 + bw])
    outside = canvas[0].clone()
    outside[:, top : top + bh, left : left + bw] = background[:, None, None]
    assert torch.allclose(outside, background[:, None, None].expand(3, 64, 64))
    canvas.sum().backward()
    grad = image.grad[0, 0]
    assert grad[y0 : y0 + bh, x0 : x0 + bw].eq(1).all() and grad.sum() == bh * bw  # window only
    # enlarged: the window fills more of the canvas, still centred
    big = object_canvases(image.detach(), [replace(view, zoom=1.78)], background)
    assert (big[0] != background[:, None, None]).any(0).sum() > 3 * bh * bw


def test_each_cells_window_lies_inside_the_canvas_and_holds_a_small_object():
    for cell, (col, row) in CELLS.items():
        y0, x0, bh, bw = _window(cell, (64, 64))
        ax, ay = (0.2, 0.5, 0.8)[col] * 64, (0.2, 0.5, 0.8)[row] * 64
        assert x0 <= ax - 5.8 and ax + 5.8 <= x0 + bw  # a small box (0.18 · 64) fits
        assert y0 <= ay - 5.8 and ay + 5.8 <= y0 + bh
        assert x0 >= 0 and x0 + bw <= 64 and y0 >= 0 and y0 + bh <= 64


def test_object_weight_off_or_nothing_to_lay_out_leaves_the_run_unchanged(models):  # noqa: F811
    off = gen(models, prompts="a red circle to the left of a blue star", object_weight=0.0)
    on = gen(models, prompts="a red circle to the left of a blue star")  # the default: 2
    assert not torch.equal(off.latent, on.latent)
    story = "a red circle ^ a blue star"  # nothing to lay out: the same run either way
    assert torch.equal(gen(models, prompts=story).latent,
                       gen(models, prompts=story, object_weight=0.0).latent)  # fmt: skip


def test_a_run_from_an_init_image_keeps_its_own_layout(models, tmp_path):  # noqa: F811
    clips, vq = models
    init = tmp_path / "init.png"
    gen(models, prompts="a red circle", object_weight=0.0).image.save(init)
    kw = {"prompts": "a red circle above a blue square", "cutn": 2}
    assert setup(GenerateSettings(**kw), clips, vq).object_views
    assert setup(GenerateSettings(**kw, init_image=str(init)), clips, vq).object_views == []


def test_object_views_pull_each_cell_towards_its_objects_caption(models):  # noqa: F811
    clips, vq = models
    s = GenerateSettings(prompts="a red circle above a blue square", object_weight=1.0)
    loop = setup(s, clips, vq)
    assert [v.cell for v in loop.object_views] and loop.object_targets[0].shape[0] == 2
    r = gen(models, prompts=s.prompts, object_weight=4.0, iterations=30, cutn=4, prune=None)
    before = gen(models, prompts=s.prompts, object_weight=4.0, iterations=1, cutn=4, prune=None)
    clip = clips[0]

    def score(image) -> float:
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None] / 255
        canvases = object_canvases(x, loop.object_views, torch.ones(3))
        emb = clip.encode_pixels(canvases)
        return float((emb * loop.object_targets[0]).sum(-1).mean())

    assert score(r.image) > score(before.image) + 0.05


@pytest.mark.parametrize(
    ("name", "value"),
    [("object_weight", -1.0), ("object_weight", float("nan")), ("tv_weight", float("inf")),
     ("object_zoom", 0.5), ("pair_steps", 0.5), ("pair_steps", float("nan"))],
)  # fmt: skip
def test_bad_object_settings_name_the_setting(name, value):
    with pytest.raises(SettingError, match=name):
        GenerateSettings(prompts="a red circle", **{name: value}).validate()


def test_a_laid_out_pair_runs_pair_steps_times_the_iterations_and_records_it(models):  # noqa: F811
    pair = "a red circle above a blue square"
    r = gen(models, prompts=pair, iterations=4, pair_steps=1.5, prune=None)
    assert len(r.losses) == 6
    assert (r.settings.iterations, r.settings.pair_steps) == (6, 1.0)  # resolved, as saved
    clips, vq = models
    saved = GenerateSettings.from_json(json.loads(r.settings.dumps()))  # what --from reads
    again = generate(saved, clips=clips, vqgan=vq)
    assert len(again.losses) == 6 and torch.equal(again.latent, r.latent)
    for kw in (
        {"prompts": "a red circle on the left"},
        {"prompts": "two red circles"},
        {"prompts": pair, "object_weight": 0.0},
        {"prompts": pair, "pair_steps": 1.0},
    ):
        assert len(gen(models, **{"iterations": 4, "prune": None, **kw}).losses) == 4
