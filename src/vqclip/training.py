"""What every training command shares: schedules, checkpoints and resuming."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from vqclip.errors import VqclipError
from vqclip.io import atomic_open, save_safetensors


def cosine_lr(step: int, *, lr: float, min_lr: float, warmup: int, progress: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr``.

    ``progress`` (0..1) is how far the run is: see :class:`RunClock`.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


class RunClock:
    """How far a run is: by steps, or by wall time when a time budget is set.

    With ``time_budget`` > 0 the run ends (and the schedule completes) at whichever
    comes first, ``steps`` or the budget; the step count reached is logged and saved.
    The budget is the run's wall time across resumes: ``spent`` is the time the run had
    used before this process (saved in its checkpoint as ``elapsed_s``), so a resumed run
    goes on with its schedule instead of starting it again.
    """

    def __init__(
        self, steps: int, time_budget: float = 0.0, start_step: int = 0, spent: float = 0.0
    ) -> None:
        self.steps, self.time_budget, self.spent = steps, time_budget, spent
        self.start_step, self.t0 = start_step, time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of wall time the run has used, earlier processes' included."""
        return self.spent + time.perf_counter() - self.t0

    def progress(self, step: int) -> float:
        by_steps = step / max(1, self.steps)
        if self.time_budget <= 0:
            return by_steps
        return max(by_steps, self.elapsed() / self.time_budget)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def save_checkpoint(
    folder: Path,
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    meta: dict[str, Any],
    meta_name: str = "state.json",
) -> None:
    """Writes ``<name>.safetensors`` per model, ``<name>.pt`` per optimizer, ``state.json``.

    Each file is written atomically; ``state.json`` (``meta_name``) goes last, so a
    checkpoint whose ``state.json`` exists is complete.
    """
    for name, model in models.items():
        save_safetensors(model, folder / f"{name}.safetensors")
    for name, opt in optimizers.items():
        with atomic_open(folder / f"{name}.pt", "wb") as f:
            torch.save(opt.state_dict(), f)
    with atomic_open(folder / meta_name) as f:
        json.dump(meta, f, indent=2)


def load_checkpoint(
    folder: Path,
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    device: torch.device,
) -> dict[str, Any]:
    """Restores what :func:`save_checkpoint` wrote; returns the saved ``meta``.

    Optimizer states load with ``weights_only=True``: no code from the file runs.
    """
    if not (folder / "state.json").exists():
        raise VqclipError(f"nothing to resume: {folder}/state.json does not exist")
    meta: dict[str, Any] = json.loads((folder / "state.json").read_text())
    try:
        for name, model in models.items():
            model.load_state_dict(load_file(folder / f"{name}.safetensors", device=str(device)))
        for name, opt in optimizers.items():
            state = torch.load(folder / f"{name}.pt", weights_only=True, map_location=device)
            opt.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise VqclipError(f"cannot resume from {folder}: {first}") from None
    return meta
