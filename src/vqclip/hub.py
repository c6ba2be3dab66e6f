"""Downloads into ``$VQCLIP_HOME`` (default ``~/.cache/vqclip``): once, resumable, verified.

A download streams into ``<file>.part`` and is renamed to ``<file>`` only when its
length matches what the server announced (and its SHA-256, where known). So a file
at the final path is always complete; an interrupted one resumes from the ``.part``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from vqclip.errors import VqclipError

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


def home() -> Path:
    """``$VQCLIP_HOME``, or ``~/.cache/vqclip``."""
    return Path(os.environ.get("VQCLIP_HOME", Path.home() / ".cache" / "vqclip"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def fetch(
    url: str, relpath: str, sha256: str | None = None, download: bool = True, timeout: float = 30
) -> Path:
    """Returns the cached file for ``url``, downloading it first if needed.

    Args:
        url: where the file lives.
        relpath: its path under :func:`home`.
        sha256: the expected digest, where known.
        download: if False, a missing file is an error instead of a download.
        timeout: seconds to wait for the server.

    Raises:
        VqclipError: not cached and not downloadable (the message gives the URL and
            the exact path to put the file at), or a download that fails its checks.
    """
    path = home() / relpath
    if path.is_file():
        return path
    hint = f"download {url} and put it at {path}"
    if not download:
        raise VqclipError(f"{path.name} is not cached; {hint}")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # server ignored the range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with (
                part.open("ab" if have else "wb") as f,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=path.name) as bar,
            ):
                while block := response.read(_CHUNK):
                    f.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise VqclipError(f"cannot download {path.name} ({reason}); {hint}") from None
    got = part.stat().st_size
    if total is not None and got != total:
        raise VqclipError(
            f"download of {path.name} stopped at {got} of {total} bytes; run again to resume"
        )
    if sha256 is not None and sha256_of(part) != sha256:
        part.unlink()
        raise VqclipError(f"{path.name} failed its SHA-256 check and was removed; {hint}")
    os.replace(part, path)
    log.info("downloaded %s", path)
    return path
