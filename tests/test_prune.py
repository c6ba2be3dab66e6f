"""Pruning sets back the loop's edits that the score does not need, and nothing else."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from vqclip.generation.generator import generate, quantize_st
from vqclip.generation.prune import STRONG, prune_latent, regions_of
from vqclip.generation.settings import GenerateSettings, SettingError
from vqclip.io import to_tensor
from vqclip.vqgan.load import load_vqgan


@pytest.fixture(scope="module")
def vq():
    return load_vqgan("shapes").eval().requires_grad_(False)


def _latent(vq, image: Image.Image) -> torch.Tensor:
    with torch.no_grad():
        return quantize_st(vq, vq.encode_latent(to_tensor(image)[None] * 2 - 1))[0]


def _scene(blue: bool = True) -> Image.Image:
    im = Image.new("RGB", (64, 64), "white")
    d = ImageDraw.Draw(im)
    d.ellipse((30, 30, 54, 54), fill=(220, 30, 30))  # the object
    if blue:
        d.rectangle((4, 4, 17, 17), fill=(30, 70, 220))  # a stray fragment, far from it
    return im


def _share(images: torch.Tensor, channel: int) -> torch.Tensor:
    """Share of pixels that are strongly of one primary colour, per image (B,)."""
    others = [c for c in range(3) if c != channel]
    strong = (images[:, channel] > 0.6) & (images[:, others].amax(dim=1) < 0.45)
    return strong.float().mean(dim=(1, 2))


def _decode(vq, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return ((vq.decode(z[None]) + 1) / 2).clamp(0, 1)


def test_regions_are_separate_groups_with_their_halo():
    change = torch.zeros(8, 8)
    change[1:3, 1:3] = 0.9  # one region
    change[6, 6] = 0.5  # another
    change[3, 3] = 0.08  # a faint cell next to the first: its halo
    change[0, 7] = 0.08  # a faint cell next to nothing strong: no region's
    masks = regions_of(change, floor=0.05)
    assert [int(m.sum()) for m in masks] == [5, 1]
    assert bool(masks[0][3, 3]) and not any(bool(m[0, 7]) for m in masks)
    assert not (masks[0] & masks[1]).any()
    assert STRONG > 0.05


def test_prune_drops_the_fragment_the_score_does_not_want(vq):
    z, start = _latent(vq, _scene()), _latent(vq, Image.new("RGB", (64, 64), "white"))
    before = _decode(vq, z)
    assert _share(before, 2) > 0.005 and _share(before, 0) > 0.05  # both are there

    def score(images):  # likes red, dislikes blue
        return (_share(images, 0) - _share(images, 2)).tolist()

    pruned, report = prune_latent(vq, z, start, score, tolerance=0.01)
    after = _decode(vq, pruned)
    assert report.regions == 2 and report.removed == 1
    assert float(_share(after, 2)) < 0.001  # the fragment is gone
    assert float(_share(after, 0)) > 0.9 * float(_share(before, 0))  # the object is kept
    changed = (pruned != z).any(dim=0)
    assert torch.equal(pruned[:, changed], start[:, changed])  # set back to the start only


def test_prune_keeps_what_the_score_needs_and_never_empties(vq):
    z, start = _latent(vq, _scene()), _latent(vq, Image.new("RGB", (64, 64), "white"))

    def likes_everything(images):
        return (_share(images, 0) + _share(images, 2)).tolist()

    kept, report = prune_latent(vq, z, start, likes_everything, tolerance=0.001)
    assert report.removed == 0 and report.score_after >= report.score_before - 0.001
    for channel in (0, 2):  # both objects are still there
        assert float(_share(_decode(vq, kept), channel)) >= 0.9 * float(
            _share(_decode(vq, z), channel)
        )

    def likes_nothing(images):  # an empty canvas would score best
        return (-_share(images, 0) - _share(images, 2)).tolist()

    kept, report = prune_latent(vq, z, start, likes_nothing, tolerance=1.0)
    assert report.regions == 2 and report.removed == 1  # the last region stays
    kept, report = prune_latent(vq, z, start, likes_nothing, tolerance=1.0, keep=2)
    assert report.removed == 0


def test_generate_prunes_towards_the_start_only(vq):
    from vqclip.clip.load import load_clip

    clips = [load_clip("shapes")]
    fast = {"prompts": "a red circle", "iterations": 8, "cutn": 2, "seed": 3}
    plain = generate(GenerateSettings(**fast, prune=None), clips=clips, vqgan=vq)
    pruned = generate(GenerateSettings(**fast, prune=0.05), clips=clips, vqgan=vq)
    white = _latent(vq, Image.new("RGB", (64, 64), "white"))
    same = (pruned.latent == plain.latent).all(dim=0)
    reset = (pruned.latent == white).all(dim=0)
    assert bool((same | reset).all())  # every cell is the loop's or the start's
    assert plain.settings.prune is None and pruned.settings.prune == 0.05


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_prune_is_a_setting_error(bad):
    with pytest.raises(SettingError, match="prune"):
        GenerateSettings(prompts="a red circle", prune=bad).validate()
