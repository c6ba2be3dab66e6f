"""The ``vqclip`` command line. ``main(argv)`` runs in-process, so tests drive it directly."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

from vqclip import __version__
from vqclip.errors import VqclipError

log = logging.getLogger("vqclip")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes become one-line :class:`VqclipError`s."""

    def error(self, message: str) -> NoReturn:
        raise VqclipError(f"{message} (see '{self.prog} --help')")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings only, no bars")
    p = _Parser(prog="vqclip", description="VQGAN+CLIP and CLIP, offline by default.")
    p.add_argument("--version", action="version", version=f"vqclip {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    shapes = sub.add_parser("shapes", help="Shapes world: sample sheets, export datasets")
    ssub = shapes.add_subparsers(dest="shapes_command", required=True, parser_class=_Parser)
    s = ssub.add_parser(
        "sample", parents=[common], help="a contact sheet of scenes with their captions"
    )
    s.add_argument("--n", type=_non_negative, default=16, help="number of scenes")
    s.add_argument("--seed", type=_non_negative, default=0, help="first scene index")
    s.add_argument("--split", choices=("train", "eval"), default="train")
    s.add_argument("--size", type=int, default=64, help="render size in pixels")
    s.add_argument("--columns", type=int, default=4)
    s.add_argument("--out", type=Path, default=Path("sheet.png"), help="output PNG")
    s.set_defaults(func=_cmd_shapes_sample)
    e = ssub.add_parser(
        "export", parents=[common], help="write a split as images + scenes.jsonl + captions.csv"
    )
    e.add_argument("--split", choices=("train", "eval"), required=True)
    e.add_argument("--n", type=_non_negative, required=True, help="number of scenes")
    e.add_argument("--start", type=_non_negative, default=0, help="first scene index")
    e.add_argument("--size", type=int, default=64, help="render size in pixels")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.set_defaults(func=_cmd_shapes_export)

    j = sub.add_parser(
        "judge",
        parents=[common],
        help="judge images against Shapes truths or a prompt",
        description="Judge one IMAGE against --prompt (exit 0 when it passes, 1 when not), "
        "or every scene of --scenes against its own truth.",
    )
    j.add_argument("image", nargs="?", type=Path, help="an image to judge against --prompt")
    j.add_argument("--prompt", help="a prompt of the Shapes grammar")
    j.add_argument("--scenes", type=Path, help="a scenes.jsonl file")
    j.add_argument("--images", type=Path, help="folder the image paths are relative to")
    j.add_argument("--mutations", action="store_true", help="also check one-attribute changes fail")
    j.add_argument("--json", action="store_true", help="print JSON")
    j.set_defaults(func=_cmd_judge)
    return p


def _cmd_shapes_sample(args: argparse.Namespace) -> int:
    from vqclip.io import save_image
    from vqclip.shapes import render, sample_scene, split_seed
    from vqclip.shapes.sheet import contact_sheet

    if args.size < 8:
        raise VqclipError(f"--size must be at least 8, got {args.size}")
    scenes = [sample_scene(split_seed(args.split, args.seed + i), args.size) for i in range(args.n)]
    images = [render(s) for s in scenes]
    sheet = contact_sheet(images, [s.captions[0] for s in scenes], columns=max(1, args.columns))
    save_image(sheet, args.out)
    log.info("wrote %s (%d scenes)", args.out, len(scenes))
    return 0


def _cmd_shapes_export(args: argparse.Namespace) -> int:
    from vqclip.shapes.files import export_split

    n = export_split(
        args.out, split=args.split, n=args.n, size=args.size, start=args.start,
        progress=not args.quiet,
    )  # fmt: skip
    log.info("wrote %d scenes to %s", n, args.out)
    return 0


def _judge_one(args: argparse.Namespace) -> int:
    from vqclip.shapes import judge, parse_prompt
    from vqclip.shapes.files import load_image

    if args.prompt is None:
        raise VqclipError('judging one image needs --prompt "..." (or use --scenes FILE)')
    prompt = parse_prompt(args.prompt)
    verdict = judge(load_image(args.image), prompt)
    if args.json:
        parts = [{"name": p.name, "passed": p.passed, "reason": p.reason} for p in verdict.parts]
        print(json.dumps({"passed": verdict.passed, "parts": parts}))
    else:
        for part in verdict.parts:
            print(f"{'pass' if part.passed else 'FAIL'}  {part.name}  {part.reason}".rstrip())
        print("PASS" if verdict.passed else "FAIL")
    return 0 if verdict.passed else 1


def _part_kind(name: str) -> str:
    """``object 1 colour`` -> ``colour``; other part names are kinds already."""
    return name.split()[-1] if name.startswith("object ") else name


def _judge_scenes(args: argparse.Namespace) -> int:
    from vqclip.shapes import analyse, compare
    from vqclip.shapes.files import load_image, read_scenes
    from vqclip.shapes.mutate import mutations

    root = args.images or args.scenes.parent
    passed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    scenes = list(read_scenes(args.scenes))
    if not scenes:
        raise VqclipError(f"{args.scenes} holds no scenes")
    for scene in tqdm(scenes, desc="judge", disable=args.quiet):
        if scene.image is None:
            raise VqclipError(f"scene {scene.seed} in {args.scenes} has no 'image' path")
        analysis = analyse(load_image(root / scene.image))
        verdict = compare(analysis, scene)
        for part in verdict.parts:
            total[_part_kind(part.name)] += 1
            passed[_part_kind(part.name)] += part.passed
        total["overall"] += 1
        passed["overall"] += verdict.passed
        if args.mutations:
            for name, changed in mutations(scene):
                kind = _part_kind(name.replace(" fewer", "").replace(" more", ""))
                tried[kind] += 1
                rejected[kind] += not compare(analysis, changed).passed
    report: dict[str, object] = {
        "scenes": len(scenes),
        "pass_rate": {k: passed[k] / total[k] for k in sorted(total)},
    }
    if args.mutations:
        tried["overall"] = sum(tried.values())
        rejected["overall"] = sum(rejected.values())
        report["mutations_rejected"] = {k: rejected[k] / tried[k] for k in sorted(tried)}
        report["mutations_tried"] = dict(sorted(tried.items()))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(scenes)} scenes judged against their own truth")
    print(f"{'part':<12}{'pass rate':>12}")
    for k in sorted(total, key=lambda k: (k == "overall", k)):
        print(f"{k:<12}{100 * passed[k] / total[k]:>11.2f}%")
    if args.mutations:
        print(f"\n{'mutation':<12}{'rejected':>12}{'tried':>8}")
        for k in sorted(tried, key=lambda k: (k == "overall", k)):
            print(f"{k:<12}{100 * rejected[k] / tried[k]:>11.2f}%{tried[k]:>8}")
    return 0


def _cmd_judge(args: argparse.Namespace) -> int:
    if args.scenes is not None:
        if args.image is not None:
            raise VqclipError("give either an IMAGE with --prompt or --scenes FILE, not both")
        return _judge_scenes(args)
    if args.image is None:
        raise VqclipError("nothing to judge: give an IMAGE and --prompt, or --scenes FILE")
    return _judge_one(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    User mistakes print one line, ``vqclip: error: ...``, and return 2; Ctrl-C
    returns 130 after whatever was done has been kept.
    """
    try:
        args = _build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            format="%(message)s",
            stream=sys.stderr,
        )
        return int(args.func(args))
    except VqclipError as e:
        print(f"vqclip: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vqclip: interrupted; finished work was kept", file=sys.stderr)
        return 130
