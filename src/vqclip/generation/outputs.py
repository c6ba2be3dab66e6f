"""Generation outputs: PNGs that carry their own settings, frames and videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from vqclip import __version__
from vqclip.errors import VqclipError
from vqclip.generation.settings import GenerateSettings
from vqclip.io import save_image

CHUNK = "vqclip"


def save_result_png(
    image: Image.Image, path: Path, settings: GenerateSettings, **extra: Any
) -> None:
    """Writes the PNG atomically with a ``vqclip`` text chunk holding every setting."""
    info = PngImagePlugin.PngInfo()
    meta = {"vqclip_version": __version__, "settings": settings.to_json(), **extra}
    info.add_text(CHUNK, json.dumps(meta, sort_keys=True))
    save_image(image, path, pnginfo=info)


def read_settings(path: Path) -> GenerateSettings:
    """The settings saved in a PNG written by :func:`save_result_png`, type-checked.

    Raises:
        VqclipError: missing file, not a PNG, no vqclip settings in it, or a setting of
            the wrong type (named in the message).
    """
    meta = read_meta(path)
    if "settings" not in meta:
        raise VqclipError(f"{path}: its vqclip chunk holds no settings")
    try:
        return GenerateSettings.from_json(meta["settings"])
    except VqclipError as e:
        raise VqclipError(f"{path}: {e}") from None


def read_meta(path: Path) -> dict[str, Any]:
    """The whole ``vqclip`` chunk of a PNG (settings, version, device).

    Raises:
        VqclipError: missing file, not a PNG, or no readable vqclip chunk in it.
    """
    try:
        with Image.open(path) as im:
            text = im.info.get(CHUNK) if isinstance(im, PngImagePlugin.PngImageFile) else None
    except FileNotFoundError:
        raise VqclipError(f"image not found: {path}") from None
    except OSError as e:
        raise VqclipError(f"cannot read {path}: {e}") from None
    if text is None:
        raise VqclipError(f"{path} holds no vqclip settings (was it made by vqclip generate?)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise VqclipError(f"{path}: unreadable vqclip settings ({e})") from None
    if not isinstance(meta, dict):
        raise VqclipError(f"{path}: its vqclip chunk is not a JSON object")
    return meta


class VideoWriter:
    """Collects frames and writes an MP4 with imageio's ffmpeg (``pip install vqclip[video]``)."""

    def __init__(self, path: Path, fps: int = 15) -> None:
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise VqclipError(
                "--video needs imageio and imageio-ffmpeg: pip install 'vqclip[video]'"
            ) from None
        self.path, self.fps, self._imageio = path, fps, imageio
        self.frames: list[Any] = []

    def add(self, image: Image.Image) -> None:
        import numpy as np

        self.frames.append(np.asarray(image.convert("RGB")))

    def close(self) -> None:
        if not self.frames:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp{self.path.suffix}")
        try:
            self._imageio.mimwrite(tmp, self.frames, fps=self.fps, macro_block_size=1)
            tmp.replace(self.path)
        except Exception as e:
            tmp.unlink(missing_ok=True)
            raise VqclipError(f"cannot write video {self.path}: {e}") from None
