"""vqclip: text to pictures with VQGAN+CLIP, and CLIP itself, offline by default."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from vqclip.errors import VqclipError


def generate(*args: Any, **kwargs: Any) -> Any:
    """``vqclip.generate(settings, ...)``: see :func:`vqclip.generation.generator.generate`."""
    from vqclip.generation.generator import generate as _generate

    return _generate(*args, **kwargs)


__all__ = ["VqclipError", "__version__", "generate"]
