"""The lean ViT forward computes open_clip's function: values and pixel gradients."""

from __future__ import annotations

import open_clip
import pytest
import torch

from vqclip.clip import fastvit
from vqclip.clip.load import load_clip
from vqclip.clip.model import build_model


def _tiny(**vision: object) -> open_clip.CLIP:
    torch.manual_seed(0)
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 3, "width": 32, "patch_size": 8,
                       "head_width": 16, **vision},
        "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2,
                     "layers": 1},
    }  # fmt: skip
    return build_model(cfg).eval().requires_grad_(False)


def _same(visual: torch.nn.Module, size: int) -> None:
    x = torch.rand(5, 3, size, size, requires_grad=True)
    ref = visual(x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    out = fastvit.encode(visual, x)
    (g_out,) = torch.autograd.grad(out.square().sum(), x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g_out, g_ref, rtol=1e-3, atol=1e-5)


def test_shipped_clip_matches_open_clip() -> None:
    visual = load_clip("shapes").model.visual
    assert fastvit.supports(visual)
    _same(visual, 64)


@pytest.mark.parametrize(
    "vision",
    [
        {},
        {"pool_type": "avg"},
        {"pool_type": "avg", "final_ln_after_pool": True},
        {"ls_init_value": 0.5},
        {"no_ln_pre": True},
    ],
)
def test_variants_match_open_clip(vision: dict[str, object]) -> None:
    visual = _tiny(**vision).visual
    assert fastvit.supports(visual)
    _same(visual, 32)


def test_quick_gelu_tower_matches() -> None:  # OpenAI's checkpoints use QuickGELU
    torch.manual_seed(0)
    model = build_model(
        {"embed_dim": 16, "quick_gelu": True,
         "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 16,
                        "head_width": 16},
         "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2,
                      "layers": 1}}
    ).eval().requires_grad_(False)  # fmt: skip
    _same(model.visual, 32)


def test_other_towers_keep_open_clips_forward() -> None:
    visual = _tiny(attentional_pool=True).visual
    assert not fastvit.supports(visual)
    trained = _tiny().visual.train()
    assert not fastvit.supports(trained)
    assert not fastvit.supports(None)


def test_bundle_encodes_as_open_clip_does() -> None:
    bundle = load_clip("shapes")
    x = torch.rand(3, 3, 64, 64)
    ref = torch.nn.functional.normalize(bundle.model.encode_image(bundle.normalize(x)), dim=-1)
    torch.testing.assert_close(bundle.encode_pixels(x), ref, rtol=1e-4, atol=1e-5)
