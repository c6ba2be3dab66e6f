"""Vector quantisers with taming-transformers' parameter names.

``VectorQuantizer`` keeps ``embedding``; ``GumbelQuantize`` keeps ``proj`` and ``embed``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-code quantiser (taming's ``VectorQuantizer2``), straight-through gradient.

    Args:
        n_e: number of codes.
        e_dim: code dimension.
        beta: commitment weight.
        legacy: taming's legacy weighting, ``||sg(z_q) − z||² + β·||z_q − sg(z)||²``
            (the default for loaded checkpoints); otherwise the VQ-VAE paper's
            ``β·||sg(z_q) − z||² + ||z_q − sg(z)||²``.
    """

    def __init__(self, n_e: int, e_dim: int, beta: float = 0.25, legacy: bool = True) -> None:
        super().__init__()
        self.n_e, self.e_dim, self.beta, self.legacy = n_e, e_dim, beta, legacy
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding.weight

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) of the nearest code to each latent vector of z (B, D, h, w)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.e_dim)  # (BHW, D)
        e = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.T  # (BHW, n_e)
        return d.argmin(dim=1).reshape(z.shape[0], z.shape[2], z.shape[3])

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, D, h, w) for indices (B, h, w)."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (z_q with straight-through gradient, codebook loss, indices)."""
        indices = self.nearest(z)
        z_q = self.embed_indices(indices)  # (B, D, h, w)
        commit = torch.mean((z_q.detach() - z) ** 2)
        codebook = torch.mean((z_q - z.detach()) ** 2)
        loss = commit + self.beta * codebook if self.legacy else self.beta * commit + codebook
        z_q = z + (z_q - z).detach()  # straight-through
        return z_q, loss, indices


class GumbelQuantize(nn.Module):
    """Gumbel-softmax quantiser (taming's ``GumbelQuantize``): ``proj`` to logits, ``embed``.

    Args:
        num_hiddens: channels of the incoming latent.
        embedding_dim: code dimension.
        n_embed: number of codes.
        kl_weight: weight of the KL term towards a uniform prior.
        temperature: Gumbel-softmax temperature in training.
    """

    def __init__(
        self, num_hiddens: int, embedding_dim: int, n_embed: int, kl_weight: float = 5e-4,
        temperature: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_embed, self.embedding_dim = n_embed, embedding_dim
        self.kl_weight, self.temperature = kl_weight, temperature
        self.proj = nn.Conv2d(num_hiddens, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embedding_dim)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embed.weight

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embed(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.proj(z)  # (B, n_embed, h, w)
        if self.training:
            one_hot = F.gumbel_softmax(logits, tau=self.temperature, dim=1, hard=True)
        else:
            one_hot = F.one_hot(logits.argmax(1), self.n_embed).permute(0, 3, 1, 2).to(z.dtype)
        z_q = torch.einsum("bnhw,nd->bdhw", one_hot, self.embed.weight)
        qy = F.softmax(logits, dim=1)
        kl = self.kl_weight * torch.sum(qy * torch.log(qy * self.n_embed + 1e-10), dim=1).mean()
        return z_q, kl, one_hot.argmax(dim=1)
