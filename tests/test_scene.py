from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vqclip.errors import VqclipError
from vqclip.shapes import (
    CELLS,
    EVAL_SEED_START,
    HELD_OUT,
    Scene,
    render,
    sample_scene,
)
from vqclip.shapes.scene import SIZES, cell_of, relations_between


def test_same_seed_same_scene_and_different_seeds_differ():
    assert sample_scene(123) == sample_scene(123)
    assert sample_scene(123) != sample_scene(124)


def test_training_split_never_holds_held_out_pairs_but_eval_does():
    train_pairs = {(o.color, o.shape) for s in range(4000) for o in sample_scene(s).objects}
    assert not train_pairs & HELD_OUT
    eval_pairs = {
        (o.color, o.shape) for s in range(4000) for o in sample_scene(EVAL_SEED_START + s).objects
    }
    assert eval_pairs >= HELD_OUT


def test_scene_invariants_hold():
    kinds = set()
    for seed in range(2000):
        scene = sample_scene(seed)
        kinds.add(scene.kind)
        cells = [o.cell for o in scene.objects]
        assert len(set(cells)) == len(cells)
        for o in scene.objects:
            assert o.center is not None and o.size is not None
            assert cell_of(*o.center) == o.cell
            half = SIZES[o.size] / 2
            assert all(half <= v <= 1 - half for v in o.center), "box leaves the canvas"
            assert all(round(v, 4) == v for v in o.center)
        if scene.kind == "single":
            assert len(scene.objects) == 1
        elif scene.kind == "pair":
            assert len(scene.objects) == 2 and scene.relation is not None
            assert {o.size for o in scene.objects} == {"small"}
            a, b = scene.objects
            assert scene.relation.relation in relations_between(a.cell, b.cell)
        else:
            assert len(scene.objects) in (2, 3)
            assert len({(o.color, o.shape, o.size) for o in scene.objects}) == 1
    assert kinds == {"single", "pair", "count"}


def test_json_round_trip():
    for seed in range(300):
        scene = sample_scene(EVAL_SEED_START + seed)
        assert Scene.loads(scene.dumps()) == scene
        assert Scene.from_json(json.loads(scene.dumps())).to_json() == scene.to_json()


@pytest.mark.parametrize(
    "line",
    [
        "{not json",
        '{"objects": [{"color": "mauve"}]}',
        '{"objects": [{"shape": "hexagon"}]}',
        '{"background": "green"}',
        '{"objects": [], "relation": {"subject": 0, "relation": "above", "object": 1}}',
        '{"objects": [], "colour": "red"}',
        "[1, 2]",
    ],
)
def test_bad_json_is_a_clear_error(line):
    with pytest.raises(VqclipError):
        Scene.loads(line)


def test_render_sizes_and_anti_aliasing():
    scene = sample_scene(7)
    small, big = render(scene, 64), render(scene, 256)
    assert small.size == (64, 64) and big.size == (256, 256)
    # Anti-aliased: some pixels are blends, not palette or background colours.
    colours = {c for _, c in small.getcolors(64 * 64)}
    assert len(colours) > len(scene.objects) + 1


def test_same_seed_gives_identical_png_bytes_in_separate_processes(tmp_path):
    code = (
        "import sys; from vqclip.shapes import render, sample_scene;"
        "render(sample_scene(10000042)).save(sys.argv[1])"
    )
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for p in paths:
        subprocess.run([sys.executable, "-c", code, str(p)], check=True)
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_cells_cover_grid():
    assert sorted(CELLS.values()) == sorted((c, r) for c in range(3) for r in range(3))
