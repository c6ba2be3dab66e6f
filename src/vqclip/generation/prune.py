"""Pruning: undo the loop's edits that CLIP does not need.

After the loop, each cell of the latent grid is measured by how far its pixels moved
from the start's decoding. Two kinds of edit are then set back to the start's codes,
each only while CLIP's score of the whole picture for the prompts stays within
``tolerance`` of the unpruned picture's (an Occam step: of two pictures CLIP likes
about as much, keep the one with fewer edits):

1. faint edits: every cell that moved less than a threshold, for the largest of
   :data:`THRESHOLDS` that CLIP accepts (the pale specks and texture the loop
   leaves all over the canvas);
2. regions: connected groups of cells that moved at least :data:`STRONG` (objects
   and fragments), each with its halo of fainter cells, set back as a whole, in the
   order of the score they leave (best first), each checked on the picture with
   the earlier removals; the last region is never removed.

``tolerance`` bounds what all changes together may cost, so small costs do not add
up to a lost object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from vqclip.vqgan.model import VQGAN

THRESHOLDS = (0.05, 0.1, 0.2)  # faint edits: how far a cell's pixels moved (in [0, 1])
STRONG = 0.3  # a cell that moved this far belongs to a region (an object or a fragment)


@dataclass(frozen=True)
class PruneReport:
    """What pruning did to one picture.

    Attributes:
        threshold: cells that moved less than this were set back (0: none were).
        regions: connected regions of the cells that moved more.
        removed: regions set back as a whole.
        score_before: CLIP's score before pruning.
        score_after: and after.
    """

    threshold: float
    regions: int
    removed: int
    score_before: float
    score_after: float


def cell_change(image: torch.Tensor, start: torch.Tensor, factor: int) -> torch.Tensor:
    """How far each cell moved: the largest change of a pixel of its patch, (h, w).

    ``image`` and ``start`` are (3, H, W) in [0, 1]; a cell is the ``factor``×``factor``
    patch one latent vector decodes to.
    """
    moved = (image - start).abs().amax(dim=0)[None, None]  # (1, 1, H, W)
    return torch.nn.functional.max_pool2d(moved, factor)[0, 0]


def regions_of(change: torch.Tensor, floor: float) -> list[torch.Tensor]:
    """The regions of a picture, as boolean (h, w) masks, largest first.

    A region is a connected group (8-neighbours) of cells that moved at least
    :data:`STRONG`, with the cells around it that moved at least ``floor`` (its halo),
    but no cell of another region.
    """
    eight = np.ones((3, 3), dtype=bool)
    moved = change.cpu().numpy()
    strong = moved >= STRONG
    labels, n = ndimage.label(strong, structure=eight)
    masks = []
    for k in range(1, n + 1):
        core = labels == k
        halo = ndimage.binary_dilation(core, structure=eight) & (moved >= floor) & ~strong
        masks.append(core | halo)
    masks.sort(key=lambda m: -int(m.sum()))
    return [torch.from_numpy(m).to(change.device) for m in masks]


def prune_latent(
    vq: VQGAN,
    zq: torch.Tensor,
    start_q: torch.Tensor,
    score: Callable[[torch.Tensor], list[float]],
    tolerance: float,
    keep: int = 1,
) -> tuple[torch.Tensor, PruneReport]:
    """Sets cells of ``zq`` back to ``start_q`` (both (D, h, w), quantised) while CLIP agrees.

    First the faint edits: every cell that moved less than a threshold is set back,
    for the largest threshold of :data:`THRESHOLDS` that CLIP accepts. Then the
    regions of the cells left: each is set back as a whole, in the order of the score
    it leaves, best first, each checked on the picture with the earlier removals.
    A change is kept while CLIP's score stays within ``tolerance`` of the unpruned
    picture's, and the last region is never removed: pruning does not empty a picture.

    Args:
        vq: the VQGAN that decodes the latents.
        zq: the loop's final quantised latent.
        start_q: the quantised latent the loop started from.
        score: CLIP's score of each image of a batch (B, 3, H, W) in [0, 1].
        tolerance: how much score all changes together may cost.
        keep: the fewest regions left (at least 1).

    Returns:
        The pruned latent and a :class:`PruneReport`.
    """

    def decode(z: torch.Tensor) -> torch.Tensor:
        return ((vq.decode(z) + 1) / 2).clamp(0, 1)

    with torch.no_grad():
        image, start_image = decode(torch.stack([zq, start_q])).unbind(0)
        change = cell_change(image, start_image, vq.factor)
        before = score(image[None])[0]
        floor = before - tolerance
        trials = torch.stack([torch.where(change < t, start_q, zq) for t in THRESHOLDS])
        faint = score(decode(trials))
        ok = [k for k, s in enumerate(faint)
              if s >= floor and bool((change >= THRESHOLDS[k]).any())]  # fmt: skip
        threshold = THRESHOLDS[ok[-1]] if ok else 0.0
        current = trials[ok[-1]] if ok else zq
        current_score = faint[ok[-1]] if ok else before
        masks = regions_of(change, max(threshold, THRESHOLDS[0]))
        removed = 0
        if len(masks) > keep:
            trial = torch.stack([torch.where(m, start_q, current) for m in masks])
            alone = score(decode(trial))
            for k in np.argsort(-np.asarray(alone), kind="stable"):
                if removed == len(masks) - keep:
                    break
                candidate = torch.where(masks[int(k)], start_q, current)
                # until a removal is kept, the candidate is its trial: already scored
                s = alone[int(k)] if removed == 0 else score(decode(candidate[None]))[0]
                if s >= floor:
                    current, current_score, removed = candidate, s, removed + 1
    return current, PruneReport(threshold, len(masks), removed, before, current_score)
