"""Devices and precision: where models and the loop run, and the autocast they run under."""

from __future__ import annotations

import os

import torch

from vqclip.errors import VqclipError


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or (0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` is this process's GPU when there is one, else the CPU.

    Raises:
        VqclipError: an unknown device, or a GPU asked for where none is visible.
    """
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise VqclipError(f"unknown device {spec!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VqclipError(f"--device {spec} asked for, but no GPU is visible; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VqclipError(
                f"--device {spec}: only {torch.cuda.device_count()} GPU(s) are visible"
            )
    return device


def bf16_autocast(device: torch.device, allow_fp16: bool = False) -> torch.autocast:
    """bf16 autocast on a GPU that supports it; a no-op elsewhere.

    With ``allow_fp16`` (inference only: training in fp16 would need loss scaling),
    a GPU without bf16 runs under fp16 autocast instead.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cuda", dtype=torch.float16, enabled=allow_fp16)
    return torch.autocast(device.type, enabled=False)


def inference_autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """CLIP's autocast for inference and generation: ``auto``, ``fp32``, ``bf16`` or ``fp16``.

    On the CPU ``auto``, ``fp32`` and ``fp16`` run in float32 (autocast off) and ``bf16``
    runs under the CPU's bf16 autocast (faster where the CPU has bf16 instructions, and no
    longer bitwise equal to float32).
    """
    if device.type != "cuda" or precision == "fp32":
        cpu_bf16 = device.type == "cpu" and precision == "bf16"
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cpu_bf16)
    if precision == "auto":
        return bf16_autocast(device, allow_fp16=True)
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
