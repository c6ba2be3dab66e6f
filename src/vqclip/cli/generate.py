"""The ``generate`` and ``eval-generate`` commands (wired up in :mod:`vqclip.cli`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vqclip.cli.common import non_negative
from vqclip.errors import VqclipError

log = logging.getLogger("vqclip")


# Settings whose flag is not simply --name-with-dashes, and those given once per value.
_FLAGS = {"image_prompts": "--image-prompt", "noise_prompts": "--noise-prompt",
          "clip_weights": "--clip-weight"}  # fmt: skip
_REPEATED = ("image_prompts", "noise_prompts", "clip", "clip_weights")
_METAVARS = {"image_prompts": "PATH[:W[:STOP]]", "noise_prompts": "SEED:W", "clip": "SPEC",
             "clip_weights": "W", "vqgan": "SPEC", "augments": "LIST"}  # fmt: skip
_DEFAULT_TEXT = {"size": "the VQGAN's training size"}


def flag_of(setting: str) -> str:
    """The command-line flag of a :class:`GenerateSettings` field."""
    if setting == "prompts":
        return "the prompt"
    return _FLAGS.get(setting, "--" + setting.replace("_", "-"))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def _comma_list(text: str) -> tuple[str, ...]:
    return () if text in ("", "none") else tuple(t.strip() for t in text.split(",") if t.strip())


def _or_none(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error
    return parse


def add_generate_args(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`GenerateSettings` field (help, default and choices from the field).

    Every flag defaults to "not given", so that only what the user typed overrides
    the defaults and the preset (see :func:`settings_from_args`).
    """
    p.add_argument(
        "--out", type=Path, default=Path("out.png"), help="output PNG (default: out.png)"
    )
    p.add_argument("--from", dest="from_png", type=Path, help="repeat a PNG made by vqclip")
    p.add_argument("--save-every", type=non_negative, default=0, help="save frames every N")
    p.add_argument("--video", type=Path, help="write an MP4 of the run")
    b = p.add_argument_group("batch (one PNG per prompt line and seed; torchrun shares it out)")
    b.add_argument("--prompts-file", type=Path, help="one prompt per line, # comments")
    b.add_argument("--out-dir", type=Path, help="folder for the batch's PNGs and manifest.jsonl")
    b.add_argument("--seeds", help="seeds of every prompt, e.g. 0-3 or 0,5 (default: --seed)")
    b.add_argument("--resume", action="store_true", help="skip items the folder already holds")
    r = p.add_argument_group("resumable runs")
    r.add_argument("--save-state", type=non_negative, default=0, metavar="N",
                   help="write the latent and optimiser state every N iterations "
                        "(to OUT.state.safetensors)")  # fmt: skip
    r.add_argument("--resume-state", type=Path, metavar="FILE",
                   help="continue a run from a state file written by --save-state")  # fmt: skip
    add_settings_args(p)


def add_settings_args(p: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per settings field (shared by generate and animate)."""
    import typing

    from vqclip.generation.settings import PRESETS, field_specs

    p.add_argument("--preset", choices=tuple(PRESETS), help="models, size and loop settings")
    for name, hint, default, text, choices in field_specs():
        shown = f" (default: {_DEFAULT_TEXT.get(name, _show(default))})"
        if name == "augments":
            shown += f"; comma-separated from {', '.join(choices or ())}, or none"
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": text + shown}
        if name in _METAVARS:
            kw["metavar"] = _METAVARS[name]
        if name == "prompts":
            p.add_argument("prompts", nargs="?", default=argparse.SUPPRESS, help=text,
                           metavar="PROMPT")  # fmt: skip
            continue
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        base = inner[0] if type(None) in typing.get_args(hint) else hint
        if base is bool:
            p.add_argument(flag_of(name), action=argparse.BooleanOptionalAction, **kw)
        elif name == "size":
            p.add_argument(flag_of(name), type=int, nargs=2, metavar=("W", "H"), **kw)
        elif typing.get_origin(base) is tuple:
            item = typing.get_args(base)[0]
            if name in _REPEATED:
                p.add_argument(flag_of(name), action="append", type=item, **kw)
            else:
                p.add_argument(flag_of(name), type=_comma_list, **kw)
        elif base is not str and type(None) in typing.get_args(hint):
            p.add_argument(flag_of(name), type=_or_none(base), **kw)  # e.g. --prune none
        else:
            p.add_argument(flag_of(name), type=base, choices=choices, **kw)


def settings_from_args(args: argparse.Namespace) -> Any:
    """defaults ← ``--preset`` ← the flags actually given (or the settings of ``--from``)."""
    from vqclip.generation.settings import GenerateSettings, SettingError

    if getattr(args, "from_png", None) is not None:
        from vqclip.generation.outputs import read_settings

        return read_settings(args.from_png)
    names = {f.name for f in dataclasses.fields(GenerateSettings)}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()
             if k in names}  # fmt: skip
    try:
        return GenerateSettings().resolve(args.preset, given)
    except SettingError as e:
        raise as_flag_error(e) from None


def as_flag_error(e: Any) -> VqclipError:
    """A settings error re-worded with the setting's command-line flag."""
    return VqclipError(f"{flag_of(e.setting)} {e.problem}")


def cmd_generate(args: argparse.Namespace) -> int:
    if args.prompts_file is not None or args.out_dir is not None:
        return _cmd_batch(args)
    if args.seeds is not None or args.resume:
        named = "--seeds" if args.seeds is not None else "--resume"
        raise VqclipError(f"{named} belongs to a batch; add --prompts-file FILE --out-dir DIR")
    from vqclip.generation.generator import generate, keeps_position
    from vqclip.generation.outputs import VideoWriter, save_result_png
    from vqclip.generation.prompts import parse_image_prompt, parse_story
    from vqclip.generation.settings import SettingError
    from vqclip.io import ensure_writable, load_image

    try:
        settings = settings_from_args(args).validate()
    except SettingError as e:
        raise as_flag_error(e) from None
    if settings.prompts.strip():
        parse_story(settings.prompts)  # syntax errors before any model loads
    for path in [*(parse_image_prompt(p)[0] for p in settings.image_prompts),
                 *([settings.init_image] if settings.init_image else [])]:  # fmt: skip
        load_image(Path(path))
    ensure_writable(args.out)  # every output path is checked before the run starts
    if args.video:
        ensure_writable(args.video, "--video")
    frames_dir = args.out.with_suffix("")
    if args.save_every:
        ensure_writable(frames_dir / "00000.png", "--save-every (frames folder)")
    video = VideoWriter(args.video) if args.video else None

    def on_step(state: dict[str, Any]) -> None:
        from vqclip.io import to_image

        i = state["i"]
        if video is not None:
            video.add(to_image(state["image"][0]))
        if args.save_every and (i + 1) % args.save_every == 0:
            from vqclip.io import save_image

            save_image(to_image(state["image"][0]), frames_dir / f"{i + 1:05d}.png")

    if args.from_png is not None:
        _note_device_change(args.from_png, settings)
    if keeps_position(settings):
        log.info("a prompt states a position: flips, large shifts and small cutouts are off")
    state_path = args.out.with_suffix(".state.safetensors")
    if args.save_state:
        ensure_writable(state_path, "--save-state")
    result = generate(settings, callback=on_step, progress=not args.quiet,
                      save_state_every=args.save_state, state_path=state_path,
                      resume_state=args.resume_state)  # fmt: skip
    save_result_png(result.image, args.out, result.settings, device=result.device)
    if video is not None:
        video.close()
    log.info(
        "wrote %s (%d iterations, %.1fs, CLIP score %.3f)", args.out, len(result.losses),
        result.timings["optimise_s"], max(result.scores),
    )  # fmt: skip
    return 130 if result.interrupted else 0


def _cmd_batch(args: argparse.Namespace) -> int:
    """``generate --prompts-file FILE --out-dir DIR [--seeds] [--resume]``, torchrun-aware."""
    from vqclip.devices import dist_info, pick_device
    from vqclip.generation.batch import (
        check_out_dir,
        make_items,
        merge_manifests,
        parse_seeds,
        read_prompts_file,
        run_batch,
    )
    from vqclip.generation.settings import SettingError
    from vqclip.io import ensure_writable

    if args.prompts_file is None or args.out_dir is None:
        missing = "--prompts-file" if args.prompts_file is None else "--out-dir"
        raise VqclipError(f"a batch needs both --prompts-file and --out-dir; add {missing}")
    if getattr(args, "prompts", None):
        raise VqclipError("give either a PROMPT or --prompts-file, not both")
    if args.video or args.save_every or args.save_state or args.resume_state:
        raise VqclipError("--video, --save-every and the state flags make one picture; "
                          "run them without --prompts-file")  # fmt: skip
    prompts = read_prompts_file(args.prompts_file)  # a malformed line: nothing is made
    try:
        base = settings_from_args(args)
        base = dataclasses.replace(base, prompts=prompts[0][1]).validate()
    except SettingError as e:
        raise as_flag_error(e) from None
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [base.seed]
    items = make_items(prompts, seeds)
    ensure_writable(args.out_dir / items[0].file, "--out-dir")
    rank, world, local = dist_info()
    device = pick_device(base.device, local)
    base = dataclasses.replace(base, device=str(device))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        done = check_out_dir(args.out_dir, args.resume)
        if world > 1:
            dist.barrier()  # every rank has seen the folder before any writes to it
        counts = run_batch(items, base, args.out_dir, resume=args.resume, rank=rank,
                           world=world, progress=not args.quiet, done=done)  # fmt: skip
        if world > 1:
            dist.barrier()
        if rank == 0:
            path = merge_manifests(args.out_dir, items)
            log.info("made %d, skipped %d of %d items (this process); manifest %s",
                     counts["made"], counts["skipped"], counts["total"], path)  # fmt: skip
    finally:
        if world > 1:
            dist.destroy_process_group()
    return 0


def _note_device_change(png: Path, settings: Any) -> None:
    """Says so when ``--from`` reruns a PNG's settings on another kind of device."""
    from vqclip.devices import pick_device
    from vqclip.generation.outputs import read_meta

    made_on = str(read_meta(png).get("device", "cpu"))
    here = str(pick_device(settings.device))
    if made_on.split(":")[0] != here.split(":")[0]:
        log.warning("%s was made on %s and is rerun on %s: the pixels may differ", png,
                    made_on, here)  # fmt: skip


def cmd_eval_generate(args: argparse.Namespace) -> int:
    from vqclip.devices import dist_info, pick_device
    from vqclip.evaluate.generate_eval import CATEGORIES, split_unpruned, write_outputs
    from vqclip.generation.settings import GenerateSettings, SettingError
    from vqclip.io import ensure_dir

    ensure_dir(args.out)

    categories = tuple(c.strip() for c in args.categories.split(",") if c.strip())
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        named = ",".join(unknown) or "(none)"
        raise VqclipError(f"unknown --categories {named}; choose from {','.join(CATEGORIES)}")
    rank, world, local = dist_info()
    device = args.device
    if world > 1:  # torchrun: one device per rank, the images shared out as in a batch
        import torch.distributed as dist

        device = str(pick_device(args.device, local))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    base = GenerateSettings(clip=tuple(args.clip or ("shapes",)), device=device,
                            precision=args.precision)  # fmt: skip
    if args.settings:
        base = dataclasses.replace(base, **_settings_json(args.settings))
    try:  # check --clip/--device/--precision once, before any model loads
        dataclasses.replace(base, prompts="x").validate()
    except SettingError as e:
        raise as_flag_error(e) from None
    if args.iterations:
        base = dataclasses.replace(base, iterations=args.iterations)
    sheet: list[Any] = []
    methods: dict[str, dict[str, Any]] = {}

    def save(name: str) -> Callable[[dict[str, Any]], None]:
        def on_image(summary: dict[str, Any]) -> None:
            methods.update(split_unpruned(name, summary))
            write_outputs(args.out, methods, [])  # JSON and table, after every image

        return on_image

    try:
        return _eval_runs(args, base, methods, sheet, save, rank)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _settings_json(text: str) -> dict[str, Any]:
    """The fields of ``--settings JSON``, type-checked; prompts and seeds are the eval's own."""
    from vqclip.generation.settings import GenerateSettings

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise VqclipError(f"--settings is not JSON ({e.msg}); e.g. '{{\"lr\": 0.1}}'") from None
    for own in ("prompts", "seed"):
        if isinstance(data, dict) and own in data:
            raise VqclipError(f"--settings cannot set {own!r}: ShapesEval chooses it")
    parsed = GenerateSettings.from_json(data)  # type checks, unknown names
    return {k: getattr(parsed, k) for k in data}


def _eval_runs(args: argparse.Namespace, base: Any, methods: dict[str, Any], sheet: list[Any],
               save: Callable[[str], Any], rank: int) -> int:  # fmt: skip
    from vqclip.evaluate.generate_eval import (
        PLAIN,
        eval_generate,
        markdown,
        split_unpruned,
        write_outputs,
    )

    categories = tuple(c.strip() for c in args.categories.split(",") if c.strip())

    runs = [("defaults", base)]
    if args.ablate:
        runs.append(("plain", dataclasses.replace(base, **PLAIN)))
    try:
        for name, settings in runs:
            keep = sheet if name == "defaults" else None
            summary = eval_generate(
                args.n, settings, progress=not args.quiet, keep=keep, on_image=save(name),
                categories=categories,
            )  # fmt: skip
            methods.update(split_unpruned(name, summary))
    finally:  # Ctrl-C included: what was finished stays on disk
        if rank == 0:
            write_outputs(args.out, methods, sheet)
    if rank == 0:
        print(json.dumps(methods, indent=2) if args.json else markdown(methods))
    return 0


def add_animate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=16, help="number of frames (default: 16)")
    p.add_argument("--zoom", type=float, default=1.02, help="zoom per frame (default: 1.02)")
    p.add_argument("--rotate", type=float, default=0.0, help="degrees per frame (default: 0)")
    p.add_argument("--translate", type=float, nargs=2, default=(0.0, 0.0), metavar=("DX", "DY"),
                   help="pixels right and down per frame (default: 0 0)")  # fmt: skip
    p.add_argument("--iterations-per-frame", type=int, default=10,
                   help="iterations of every frame after the first (default: 10)")  # fmt: skip
    p.add_argument("--out-dir", type=Path, default=Path("frames"),
                   help="folder of the frames (default: frames); rerun to go on")  # fmt: skip
    p.add_argument("--video", type=Path, help="also write the frames as an MP4")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the MP4")
    p.add_argument("--sheet", type=Path, help="also write the frames as one contact sheet PNG")
    add_settings_args(p)


def cmd_animate(args: argparse.Namespace) -> int:
    from vqclip.generation.animate import Motion, animate
    from vqclip.generation.outputs import VideoWriter
    from vqclip.generation.settings import SettingError
    from vqclip.io import ensure_dir, ensure_writable, load_image

    try:
        settings = settings_from_args(args).validate()
    except SettingError as e:
        raise as_flag_error(e) from None
    motion = Motion(args.zoom, args.rotate, tuple(args.translate)).check()
    ensure_dir(args.out_dir)
    ensure_writable(args.out_dir / "00000.png", "--out-dir")
    video = VideoWriter(args.video, fps=args.fps) if args.video else None
    if args.video:
        ensure_writable(args.video, "--video")
    if args.sheet:
        ensure_writable(args.sheet, "--sheet")
    paths, interrupted = animate(settings, args.frames, motion, args.iterations_per_frame,
                                 args.out_dir, progress=not args.quiet)  # fmt: skip
    if video is not None and paths:
        for path in paths:
            video.add(load_image(path))
        video.close()
    if args.sheet and paths:
        from vqclip.io import save_image
        from vqclip.shapes.sheet import contact_sheet

        frames = [load_image(path) for path in paths]
        sheet = contact_sheet(frames, [f"frame {k}" for k in range(len(frames))],
                              columns=8, cell=96, text_lines=1)  # fmt: skip
        save_image(sheet, args.sheet)
    log.info("%d of %d frames in %s%s", len(paths), args.frames, args.out_dir,
             f", video {args.video}" if video is not None and paths else "")  # fmt: skip
    return 130 if interrupted else 0
