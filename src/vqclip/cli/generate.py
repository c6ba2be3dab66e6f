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


def add_generate_args(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`GenerateSettings` field (help, default and choices from the field).

    Every flag defaults to "not given", so that only what the user typed overrides
    the defaults and the preset (see :func:`settings_from_args`).
    """
    import typing

    from vqclip.generation.settings import PRESETS, field_specs

    p.add_argument(
        "--out", type=Path, default=Path("out.png"), help="output PNG (default: out.png)"
    )
    p.add_argument("--from", dest="from_png", type=Path, help="repeat a PNG made by vqclip")
    p.add_argument("--preset", choices=tuple(PRESETS), help="models, size and loop settings")
    p.add_argument("--save-every", type=non_negative, default=0, help="save frames every N")
    p.add_argument("--video", type=Path, help="write an MP4 of the run")
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
        else:
            p.add_argument(flag_of(name), type=base, choices=choices, **kw)


def settings_from_args(args: argparse.Namespace) -> Any:
    """defaults ← ``--preset`` ← the flags actually given (or the settings of ``--from``)."""
    from vqclip.generation.settings import GenerateSettings, SettingError

    if args.from_png is not None:
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
    result = generate(settings, callback=on_step, progress=not args.quiet)
    save_result_png(result.image, args.out, result.settings, device=result.device)
    if video is not None:
        video.close()
    log.info(
        "wrote %s (%d iterations, %.1fs, CLIP score %.3f)", args.out, len(result.losses),
        result.timings["optimise_s"], max(result.scores),
    )  # fmt: skip
    return 130 if result.interrupted else 0


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
    from vqclip.evaluate.generate_eval import (
        CATEGORIES,
        PLAIN,
        eval_generate,
        markdown,
        write_outputs,
    )
    from vqclip.generation.settings import GenerateSettings, SettingError
    from vqclip.io import ensure_dir

    ensure_dir(args.out)

    categories = tuple(c.strip() for c in args.categories.split(",") if c.strip())
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        named = ",".join(unknown) or "(none)"
        raise VqclipError(f"unknown --categories {named}; choose from {','.join(CATEGORIES)}")
    base = GenerateSettings(clip=tuple(args.clip or ("shapes",)), device=args.device,
                            precision=args.precision)  # fmt: skip
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
                args.n, settings, progress=not args.quiet, keep=keep, on_image=save(name),
                categories=categories,
            )  # fmt: skip
    finally:  # Ctrl-C included: what was finished stays on disk
        write_outputs(args.out, methods, sheet)
    print(json.dumps(methods, indent=2) if args.json else markdown(methods))
    return 0
