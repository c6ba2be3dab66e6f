"""A leaner forward pass of open_clip's ViT image tower, for the generation loop.

The loop needs one thing from CLIP's image tower: the pooled embedding of each cutout,
and its gradient with respect to the pixels. open_clip's forward computes more than that
and computes it in a roundabout layout; for the class-token towers of CLIP (OpenAI's and
open_clip's ViTs, the embedded Shapes CLIP) this module computes the same function with
less work:

- the last block runs its query, attention output and MLP for the class token only: the
  pooled embedding reads nothing else (keys and values still come from every token);
- the patch embedding (a stride-``p`` convolution with a ``p``×``p`` kernel) is a reshape
  and one matrix product, whose backward is one matrix product too;
- queries, keys and values come from one packed projection in (batch, tokens, width)
  layout straight into ``scaled_dot_product_attention``, with no transposes to the
  sequence-first layout ``nn.MultiheadAttention`` uses.

The weights are the model's own (nothing is copied); the result equals open_clip's up to
float rounding (tested). Towers this does not describe (attentional pooling, custom
attention blocks, cross-attention, patch dropout in training) use open_clip's forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def supports(visual: Any) -> bool:
    """Whether :func:`encode` computes ``visual``'s forward exactly."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    if type(visual) is not VisionTransformer or visual.training:
        return False
    if getattr(visual, "attn_pool", None) is not None or visual.pool_type not in ("tok", "avg"):
        return False
    conv = visual.conv1
    if conv.kernel_size != conv.stride or conv.padding != (0, 0) or conv.groups != 1:
        return False
    for block in visual.transformer.resblocks:
        if type(block) is not ResidualAttentionBlock or hasattr(block, "ln_1_kv"):
            return False
        attn = block.attn
        plain_attention = (
            isinstance(attn, nn.MultiheadAttention) and attn._qkv_same_embed_dim
            and attn.bias_k is None and not attn.add_zero_attn and attn.dropout == 0.0
        )  # fmt: skip
        if not plain_attention or list(block.mlp._modules) != ["c_fc", "gelu", "c_proj"]:
            return False
    return True


def _block(block: Any, x: torch.Tensor, cls_only: bool) -> torch.Tensor:
    """One residual attention block on (N, L, D); with ``cls_only``, returns (N, 1, D)."""
    n, length, d = x.shape
    attn = block.attn
    heads = attn.num_heads
    h = block.ln_1(x)
    w, b = attn.in_proj_weight, attn.in_proj_bias
    if cls_only:
        q = F.linear(h[:, :1], w[:d], None if b is None else b[:d])
        k, v = F.linear(h, w[d:], None if b is None else b[d:]).split(d, dim=-1)
    else:
        q, k, v = F.linear(h, w, b).split(d, dim=-1)
    lq = q.shape[1]
    q = q.reshape(n, lq, heads, d // heads).transpose(1, 2)
    k = k.reshape(n, length, heads, d // heads).transpose(1, 2)
    v = v.reshape(n, length, heads, d // heads).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, lq, d)
    x = (x[:, :1] if cls_only else x) + block.ls_1(attn.out_proj(o))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def encode(visual: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``visual(pixels)`` for a tower :func:`supports` accepts: (N, 3, H, W) -> (N, E)."""
    conv = visual.conv1
    n, c, height, width = pixels.shape
    ph, pw = conv.kernel_size
    gh, gw = height // ph, width // pw
    patches = (
        pixels[:, :, : gh * ph, : gw * pw]
        .reshape(n, c, gh, ph, gw, pw)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(n, gh * gw, c * ph * pw)
    )
    x = F.linear(patches, conv.weight.reshape(conv.out_channels, -1), conv.bias)
    cls = visual.class_embedding.to(x.dtype).expand(n, 1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    x = visual.ln_pre(x)
    blocks = list(visual.transformer.resblocks)
    tok = visual.pool_type == "tok"
    for i, block in enumerate(blocks):
        x = _block(block, x, cls_only=tok and i == len(blocks) - 1)
    if tok:
        pooled = visual.ln_post(x[:, 0])
    elif visual.final_ln_after_pool:
        pooled = visual.ln_post(x[:, 1:].mean(dim=1))
    else:
        pooled = visual.ln_post(x)[:, 1:].mean(dim=1)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled
