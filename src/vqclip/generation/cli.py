"""The ``generate`` and ``eval-generate`` commands (wired up in :mod:`vqclip.cli`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vqclip.cli import non_negative

log = logging.getLogger("vqclip")


def add_generate_args(p: argparse.ArgumentParser) -> None:
    from vqclip.generation.settings import GenerateSettings

    d = GenerateSettings()
    p.add_argument("prompt", nargs="?", default="", help="'text:weight:stop | ...' ('^' = story)")
    p.add_argument("--out", type=Path, default=Path("out.png"), help="output PNG")
    p.add_argument("--from", dest="from_png", type=Path, help="repeat a PNG made by vqclip")
    p.add_argument("--preset", choices=("shapes", "imagenet"), help="model and size presets")
    p.add_argument("--image-prompt", action="append", default=[], help="PATH[:weight]")
    p.add_argument("--noise-prompt", action="append", default=[], help="SEED:WEIGHT")
    p.add_argument("--clip", action="append", help="CLIP spec; repeat for several")
    p.add_argument("--clip-weight", action="append", type=float, help="one per --clip")
    p.add_argument("--vqgan", default=d.vqgan)
    p.add_argument("--vqgan-config")
    p.add_argument("--vqgan-checkpoint")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"))
    p.add_argument("--iterations", type=int, default=d.iterations)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", default=d.optimizer)
    p.add_argument("--schedule", default=d.schedule)
    p.add_argument("--seed", type=non_negative, default=d.seed)
    p.add_argument("--cutn", type=int, default=d.cutn)
    p.add_argument("--cut-pow", type=float, default=d.cut_pow)
    p.add_argument("--cut-min", type=float, default=d.cut_min)
    p.add_argument("--augments", default=",".join(d.augments), help="comma-separated, or none")
    p.add_argument("--no-prompt-aware", action="store_true", help="keep flips/shifts always")
    p.add_argument("--init-image")
    p.add_argument("--init-noise", default=d.init_noise)
    p.add_argument("--init-weight", type=float, default=d.init_weight)
    p.add_argument("--init-weight-decay", action="store_true")
    p.add_argument("--story-every", type=non_negative, default=d.story_every)
    p.add_argument("--tv-weight", type=float, default=d.tv_weight, help="smoothness penalty")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--save-every", type=non_negative, default=0, help="save frames every N")
    p.add_argument("--video", type=Path, help="write an MP4 of the run")


def settings_from_args(args: argparse.Namespace) -> Any:
    from vqclip.generation.settings import PRESETS, GenerateSettings

    if args.from_png is not None:
        from vqclip.generation.outputs import read_settings

        return read_settings(args.from_png)
    base = dict(PRESETS[args.preset or "shapes"])
    augments = () if args.augments in ("", "none") else tuple(args.augments.split(","))
    chosen: dict[str, Any] = {
        "prompts": args.prompt, "image_prompts": tuple(args.image_prompt),
        "noise_prompts": tuple(args.noise_prompt), "vqgan_config": args.vqgan_config,
        "vqgan_checkpoint": args.vqgan_checkpoint, "iterations": args.iterations,
        "optimizer": args.optimizer, "schedule": args.schedule, "seed": args.seed,
        "cut_pow": args.cut_pow, "prompt_aware": not args.no_prompt_aware,
        "init_image": args.init_image, "init_noise": args.init_noise,
        "init_weight": args.init_weight, "init_weight_decay": args.init_weight_decay,
        "story_every": args.story_every, "batch": args.batch, "tv_weight": args.tv_weight,
    }  # fmt: skip
    defaults = GenerateSettings()
    # Options left at their defaults do not override a preset.
    for key, value in {"lr": args.lr, "cutn": args.cutn, "cut_min": args.cut_min,
                       "augments": augments, "vqgan": args.vqgan}.items():  # fmt: skip
        if key not in base or value != getattr(defaults, key):
            chosen[key] = value
    if args.clip:
        chosen["clip"] = tuple(args.clip)
    if args.clip_weight:
        chosen["clip_weights"] = tuple(args.clip_weight)
    if args.size:
        chosen["size"] = tuple(args.size)
    return GenerateSettings(**{**base, **chosen})


def cmd_generate(args: argparse.Namespace) -> int:
    from vqclip.generation.cutouts import check_augments
    from vqclip.generation.generator import generate
    from vqclip.generation.outputs import VideoWriter, save_result_png
    from vqclip.generation.prompts import parse_story
    from vqclip.io import ensure_dir
    from vqclip.shapes.files import load_image

    settings = settings_from_args(args).validate()
    check_augments(settings.augments)
    if settings.prompts.strip():
        parse_story(settings.prompts)  # syntax errors before any model loads
    for path in [*(p.rpartition(":")[0] or p for p in settings.image_prompts),
                 *([settings.init_image] if settings.init_image else [])]:  # fmt: skip
        load_image(Path(path))
    ensure_dir(args.out.parent if str(args.out.parent) else Path("."))
    video = VideoWriter(args.video) if args.video else None
    frames_dir = args.out.with_suffix("")

    def on_step(state: dict[str, Any]) -> None:
        from vqclip.shapes.data import to_image

        i = state["i"]
        if video is not None:
            video.add(to_image(state["image"][0]))
        if args.save_every and (i + 1) % args.save_every == 0:
            from vqclip.io import save_image

            save_image(to_image(state["image"][0]), frames_dir / f"{i + 1:05d}.png")

    result = generate(settings, callback=on_step, progress=not args.quiet)
    save_result_png(result.image, args.out, result.settings)
    if video is not None:
        video.close()
    log.info(
        "wrote %s (%d iterations, %.1fs, CLIP score %.3f)", args.out, len(result.losses),
        result.timings["optimise_s"], max(result.scores),
    )  # fmt: skip
    return 130 if result.interrupted else 0


def cmd_eval_generate(args: argparse.Namespace) -> int:
    from vqclip.evaluate.generate_eval import PLAIN, eval_generate, markdown, write_outputs
    from vqclip.generation.settings import GenerateSettings
    from vqclip.io import ensure_dir

    ensure_dir(args.out)
    base = GenerateSettings()
    if args.iterations:
        base = dataclasses.replace(base, iterations=args.iterations)
    sheet: list[Any] = []
    methods: dict[str, dict[str, Any]] = {}

    def save(name: str) -> Callable[[dict[str, Any]], None]:
        def on_image(summary: dict[str, Any]) -> None:
            methods[name] = summary
            write_outputs(args.out, methods, [])  # JSON and table, after every image

        return on_image

    runs = [("defaults", base)]
    if args.ablate:
        runs.append(("plain", dataclasses.replace(base, **PLAIN)))
    try:
        for name, settings in runs:
            keep = sheet if name == "defaults" else None
            methods[name] = eval_generate(
                args.n, settings, progress=not args.quiet, keep=keep, on_image=save(name)
            )
    finally:  # Ctrl-C included: what was finished stays on disk
        write_outputs(args.out, methods, sheet)
    print(json.dumps(methods, indent=2) if args.json else markdown(methods))
    return 0
