"""The generator behaves like the reference loop (nerdyrodent generate.py) where users rely on
it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.test_cli import assert_one_line_error, run
from vqclip.clip.load import load_clip
from vqclip.generation.cutouts import Cutouts
from vqclip.generation.generator import generate, prompt_loss
from vqclip.generation.optimizers import OPTIMIZER_TABLE
from vqclip.generation.prompts import parse_image_prompt
from vqclip.generation.settings import AUGMENTS, OPTIMIZERS, PRESETS, GenerateSettings
from vqclip.vqgan.load import load_vqgan


def _reference_prompt(emb: torch.Tensor, embed: torch.Tensor, weight: float, stop: float):
    """The reference's Prompt.forward, written out: value and a hand-made gradient mask."""
    input_normed = F.normalize(emb.unsqueeze(1), dim=2)  # (cutn, 1, D)
    embed_normed = F.normalize(embed.unsqueeze(0), dim=2)  # (1, K, D)
    dists = input_normed.sub(embed_normed).norm(dim=2).div(2).arcsin().pow(2).mul(2)
    signed = dists * math.copysign(1, weight)
    value = abs(weight) * signed.mean()
    live = (signed > stop).float()  # gradient flows only where sign(w)·d is above stop
    return value, live


@pytest.mark.parametrize(
    ("weight", "stop"), [(1.0, -math.inf), (1.0, 0.9), (-0.5, -1.0), (-2.0, -0.8), (1.5, 1.2)]
)
def test_stop_semantics_match_the_reference(weight, stop):
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(6, 8, generator=g).requires_grad_(True)  # CLIP features of 6 cutouts
    target = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    ours = prompt_loss(F.normalize(raw, dim=-1)[None], target, weight, stop)
    value, live = _reference_prompt(raw, target, weight, stop)
    assert torch.allclose(ours[0], value, atol=1e-6)  # the value is never clamped
    (grad,) = torch.autograd.grad(ours.sum(), raw)
    # the reference's gradient: that of the live (unmasked) distances only
    signed = _reference_prompt_terms(raw, target, weight)
    (expected,) = torch.autograd.grad(abs(weight) * (signed * live).sum() / live.numel(), raw)
    assert torch.allclose(grad, expected, atol=1e-6)
    assert live.sum() > 0 or grad.abs().max() == 0


def _reference_prompt_terms(emb: torch.Tensor, embed: torch.Tensor, weight: float):
    input_normed = F.normalize(emb.unsqueeze(1), dim=2)
    embed_normed = F.normalize(embed.unsqueeze(0), dim=2)
    dists = input_normed.sub(embed_normed).norm(dim=2).div(2).arcsin().pow(2).mul(2)
    return dists * math.copysign(1, weight)


def test_a_met_stop_leaves_no_gradient_but_keeps_the_value():
    emb = F.normalize(torch.ones(1, 3, 4), dim=-1).requires_grad_(True)
    target = F.normalize(torch.tensor([[1.0, 1.0, 1.0, 1.5]]), dim=-1)
    loss = prompt_loss(emb, target, 1.0, stop=0.5)  # every distance is far below 0.5
    loss.sum().backward()
    value = float(loss.detach())
    assert 0 < value < 0.5 and emb.grad.abs().max() == 0


def test_pooled_cutouts_have_the_reference_shape_and_range():
    x = torch.rand(2, 3, 48, 80, generator=torch.Generator().manual_seed(0))
    cut = Cutouts(16, 5, method="pooled", augments=())
    views = cut(x, torch.Generator().manual_seed(0))
    assert views.shape == (10, 3, 16, 16)
    ref = (torch.nn.AdaptiveAvgPool2d(16)(x) + torch.nn.AdaptiveMaxPool2d(16)(x)) / 2
    assert torch.allclose(views[:5], ref[0].expand(5, -1, -1, -1))
    assert torch.allclose(views[5:], ref[1].expand(5, -1, -1, -1))
    assert views.min() >= x.min() and views.max() <= x.max()


@pytest.mark.parametrize("name", AUGMENTS)
def test_every_augment_changes_the_views(name):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    plain = Cutouts(32, 6, augments=(), min_frac=1.0)(x, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    views = Cutouts(32, 6, augments=(name,), min_frac=1.0)(x, torch.Generator().manual_seed(0))
    assert views.shape == plain.shape
    assert not torch.allclose(views, plain, atol=1e-4)


def test_augment_probability_applies_to_a_share_of_views():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    views = Cutouts(16, 400, augments=("noise",), min_frac=1.0, p=0.7)(x, g)
    changed = (views - x).flatten(1).abs().max(dim=1).values > 1e-6
    assert 0.6 < changed.float().mean() < 0.8


@pytest.fixture(scope="module")
def models():
    return [load_clip("shapes")], load_vqgan("shapes")


def test_optimizer_table_matches_the_settings_and_every_one_changes_the_result(models):
    assert set(OPTIMIZER_TABLE) == set(OPTIMIZERS) and {"adamax", "diffgrad"} <= set(OPTIMIZERS)
    clips, vq = models
    base = {"prompts": "a red circle", "iterations": 4, "cutn": 2}
    images = {}
    for name in OPTIMIZERS:
        r = generate(GenerateSettings(**base, optimizer=name, lr=0.2), clips=clips, vqgan=vq)
        images[name] = r.latent
    for name in OPTIMIZERS:
        if name != "adam":
            assert not torch.equal(images[name], images["adam"]), name


def test_image_prompts_take_weight_and_stop_and_embed_their_cutouts(models, tmp_path):
    from vqclip.shapes import render, sample_scene

    assert parse_image_prompt("a.png") == ("a.png", 1.0, -math.inf)
    assert parse_image_prompt("a.png:2") == ("a.png", 2.0, -math.inf)
    assert parse_image_prompt("a.png:-1:0.5") == ("a.png", -1.0, 0.5)
    assert parse_image_prompt("C:\\pics\\a.png:0.5") == ("C:\\pics\\a.png", 0.5, -math.inf)
    clips, vq = models
    path = tmp_path / "t.png"
    render(sample_scene(3)).save(path)
    far = generate(GenerateSettings(image_prompts=(f"{path}:1",), iterations=3, cutn=4),
                   clips=clips, vqgan=vq)  # fmt: skip
    met = generate(GenerateSettings(image_prompts=(f"{path}:1:5",), iterations=3, cutn=4),
                   clips=clips, vqgan=vq)  # fmt: skip
    assert far.losses[0] == pytest.approx(met.losses[0])  # same value: stop does not clamp it
    assert torch.equal(met.latent, far.latent) is False  # but a met stop leaves z alone


def test_presets_resolve_defaults_then_preset_then_given():
    d = GenerateSettings()
    s = d.resolve("imagenet", {})
    assert s.iterations == 300 and s.cutn == 32 and s.cut_method == "pooled"
    assert s.clip == ("ViT-B-32:openai",) and s.size == (256, 256) and s.augment_p == 0.7
    s = d.resolve("imagenet", {"cutn": 8, "iterations": 60})  # an explicit default value
    assert s.cutn == 8 and s.iterations == 60 and s.lr == 0.1
    assert d.resolve(None, {}) == d == d.resolve("shapes", {})
    for name, preset in PRESETS.items():
        resolved = d.resolve(name, {})
        assert all(getattr(resolved, k) == v for k, v in preset.items())


def test_cli_preset_keeps_explicit_flags_equal_to_defaults():
    import argparse

    from vqclip.cli.generate import add_generate_args, settings_from_args

    p = argparse.ArgumentParser()
    add_generate_args(p)
    s = settings_from_args(p.parse_args(["x", "--preset", "imagenet", "--cutn", "8"]))
    assert s.cutn == 8 and s.iterations == 300 and s.vqgan == "imagenet_f16_16384"
    s = settings_from_args(p.parse_args(["x", "--preset", "imagenet"]))
    assert s.cutn == 32 and s.iterations == 300
    assert s.prune is None  # the reference does not prune
    assert settings_from_args(p.parse_args(["x", "--prune", "none"])).prune is None
    assert settings_from_args(p.parse_args(["x", "--prune", "0.1"])).prune == 0.1
    assert settings_from_args(p.parse_args(["x"])).prune == GenerateSettings().prune


def test_every_flag_has_help_and_shows_its_default(capsys):
    import argparse

    from vqclip.cli.generate import add_generate_args

    p = argparse.ArgumentParser()
    add_generate_args(p)
    for action in p._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
            if action.dest in {f for f in GenerateSettings.__dataclass_fields__}:
                assert "default:" in action.help, action.dest


def test_device_cuda_without_a_gpu_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    code, _, err = run(capsys, "generate", "a red circle", "--device", "cuda", "-q")
    assert_one_line_error(code, err, "--device cuda", "no GPU")
