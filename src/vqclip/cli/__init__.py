"""The ``vqclip`` command line. ``main(argv)`` runs in-process, so tests drive it directly."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vqclip import __version__
from vqclip.cli.common import Parser as _Parser
from vqclip.cli.common import non_negative, positive
from vqclip.errors import VqclipError

log = logging.getLogger("vqclip")


def _cmd_ui(args: argparse.Namespace) -> int:
    from vqclip.ui import serve

    serve(args.out_dir, host=args.host, port=args.port)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    from vqclip.cli.generate import (
        add_animate_args,
        add_generate_args,
        cmd_animate,
        cmd_eval_generate,
        cmd_generate,
    )

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
    s.add_argument("--n", type=non_negative, default=16, help="number of scenes")
    s.add_argument("--seed", type=non_negative, default=0, help="first scene index")
    s.add_argument("--split", choices=("train", "eval"), default="train")
    s.add_argument("--size", type=int, default=64, help="render size in pixels")
    s.add_argument("--columns", type=int, default=4)
    s.add_argument("--out", type=Path, default=Path("sheet.png"), help="output PNG")
    s.set_defaults(func=_cmd_shapes_sample)
    e = ssub.add_parser(
        "export", parents=[common], help="write a split as images + scenes.jsonl + captions.csv"
    )
    e.add_argument("--split", choices=("train", "eval"), required=True)
    e.add_argument("--n", type=non_negative, required=True, help="number of scenes")
    e.add_argument("--start", type=non_negative, default=0, help="first scene index")
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
    t = sub.add_parser(
        "train-clip", parents=[common], help="contrastive CLIP training (torchrun for several)"
    )
    _add_settings_args(t, "vqclip.clip.train", "ClipTrainSettings")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    t.set_defaults(func=_cmd_train_clip)
    ec = sub.add_parser("eval-clip", parents=[common], help="zero-shot and retrieval on Shapes")
    _add_clip_args(ec)
    ec.add_argument("--n", type=positive, default=2000, help="eval scenes")
    ec.add_argument("--json", action="store_true", help="print JSON")
    ec.set_defaults(func=_cmd_eval_clip)
    c = sub.add_parser("classify", parents=[common], help="zero-shot classification of images")
    c.add_argument("images", nargs="+", type=Path, help="image files")
    _add_clip_args(c)
    c.add_argument("--labels", help="comma-separated class names")
    c.add_argument("--labels-file", type=Path, help="one class name per line")
    c.add_argument(
        "--templates", default="photo", help="none, photo, shapes, imagenet80, or a file"
    )
    c.add_argument("--top-k", type=positive, default=1)
    c.add_argument("--json", action="store_true", help="print JSON lines")
    c.set_defaults(func=_cmd_classify)
    ev = sub.add_parser("eval-vqgan", parents=[common], help="VQGAN reconstruction on Shapes")
    _add_vqgan_args(ev)
    ev.add_argument("--n", type=positive, default=2000, help="eval scenes")
    ev.add_argument("--size", type=positive, help="render size (default: the model's)")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.set_defaults(func=_cmd_eval_vqgan)
    m = sub.add_parser("models", parents=[common], help="known and cached models")
    m.set_defaults(func=_cmd_models)
    gp = sub.add_parser("generate", parents=[common], help="text to picture with VQGAN+CLIP")
    add_generate_args(gp)
    gp.set_defaults(func=cmd_generate)
    an = sub.add_parser("animate", parents=[common], help="a zoom/pan animation, frame by frame")
    add_animate_args(an)
    an.set_defaults(func=cmd_animate)
    ui = sub.add_parser("ui", parents=[common], help="the web app (Gradio), on 127.0.0.1")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    ui.add_argument("--out-dir", type=Path, default=Path("vqclip-ui"),
                    help="results folder, read by the gallery (default: vqclip-ui)")  # fmt: skip
    ui.set_defaults(func=_cmd_ui)
    eg = sub.add_parser("eval-generate", parents=[common], help="ShapesEval: generate and judge")
    eg.add_argument("--n", "--per-category", dest="n", type=positive, default=100,
                    help="prompts per category (--per-category under torchrun, whose own "
                         "parser takes --n for --nnodes)")  # fmt: skip
    eg.add_argument("--out", type=Path, default=Path("shapeseval"), help="output folder")
    eg.add_argument("--iterations", type=positive, help="override the default iterations")
    eg.add_argument("--ablate", action="store_true", help="also run the plain method")
    eg.add_argument("--clip", action="append", help="the CLIP(s) to generate with (default shapes)")
    eg.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    eg.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                    help="CLIP's autocast (auto: bf16 on CUDA, fp32 on the CPU)")  # fmt: skip
    eg.add_argument(
        "--categories",
        default="single,position,pair,count,held-out",
        help="comma-separated subset of the categories (seeds stay as in a full run)",
    )
    eg.add_argument("--settings", metavar="JSON",
                    help="generate settings over the defaults, for an ablation row, e.g. "
                         "'{\"init_noise\": \"codes\"}'")  # fmt: skip
    eg.add_argument("--json", action="store_true", help="print JSON")
    eg.set_defaults(func=cmd_eval_generate)
    v = sub.add_parser("train-vqgan", parents=[common], help="train a small VQGAN on Shapes world")
    _add_settings_args(v, "vqclip.vqgan.train", "VqganTrainSettings")
    v.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    v.set_defaults(func=_cmd_train_vqgan)
    return p


def _add_clip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip", default="shapes", help="shapes, ARCH:TAG, a folder or a file")
    p.add_argument("--clip-arch", help="open_clip architecture of a --clip checkpoint file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")


def _load_clip_arg(args: argparse.Namespace) -> Any:
    from vqclip.clip.load import load_clip
    from vqclip.devices import pick_device

    return load_clip(args.clip, arch=args.clip_arch, device=str(pick_device(args.device)))


def _cmd_eval_clip(args: argparse.Namespace) -> int:
    from vqclip.evaluate.clip_eval import eval_clip

    report = eval_clip(_load_clip_arg(args), n=args.n, progress=not args.quiet)
    if args.json:
        print(json.dumps({"clip": args.clip, **report.to_json()}, indent=2))
    else:
        print(f"eval-clip: {args.clip}, {args.n} eval scenes\n")
        print(report.table())
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    from vqclip.clip.zeroshot import ZeroShotClassifier, resolve_templates
    from vqclip.io import load_image

    if args.labels_file is not None:
        try:
            labels = args.labels_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise VqclipError(f"cannot read labels file {args.labels_file}: {e}") from None
    elif args.labels is not None:
        labels = args.labels.split(",")
    else:
        raise VqclipError("give class names with --labels 'a,b' or --labels-file FILE")
    templates = resolve_templates(args.templates)
    images = [load_image(p) for p in args.images]  # fail on a bad image before any work
    clip = _load_clip_arg(args)
    clf = ZeroShotClassifier.build(clip, labels, templates)
    probs = (100.0 * clf.logits(clip.encode_images(images))).softmax(dim=-1)
    k = min(args.top_k, len(clf.labels))
    for path, row in zip(args.images, probs, strict=True):
        top = row.topk(k)
        pairs = [(clf.labels[i], float(p)) for p, i in zip(top.values, top.indices, strict=True)]
        if args.json:
            print(
                json.dumps({"image": str(path), "top": [{"label": lb, "p": p} for lb, p in pairs]})
            )
        else:
            print(f"{path}: " + ", ".join(f"{lb} ({100 * p:.1f}%)" for lb, p in pairs))
    return 0


def _add_vqgan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vqgan", default="shapes", help="shapes, a registry name, or a folder")
    p.add_argument("--vqgan-config", type=Path, help="official taming yaml")
    p.add_argument("--vqgan-checkpoint", type=Path, help="official taming .ckpt")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")


def _load_vqgan_arg(args: argparse.Namespace) -> Any:
    from vqclip.devices import pick_device
    from vqclip.vqgan.load import load_vqgan

    return load_vqgan(
        args.vqgan, config=args.vqgan_config, checkpoint=args.vqgan_checkpoint,
        device=str(pick_device(args.device)),
    )  # fmt: skip


def _cmd_eval_vqgan(args: argparse.Namespace) -> int:
    from vqclip.evaluate.vqgan_eval import eval_vqgan

    report = eval_vqgan(_load_vqgan_arg(args), n=args.n, size=args.size, progress=not args.quiet)
    name = args.vqgan_checkpoint or args.vqgan
    if args.json:
        print(json.dumps({"vqgan": str(name), **report.to_json()}, indent=2))
    else:
        print(f"eval-vqgan: {name}, {args.n} eval scenes at {report.size}x{report.size}\n")
        print(report.table())
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from vqclip.clip.load import cached_pretrained
    from vqclip.hub import home
    from vqclip.vqgan.load import REGISTRY

    print("VQGAN")
    print(f"  {'shapes':<22} embedded (in the package)")
    for name, entry in REGISTRY.items():
        path = home() / "vqgan" / f"{name}.ckpt"
        state = f"cached at {path}" if path.is_file() else f"not cached (~{entry.size_mb} MB)"
        print(f"  {name:<22} {state}")
    print("CLIP")
    print(f"  {'shapes':<22} embedded (in the package)")
    for spec in cached_pretrained():
        print(f"  {spec:<22} cached in {home() / 'open_clip'}")
    print(f"  {'ARCH:TAG':<22} any open_clip model, e.g. ViT-B-32:openai (see open_clip)")
    return 0


def _train_settings(cls: Any, args: argparse.Namespace) -> Any:
    """A training-settings dataclass from the parsed options of the same names."""
    names = {f.name for f in dataclasses.fields(cls)}
    settings = cls(**{k: v for k, v in vars(args).items() if k in names})
    if settings.steps <= 0 or settings.batch_size <= 0:
        raise VqclipError("--steps and --batch-size must be > 0")
    return settings


def _add_settings_args(p: argparse.ArgumentParser, module: str, cls_name: str) -> None:
    """One option per field of a settings dataclass, typed from its default."""
    import importlib

    cls = getattr(importlib.import_module(module), cls_name)
    for f in dataclasses.fields(cls):
        default = f.default
        kind: Any = type(default)
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
            continue
        if kind is int:
            kind = non_negative
        p.add_argument(flag, type=kind, default=default)


def _cmd_train_vqgan(args: argparse.Namespace) -> int:
    from vqclip.vqgan.train import VqganTrainSettings, train_vqgan

    settings = _train_settings(VqganTrainSettings, args)
    folder = train_vqgan(settings, resume=args.resume, progress=not args.quiet)
    log.info("model written to %s", folder)
    return 0


def _cmd_train_clip(args: argparse.Namespace) -> int:
    from vqclip.clip.train import ClipTrainSettings, train_clip

    settings = _train_settings(ClipTrainSettings, args)
    if settings.data != "shapes":
        from vqclip.clip.csvdata import read_csv

        read_csv(Path(settings.data))  # fail early, with one line, on a bad CSV
    folder = train_clip(settings, resume=args.resume, progress=not args.quiet)
    log.info("model written to %s", folder)
    return 0


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
    from vqclip.io import load_image
    from vqclip.shapes import judge, parse_prompt

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
    from vqclip.io import load_image
    from vqclip.shapes import analyse, compare
    from vqclip.shapes.files import read_scenes
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
