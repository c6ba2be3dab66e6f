"""Atomic file output: a file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from PIL import Image

from vqclip.errors import VqclipError


def ensure_dir(path: Path) -> Path:
    """Creates ``path`` (and parents) or raises a one-line error saying why it can't."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VqclipError(
            f"cannot create folder {path}: {e.strerror}; choose another --out"
        ) from None
    if not os.access(path, os.W_OK):
        raise VqclipError(f"folder {path} is not writable; choose another --out")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """Opens a temporary file beside ``path`` and renames it over ``path`` on success.

    On any exception (Ctrl-C included) the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise VqclipError(
            f"cannot write {path}: {e.strerror}; choose another output path"
        ) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        with os.fdopen(fd, mode, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_image(image: Image.Image, path: Path | str, **params: object) -> None:
    """Saves an image atomically; the format follows the suffix (PNG by default)."""
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower(), "PNG")
    with atomic_open(path, "wb") as f:
        image.save(f, format=fmt, **params)
