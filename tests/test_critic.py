"""The critic's energy term, its replay buffer and ``train-clip --samples``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tests.test_cli import BENCHMARKS, assert_one_line_error, run
from tests.test_clip_train import _config
from vqclip.clip.model import build_model, make_bundle
from vqclip.clip.samples import (
    CriticSampler,
    SamplerSettings,
    align_loss,
    energy_loss,
    gradient_cosine,
    nearest_render_of,
    other_render_of,
    rank_loss,
    render_of,
    stationary_loss,
)
from vqclip.clip.train import ClipTrainSettings, train_clip
from vqclip.generation.settings import GenerateSettings
from vqclip.io import to_tensor
from vqclip.training import load_checkpoint, save_checkpoint
from vqclip.vqgan.load import load_vqgan


def _tiny_bundle(tmp_path):
    cfg = json.loads(_config(tmp_path).read_text())
    torch.manual_seed(0)
    return make_bundle(build_model(cfg), cfg, None, "tiny")


def _scores(clip, sample, real, text):
    with torch.no_grad():
        t = clip.encode_texts([text])
        s, r = clip.encode_pixels(torch.stack([sample, real]))
    return float(s @ t[0]), float(r @ t[0])


def _train_term(clip, sample, real, text, term, steps):
    """The gap cos(sample) - cos(real) before and after ``steps`` Adam steps of ``term``."""
    s0, r0 = _scores(clip, sample, real, text)
    opt = torch.optim.Adam(clip.model.parameters(), lr=1e-3)
    clip.model.train()
    for _ in range(steps):
        img = clip.model.encode_image(clip.normalize(torch.stack([sample, real])))
        txt = clip.model.encode_text(clip.tokenizer([text]))
        loss = term(img[:1], img[1:], txt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    s1, r1 = _scores(clip, sample, real, text)
    return s0 - r0, s1 - r1


def test_energy_term_lowers_a_sample_below_the_real_pair(tmp_path):
    real = render_of(3, 16)
    sample = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    before, after = _train_term(_tiny_bundle(tmp_path), sample, real, "a red circle",
                                energy_loss, 5)  # fmt: skip
    assert after < before - 0.05, (before, after)


def test_rank_term_is_a_hinge_below_the_real_picture():
    text = torch.tensor([[1.0, 0.0]])
    real = torch.tensor([[0.8, 0.6]])  # cosine 0.8 with the text
    far, near = torch.tensor([[0.6, 0.8]]), torch.tensor([[0.78, 0.626]])  # 0.6, 0.78
    assert float(rank_loss(far, real, text, margin=0.05)) == 0.0  # 0.2 below: nothing
    assert float(rank_loss(near, real, text, margin=0.05)) == pytest.approx(0.03, abs=1e-3)
    assert float(rank_loss(near, real, text, margin=0.0)) == 0.0


def test_rank_term_lowers_a_whole_sample_below_the_render_by_the_margin(tmp_path):
    real = render_of(3, 16)
    sample = (real * 0.9 + 0.05).clamp(0, 1)  # a near copy: scores close to the render
    before, after = _train_term(_tiny_bundle(tmp_path), sample, real, "a red circle",
                                lambda s, r, t: rank_loss(s, r, t, margin=0.1), 10)  # fmt: skip
    assert before > -0.1 and after < min(before, -0.05), (before, after)


def test_other_truths_are_other_right_pictures_of_the_caption():
    import random

    from vqclip.clip.samples import caption_of
    from vqclip.shapes import judge, parse_prompt

    rng = random.Random(0)
    for k in range(6):
        others = [other_render_of(k, 64, rng) for _ in range(3)]
        assert all(not torch.equal(o, render_of(k, 64)) for o in others)
        for o in others:
            assert judge(o.permute(1, 2, 0).numpy(), parse_prompt(caption_of(k))).passed


@pytest.mark.parametrize("flag", ["--rank-truths", "--rank-nearest"])
def test_more_truths_rank_the_samples_below_more_renders(tmp_path, capsys, flag):
    """With every sample inside the margin (2), other truths of each caption
    (--rank-truths) or each sample's nearest true picture (--rank-nearest) add pairs to
    the rank term, so the run trains differently from the scene's render alone; at 0
    the option is off and the run is the same."""
    rank = ["--rank-weight", "1", "--rank-margin", "2"]
    alone = _train_two_steps(tmp_path, capsys, "alone", *rank)
    zero = _train_two_steps(tmp_path, capsys, "zero", *rank, flag, "0")
    more = _train_two_steps(tmp_path, capsys, "more", *rank, flag, "2")
    assert all(torch.equal(alone[k], zero[k]) for k in alone)
    assert any(not torch.equal(alone[k], more[k]) for k in alone)


def test_energy_hands_the_rank_term_each_samples_nearest_truth(tmp_path):
    """The nearest truths _energy returns are the renders nearest_render_of makes of each
    sample's own picture, one per sample, in the samples' order."""
    from vqclip.clip.samples import nearest_render_of
    from vqclip.clip.train import _energy

    pics = torch.stack([render_of(5, 32), render_of(1, 32)])

    class Fixed:  # a sampler whose refresh returns two known pictures
        def refresh(self):
            return pics, [1, 2], ["x", "y"], torch.ones(2, dtype=torch.bool)

        def views(self, images, keep):
            return images

    out = _energy([Fixed()], torch.device("cpu"), 16, nearest=True)
    assert out.nearest is not None and out.nearest.shape == (2, 3, 16, 16)
    for i, k in enumerate([1, 2]):
        want = F.interpolate(nearest_render_of(k, pics[i], 32)[None], size=(16, 16), mode="area")
        assert torch.allclose(out.nearest[i], want[0])
    assert _energy([Fixed()], torch.device("cpu"), 16).nearest is None


@pytest.mark.parametrize("views", [0, 3])
def test_alignment_term_turns_the_gradient_towards_the_real_picture(tmp_path, views):
    clip = _tiny_bundle(tmp_path)
    real = render_of(3, 16)
    sample = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    text = "a red circle"
    before = gradient_cosine(clip, sample[None], real, text)
    opt = torch.optim.Adam(clip.model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    clip.model.train()
    losses = []
    for _ in range(8):
        loss = align_loss(clip, sample[None], real[None], clip.tokenizer([text]), gen, views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    clip.model.eval()
    after = gradient_cosine(clip, sample[None], real, text)
    assert after > before + 0.1, (before, after, losses)
    # a pair whose sample is its render has no direction and adds nothing
    same = align_loss(clip, real[None], real[None], clip.tokenizer([text]), gen)
    assert same.item() == 0.0 and same.requires_grad


def test_alignment_views_align_the_slope_of_the_generators_mean_score(tmp_path):
    """With views, the term aligns the gradient of the mean score over the views the
    generator's defaults make (drawn from the generator after the path's point)."""
    import torch.nn.functional as F

    from vqclip.generation.cutouts import Cutouts

    clip = _tiny_bundle(tmp_path)
    real = render_of(3, 16)[None]
    sample = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    tokens = clip.tokenizer(["a red circle"])
    clip.model.eval()
    got = align_loss(clip, sample, real, tokens, torch.Generator().manual_seed(5), views=4)
    plain = align_loss(clip, sample, real, tokens, torch.Generator().manual_seed(5))

    g = torch.Generator().manual_seed(5)
    alpha = torch.rand(1, 1, 1, 1, generator=g)
    x = (sample + alpha * (real - sample)).requires_grad_(True)
    seen = Cutouts(16, 4, min_frac=1.0)(x, g)
    assert seen.shape == (4, 3, 16, 16) and not torch.allclose(seen[0], seen[1])
    image = F.normalize(clip.model.encode_image(clip.normalize(seen)), dim=-1).mean(0)
    text = F.normalize(clip.model.encode_text(tokens), dim=-1)[0]
    (grad,) = torch.autograd.grad((image * text).sum(), x)
    want = 1 - F.cosine_similarity(grad.flatten(), (real - sample).flatten(), dim=0)
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert abs(got.item() - plain.item()) > 1e-4  # the views change the slope aligned


def _loop_sampler(clip, seed):
    settings = SamplerSettings(kind="loop", buffer_size=6, batch=3, steps=2)
    loop = GenerateSettings(cutn=2)
    return CriticSampler(settings, clip, load_vqgan("shapes"), loop=loop, seed=seed)


def test_nearest_target_keeps_the_samples_cells_and_the_scene_otherwise():
    from dataclasses import replace

    from vqclip.shapes import analyse, render, sample_scene

    ends = ("circle", "square", "star")  # a single object, its cell and background unnamed
    k = next(i for i in range(200) if sample_scene(i).captions[0].split()[-1] in ends
             and sample_scene(i).kind == "single")  # fmt: skip
    truth = sample_scene(k)
    o = truth.objects[0]
    cell = "top left" if o.cell != "top left" else "bottom right"
    moved = replace(truth, objects=(replace(o, cell=cell, center=(0.8, 0.8) if cell ==
                    "bottom right" else (0.2, 0.2)),))  # fmt: skip
    picture = render_of(k, 64)

    def seen(x):
        (d,) = analyse(x.permute(1, 2, 0).numpy()).objects
        return d.color, d.shape, d.cell

    assert seen(nearest_render_of(k, picture, 64)) == (o.color, o.shape, o.cell)
    aim = nearest_render_of(k, to_tensor(render(moved, 64)), 64)
    assert seen(aim) == (o.color, o.shape, cell)


def test_sample_cutn_sets_the_chains_cutouts_whatever_the_generators_default(tmp_path):
    from vqclip.clip.train import _samplers

    s = ClipTrainSettings(out=str(tmp_path / "r"), model_config=str(_config(tmp_path)),
                          samples="loop", sample_cutn=3, sample_cut_min=0.5, buffer_size=2,
                          sample_batch=1)  # fmt: skip
    (sampler,) = _samplers(s, _tiny_bundle(tmp_path), torch.device("cpu"), 0)
    assert sampler.loop.cutn == 3 and {c.cutn for c in sampler.cutters.values()} == {3}
    # the chains' cutouts (positions not stated) are as small as --sample-cut-min says
    assert sampler.loop.cut_min == 0.5 and sampler.cutters[False].min_frac == 0.5
    (sampler,) = _samplers(ClipTrainSettings(out=s.out, model_config=s.model_config,
                                             samples="loop", buffer_size=2, sample_batch=1),
                           _tiny_bundle(tmp_path), torch.device("cpu"), 0)  # fmt: skip
    # the aligned critic's chains by default, not the generator's defaults
    assert sampler.loop.cutn == 8 and sampler.cutters[False].min_frac == 0.8


def test_loop_chains_follow_the_loop_and_age(tmp_path):
    clip = _tiny_bundle(tmp_path)
    sampler = _loop_sampler(clip, 0)
    pics, scenes, captions, keep = sampler.refresh()
    assert pics.shape == (3, 3, 64, 64) and pics.min() >= 0 and pics.max() <= 1
    assert len(scenes) == len(captions) == len(keep) == 3
    assert int(sampler.buffer.age.sum()) == 3 * 2  # three chains, two loop steps each
    assert int((~sampler.buffer.fresh).sum()) == 3
    # a chain's latent stays inside the codebook's range, as the loop keeps it
    assert (sampler.buffer.x <= sampler.zmax[0] + 1e-6).all()


@pytest.mark.parametrize("init", ["background", "codes"])
def test_loop_chains_start_as_the_loop_starts(tmp_path, init):
    from vqclip.clip.samples import caption_of
    from vqclip.generation.generator import prompt_background

    settings = SamplerSettings(kind="loop", buffer_size=4, batch=4, steps=1)
    sampler = CriticSampler(settings, _tiny_bundle(tmp_path), load_vqgan("shapes"),
                            loop=GenerateSettings(cutn=2, init_noise=init), seed=0)  # fmt: skip
    sampler._restart(torch.arange(4))
    pics = sampler.pictures(sampler.buffer.x)  # (4, 3, 64, 64) in [0, 1]
    for pic, k in zip(pics, sampler.buffer.scene.tolist(), strict=True):
        rgb = torch.tensor(prompt_background(caption_of(int(k)))) / 255
        err = (pic - rgb[:, None, None]).abs().amax(0).mean()
        # the background start decodes to the caption's flat background; random codes do not
        assert (err < 0.1) if init == "background" else (err > 0.1), (init, float(err))


def test_sample_kinds_aim_the_chains_at_those_kinds_only(tmp_path):
    from vqclip.clip.samples import kind_of

    def aims(kinds):
        settings = SamplerSettings(kind="loop", buffer_size=24, batch=1, steps=1, kinds=kinds)
        sampler = CriticSampler(settings, _tiny_bundle(tmp_path), load_vqgan("shapes"),
                                loop=GenerateSettings(cutn=1), seed=0)  # fmt: skip
        sampler._restart(torch.arange(24))
        return sampler.buffer.scene.tolist()

    every = aims(())
    assert {kind_of(k) for k in every} == {"single", "pair", "count"}  # all, as drawn
    assert aims(("single", "pair", "count")) == every  # naming them all draws the same scenes
    pairs = aims(("pair",))
    assert {kind_of(k) for k in pairs} == {"pair"}
    # a scene drawn as a pair keeps its place in the stream; the others are drawn again
    assert all(p == e for p, e in zip(pairs, every, strict=True) if kind_of(e) == "pair")


def _object_sampler(tmp_path, kinds, weight, pair_steps=1.0, max_age=60):
    settings = SamplerSettings(kind="loop", buffer_size=2, batch=2, steps=1, reinit=0.0,
                               max_age=max_age, kinds=kinds)  # fmt: skip
    loop = GenerateSettings(cutn=2, object_weight=weight, pair_steps=pair_steps)
    return CriticSampler(settings, _tiny_bundle(tmp_path), load_vqgan("shapes"), loop, seed=0)


def test_chains_can_start_at_their_render(tmp_path):
    """--sample-render-start 1: a chain starting afresh starts at its scene's render (its
    latent, as the generator encodes an --init-image); 0 starts as the loop does, on the
    same random stream as before the option existed."""
    from vqclip.clip.samples import render_of

    def restarted(render_start):
        settings = SamplerSettings(kind="loop", buffer_size=2, batch=2, steps=1, reinit=0.0,
                                   render_start=render_start)  # fmt: skip
        sampler = CriticSampler(settings, _tiny_bundle(tmp_path), load_vqgan("shapes"),
                                GenerateSettings(cutn=2), seed=0)  # fmt: skip
        sampler._restart(torch.arange(2))
        return sampler

    at_render, at_start = restarted(1.0), restarted(0.0)
    assert torch.equal(at_render.buffer.scene, at_start.buffer.scene)  # the same scenes
    renders = torch.stack([render_of(int(k), at_render.res) for k in at_render.buffer.scene])
    err_render = (at_render.pictures(at_render.buffer.x) - renders).abs().mean()
    err_start = (at_start.pictures(at_start.buffer.x) - renders).abs().mean()
    assert err_render < 0.03 < err_start  # the render's VQGAN copy vs a flat background
    assert int(at_render.buffer.age.sum()) == 0 and float(at_render.buffer.m.abs().sum()) == 0


def test_loop_chains_get_the_generators_object_views(tmp_path):
    from vqclip.clip.samples import caption_of
    from vqclip.shapes import parse_prompt
    from vqclip.shapes.scene import relations_between

    sampler = _object_sampler(tmp_path, ("pair",), 2.0)
    sampler._restart(torch.arange(2))
    scenes = sampler.buffer.scene.tolist()
    captions = [caption_of(k) for k in scenes]
    views = sampler._object_views(scenes, captions, torch.tensor([False, True]))
    assert views is not None and views.owner.tolist() == [0, 0, 1, 1]  # two objects a pair
    assert views.keep.tolist() == [False, False, True, True]  # as each chain keeps positions
    assert views.texts.shape[0] == 4
    for plan, caption in zip(views.plans, captions, strict=True):
        truth = parse_prompt(caption)
        seen = [parse_prompt(v.caption).objects[0] for v in plan]
        # each object scored against its own caption, in a layout that keeps the relation
        assert [(o.color, o.shape) for o in seen] == [(o.color, o.shape) for o in truth.objects]
        assert truth.relation is not None
        assert truth.relation.relation in relations_between(plan[0].cell, plan[1].cell)
    # the layout is fixed by the chain's scene, so every refresh sees the same one
    again = sampler._object_views(scenes, captions, torch.tensor([True, False]))
    assert again is not None and again.plans == views.plans
    # off at weight 0: the chains run the plain loop, as every critic before was trained
    off = _object_sampler(tmp_path, ("pair",), 0.0)
    assert off._object_views(scenes, captions, torch.tensor([False, True])) is None


def test_object_views_change_the_chains_step(tmp_path):
    steps = []
    for weight in (0.0, 2.0):
        sampler = _object_sampler(tmp_path, ("single",), weight)
        sampler.refresh()
        steps.append(sampler.buffer.x.clone())
        assert (sampler.buffer.x <= sampler.zmax[0] + 1e-6).all()  # kept in the codebook's range
    assert not torch.allclose(steps[0], steps[1])  # the object term moves the latent too


@pytest.mark.parametrize("kind", ["single", "pair"])
def test_a_laid_out_pair_runs_pair_steps_times_longer(tmp_path, kind):
    sampler = _object_sampler(tmp_path, (kind,), 2.0, pair_steps=2.0, max_age=2)
    ages, scenes = [], []
    for _ in range(5):
        sampler.refresh()  # both chains, one step each
        ages.append(sampler.buffer.age.tolist())
        scenes.append(sampler.buffer.scene.tolist())
    if kind == "pair":  # 2 × 2 steps, then it starts again (on its own new scene)
        assert [a[0] for a in ages] == [1, 2, 3, 4, 1] and scenes[3] != scenes[4]
    else:
        assert [a[0] for a in ages] == [1, 2, 1, 2, 1] and scenes[1] != scenes[2]
    # without object views a pair is not laid out, so it runs the iterations as before
    plain = _object_sampler(tmp_path, ("pair",), 0.0, pair_steps=2.0, max_age=2)
    plain_ages = []
    for _ in range(3):
        plain.refresh()
        plain_ages.append(int(plain.buffer.age[0]))
    assert plain_ages == [1, 2, 1]


def test_replay_buffer_is_saved_with_the_checkpoint_and_resumes(tmp_path):
    clip = _tiny_bundle(tmp_path)
    a = _loop_sampler(clip, 0)
    a.refresh()
    save_checkpoint(tmp_path / "ckpt", {"buffer": a.buffer}, {}, {"step": 1})
    b = _loop_sampler(clip, 99)  # another seed: only the checkpoint can make it agree
    load_checkpoint(tmp_path / "ckpt", {"buffer": b.buffer}, {}, torch.device("cpu"))
    assert torch.equal(a.buffer.x, b.buffer.x) and torch.equal(a.buffer.age, b.buffer.age)
    pa, sa, _, _ = a.refresh()
    pb, sb, _, _ = b.refresh()
    assert sa == sb and torch.equal(pa, pb)  # same chains picked, same steps taken


def test_chain_ages_reads_the_saved_buffer_and_refuses_a_broken_one(tmp_path):
    clip = _tiny_bundle(tmp_path)
    a = _loop_sampler(clip, 0)
    a.refresh()
    save_checkpoint(tmp_path / "run" / "checkpoint", {"buffer_loop": a.buffer}, {}, {"step": 1})
    script = [sys.executable, str(BENCHMARKS / "chain_ages.py")]
    ok = subprocess.run([*script, str(tmp_path / "run")], capture_output=True, text=True)
    row = json.loads(ok.stdout)
    assert ok.returncode == 0 and row["chains"] == a.buffer.age.numel()
    assert row["mean_age"] == round(float(a.buffer.age.float().mean()), 1)
    next((tmp_path / "run" / "checkpoint").glob("buffer_*.safetensors")).write_bytes(b"cut")
    bad = subprocess.run([*script, str(tmp_path / "run")], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read chain ages")


def test_train_clip_with_samples_checkpoints_and_resumes(tmp_path, capsys):
    cfg, out = _config(tmp_path), tmp_path / "run"
    common = ["train-clip", "--out", str(out), "--model-config", str(cfg), "--batch-size", "4",
              "--workers", "0", "--eval-every", "0", "--warmup", "1", "--samples", "both",
              "--buffer-size", "4", "--sample-batch", "2", "--sample-steps", "1", "-q",
              "--align-weight", "0.5"]  # fmt: skip
    assert run(capsys, *common, "--steps", "2")[0] == 0
    saved = load_file(out / "checkpoint" / "buffer_loop_rank0.safetensors")
    assert int(saved["age"].sum()) >= 2 and (out / "checkpoint" / "buffer_sgld_rank0.safetensors")
    assert run(capsys, *common, "--steps", "3", "--resume")[0] == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 3
    after = load_file(out / "checkpoint" / "buffer_loop_rank0.safetensors")
    assert int(after["age"].max()) >= 1 and not torch.equal(after["x"], saved["x"])


def _train_two_steps(tmp_path, capsys, name, *extra):
    """Weights after 2 steps of a tiny loop-chain run with the alignment term on."""
    args = ["train-clip", "--out", str(tmp_path / name), "--model-config", str(_config(tmp_path)),
            "--batch-size", "4", "--workers", "0", "--eval-every", "0", "--warmup", "1",
            "--samples", "loop", "--buffer-size", "4", "--sample-batch", "2",
            "--sample-steps", "1", "--align-weight", "1", "--steps", "2", *extra]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run(capsys, *args)[0] == 0
    finally:
        torch.set_num_threads(threads)
    return load_file(tmp_path / name / "checkpoint" / "model.safetensors")


def test_stationary_term_flattens_the_critic_at_the_render(tmp_path):
    """R1 at the render: a few Adam steps of the term shrink the squared norm of the
    critic's pixel gradient there (what the loop climbs when it starts at the render)."""
    clip = _tiny_bundle(tmp_path)
    reals = torch.stack([render_of(k, 16) for k in range(4)])
    tokens = clip.tokenizer(["a red circle", "a blue square", "two stars", "a green ring"])
    before = stationary_loss(clip, reals, tokens).item()
    opt = torch.optim.Adam(clip.model.parameters(), lr=1e-3)
    clip.model.train()
    for _ in range(5):
        loss = stationary_loss(clip, reals, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = stationary_loss(clip, reals, tokens).item()
    assert before > 0 and after < 0.5 * before, (before, after)


@pytest.mark.parametrize(
    ("off", "on"),
    [
        # --align-near trains on near misses too
        (["--align-near", "0"], ["--align-near", "3"]),
        # a rank margin so large that every sample is inside it
        (["--rank-weight", "0"], ["--rank-weight", "1", "--rank-margin", "2"]),
        # R1 at the chains' renders
        (["--stationary-weight", "0"], ["--stationary-weight", "100"]),
    ],
)
def test_an_added_term_at_zero_is_the_run_without_it(tmp_path, capsys, off, on):
    """An extra term at weight 0 trains weight for weight as the run without it; on, it
    changes the weights."""
    plain, zero, added = (
        _train_two_steps(tmp_path, capsys, "plain"),
        _train_two_steps(tmp_path, capsys, "zero", *off),
        _train_two_steps(tmp_path, capsys, "added", *on),
    )
    assert all(torch.equal(plain[k], zero[k]) for k in plain)
    assert any(not torch.equal(plain[k], added[k]) for k in plain)


def test_samples_none_trains_exactly_as_before(tmp_path):
    """Golden slice recorded with the training code as it was before --samples existed."""
    s = ClipTrainSettings(out=str(tmp_path / "run"), model_config=str(_config(tmp_path)),
                          steps=3, batch_size=8, workers=0, eval_every=0, warmup=2,
                          save_every=0, samples="none")  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the golden slice was recorded
    try:
        train_clip(s, progress=False)
    finally:
        torch.set_num_threads(threads)
    sd = load_file(tmp_path / "run" / "checkpoint" / "model.safetensors")
    golden = {
        "visual.proj": [-0.14780643582344055, -0.1690327674150467, 0.26506081223487854,
                        0.1281149834394455],
        "text_projection": [-0.22831197082996368, -0.01581650786101818, 0.15590156614780426,
                            0.2767888009548187],
        "logit_scale": [2.657510995864868],
    }  # fmt: skip
    for name, values in golden.items():
        got = sd[name].flatten()[: len(values)]
        assert torch.allclose(got, torch.tensor(values), atol=1e-5), (name, got)
    assert not (tmp_path / "run" / "checkpoint" / "buffer_loop_rank0.safetensors").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--samples", "mcmc"], ["unknown --samples 'mcmc'", "loop"]),
        (["--samples", "loop", "--buffer-size", "0"], ["--buffer-size", "at least 1"]),
        (["--samples", "loop", "--sample-batch", "9", "--buffer-size", "4"], ["--sample-batch"]),
        (["--align-weight", "1"], ["--align-weight needs --samples"]),
        (["--samples", "loop", "--align-weight", "-1"], ["--align-weight must be >= 0"]),
        (["--samples", "loop", "--align-target", "far"], ["--align-target 'far'", "nearest"]),
        (["--samples", "loop", "--sample-cutn", "0"], ["--sample-cutn must be at least 1"]),
        (["--samples", "loop", "--sample-cut-min", "0"], ["--sample-cut-min must be in (0, 1]"]),
        (["--samples", "loop", "--sample-cut-min", "1.5"], ["--sample-cut-min", "1.5"]),
        (["--samples", "loop", "--align-views", "-2"], ["--align-views", "-2"]),
        (["--samples", "loop", "--align-near", "2"], ["--align-near needs --align-weight"]),
        (
            ["--samples", "loop", "--align-weight", "1", "--align-near", "-1"],
            ["--align-near", "-1"],
        ),
        (
            ["--samples", "loop", "--align-weight", "1", "--batch-size", "4", "--align-near", "5"],
            ["--align-near", "--batch-size (4)"],
        ),
        (["--samples", "loop", "--sample-kinds", "pair,pairs"], ["'pairs'", "--sample-kinds"]),
        (["--sample-kinds", "pair"], ["--sample-kinds needs --samples"]),
        (["--samples", "loop", "--sample-object-weight", "-1"], ["--sample-object-weight", "-1"]),
        (["--samples", "loop", "--sample-pair-steps", "0.5"], ["--sample-pair-steps", "0.5"]),
        (["--samples", "loop", "--sample-pair-steps", "nan"], ["--sample-pair-steps", "nan"]),
        (["--rank-weight", "1"], ["--rank-weight needs --samples"]),
        (["--samples", "loop", "--rank-weight", "-1"], ["--rank-weight", "-1"]),
        (["--samples", "loop", "--rank-margin", "3"], ["--rank-margin in [0, 2]", "3.0"]),
        (["--samples", "loop", "--rank-margin", "nan"], ["--rank-margin", "nan"]),
        (["--sample-render-start", "0.5"], ["--sample-render-start needs --samples"]),
        (["--stationary-weight", "1"], ["--stationary-weight needs --samples"]),
        (["--samples", "loop", "--stationary-weight", "-1"], ["--stationary-weight", "-1"]),
        (["--samples", "loop", "--stationary-weight", "nan"], ["--stationary-weight", "nan"]),
        (["--samples", "loop", "--sample-render-start", "2"], ["--sample-render-start", "2.0"]),
        (["--samples", "loop", "--rank-truths", "2"], ["--rank-truths", "--rank-weight > 0"]),
        (
            ["--samples", "loop", "--rank-weight", "1", "--rank-truths", "-1"],
            ["--rank-truths", "must be >= 0", "-1"],
        ),
        (["--samples", "loop", "--rank-nearest", "0.1"], ["--rank-nearest", "--rank-weight > 0"]),
        (
            ["--samples", "loop", "--rank-weight", "1", "--rank-nearest", "3"],
            ["--rank-nearest must be in [0, 2]", "3.0"],
        ),
    ],
)
def test_bad_sampler_settings_give_one_line(tmp_path, capsys, flags, words):
    code, _, err = run(capsys, "train-clip", "--out", str(tmp_path / "r"), "--workers", "0",
                       "--model-config", str(_config(tmp_path)), *flags)  # fmt: skip
    assert_one_line_error(code, err, *words)
