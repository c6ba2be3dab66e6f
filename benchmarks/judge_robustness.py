"""The judge's pass rate on rendered eval scenes after noise, JPEG and blur.

python benchmarks/judge_robustness.py [--n 3000] [--size 64]
"""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
from PIL import Image, ImageFilter

from vqclip.errors import run_script
from vqclip.shapes import judge, render, sample_scene, split_seed


def _noise(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(im, dtype=np.float32) / 255.0 + rng.normal(0.0, 0.05, (im.height, im.width, 3))
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))


def _jpeg(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=75)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _blur(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(radius=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    scenes = [sample_scene(split_seed("eval", i)) for i in range(args.n)]
    out = {"scenes": args.n, "size": args.size}
    for name, degrade in (("clean", None), ("noise_0.05", _noise), ("jpeg_75", _jpeg),
                          ("blur_1", _blur)):  # fmt: skip
        passed = 0
        for s in scenes:
            im = render(s, args.size)
            passed += judge(degrade(im, rng) if degrade else im, s).passed
        out[name] = passed / args.n
    print(json.dumps(out))


if __name__ == "__main__":
    run_script(main)
