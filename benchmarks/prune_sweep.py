"""Pruning's tolerance, swept on the same loops: ShapesEval's grades per tolerance.

Each prompt (ShapesEval's prompts and seeds, ``--n`` per category) is generated once
with the defaults and pruning off; its final latent is then pruned at every
tolerance and each picture graded, so the rows differ only in the pruning:

    python benchmarks/prune_sweep.py --n 50 --tolerances none,0.01,0.03,0.05,0.1 --workers 2

``--settings JSON`` changes the loop's other settings (as eval-generate's does).

Prints one Markdown table (strict and lenient pass, no extra objects, colour) and,
with ``--json``, the records.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from typing import Any

from vqclip.errors import run_script

CATEGORY_NAMES = ("single", "position", "pair", "count", "held-out")


def _work(job: tuple[int, str, str, list[float | None], dict[str, Any]]) -> dict[str, Any]:
    import torch

    from vqclip.generation.generator import prune_candidates, quantize_st, setup, step
    from vqclip.generation.settings import GenerateSettings
    from vqclip.io import to_image
    from vqclip.shapes.captions import parse_prompt
    from vqclip.shapes.grade import grade

    torch.set_num_threads(1)
    k, category, text, tolerances, overrides = job
    clips, vq = _models()
    base = GenerateSettings.from_json({**overrides, "prompts": text, "seed": k, "prune": None})
    loop = setup(base, clips, vq)
    t0 = time.perf_counter()
    for i in range(loop.s.iterations):
        step(loop, i)
    loop_s = time.perf_counter() - t0
    scene = parse_prompt(text)
    rec: dict[str, Any] = {"k": k, "category": category, "text": text, "loop_s": loop_s}
    with torch.no_grad():
        raw = quantize_st(vq, loop.z)
        for tol in tolerances:
            t0 = time.perf_counter()
            z = raw if tol is None else prune_candidates(loop, raw, tol)
            image = to_image(((vq.decode(z) + 1) / 2).clamp(0, 1)[0])
            g = grade(image, scene)
            rec[str(tol)] = {"strict": g.strict, "lenient": g.lenient,
                             "attributes": g.attributes,
                             "prune_s": time.perf_counter() - t0}  # fmt: skip
    return rec


_MODELS: Any = None


def _models() -> Any:
    global _MODELS
    if _MODELS is None:
        from vqclip.clip.load import load_clip
        from vqclip.vqgan.load import load_vqgan

        _MODELS = ([load_clip("shapes")], load_vqgan("shapes"))
    return _MODELS


def table(records: list[dict[str, Any]], tolerances: list[float | None]) -> str:
    """Markdown: per category and tolerance, the share passing each check."""
    rows = ["| category | tolerance | n | strict | lenient | no_extra | colour | shape |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in CATEGORY_NAMES:
        mine = [r for r in records if r["category"] == c]
        for tol in tolerances:
            if not mine:
                continue
            grades = [r[str(tol)] for r in mine]

            def share(get: Any, grades: list[dict[str, Any]] = grades) -> str:
                return f"{100 * sum(bool(get(g)) for g in grades) / len(grades):.0f}%"

            rows.append(
                f"| {c} | {'off' if tol is None else tol} | {len(mine)} | "
                f"{share(lambda g: g['strict'])} | {share(lambda g: g['lenient'])} | "
                f"{share(lambda g: g['attributes']['no_extra'])} | "
                f"{share(lambda g: g['attributes']['colour'])} | "
                f"{share(lambda g: g['attributes']['shape'])} |"
            )
    return "\n".join(rows)


def main() -> None:
    from vqclip.evaluate.generate_eval import CATEGORIES, prompts_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="prompts per category")
    p.add_argument("--tolerances", default="none,0.01,0.03,0.05,0.1",
                   help="comma-separated; none = no pruning")  # fmt: skip
    p.add_argument("--categories", default=",".join(CATEGORIES))
    p.add_argument("--settings", default="{}", help="JSON settings over the defaults")
    p.add_argument("--workers", type=int, default=1, help="processes of one thread each")
    p.add_argument("--json", action="store_true", help="also print every record")
    args = p.parse_args()
    tolerances = [None if t == "none" else float(t) for t in args.tolerances.split(",")]
    wanted = set(args.categories.split(","))
    every = [(c, t) for c in CATEGORIES for t in prompts_for(c, args.n)]  # seed k, as ShapesEval
    overrides = json.loads(args.settings)
    jobs = [(k, c, text, tolerances, overrides)
            for k, (c, text) in enumerate(every) if c in wanted]  # fmt: skip
    from tqdm import tqdm

    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = list(tqdm(pool.imap(_work, jobs), total=len(jobs), desc="prune sweep"))
    print(table(records, tolerances))
    loop_s = sum(r["loop_s"] for r in records) / len(records)
    prune_s = {str(t): sum(r[str(t)]["prune_s"] for r in records) / len(records)
               for t in tolerances if t is not None}  # fmt: skip
    print(
        json.dumps(
            {
                "loop_s_per_image": round(loop_s, 2),
                "prune_s_per_image": {t: round(v, 2) for t, v in prune_s.items()},
            }
        )
    )
    if args.json:
        print(json.dumps(records))


if __name__ == "__main__":
    run_script(main)
