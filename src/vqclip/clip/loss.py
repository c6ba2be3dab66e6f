"""The CLIP contrastive loss, exactly as the paper's pseudocode, across processes too."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.nn.functional import all_gather

MAX_LOGIT_SCALE = 100.0
INIT_LOGIT_SCALE = math.log(1 / 0.07)


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenates ``features`` (B, D) from every process, in rank order: (K·B, D).

    The gradient flows back through the gather to each rank's own features, so a
    loss on the gathered batch trains every rank as one process on the whole batch.
    Without an initialised process group this returns ``features`` unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    return torch.cat(all_gather(features.contiguous()), dim=0)


def logit_scale_value(logit_scale: torch.Tensor) -> torch.Tensor:
    """``exp(t)``, never above ``MAX_LOGIT_SCALE`` (100)."""
    return logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric cross-entropy over the (global) batch.

    Args:
        image_features: (B, D) projected image features of this process.
        text_features: (B, D) projected text features, row i the caption of image i.
        logit_scale: the learned log-temperature ``t``.

    Returns:
        ``(loss, accuracy)``: the mean of the row and column cross-entropies with
        labels 0..N−1 over the gathered batch, and the in-batch image→text top-1
        accuracy.
    """
    i_e = F.normalize(gather_features(image_features), dim=-1)  # (N, D)
    t_e = F.normalize(gather_features(text_features), dim=-1)  # (N, D)
    logits = i_e @ t_e.T * logit_scale_value(logit_scale)  # (N, N)
    labels = torch.arange(logits.shape[0], device=logits.device)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return loss, accuracy.detach()
