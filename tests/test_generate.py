from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_cli import assert_one_line_error, run
from vqclip.clip.load import load_clip
from vqclip.generation.cutouts import Cutouts, states_position
from vqclip.generation.generator import clamp_with_grad, generate, round_size
from vqclip.generation.prompts import parse_prompt, parse_story
from vqclip.generation.settings import OPTIMIZERS, GenerateSettings
from vqclip.shapes import EVAL_SEED_START, render, sample_scene
from vqclip.vqgan.load import load_vqgan

FAST = {"iterations": 6, "cutn": 2}


@pytest.fixture(scope="module")
def models():
    return [load_clip("shapes")], load_vqgan("shapes")


def gen(models, **kw):
    clips, vq = models
    return generate(GenerateSettings(**{**FAST, **kw}), clips=clips, vqgan=vq)


def similarity(models, image: Image.Image, text: str) -> float:
    clip = models[0][0]
    return float(clip.encode_images([image]) @ clip.encode_texts([text]).T)


def test_prompt_syntax():
    p = parse_prompt("a red circle:1.5:0.2")
    assert (p.text, p.weight, p.stop) == ("a red circle", 1.5, 0.2)
    assert parse_prompt("a blue star").weight == 1.0 and parse_prompt("x").stop == -math.inf
    story = parse_story("a red circle|a blue star:-1 ^ two green crosses")
    assert [len(s) for s in story] == [2, 1] and story[0][1].weight == -1


@pytest.mark.parametrize("bad", ["a red circle:abc", "a:1:zz", "|a red circle", "a^"])
def test_malformed_prompts_are_one_line_errors(bad, capsys):
    code, _, err = run(capsys, "generate", bad, "-q")
    assert_one_line_error(code, err)


def test_same_seed_same_bytes_and_from_reproduces(tmp_path, capsys):
    a, b, c, d = (tmp_path / f"{n}.png" for n in "abcd")
    args = ["generate", "a red circle", "--iterations", "5", "--cutn", "2", "-q"]
    assert run(capsys, *args, "--out", str(a))[0] == 0
    assert run(capsys, *args, "--out", str(b))[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert run(capsys, "generate", "--from", str(a), "--out", str(c), "-q")[0] == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(c)))
    assert run(capsys, *args, "--seed", "1", "--out", str(d))[0] == 0
    assert not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(d)))


def test_from_needs_a_vqclip_png(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code, _, err = run(capsys, "generate", "--from", str(plain))
    assert_one_line_error(code, err, "no vqclip settings")


def test_negative_weight_pushes_away(models):
    text = "a red circle"
    pull = gen(models, prompts=f"{text}:1", iterations=12)
    push = gen(models, prompts=f"{text}:-1", iterations=12)
    assert similarity(models, push.image, text) < similarity(models, pull.image, text)


def test_high_init_weight_stays_close_to_the_init_image(models, tmp_path):
    init = tmp_path / "init.png"
    render(sample_scene(EVAL_SEED_START + 3)).save(init)
    target = np.asarray(Image.open(init), dtype=np.float32)
    free = gen(models, prompts="a purple star", init_image=str(init), iterations=10, lr=0.3)
    held = gen(models, prompts="a purple star", init_image=str(init), iterations=10, lr=0.3,
               init_weight=1000.0)  # fmt: skip
    err = [np.abs(np.asarray(r.image, dtype=np.float32) - target).mean() for r in (free, held)]
    assert err[1] < err[0]


def test_story_mode_switches_scene_at_the_right_iteration(models):
    clips, vq = models
    seen: list[int] = []
    generate(
        GenerateSettings(prompts="a red circle ^ a blue square", iterations=9, cutn=2,
                         story_every=4),
        clips=clips, vqgan=vq, callback=lambda st: seen.append(st["scene"]),
    )  # fmt: skip
    assert seen == [0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_stop_ends_a_prompts_pull(models):
    # every cutout's distance is below 5: no gradient, so the latent never moves (the
    # reported loss still varies with the random cutouts, as in the reference loop)
    still = gen(models, prompts="a red circle:1:5", iterations=4)
    start = gen(models, prompts="a red circle:1:5", iterations=1)
    assert torch.equal(still.latent, start.latent) and len(set(still.losses)) > 1
    moving = gen(models, prompts="a red circle", iterations=4)
    assert not torch.equal(moving.latent, start.latent)


def test_tv_weight_smooths_the_image(models):
    def roughness(im):
        a = np.asarray(im, dtype=np.float32)
        return np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()

    kw = {"prompts": "a red circle", "iterations": 10, "init_noise": "pixels", "prune": None}
    rough = gen(models, **kw)  # pruning off: it would set cells back to the noisy start
    smooth = gen(models, **kw, tv_weight=20.0)
    assert roughness(smooth.image) < roughness(rough.image)


def test_batch_ranks_candidates_by_clip_score(models):
    r = gen(models, prompts="a green cross", batch=3)
    assert len(r.candidates) == 3 and len(r.scores) == 3
    assert r.image == r.candidates[int(np.argmax(r.scores))]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_lowers_the_loss(models, name):
    # RMSprop's first steps are ~10x its lr (its square average starts at 0): a smaller lr
    lr = {"sgd": 0.5, "adagrad": 0.5, "rmsprop": 0.02}.get(name, 0.2)
    r = gen(models, prompts="a yellow square", optimizer=name, lr=lr, iterations=8, cutn=4)
    assert min(r.losses[-3:]) < r.losses[0]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
@pytest.mark.parametrize("init", ["codes", "pixels", "gradient"])
def test_schedules_and_inits_run(models, schedule, init):
    r = gen(models, prompts="a pink ring", schedule=schedule, init_noise=init, iterations=3)
    assert r.image.size == (64, 64) and len(r.losses) == 3


def test_image_and_noise_prompts_and_two_clips(models, tmp_path):
    clips, vq = models
    target = tmp_path / "t.png"
    render(sample_scene(EVAL_SEED_START + 7)).save(target)
    settings = GenerateSettings(
        image_prompts=(f"{target}:2",),
        noise_prompts=("3:0.5",),
        clip=("shapes", "shapes"),
        clip_weights=(1.0, 0.5),
        **FAST,
    )
    r = generate(settings, clips=clips * 2, vqgan=vq)
    assert len(r.losses) == FAST["iterations"]


def test_size_rounding_and_limits(models):
    vq = models[1]
    assert round_size(vq, (30, 62)) == (32, 64)
    with pytest.raises(Exception, match="below"):
        round_size(vq, (2, 64))


def test_clamp_with_grad_pulls_back_into_range():
    x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    assert clamp_with_grad(x).tolist() == [0.0, 0.5, 1.0]
    clamp_with_grad(x).sum().backward()  # a descent step moves each value by -grad
    # -0.5 would be pushed further below 0: blocked; 1.5 would be pulled back: kept.
    assert x.grad.tolist() == [0.0, 1.0, 1.0]


def test_default_views_are_the_whole_image_and_cut_min_still_crops(models):
    from vqclip.generation.generator import setup

    clips, vq = models
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    # no position named: the default loop still sees the whole image, only augmented
    loop = setup(GenerateSettings(prompts="two green triangles", augments=()), clips, vq)
    (cut,) = loop.cutters
    assert not cut.keep_position
    assert torch.allclose(cut(x, g), x.expand(cut.cutn, -1, -1, -1), atol=1e-6)
    # a smaller --cut-min gives zoomed crops again
    settings = GenerateSettings(prompts="two green triangles", augments=(), cut_min=0.5)
    loop = setup(settings, clips, vq)
    views = loop.cutters[0](x, g)
    assert any(not torch.allclose(v, x[0], atol=1e-3) for v in views)


def test_warp_settings_set_the_views_warp(models):
    from vqclip.generation.generator import setup

    clips, vq = models
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = GenerateSettings(prompts="a red circle", augments=("affine",), warp_degrees=0.0,
                             warp_scale=0.0, warp_shift=0.0)  # fmt: skip
    (cut,) = setup(plain, clips, vq).cutters
    assert torch.allclose(cut(x, torch.Generator().manual_seed(0)), x.expand(cut.cutn, -1, -1, -1),
                          atol=1e-5)  # fmt: skip

    def spread(**warp):  # how far the views move from the picture
        (cut,) = setup(replace(plain, **warp), clips, vq).cutters
        return float((cut(x, torch.Generator().manual_seed(0)) - x).abs().mean())

    assert 0 < spread(warp_degrees=5.0) < spread(warp_degrees=30.0)
    assert 0 < spread(warp_scale=0.05) < spread(warp_scale=0.3)
    assert 0 < spread(warp_shift=0.02) < spread(warp_shift=0.2)
    # a prompt that states a place keeps its shifts within 2% whatever the setting
    (near,) = setup(replace(plain, prompts="a red circle on the left", warp_shift=0.3),
                    clips, vq).cutters  # fmt: skip
    assert near.warp == (0.0, 0.0, 0.3) and near.keep_position
    moved = float((near(x, torch.Generator().manual_seed(0)) - x).abs().mean())
    assert moved <= spread(warp_shift=0.02) + 1e-6


def test_prompt_aware_augmentation():
    assert states_position(["a red circle in the top left"])
    assert states_position(["a blue square to the left of a yellow star"])
    assert not states_position(["two green triangles"])
    cut = Cutouts(64, 4, augments=("flip", "affine"), keep_position=True)
    assert "flip" not in cut.augments and cut.min_frac == 1.0
    x = torch.zeros(1, 3, 64, 64)
    x[..., :16, :16] = 1.0  # a bright top-left corner
    views = cut(x, torch.Generator().manual_seed(0))
    assert all(float(v[:, :32, :32].mean()) > float(v[:, :32, 32:].mean()) for v in views)


def test_ctrl_c_keeps_the_current_image(models, tmp_path, capsys, monkeypatch):
    clips, vq = models

    def stop(state):
        if state["i"] == 2:
            raise KeyboardInterrupt

    r = generate(GenerateSettings(prompts="a red circle", **FAST), clips=clips, vqgan=vq,
                 callback=stop)  # fmt: skip
    assert r.interrupted and len(r.losses) == 3 and r.image.size == (64, 64)


def test_save_every_and_video(tmp_path, capsys):
    out = tmp_path / "run.png"
    code, _, _ = run(capsys, "generate", "a red circle", "--iterations", "4", "--cutn", "2",
                     "--save-every", "2", "--video", str(tmp_path / "run.mp4"),
                     "--out", str(out), "-q")  # fmt: skip
    assert code == 0 and out.exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["00002.png", "00004.png"]
    assert (tmp_path / "run.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["x", "--optimizer", "lbfgs"], ["--optimizer", "lbfgs"]),
        (["x", "--augments", "flip,warp"], ["--augments", "'warp'"]),
        (["x", "--cutn", "0"], ["--cutn", "at least 1"]),
        (["x", "--clip-weight", "2"], ["--clip-weight", "several CLIPs"]),
        (
            ["x", "--clip", "shapes", "--clip", "shapes", "--clip-weight", "2"],
            ["--clip-weight", "one weight per clip"],
        ),
        (["x", "--augment-p", "1.5"], ["--augment-p"]),
        (["x", "--warp-degrees", "-5"], ["--warp-degrees", "[0, 180]"]),
        (["x", "--warp-scale", "1"], ["--warp-scale", "[0, 1)"]),
        (["x", "--warp-shift", "0.7"], ["--warp-shift", "[0, 0.5]"]),
        (["x", "--device", "tpu"], ["--device"]),
        (["x", "--iterations", "0"], ["iterations"]),
        (["x", "--size", "2", "2"], ["below the VQGAN's factor"]),
        (["x", "--size", "5000", "5000"], ["fit in memory"]),
        (["x", "--image-prompt", "missing.png"], ["missing.png"]),
        (["x", "--init-image", "missing.png"], ["missing.png"]),
        ([], ["nothing to aim at"]),
    ],
)
def test_generate_bad_input(args, words, capsys):
    code, _, err = run(capsys, "generate", *args, "-q")
    assert_one_line_error(code, err, *words)


def test_python_api_vqclip_generate():
    import vqclip
    from vqclip.generation import GenerateSettings as Settings

    r = vqclip.generate(Settings(prompts="a blue star", iterations=2, cutn=1))
    assert r.image.size == (64, 64) and len(r.losses) == 2
    assert r.settings.size == (64, 64) and r.timings["optimise_s"] > 0


BACKGROUND_CASES = [
    ("a red circle on a black background", (0, 0, 0)),
    ("a red circle on a gray background", (128, 128, 128)),
    ("A red circle on a grey background.", (128, 128, 128)),
    ("a red circle", (255, 255, 255)),
]


@pytest.mark.parametrize(("prompt", "rgb"), BACKGROUND_CASES)
def test_background_init_starts_from_the_named_background(models, prompt, rgb):
    from vqclip.generation.generator import prompt_background

    assert prompt_background(prompt) == rgb
    r = gen(models, prompts=prompt, init_noise="background", iterations=1, lr=1e-6)
    mean = np.asarray(r.image, dtype=np.float64).reshape(-1, 3).mean(0)
    assert np.abs(mean - np.array(rgb)).max() < 20, mean
