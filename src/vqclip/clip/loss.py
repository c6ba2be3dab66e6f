"""The CLIP contrastive loss, exactly as the paper's pseudocode, across processes too."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

MAX_LOGIT_SCALE = 100.0
INIT_LOGIT_SCALE = math.log(1 / 0.07)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each rank the summed gradient of its own slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)  # (K·B, D)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss depends on every slice
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenates ``features`` (B, D) from every process, in rank order: (K·B, D).

    The gradient flows back through the gather to each rank's own features, so a
    loss on the gathered batch trains every rank as one process on the whole batch.
    Without an initialised process group this returns ``features`` unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    out: torch.Tensor = _GatherWithGrad.apply(features)
    return out


def logit_scale_value(logit_scale: torch.Tensor) -> torch.Tensor:
    """``exp(t)``, never above ``MAX_LOGIT_SCALE`` (100)."""
    return logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    negatives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric cross-entropy over the (global) batch.

    Args:
        image_features: (B, D) projected image features of this process.
        text_features: (B, D) projected text features, row i the caption of image i.
        logit_scale: the learned log-temperature ``t``.
        negatives: optional (M, D) features of images that match no caption (hard
            negatives); they join the text->image direction as extra columns.

    Returns:
        ``(loss, accuracy)``: the mean of the row and column cross-entropies with
        labels 0..N−1 over the gathered batch, and the in-batch image→text top-1
        accuracy.
    """
    i_e = F.normalize(gather_features(image_features), dim=-1)  # (N, D)
    t_e = F.normalize(gather_features(text_features), dim=-1)  # (N, D)
    logits = i_e @ t_e.T * logit_scale_value(logit_scale)  # (N, N)
    labels = torch.arange(logits.shape[0], device=logits.device)
    text_logits = logits.T
    if negatives is not None:
        n_e = F.normalize(gather_features(negatives), dim=-1)  # (M, D)
        extra = t_e @ n_e.T * logit_scale_value(logit_scale)  # (N, M)
        text_logits = torch.cat([text_logits, extra], dim=1)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(text_logits, labels)) / 2
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return loss, accuracy.detach()
