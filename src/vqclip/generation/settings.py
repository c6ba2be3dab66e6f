"""Generation settings: one frozen dataclass, the single source of truth for every front door.

Each field carries its help text and, where it has them, its choices; the CLI's flags
(and any other front end) are generated from the fields, so none of them can disagree
about names, defaults or checks. Resolution order: defaults ← preset ← what the user
gave (:meth:`GenerateSettings.resolve`). All checks live in :meth:`validate` (ranges,
choices, counts) and :meth:`from_json` (types), and each names the setting it rejects.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from vqclip.errors import VqclipError

OPTIMIZERS = ("adam", "adamw", "adamax", "diffgrad", "sgd", "radam", "nadam", "adagrad", "rmsprop")
SCHEDULES = ("constant", "cosine", "linear")
INIT_NOISE = ("codes", "pixels", "gradient", "plain", "background")
CUT_METHODS = ("crops", "pooled")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUGMENTS = (
    "flip", "affine", "perspective", "color", "noise", "erase",  # vqclip's own, batched
    "rotate", "shear", "sharpness", "jitter", "resized_crop", "elastic", "thin_plate",
)  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {
    "shapes": {},
    # nerdyrodent generate.py's defaults on its usual models: ViT-B/32 + imagenet f16 16384,
    # Adam lr 0.1, 32 pooled cutouts with its default augments (Af, Pe, Ji, Er) at p=0.7,
    # then its always-on noise.
    "imagenet": {
        "clip": ("ViT-B-32:openai",),
        "vqgan": "imagenet_f16_16384",
        "size": (256, 256),
        "cutn": 32,
        "cut_pow": 1.0,
        "cut_min": 0.25,
        "cut_method": "pooled",
        "augments": ("affine", "perspective", "jitter", "erase", "noise"),
        "augment_p": 0.7,
        "lr": 0.1,
        "iterations": 300,
        "init_noise": "codes",
        "prune": None,
        "object_weight": 0.0,
    },
}
# the affine warp's default ranges: rotation (degrees), zoom and shift (shares of the side)
DEFAULT_WARP = (10.0, 0.05, 0.08)
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class SettingError(VqclipError):
    """A setting with a bad value. ``str()`` names the setting; the CLI names its flag."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting, self.problem = setting, problem
        super().__init__(f"setting {setting!r} {problem}")


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class GenerateSettings:
    """Everything a generation depends on. The defaults use the embedded models on the CPU."""

    prompts: str = _f("", "text prompts 'text:weight:stop | ...'; '^' separates story scenes")
    image_prompts: tuple[str, ...] = _f((), "image prompt PATH[:weight[:stop]]; repeat for more")
    noise_prompts: tuple[str, ...] = _f((), "noise prompt SEED:WEIGHT; repeat for more")
    clip: tuple[str, ...] = _f(("shapes",), "CLIP: shapes, ARCH:TAG, a folder or a file; repeat")
    clip_weights: tuple[float, ...] = _f((), "loss weight of each --clip (one per --clip)")
    vqgan: str = _f("shapes", "VQGAN: shapes, a registry name (vqclip models) or a folder")
    vqgan_config: str | None = _f(None, "a taming config .yaml (with --vqgan-checkpoint)")
    vqgan_checkpoint: str | None = _f(None, "a taming checkpoint .ckpt (with --vqgan-config)")
    size: tuple[int, int] | None = _f(None, "width and height in pixels")
    iterations: int = _f(60, "optimisation steps")
    lr: float = _f(0.2, "learning rate")
    optimizer: str = _f("adam", "optimiser of the latent", OPTIMIZERS)
    schedule: str = _f("constant", "learning-rate schedule", SCHEDULES)
    seed: int = _f(0, "random seed (bitwise reproducible on the CPU)")
    cutn: int = _f(8, "cutouts scored by CLIP per step")
    cut_method: str = _f("crops", "random crops, or the reference's pooled views", CUT_METHODS)
    cut_pow: float = _f(1.0, "crop size exponent (> 1 favours small crops)")
    cut_min: float = _f(
        1.0,
        "smallest crop side, as a share of the image side (1: whole-image views, "
        "the scale the embedded CLIP was trained at)",
    )
    augments: tuple[str, ...] = _f(("affine", "color", "noise"), "augmentations", AUGMENTS)
    augment_p: float = _f(1.0, "probability that each augmentation is applied to a view")
    warp_degrees: float = _f(DEFAULT_WARP[0], "affine warp: largest rotation of a view, in degrees")
    warp_scale: float = _f(
        DEFAULT_WARP[1], "affine warp: largest zoom in or out of a view (0.05: 0.95× to 1.05×)"
    )
    warp_shift: float = _f(
        DEFAULT_WARP[2], "affine warp: largest shift of a view, a share of its side (≤ 0.02 "
        "when a prompt states a place)"
    )  # fmt: skip
    prompt_aware: bool = _f(True, "no flips, shifts or small crops when a prompt states a place")
    init_image: str | None = _f(None, "start from this image")
    init_noise: str = _f(
        "background",
        "how the latent starts without --init-image (background: a flat canvas of the"
        " background the prompt names, white if none; codes: random codes, the reference's)",
        INIT_NOISE,
    )
    init_weight: float = _f(0.0, "pull of the latent towards its start")
    init_weight_decay: bool = _f(False, "let that pull fade out over the run")
    story_every: int = _f(0, "iterations per story scene (0: spread evenly)")
    tv_weight: float = _f(0.0, "total-variation penalty: smooths specks away")
    object_weight: float = _f(
        2.0,
        "weight of the object views: a Shapes prompt is laid out in cells and each object's "
        "cell, moved to the middle of a blank canvas, is scored against its own caption (0: off)",
    )
    object_zoom: float = _f(
        1.0,
        "how much each object view enlarges its cell (1: as drawn, a small object; 1.78 "
        "makes it a large one, as the grammar sizes them)",
    )
    pair_steps: float = _f(
        1.33,
        "a pair of the Shapes grammar, laid out in object views, runs this many times "
        "--iterations: two objects and their relation need more steps than one (1: off)",
    )
    prune: float | None = _f(
        0.03,
        "after the loop, set the edits CLIP does not need back to the start, while its "
        "score falls by no more than this in all (none: off)",
    )
    batch: int = _f(1, "candidates made at once; the best by CLIP score is kept")
    device: str = _f("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    precision: str = _f(
        "auto", "CLIP's autocast: auto = bf16 (else fp16) on CUDA, fp32 on the CPU; "
        "bf16 on the CPU is faster but not bitwise fp32", PRECISIONS
    )  # fmt: skip

    def validate(self) -> GenerateSettings:
        """Checks every value; returns self. Raises a one-line :class:`SettingError`."""
        positive_ints = ("iterations", "cutn", "batch")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        for name, meta in _metadata().items():
            choices = meta["choices"]
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            bad = [v for v in values if choices and v not in choices]
            if bad:
                raise SettingError(name, f"has unknown value {bad[0]!r}; choose from "
                                   f"{', '.join(choices)}")  # fmt: skip
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise SettingError("lr", f"must be > 0, got {self.lr}")
        for name in ("tv_weight", "init_weight", "object_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise SettingError(name, f"must be a number >= 0, got {getattr(self, name)}")
        if self.prune is not None and not (self.prune >= 0 and math.isfinite(self.prune)):
            raise SettingError("prune", f"must be >= 0 (or none), got {self.prune}")
        if not 1 <= self.pair_steps <= 10:
            raise SettingError("pair_steps", f"must be in [1, 10], got {self.pair_steps}")
        if not 1 <= self.object_zoom <= 3:
            raise SettingError("object_zoom", f"must be in [1, 3], got {self.object_zoom}")
        if not 0 < self.cut_min <= 1:
            raise SettingError("cut_min", f"must be in (0, 1], got {self.cut_min}")
        if not 0 <= self.augment_p <= 1:
            raise SettingError("augment_p", f"must be in [0, 1], got {self.augment_p}")
        if not 0 <= self.warp_degrees <= 180:
            raise SettingError("warp_degrees", f"must be in [0, 180], got {self.warp_degrees}")
        if not 0 <= self.warp_scale < 1:
            raise SettingError("warp_scale", f"must be in [0, 1), got {self.warp_scale}")
        if not 0 <= self.warp_shift <= 0.5:
            raise SettingError("warp_shift", f"must be in [0, 0.5], got {self.warp_shift}")
        if self.cut_pow <= 0:
            raise SettingError("cut_pow", f"must be > 0, got {self.cut_pow}")
        if self.seed < 0 or self.story_every < 0:
            raise SettingError("seed" if self.seed < 0 else "story_every", "must be >= 0")
        if self.size is not None and min(self.size) < 1:
            raise SettingError("size", f"must be positive, got {self.size}")
        if self.clip_weights and len(self.clip) > 1 and len(self.clip_weights) != len(self.clip):
            raise SettingError(
                "clip_weights", f"needs one weight per clip ({len(self.clip)}), "
                f"got {len(self.clip_weights)}",
            )  # fmt: skip
        if not self.clip:
            raise SettingError("clip", "needs at least one CLIP")
        if self.clip_weights and len(self.clip) == 1:
            raise SettingError(
                "clip_weights", "weigh several CLIPs against each other; with one CLIP, "
                "scale a prompt's weight ('text:2') instead",
            )  # fmt: skip
        if (self.vqgan_config is None) != (self.vqgan_checkpoint is None):
            raise SettingError("vqgan_config", "and vqgan_checkpoint go together; give both")
        if not _DEVICE.match(self.device):
            raise SettingError("device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if not (self.prompts.strip() or self.image_prompts or self.noise_prompts):
            raise VqclipError(
                'nothing to aim at: give a prompt, e.g. vqclip generate "a red circle"'
            )
        return self

    @property
    def warp(self) -> tuple[float, float, float]:
        """The affine warp's ranges, as :class:`~vqclip.generation.cutouts.Cutouts` takes them."""
        return (self.warp_degrees, self.warp_scale, self.warp_shift)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> GenerateSettings:
        """Settings from JSON (a PNG's chunk, a file, a form), each field type-checked.

        Raises:
            SettingError: an unknown setting, or a value of the wrong type.
        """
        if not isinstance(data, dict):
            raise VqclipError(f"settings must be a JSON object, got {type(data).__name__}")
        hints = _hints()
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise VqclipError(f"unknown setting {unknown[0]!r}; known: {', '.join(hints)}")
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})

    def resolve(self, preset: str | None, given: dict[str, Any]) -> GenerateSettings:
        """``self`` (the defaults) ← the preset's values ← the values the user gave."""
        if preset is not None and preset not in PRESETS:
            raise SettingError("preset", f"unknown {preset!r}; choose from {', '.join(PRESETS)}")
        return dataclasses.replace(self, **{**PRESETS[preset or "shapes"], **given})

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def _metadata() -> dict[str, dict[str, Any]]:
    return {f.name: dict(f.metadata) for f in dataclasses.fields(GenerateSettings)}


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(GenerateSettings)


def field_specs() -> list[tuple[str, Any, Any, str, tuple[str, ...] | None]]:
    """(name, type, default, help, choices) of every setting, in declaration order."""
    hints = _hints()
    return [
        (f.name, hints[f.name], f.default, f.metadata["help"], f.metadata["choices"])
        for f in dataclasses.fields(GenerateSettings)
    ]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the setting's type (lists become tuples), or a :class:`SettingError`."""
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise SettingError(name, f"must be true or false, got {_kind(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SettingError(name, f"must be an integer, got {_kind(value)} {value!r}"[:200])
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise SettingError(name, f"must be a finite number, got {value!r}")
            return float(value)
        raise SettingError(name, f"must be a number, got {_kind(value)} {value!r}"[:200])
    if hint is str:
        if isinstance(value, str):
            return value
        raise SettingError(name, f"must be a string, got {_kind(value)}")
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingError(name, f"must be a list, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(name, v, args[0]) for v in value)
        if len(value) != len(args):
            raise SettingError(name, f"must be a list of {len(args)}, got {len(value)} item(s)")
        return tuple(_coerce(name, v, a) for v, a in zip(value, args, strict=True))
    raise SettingError(name, f"has an unsupported type {hint}")  # pragma: no cover
