"""Averages the weights of CLIP model folders of one architecture (a "model soup").

Usage: python scripts/average_clip.py --out DIR MODEL_DIR MODEL_DIR [...]

Each MODEL_DIR holds ``open_clip_model.safetensors`` and ``open_clip_config.json`` (what
``vqclip train-clip`` writes under ``OUT/model``); DIR gets the parameter-wise mean of
the weights, in the first folder's dtypes, and the first folder's config, so any
``--clip`` option loads it. Used for the averaged critic of the README's "Further
continuations" (the critic shipped then and its 80-minute continuation).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from vqclip.io import atomic_open

WEIGHTS, CONFIG = "open_clip_model.safetensors", "open_clip_config.json"


def average(folders: list[Path]) -> dict[str, torch.Tensor]:
    states = []
    for folder in folders:
        if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
            raise SystemExit(f"error: {folder} has no {WEIGHTS} and {CONFIG}; pass model folders")
        states.append(load_file(folder / WEIGHTS))
    config = json.loads((folders[0] / CONFIG).read_text())
    first = states[0]
    for folder, state in zip(folders[1:], states[1:], strict=True):
        if json.loads((folder / CONFIG).read_text()) != config or state.keys() != first.keys():
            raise SystemExit(f"error: {folder} is not the architecture of {folders[0]}")
    return {k: (sum(s[k].double() for s in states) / len(states)).to(first[k].dtype) for k in first}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="model folders (two or more)")
    p.add_argument("--out", type=Path, required=True, help="the averaged model's folder")
    a = p.parse_args()
    if len(a.models) < 2:
        raise SystemExit("error: give two or more model folders to average")
    from safetensors.torch import save

    state = average(a.models)
    a.out.mkdir(parents=True, exist_ok=True)
    with atomic_open(a.out / WEIGHTS, "wb") as f:
        f.write(save(state))
    shutil.copyfile(a.models[0] / CONFIG, a.out / CONFIG)
    print(f"{len(a.models)} models averaged into {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
