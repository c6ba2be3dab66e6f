"""vqclip: text to pictures with VQGAN+CLIP, and CLIP itself, offline by default."""

from __future__ import annotations

__version__ = "0.1.0"

from vqclip.errors import VqclipError

__all__ = ["VqclipError", "__version__"]
