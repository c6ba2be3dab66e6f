"""Image and file input/output: images in and out of tensors, and atomic writes (a file is
either complete or absent, never half-written)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

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


def ensure_writable(path: Path, flag: str = "--out") -> Path:
    """Checks, before any work, that a file can be written at ``path``.

    The folder is created if needed and a probe file is made in it (and removed), so a
    read-only file system, a missing permission or a folder in the way is found at once,
    not after a long run.
    """
    path = Path(path)
    if path.is_dir():
        raise VqclipError(f"{flag} {path} is a folder; give a file name")
    ensure_dir(path.parent if str(path.parent) else Path("."))
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as e:
        raise VqclipError(f"{flag} {path} cannot be written: {e.strerror}") from None
    os.close(fd)
    os.unlink(probe)
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


def load_image(path: Path) -> Image.Image:
    """Opens an image as RGB, or raises a one-line error naming the file."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise VqclipError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise VqclipError(f"cannot read image {path}: {e}") from None


def to_tensor(image: Image.Image) -> torch.Tensor:
    """Returns an RGB image as a float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_image(x: torch.Tensor) -> Image.Image:
    """A (3, H, W) tensor in [0, 1] as an RGB image (rounded to 8 bits)."""
    arr = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr))


def save_safetensors(module: torch.nn.Module, path: Path, half: bool = False) -> None:
    """Writes a module's state dict as safetensors, atomically (``half``: floats as fp16)."""
    from safetensors.torch import save

    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in module.state_dict().items()
    }
    with atomic_open(path, "wb") as f:
        f.write(save(state))
