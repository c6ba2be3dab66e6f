"""What the loop does to a right picture: the defaults started from each scene's render.

For ShapesEval prompts with a source scene, renders the scene, runs ``vqclip generate``'s
defaults from it (``init_image``) and prints, per prompt, the critic's score of the
render and of the loop's picture, whether the judge passes the loop's picture, the mean
absolute pixel change and each picture's largest object (colour, shape, cell, area as a
share of the image); then how many pictures ended above their render. A picture that
stays right, changes by a few thousandths and scores higher is the critic's slope at
the render, which ``train-clip --stationary-weight`` flattens.

    python benchmarks/from_render.py [--clip shapes] [--category position] [--n 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from vqclip.clip.load import load_clip
from vqclip.errors import run_script
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_with_scenes
from vqclip.generation.generator import generate
from vqclip.generation.settings import GenerateSettings
from vqclip.io import to_tensor
from vqclip.shapes import judge, parse_prompt, render
from vqclip.shapes.judge import Analysis, analyse
from vqclip.vqgan.load import load_vqgan


def _largest(seen: Analysis) -> list[object]:
    if not seen.objects:
        return []
    o = seen.objects[0]
    return [o.color, o.shape, o.cell, round(float(o.area), 4)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="shapes", help="the CLIP to score and generate with")
    p.add_argument("--category", default="position", choices=CATEGORIES[:4])
    p.add_argument("--n", type=int, default=10, help="prompts")
    p.add_argument("--seed", type=int, default=10, help="the first prompt's seed")
    args = p.parse_args()
    clip, vq = load_clip(args.clip), load_vqgan("shapes")
    above = 0
    with tempfile.TemporaryDirectory(prefix="from_render_") as tmp:
        path = Path(tmp) / "render.png"
        for k, (text, scene) in enumerate(prompts_with_scenes(args.category, args.n)):
            assert scene is not None
            image = render(scene)
            image.save(path)
            settings = GenerateSettings(prompts=text, clip=(args.clip,), seed=args.seed + k,
                                        init_image=str(path))  # fmt: skip
            out = generate(settings, clips=[clip], vqgan=vq)
            with torch.no_grad():
                t = clip.encode_texts([text])[0]
                score = float(clip.encode_pixels(to_tensor(image)[None])[0] @ t)
            change = (to_tensor(out.image) - to_tensor(image)).abs().mean()
            above += out.scores[0] > score
            row = {"prompt": text, "render": round(score, 3), "loop": round(out.scores[0], 3),
                   "judged_right": judge(out.image, parse_prompt(text)).passed,
                   "pixel_change": round(float(change), 4),
                   "render_object": _largest(analyse(image)),
                   "loop_object": _largest(analyse(out.image))}  # fmt: skip
            print(json.dumps(row))
    print(json.dumps({"category": args.category, "n": args.n, "loop_above_render": above}))


if __name__ == "__main__":
    run_script(main)
