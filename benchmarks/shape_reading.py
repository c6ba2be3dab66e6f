"""Does the critic see the shapes the loop draws? Its shape reading against the judge's.

For the first ``--n`` ShapesEval prompts of each one-object category (the seeds
``eval-generate --per-category N`` gives them), generates with the defaults and asks
two readers which shape the picture shows: the judge (the graded table's shape part:
the named object in its template shape) and the critic (zero-shot: the prompt with its
shape word replaced by each of the six shapes, nearest text to the whole picture). A
critic that names the prompt's shape where the judge sees another one cannot lead the
loop to the right shape, whatever its score. Then, for eval scenes, how often the judge
rejects a near miss (one object squashed and rounded, ``vqclip.shapes.spoil.near_miss``)
and the critic's margin between the clean render and it, as clip_gap.py prints them
for spoiled renders.

    python benchmarks/shape_reading.py --n 40 [--clip shapes] [--categories single,held-out]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import torch

from vqclip.clip.load import load_clip
from vqclip.errors import run_script
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_for
from vqclip.generation.generator import generate
from vqclip.generation.settings import GenerateSettings
from vqclip.shapes import parse_prompt
from vqclip.shapes.grade import grade
from vqclip.shapes.scene import SHAPES
from vqclip.shapes.spoil import near_miss
from vqclip.vqgan.load import load_vqgan

sys.path.insert(0, str(Path(__file__).parent))
from clip_gap import render_margins

ONE_OBJECT = ("single", "position", "held-out")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40, help="prompts per category")
    p.add_argument("--clip", default="shapes", help="the critic to generate and read with")
    p.add_argument("--categories", default="single,held-out", help=", ".join(ONE_OBJECT))
    p.add_argument("--near", type=int, default=500, help="eval scenes for the near-miss margin")
    args = p.parse_args()
    cats = args.categories.split(",")
    if bad := [c for c in cats if c not in ONE_OBJECT]:
        p.error(f"unknown or multi-object category {bad[0]!r}; choose from {', '.join(ONE_OBJECT)}")
    clip, vq = load_clip(args.clip), load_vqgan("shapes")
    for category in cats:
        base = CATEGORIES.index(category) * args.n  # eval-generate's seeds at this --n
        tally: Counter[str] = Counter()
        for j, text in enumerate(prompts_for(category, args.n)):
            settings = GenerateSettings(prompts=text, clip=(args.clip,), seed=base + j)
            image = generate(settings, clips=[clip], vqgan=vq).image
            prompt = parse_prompt(text)
            asked = str(prompt.objects[0].shape)
            judge_right = bool(grade(image, prompt).attributes["shape"])
            with torch.no_grad():
                texts = clip.encode_texts([text.replace(asked, s) for s in SHAPES])
                reading = SHAPES[int((clip.encode_images([image]) @ texts.T)[0].argmax())]
            critic_right = reading == asked
            tally["judge_right"] += judge_right
            tally["critic_names_asked"] += critic_right
            tally["critic_names_asked_where_judge_rejects"] += critic_right and not judge_right
            tally["judge_rejects"] += not judge_right
        print(json.dumps({"category": category, "n": args.n, **tally}))
    near = lambda scene, seed: near_miss(scene, random.Random(seed + 1))  # noqa: E731
    render_margins(args.near, clip, near, "near_miss", digits=4)


if __name__ == "__main__":
    run_script(main)
