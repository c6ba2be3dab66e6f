"""Prompt syntax: ``text:weight:stop`` separated by ``|``; story scenes separated by ``^``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vqclip.errors import VqclipError


@dataclass(frozen=True)
class Prompt:
    """One text prompt: pull towards it with ``weight`` (negative pushes away) until its
    loss falls below ``stop``."""

    text: str
    weight: float = 1.0
    stop: float = -math.inf


def _number(text: str, what: str, prompt: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise VqclipError(
            f"bad {what} {text!r} in prompt {prompt!r}: "
            "write 'text:weight:stop', e.g. 'a red circle:1.5'"
        ) from None
    if math.isnan(value):
        raise VqclipError(f"bad {what} in prompt {prompt!r}: NaN")
    return value


def parse_prompt(spec: str) -> Prompt:
    """Parses ``text[:weight[:stop]]`` (weight defaults to 1, stop to −∞)."""
    parts = spec.strip().rsplit(":", 2)
    text = parts[0].strip()
    if not text:
        raise VqclipError(f"empty prompt text in {spec!r}")
    weight = _number(parts[1], "weight", spec) if len(parts) > 1 else 1.0
    stop = _number(parts[2], "stop", spec) if len(parts) > 2 else -math.inf
    return Prompt(text, weight, stop)


def parse_story(spec: str) -> list[list[Prompt]]:
    """Parses ``a|b^c|d``: scenes separated by ``^``, prompts within a scene by ``|``.

    Raises:
        VqclipError: an empty scene or prompt, or a malformed weight or stop.
    """
    if not spec.strip():
        raise VqclipError('empty prompt; e.g. vqclip generate "a red circle"')
    scenes = []
    for scene in spec.split("^"):
        prompts = [parse_prompt(p) for p in scene.split("|")]
        scenes.append(prompts)
    return scenes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_image_prompt(spec: str) -> tuple[str, float, float]:
    """``PATH[:weight[:stop]]`` for image prompts, as the reference splits them.

    Trailing ``:number`` parts are the weight and stop; anything before them is the path
    (so a Windows drive letter or a colon inside a file name stays in the path).
    """
    parts = spec.split(":")
    numbers: list[float] = []
    while len(parts) > 1 and len(numbers) < 2 and _is_number(parts[-1]):
        numbers.insert(0, _number(parts.pop(), "weight or stop", spec))
    weight = numbers[0] if numbers else 1.0
    stop = numbers[1] if len(numbers) > 1 else -math.inf
    return ":".join(parts), weight, stop


def parse_noise_prompt(spec: str) -> tuple[int, float]:
    """``SEED:WEIGHT`` for noise prompts."""
    seed, sep, weight = spec.partition(":")
    try:
        return int(seed), float(weight) if sep else 1.0
    except ValueError:
        raise VqclipError(f"bad noise prompt {spec!r}: write SEED:WEIGHT, e.g. 3:0.5") from None
