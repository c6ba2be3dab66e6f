"""The optimisers of the latent: one table, named as in ``settings.OPTIMIZERS``.

Everything is from ``torch.optim`` except DiffGrad (Dubey et al., 2019), written here
in a dozen lines: the package the reference loop takes it from (``torch-optimizer``) has
had no release since 2021 and pulls in another unmaintained package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class DiffGrad(torch.optim.Optimizer):
    """Adam whose step is scaled per element by sigmoid(|g_{t-1} − g_t|) ("friction")."""

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
    ) -> None:  # fmt: skip
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    state["prev"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["m"], state["v"], state["step"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                friction = torch.sigmoid((state["prev"] - g).abs())
                state["prev"] = g.clone()
                size = group["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
                p.addcdiv_(m * friction, v.sqrt().add_(group["eps"]), value=-size)
        return loss


def _sgd(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


OPTIMIZER_TABLE: dict[str, Callable[..., Any]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adamax": torch.optim.Adamax,
    "diffgrad": DiffGrad,
    "sgd": _sgd,
    "radam": torch.optim.RAdam,
    "nadam": torch.optim.NAdam,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """The optimiser called ``name`` over ``params`` at learning rate ``lr``."""
    opt: torch.optim.Optimizer = OPTIMIZER_TABLE[name](params, lr=lr)
    return opt
