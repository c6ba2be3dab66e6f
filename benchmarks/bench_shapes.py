"""Shapes world speed: scenes sampled + rendered per second, and judge verdicts per second.

Runs in one process on one core (Pillow and numpy draw single-threaded here):

    python benchmarks/bench_shapes.py [--n 5000] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from vqclip.errors import run_script
from vqclip.shapes import analyse, compare, render, sample_scene, split_seed

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    seeds = [split_seed("eval", i) for i in range(args.n)]
    render(sample_scene(seeds[0]), args.size)  # warm-up
    t0 = time.perf_counter()
    images = [render(sample_scene(s, args.size)) for s in seeds]
    render_s = time.perf_counter() - t0
    m = min(args.n, 1000)
    t0 = time.perf_counter()
    for s, im in zip(seeds[:m], images[:m], strict=True):
        compare(analyse(im), sample_scene(s))
    judge_s = time.perf_counter() - t0
    print(json.dumps({
        "machine": describe() + " (1 core used)",
        "size": args.size,
        "render_scenes_per_s": round(args.n / render_s, 1),
        "judge_verdicts_per_s": round(m / judge_s, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    run_script(main)
