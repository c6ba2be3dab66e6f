"""Where generation falls short: CLIP scores of real renders against generated images.

For ShapesEval prompts with a source scene (single, position, pair, count), prints the
mean CLIP similarity to the prompt of (a) a clean render of the scene, (b) its VQGAN
reconstruction (the best the generator could do by copying it), (c) the image the
generator makes with the defaults, how often (c) scores above (a) and its largest lead
over (a) (negative when none is above; and how often it does so while the judge rejects
it: an exploit, not just another right picture; and how often (c) scores above the render
of the true picture of its caption nearest to it, :func:`vqclip.shapes.nearest.nearest_truth`:
the clean picture with (c)'s cells, sizes and colours where the caption leaves them open,
so a lead over it is the critic preferring the loop's rendering to the clean one of the
same arrangement, not another arrangement to the scene's); and (d) what the defaults make when
started from the render itself (``init_image``): its CLIP score and how many of (a),
(d) and (c) the judge passes; and whether the critic's slope leads to the render: the
mean cosine between the pixel gradient of its whole-picture score and the direction to
the render (``render - x``), at the loop's start (the prompt's flat background) and at
the generated image (c). First it prints the median distance between neighbouring
codes of the VQGAN and how far Adam's first step (which moves every element by the
learning rate) moves a latent cell. After the categories, the count of generated images
above their render over all of them, with its 95% Wilson interval (at ``--n 10``, 0 of 40
still allows a rate up to 9%). Then, for eval scenes, how often the judge rejects
a spoiled render (stray specks or a formless blob, see vqclip.shapes.spoil) and how far
its CLIP score falls below the clean one's.

    python benchmarks/clip_gap.py --n 10 [--clip shapes] [--spoiled 500]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from vqclip.clip.load import load_clip
from vqclip.clip.model import ClipBundle
from vqclip.clip.samples import gradient_cosine
from vqclip.errors import run_script
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_with_scenes, wilson
from vqclip.generation.generator import background_canvas, generate
from vqclip.generation.settings import GenerateSettings
from vqclip.io import to_tensor
from vqclip.shapes import judge, parse_prompt, render, sample_scene, split_seed
from vqclip.shapes.judge import analyse
from vqclip.shapes.nearest import nearest_truth
from vqclip.shapes.scene import Scene
from vqclip.shapes.spoil import spoil
from vqclip.vqgan.load import load_vqgan
from vqclip.vqgan.model import VQGAN


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10, help="prompts per category")
    p.add_argument("--clip", default="shapes", help="the CLIP to score and generate with")
    p.add_argument("--spoiled", type=int, default=500, help="eval scenes for the spoil margin")
    args = p.parse_args()
    clip, vq = load_clip(args.clip), load_vqgan("shapes")
    codes = vq.codebook.detach()
    gaps = torch.cdist(codes, codes).fill_diagonal_(math.inf).min(dim=1).values
    lr = GenerateSettings.lr
    print(json.dumps({
        "codebook_median_neighbour_distance": round(float(gaps.median()), 3),
        "adam_first_step_l2_per_cell": round(lr * math.sqrt(codes.shape[1]), 3),
    }))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="clip_gap_") as tmp:
        above, total = _compare(args.n, args.clip, clip, vq, Path(tmp) / "render.png")
    lo, hi = wilson(above, total)
    print(json.dumps({"generated_above_clean": above, "of": total,
                      "rate_ci95": [round(lo, 3), round(hi, 3)]}))  # fmt: skip
    _spoil_margins(args.spoiled, clip)


def _compare(
    n_prompts: int, spec: str, clip: ClipBundle, vq: VQGAN, render_path: Path
) -> tuple[int, int]:
    """Prints, per category, the render / reconstruction / generated comparison; returns
    how many generated images scored above their render, and of how many."""
    k, above_all = 0, 0
    for category in CATEGORIES[:4]:
        clean, recon, made, above, above_wrong, above_near = [], [], [], 0, 0, 0
        seeded, passes = [], {"clean": 0, "from_render": 0, "generated": 0}
        cos_start, cos_made = [], []
        for text, scene in prompts_with_scenes(category, n_prompts):
            assert scene is not None
            prompt = parse_prompt(text)
            image = render(scene)
            image.save(render_path)
            passes["clean"] += judge(image, prompt).passed
            with torch.no_grad():
                t = clip.encode_texts([text])[0]
                x = to_tensor(image)[None]
                r = ((vq.decode(vq.encode(x * 2 - 1)[0]) + 1) / 2).clamp(0, 1)
                clean.append(float(clip.encode_pixels(x)[0] @ t))
                recon.append(float(clip.encode_pixels(r)[0] @ t))
            settings = GenerateSettings(prompts=text, clip=(spec,), seed=k)
            result = generate(settings, clips=[clip], vqgan=vq)
            made.append(result.scores[0])
            right = judge(result.image, prompt).passed
            passes["generated"] += right
            above += made[-1] > clean[-1]
            above_wrong += made[-1] > clean[-1] and not right
            near = render(nearest_truth(scene, text, analyse(result.image)))
            with torch.no_grad():
                above_near += made[-1] > float(clip.encode_pixels(to_tensor(near)[None])[0] @ t)
            x = to_tensor(image)[None]
            start = background_canvas([text], (x.shape[-2], x.shape[-1]), x.device)
            cos_start.append(gradient_cosine(clip, start, x, text))
            cos_made.append(gradient_cosine(clip, to_tensor(result.image)[None], x, text))
            from_render = generate(
                GenerateSettings(prompts=text, clip=(spec,), seed=k,
                                 init_image=str(render_path)),
                clips=[clip], vqgan=vq,
            )  # fmt: skip
            seeded.append(from_render.scores[0])
            passes["from_render"] += judge(from_render.image, prompt).passed
            k += 1
        n = len(clean)
        above_all += above
        row = {"category": category, "n": n, "clean": sum(clean) / n, "vqgan": sum(recon) / n,
               "generated": sum(made) / n, "generated_above_clean": above,
               "max_generated_minus_clean": max(m - c for m, c in zip(made, clean, strict=True)),
               "above_clean_and_judged_wrong": above_wrong,
               "generated_above_nearest_truth": above_near,
               "from_render": sum(seeded) / n, "judge_passes": passes,
               "grad_cos_start": sum(cos_start) / n,
               "grad_cos_generated": sum(cos_made) / n}  # fmt: skip
        print(
            json.dumps({key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()})
        )
    return above_all, k


def _spoil_margins(n_scenes: int, clip: ClipBundle) -> None:
    """Prints how often the judge rejects spoiled renders and their CLIP margin."""
    render_margins(n_scenes, clip, lambda scene, seed: spoil(scene, random.Random(seed)), "spoiled")


def render_margins(
    n_scenes: int, clip: ClipBundle, make: Callable[[Scene, int], Image.Image], name: str,
    digits: int = 3,
) -> None:  # fmt: skip
    """Prints, for eval scenes, how often the judge rejects ``make(scene, seed)`` and the
    critic's margin between the clean render and it (``name`` labels the keys)."""
    margins, rejected = [], 0
    for i in range(n_scenes):
        seed = split_seed("eval", i)
        scene = sample_scene(seed)
        flawed = make(scene, seed)
        rejected += not judge(flawed, scene).passed
        with torch.no_grad():
            t = clip.encode_texts([scene.captions[0]])[0]
            a, b = clip.encode_images([render(scene), flawed])
        margins.append(float(a @ t - b @ t))
    summary = {
        f"{name}_scenes": len(margins),
        "judge_rejects": rejected,
        "mean_clip_margin": round(sum(margins) / len(margins), digits),
        f"{name}_scores_higher": sum(m < 0 for m in margins),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    run_script(main)
