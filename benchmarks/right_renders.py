"""How far the critic's scores spread over right pictures of a caption; where the loop falls.

A caption leaves much open (a single object's cell and size, the background, the cells
of a pair or a count, every jitter), so the scene's render that ``benchmarks/clip_gap.py``
compares the loop's picture with is one right picture of many. For the ShapesEval
prompts with a source scene (single, position, pair, count), this scores the scene's
render and ``--truths`` other right renders of its caption
(:func:`vqclip.shapes.sampler.resample_truth`; each passes the judge), and the picture
the generator's defaults make with clip_gap's seeds, and prints per category: the mean
spread (best minus worst right render), how often the scene's render is not the best
right picture, and how often the loop's picture scores above the scene's render (clip_gap's
count), above the mean right render, and above the best one. A loop picture above the
scene's render but below the best right render is a right-picture preference of the
critic, not a picture no right one beats.

    python benchmarks/right_renders.py --n 10 [--clip shapes] [--truths 16]
"""

from __future__ import annotations

import argparse
import json
import random

import torch

from vqclip.clip.load import load_clip
from vqclip.errors import run_script
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_with_scenes
from vqclip.generation.generator import generate
from vqclip.generation.settings import GenerateSettings
from vqclip.io import to_tensor
from vqclip.shapes import judge, parse_prompt, render
from vqclip.shapes.sampler import resample_truth
from vqclip.vqgan.load import load_vqgan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10, help="prompts per category")
    p.add_argument("--clip", default="shapes", help="the CLIP to score and generate with")
    p.add_argument("--truths", type=int, default=16, help="other right renders per prompt")
    args = p.parse_args()
    clip, vq = load_clip(args.clip), load_vqgan("shapes")
    k = 0  # the loop's seed, counted over the categories as benchmarks/clip_gap.py does
    for category in CATEGORIES[:4]:
        spread, not_best, above_scene, above_mean, above_best = [], 0, 0, 0, 0
        for text, scene in prompts_with_scenes(category, args.n):
            assert scene is not None
            prompt, rng = parse_prompt(text), random.Random(k)
            others = [render(resample_truth(scene, text, rng)) for _ in range(args.truths)]
            assert all(judge(o, prompt).passed for o in others)
            with torch.no_grad():
                t = clip.encode_texts([text])[0]
                x = torch.stack([to_tensor(im) for im in [render(scene), *others]])
                scores = (clip.encode_pixels(x) @ t).tolist()
            made = generate(GenerateSettings(prompts=text, clip=(args.clip,), seed=k),
                            clips=[clip], vqgan=vq).scores[0]  # fmt: skip
            own, best = scores[0], max(scores)
            spread.append(best - min(scores))
            not_best += own < best
            above_scene += made > own
            above_mean += made > sum(scores) / len(scores)
            above_best += made > best
            k += 1
        row = {"category": category, "n": len(spread), "truths": args.truths,
               "mean_spread": round(sum(spread) / len(spread), 3),
               "scene_render_not_best": not_best, "loop_above_scene_render": above_scene,
               "loop_above_mean_right_render": above_mean,
               "loop_above_best_right_render": above_best}  # fmt: skip
        print(json.dumps(row))


if __name__ == "__main__":
    run_script(main)
