"""Batch generation: a prompts file × seeds, shared among torchrun's processes, resumable.

Items are (prompt line, seed) pairs in file order. Each process (rank) takes every
``world``-th item, generates it with the models it loaded once, writes its PNG atomically
and appends one JSON line to its own manifest (``manifest.rank{r}.jsonl``; a single
process writes ``manifest.jsonl`` directly). At the end rank 0 merges the ranks'
manifests into ``manifest.jsonl`` in item order. ``resume`` skips items that a manifest
lists and whose PNG exists, and makes the rest again from the start: an item is made in
one go, so a half-made one is simply redone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vqclip.errors import VqclipError
from vqclip.generation.settings import GenerateSettings

log = logging.getLogger(__name__)
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Item:
    """One picture to make: the prompt of line ``line`` of the file, with ``seed``."""

    index: int  # position in the batch (prompt-major, then seed)
    line: int
    prompt: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.index:05d}"

    @property
    def file(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.prompt.lower()).strip("-")[:40] or "prompt"
        return f"{self.index:05d}_{slug}_s{self.seed}.png"


def read_prompts_file(path: Path) -> list[tuple[int, str]]:
    """``(line number, prompt)`` for each prompt of a file: one per line, ``#`` comments.

    Every line is parsed with the prompt syntax first, so a malformed line is named
    (file and line) before anything is made.

    Raises:
        VqclipError: the file is missing or unreadable, empty, or a line is malformed.
    """
    from vqclip.generation.prompts import parse_story

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VqclipError(f"prompts file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VqclipError(f"cannot read prompts file {path}: {e}") from None
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parse_story(line)
        except VqclipError as e:
            raise VqclipError(f"{path}:{number}: {e}") from None
        out.append((number, line))
    if not out:
        raise VqclipError(f"{path} holds no prompts (one per line; # starts a comment)")
    return out


def parse_seeds(text: str) -> list[int]:
    """``0-3`` -> [0, 1, 2, 3]; also ``5``, ``0,7,9`` and ``0-3,10``.

    Raises:
        VqclipError: not a list of non-negative integers and ranges.
    """
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise VqclipError(f"--seeds {text!r}: use seeds and ranges such as 0-3 or 0,5,7")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        seeds.extend(range(lo, hi + 1))
    return list(dict.fromkeys(seeds))


def make_items(prompts: list[tuple[int, str]], seeds: list[int]) -> list[Item]:
    pairs = [(line, prompt, seed) for line, prompt in prompts for seed in seeds]
    return [Item(k, line, prompt, seed) for k, (line, prompt, seed) in enumerate(pairs)]


def _records(folder: Path) -> Iterator[dict[str, Any]]:
    """Every record of the folder's manifests (the merged one and the ranks')."""
    for path in sorted(folder.glob("manifest*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash: that item is redone
                log.warning("%s:%d is incomplete; its item will be made again", path, number)
                continue
            if isinstance(record, dict) and "id" in record:
                yield record


def finished(folder: Path) -> dict[str, dict[str, Any]]:
    """Records of the items that are done: in a manifest, with their PNG on disk."""
    return {r["id"]: r for r in _records(folder) if (folder / str(r.get("file", ""))).is_file()}


def _append(path: Path, record: dict[str, Any]) -> None:
    """Appends one JSON line and makes it durable (a crash leaves at most a cut-off line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def merge_manifests(folder: Path, items: list[Item]) -> Path:
    """Writes ``manifest.jsonl`` (atomically) with one record per finished item, in order."""
    from vqclip.io import atomic_open

    done = finished(folder)
    order = {it.id: it.index for it in items}
    records = sorted(done.values(), key=lambda r: order.get(r["id"], len(order)))
    with atomic_open(folder / MANIFEST) as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    for part in folder.glob("manifest.rank*.jsonl"):
        part.unlink()
    return folder / MANIFEST


def check_out_dir(out_dir: Path, resume: bool) -> dict[str, dict[str, Any]]:
    """The folder's finished items; without ``resume`` a folder holding some is refused."""
    from vqclip.io import ensure_dir

    ensure_dir(out_dir)
    done = finished(out_dir)
    if done and not resume:
        raise VqclipError(
            f"--out-dir {out_dir} already holds a batch ({len(done)} items in its manifest); "
            "add --resume to continue it or choose another --out-dir"
        )
    return done


def run_batch(
    items: list[Item],
    base: GenerateSettings,
    out_dir: Path,
    *,
    resume: bool = False,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
    models: Callable[[GenerateSettings], tuple[list[Any], Any]] | None = None,
    done: dict[str, dict[str, Any]] | None = None,
) -> dict[str, int]:
    """Makes this rank's share of ``items`` into ``out_dir``.

    Args:
        items: the whole batch (every rank gets the same list).
        base: the settings of every item (its prompt and seed are replaced per item).
        out_dir: where the PNGs and manifests go.
        resume: skip items already finished; without it a folder that holds a manifest is
            refused.
        rank, world: this process's share is ``items[rank::world]``.
        progress: a progress bar over this rank's items.
        models: loads ``(clips, vqgan)`` once (default: from the settings).
        done: the finished items, as :func:`check_out_dir` found them before any rank
            started (default: looked up now).

    Returns:
        ``{"made", "skipped", "total"}`` for this rank.
    """
    from tqdm import tqdm

    from vqclip.generation.generator import generate
    from vqclip.generation.outputs import save_result_png

    done = check_out_dir(out_dir, resume) if done is None else done
    mine = items[rank::world]
    # an item is done when its record names the same file (same prompt and seed)
    todo = [it for it in mine if done.get(it.id, {}).get("file") != it.file]
    if not todo:
        return {"made": 0, "skipped": len(mine), "total": len(mine)}
    clips, vq = (models or load_models)(base)
    manifest = out_dir / (MANIFEST if world == 1 else f"manifest.rank{rank}.jsonl")
    bar = tqdm(todo, desc=f"batch (rank {rank})" if world > 1 else "batch",
               disable=not progress)  # fmt: skip
    made = 0
    for it in bar:
        s = replace(base, prompts=it.prompt, seed=it.seed)
        t0 = time.perf_counter()
        result = generate(s, clips=clips, vqgan=vq)
        if result.interrupted:  # Ctrl-C: what is finished stays; this item is redone later
            raise KeyboardInterrupt
        save_result_png(result.image, out_dir / it.file, result.settings, device=result.device)
        _append(manifest, {
            "id": it.id, "file": it.file, "prompt": it.prompt, "line": it.line,
            "seed": it.seed, "seconds": round(time.perf_counter() - t0, 3),
            "score": round(max(result.scores), 5), "loss": round(result.losses[-1], 5),
            "device": result.device, "rank": rank,
        })  # fmt: skip
        made += 1
    return {"made": made, "skipped": len(mine) - len(todo), "total": len(mine)}


def load_models(s: GenerateSettings) -> tuple[list[Any], Any]:
    """The settings' CLIPs and VQGAN, loaded once for many generations."""
    from vqclip.clip.load import load_clip
    from vqclip.vqgan.load import load_vqgan

    clips = [load_clip(spec) for spec in s.clip]
    return clips, load_vqgan(s.vqgan, config=s.vqgan_config, checkpoint=s.vqgan_checkpoint)
