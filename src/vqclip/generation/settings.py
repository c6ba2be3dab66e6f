"""Generation settings: one frozen dataclass, saved beside every output."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from vqclip.errors import VqclipError

OPTIMIZERS = ("adam", "adamw", "sgd", "radam", "nadam", "adagrad", "rmsprop")
SCHEDULES = ("constant", "cosine", "linear")
INIT_NOISE = ("codes", "pixels", "gradient", "plain")
PRESETS: dict[str, dict[str, Any]] = {
    "shapes": {},
    "imagenet": {
        "clip": ("ViT-B-32:openai",),
        "vqgan": "imagenet_f16_16384",
        "size": (256, 256),
        "cutn": 32,
        "cut_pow": 1.0,
        "cut_min": 0.25,
        "augments": ("flip", "affine", "perspective", "noise"),
        "lr": 0.1,
        "iterations": 300,
    },
}


@dataclass(frozen=True)
class GenerateSettings:
    """Everything a generation depends on. The defaults use the embedded models."""

    prompts: str = ""
    image_prompts: tuple[str, ...] = ()
    noise_prompts: tuple[str, ...] = ()
    clip: tuple[str, ...] = ("shapes",)
    clip_weights: tuple[float, ...] = ()
    vqgan: str = "shapes"
    vqgan_config: str | None = None
    vqgan_checkpoint: str | None = None
    size: tuple[int, int] | None = None  # (width, height); None = the VQGAN's resolution
    iterations: int = 60
    lr: float = 0.2
    optimizer: str = "adam"
    schedule: str = "constant"
    seed: int = 0
    cutn: int = 8
    cut_pow: float = 1.0
    cut_min: float = 0.8
    augments: tuple[str, ...] = ("affine", "color", "noise")
    prompt_aware: bool = True
    init_image: str | None = None
    init_noise: str = "codes"
    init_weight: float = 0.0
    init_weight_decay: bool = False
    story_every: int = 0
    tv_weight: float = 0.0  # total-variation penalty: smooths specks away
    batch: int = 1

    def validate(self) -> GenerateSettings:
        """Checks every value; returns self. Raises a one-line :class:`VqclipError`."""
        if self.iterations < 1:
            raise VqclipError(f"--iterations must be at least 1, got {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise VqclipError(
                f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise VqclipError(
                f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}"
            )
        if self.init_noise not in INIT_NOISE:
            raise VqclipError(
                f"unknown --init-noise {self.init_noise!r}; choose from {', '.join(INIT_NOISE)}"
            )
        if self.batch < 1:
            raise VqclipError(f"--batch must be at least 1, got {self.batch}")
        if self.tv_weight < 0:
            raise VqclipError(f"--tv-weight must be >= 0, got {self.tv_weight}")
        if self.lr <= 0:
            raise VqclipError(f"--lr must be > 0, got {self.lr}")
        if self.clip_weights and len(self.clip_weights) != len(self.clip):
            raise VqclipError("give one --clip-weight per --clip")
        if not (self.prompts.strip() or self.image_prompts or self.noise_prompts):
            raise VqclipError(
                'nothing to aim at: give a prompt, e.g. vqclip generate "a red circle"'
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerateSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise VqclipError(f"unknown setting(s) {unknown}")
        fixed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fixed)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
