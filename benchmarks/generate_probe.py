"""A quick probe of generation settings: judge pass counts per ShapesEval category.

Smaller and faster than ``vqclip eval-generate``; for comparing settings while
tuning. Each CONFIG is NAME=JSON overrides of GenerateSettings:

    python benchmarks/generate_probe.py --n 4 base='{}' plain='{"init_noise": "plain"}'

A config may name its own models: ``"clip": ["shapes", "DIR"]``, ``"vqgan": "DIR"``.
"""

from __future__ import annotations

import argparse
import json
import time

from vqclip.clip.load import load_clip
from vqclip.clip.model import ClipBundle
from vqclip.errors import run_script
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_for
from vqclip.generation.generator import generate
from vqclip.generation.settings import GenerateSettings
from vqclip.shapes import judge, parse_prompt
from vqclip.vqgan.load import load_vqgan
from vqclip.vqgan.model import VQGAN


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4, help="prompts per category")
    p.add_argument("configs", nargs="+", help="NAME=JSON settings overrides")
    args = p.parse_args()
    clips: dict[str, ClipBundle] = {}
    vqgans: dict[str, VQGAN] = {}
    jobs = [(c, text) for c in CATEGORIES for text in prompts_for(c, args.n)]
    for spec in args.configs:
        name, _, overrides = spec.partition("=")
        extra = {
            k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(overrides).items()
        }
        specs = extra.get("clip", ("shapes",))
        clips.update({c: load_clip(c) for c in specs if c not in clips})
        models = [clips[c] for c in specs]
        vq_spec = str(extra.get("vqgan", "shapes"))
        if vq_spec not in vqgans:
            vqgans[vq_spec] = load_vqgan(vq_spec)
        vq = vqgans[vq_spec]
        passed = dict.fromkeys(CATEGORIES, 0)
        t0 = time.perf_counter()
        for k, (category, text) in enumerate(jobs):
            settings = GenerateSettings(prompts=text, seed=k, **extra)
            image = generate(settings, clips=models, vqgan=vq).image
            passed[category] += judge(image, parse_prompt(text)).passed
        seconds = (time.perf_counter() - t0) / len(jobs)
        print(
            json.dumps(
                {"config": name, "passed": passed, "of": args.n, "s_per_image": round(seconds, 1)}
            )
        )


if __name__ == "__main__":
    run_script(main)
