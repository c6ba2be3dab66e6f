"""Where generation falls short: CLIP scores of real renders against generated images.

For ShapesEval prompts with a source scene (single, position, pair, count), prints the
mean CLIP similarity to the prompt of (a) a clean render of the scene, (b) its VQGAN
reconstruction (the best the generator could do by copying it), (c) the image the
generator makes with the defaults, and how often (c) scores above (a); and (d) what the
defaults make when started from the render itself (``init_image``): its CLIP score and
how many of (a), (d) and (c) the judge passes. Then, for
eval scenes, how often the judge rejects a spoiled render (stray specks or a
formless blob, see vqclip.shapes.spoil) and how far its CLIP score falls below the
clean one's.

    python benchmarks/clip_gap.py --n 10 [--clip shapes] [--spoiled 500]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch

from vqclip.clip.load import load_clip
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_with_scenes
from vqclip.generation.generator import generate
from vqclip.generation.settings import GenerateSettings
from vqclip.shapes import judge, parse_prompt, render, sample_scene, split_seed
from vqclip.shapes.data import to_tensor
from vqclip.shapes.spoil import spoil
from vqclip.vqgan.load import load_vqgan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10, help="prompts per category")
    p.add_argument("--clip", default="shapes", help="the CLIP to score and generate with")
    p.add_argument("--spoiled", type=int, default=500, help="eval scenes for the spoil margin")
    args = p.parse_args()
    clip, vq = load_clip(args.clip), load_vqgan("shapes")
    k = 0
    tmp = Path(tempfile.mkdtemp(prefix="clip_gap_"))
    for category in CATEGORIES[:4]:
        clean, recon, made, above = [], [], [], 0
        seeded, passes = [], {"clean": 0, "from_render": 0, "generated": 0}
        for text, scene in prompts_with_scenes(category, args.n):
            assert scene is not None
            prompt = parse_prompt(text)
            render(scene).save(tmp / "render.png")
            passes["clean"] += judge(render(scene), prompt).passed
            with torch.no_grad():
                t = clip.encode_texts([text])[0]
                x = to_tensor(render(scene))[None]
                r = ((vq.decode(vq.encode(x * 2 - 1)[0]) + 1) / 2).clamp(0, 1)
                clean.append(float(clip.encode_pixels(x)[0] @ t))
                recon.append(float(clip.encode_pixels(r)[0] @ t))
            settings = GenerateSettings(prompts=text, clip=(args.clip,), seed=k)
            result = generate(settings, clips=[clip], vqgan=vq)
            made.append(result.scores[0])
            passes["generated"] += judge(result.image, prompt).passed
            above += made[-1] > clean[-1]
            from_render = generate(
                GenerateSettings(prompts=text, clip=(args.clip,), seed=k,
                                 init_image=str(tmp / "render.png")),
                clips=[clip], vqgan=vq,
            )  # fmt: skip
            seeded.append(from_render.scores[0])
            passes["from_render"] += judge(from_render.image, prompt).passed
            k += 1
        n = len(clean)
        row = {"category": category, "n": n, "clean": sum(clean) / n, "vqgan": sum(recon) / n,
               "generated": sum(made) / n, "generated_above_clean": above,
               "from_render": sum(seeded) / n, "judge_passes": passes}  # fmt: skip
        print(
            json.dumps({key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()})
        )
    margins, rejected = [], 0
    for i in range(args.spoiled):
        seed = split_seed("eval", i)
        scene = sample_scene(seed)
        spoiled = spoil(scene, random.Random(seed))
        rejected += not judge(spoiled, scene).passed
        with torch.no_grad():
            t = clip.encode_texts([scene.captions[0]])[0]
            a, b = clip.encode_images([render(scene), spoiled])
        margins.append(float(a @ t - b @ t))
    summary = {
        "spoiled_scenes": len(margins),
        "judge_rejects": rejected,
        "mean_clip_margin": round(sum(margins) / len(margins), 3),
        "spoiled_scores_higher": sum(m < 0 for m in margins),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
