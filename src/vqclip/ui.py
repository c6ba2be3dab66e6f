"""``vqclip ui``: a Gradio app for generating, with a live preview and a gallery.

The form is built from :class:`~vqclip.generation.settings.GenerateSettings`' fields (the
same source as the command line's flags, so the two never disagree); a run's settings
go through the same checks and come back with the same one-line messages. One
generation runs at a time; others wait in Gradio's queue, which shows their place.
Results are PNGs (with their settings inside, as the CLI writes them) in the output
folder, which is also the gallery.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import socket
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vqclip.errors import VqclipError
from vqclip.generation.settings import GenerateSettings, SettingError, field_specs

log = logging.getLogger(__name__)

# Shown open; everything else folds under "Advanced".
MAIN = ("iterations", "seed", "size", "clip", "vqgan", "lr", "cutn", "init_noise")
PREVIEW_EVERY = 5
PROMPT_HELP = (
    "Prompts are separated by |, each may end in :weight (negative pushes away) and "
    ":weight:stop; ^ separates story scenes, e.g. `a red circle:2 | a blue square:-1`."
)


def _widget_value(name: str, value: Any) -> Any:
    """A setting's value as its form widget shows it."""
    if name == "size":
        return "" if value is None else f"{value[0]} {value[1]}"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value is None:
        return ""
    return value


def _from_widget(name: str, hint: Any, value: Any) -> Any:
    """A form value as the setting's type (blank = the default)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if type(None) in typing.get_args(hint) else hint
    if name == "size":
        text = str(value or "").replace(",", " ").split()
        if not text:
            return None
        if len(text) != 2 or not all(t.isdigit() for t in text):
            raise VqclipError(f"--size {value!r}: give width and height, e.g. 64 64")
        return int(text[0]), int(text[1])
    if typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        parts = [p.strip() for p in str(value or "").split(",") if p.strip()]
        try:
            return tuple(item(p) for p in parts)
        except ValueError:
            raise VqclipError(f"{name}: {value!r} is not a list of {item.__name__}") from None
    if type(None) in typing.get_args(hint) and str(value or "").strip().lower() in ("", "none"):
        return None
    if base is bool:
        return bool(value)
    if base is int:
        if isinstance(value, float) and not value.is_integer():
            raise VqclipError(f"{name}: {value} is not a whole number")
        return int(value)
    if base is float:
        try:
            return float(value)
        except ValueError:
            raise VqclipError(f"{name}: {value!r} is not a number") from None
    return str(value)


def settings_from_form(prompt: str, names: list[str], values: list[Any]) -> GenerateSettings:
    """The settings a form describes, checked; errors worded as the CLI words them.

    Raises:
        VqclipError: a malformed prompt or setting, in one line.
    """
    from vqclip.cli.generate import as_flag_error, flag_of
    from vqclip.generation.prompts import parse_story

    hints = {name: hint for name, hint, *_ in field_specs()}
    given: dict[str, Any] = {"prompts": prompt or ""}
    for name, value in zip(names, values, strict=True):
        try:
            given[name] = _from_widget(name, hints[name], value)
        except VqclipError as e:
            raise VqclipError(str(e).replace(f"{name}:", flag_of(name), 1)) from None
    try:
        s = GenerateSettings().resolve(None, given).validate()
    except SettingError as e:
        raise as_flag_error(e) from None
    parse_story(s.prompts)
    return s


def gallery_items(folder: Path) -> list[tuple[str, str]]:
    """(path, caption) of the folder's PNGs, newest first; the caption is the prompt."""
    from vqclip.generation.outputs import read_meta

    out = []
    pngs = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in pngs:
        try:
            caption = str(read_meta(path).get("settings", {}).get("prompts", ""))
        except VqclipError:
            caption = "(no vqclip settings)"
        out.append((str(path), caption))
    return out


def shown(image: Any, side: int = 320) -> Any:
    """A small picture enlarged (whole pixels, nearest) for the page; files keep its size."""
    from PIL import Image

    k = max(1, side // max(image.size))
    size = (image.width * k, image.height * k)
    return image if k == 1 else image.resize(size, Image.Resampling.NEAREST)


class Runner:
    """Runs one generation in a thread and streams its previews; can be stopped."""

    def __init__(self, models: dict[tuple[str, ...], Any]) -> None:
        self.models = models
        self.lock = threading.Lock()  # one generation at a time per device

    def _load(self, s: GenerateSettings) -> tuple[list[Any], Any]:
        from vqclip.generation.batch import load_models

        key = (*s.clip, s.vqgan, str(s.vqgan_config), str(s.vqgan_checkpoint))
        if key not in self.models:
            self.models.clear()  # keep one set of models in memory
            self.models[key] = load_models(s)
        return typing.cast(tuple[list[Any], Any], self.models[key])

    def run(self, s: GenerateSettings, stop: threading.Event) -> Iterator[dict[str, Any]]:
        """Yields ``{"kind": "preview"|"done", ...}`` events; ``stop`` ends the run early."""
        from vqclip.generation.generator import generate
        from vqclip.generation.layout import run_iterations
        from vqclip.io import to_image

        events: queue.Queue[dict[str, Any]] = queue.Queue()
        total = run_iterations(s)  # the steps the run takes: a Shapes pair runs longer

        def on_step(state: dict[str, Any]) -> None:
            i = state["i"]
            if (i + 1) % PREVIEW_EVERY == 0 or i + 1 == total:
                frame = to_image(state["image"][0])
                events.put({"kind": "preview", "i": i + 1, "total": total,
                            "loss": state["loss"], "frame": frame,
                            "image": shown(frame)})  # fmt: skip
            if stop.is_set():
                raise KeyboardInterrupt  # generate() keeps the image so far

        def work() -> None:
            try:
                with self.lock:
                    clips, vq = self._load(s)
                    result = generate(s, clips=clips, vqgan=vq, callback=on_step)
                events.put({"kind": "done", "result": result})
            except VqclipError as e:
                events.put({"kind": "error", "message": str(e)})
            except Exception as e:  # shown in the page; the server goes on
                log.exception("generation failed")
                events.put({"kind": "error", "message": f"generation failed: {e}"})

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while True:
                event = events.get()
                yield event
                if event["kind"] in ("done", "error"):
                    return
        finally:  # the page went away or Cancel was pressed: stop the loop, keep its image
            stop.set()
            thread.join()


def save_result(
    result: Any, folder: Path, frames: list[Any] | None = None
) -> tuple[Path, Path | None]:
    """The result's PNG (settings inside) in ``folder``; with ``frames``, an MP4 of the run."""
    from vqclip.generation.outputs import VideoWriter, save_result_png

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = folder / f"{stamp}_s{result.settings.seed}"
    k = 0
    while base.with_suffix(".png").exists():
        k += 1
        base = folder / f"{stamp}_s{result.settings.seed}_{k}"
    png = base.with_suffix(".png")
    save_result_png(result.image, png, result.settings, device=result.device)
    mp4 = None
    if frames:
        writer = VideoWriter(base.with_suffix(".mp4"), fps=8)
        for frame in [*frames, result.image]:
            writer.add(frame)
        writer.close()
        mp4 = base.with_suffix(".mp4")
    return png, mp4


def build_app(folder: Path) -> Any:
    """The Gradio Blocks app, results in ``folder``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from vqclip.generation.outputs import read_meta, read_settings
    from vqclip.io import ensure_dir

    ensure_dir(folder)
    runner = Runner({})
    specs = [spec for spec in field_specs() if spec[0] != "prompts"]
    names = [name for name, *_ in specs]
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])

    def widget(name: str, hint: Any, default: Any, text: str, choices: Any) -> Any:
        label = name.replace("_", " ")
        value = _widget_value(name, default)
        if choices and typing.get_origin(hint) is not tuple:
            return gr.Dropdown(list(choices), value=value, label=label, info=text,
                               elem_id=f"s-{name}")  # fmt: skip
        if hint is bool:
            return gr.Checkbox(value=value, label=label, info=text, elem_id=f"s-{name}")
        if hint in (int, float):
            return gr.Number(value=value, label=label, info=text, elem_id=f"s-{name}",
                             precision=0 if hint is int else None)  # fmt: skip
        if name in ("clip", "vqgan"):
            known = ["shapes", *_cached_models(name)]
            shown = value if isinstance(value, str) else ",".join(value)
            return gr.Dropdown(known, value=shown, label=label, allow_custom_value=True,
                               info=text + " (or a local path / ARCH:TAG)",
                               elem_id=f"s-{name}")  # fmt: skip
        return gr.Textbox(value=value, label=label, info=text, elem_id=f"s-{name}")

    with gr.Blocks(title="vqclip") as app:
        gr.Markdown("# vqclip\nText to picture with VQGAN+CLIP, on this machine.")
        with gr.Tab("Generate"), gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="Prompt", info=PROMPT_HELP, elem_id="prompt",
                                    placeholder="a red circle in the top left")  # fmt: skip
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                    cancel = gr.Button("Cancel", elem_id="cancel")
                make_video = gr.Checkbox(False, label="also write an MP4 of the run",
                                             elem_id="video")  # fmt: skip
                widgets: dict[str, Any] = {}
                with gr.Accordion("Settings", open=True):
                    for spec in specs:
                        if spec[0] in MAIN:
                            widgets[spec[0]] = widget(*spec)
                with gr.Accordion("Advanced", open=False):
                    for spec in specs:
                        if spec[0] not in MAIN:
                            widgets[spec[0]] = widget(*spec)
            with gr.Column(scale=1):
                status = gr.Markdown("Ready.", elem_id="status")
                image = gr.Image(label="Preview", type="pil", elem_id="preview",
                                 interactive=False, format="png")  # fmt: skip
                used = gr.JSON(label="Settings of the result", elem_id="used")
                files = gr.File(label="Downloads", file_count="multiple", elem_id="files")
        with gr.Tab("Gallery") as gallery_tab:
            refresh = gr.Button("Refresh", elem_id="refresh")
            gallery = gr.Gallery(label="Results", columns=6, elem_id="gallery",
                                 allow_preview=False)  # fmt: skip
            picked = gr.Textbox(label="Picked", interactive=False, elem_id="picked")
            picked_settings = gr.JSON(label="Its settings", elem_id="picked-settings")
            with gr.Row():
                load = gr.Button("Load these settings", elem_id="load")
                reproduce = gr.Button("Reproduce", elem_id="reproduce")
            reproduced = gr.Textbox(label="Reproduced as", interactive=False,
                                    elem_id="reproduced")  # fmt: skip
        stop_flag = gr.State(None)
        ordered = [widgets[n] for n in names]

        def start() -> threading.Event:
            return threading.Event()

        track = gr.Progress()

        def run(prompt_text: str, video: bool, stop: threading.Event | None, *values: Any,
                progress: Any = track) -> Iterator[Any]:  # fmt: skip
            try:
                s = settings_from_form(prompt_text, names, list(values))
            except VqclipError as e:
                raise gr.Error(str(e), print_exception=False) from None
            stop = stop or threading.Event()
            frames: list[Any] = []  # the previews, for the MP4 of the run
            yield "Starting…", gr.skip(), gr.skip(), gr.skip()
            for event in runner.run(s, stop):
                if event["kind"] == "preview":
                    if video:
                        frames.append(event["frame"])
                    i, total = event["i"], event["total"]  # a Shapes pair runs longer
                    progress((i, total), desc="generating")
                    text = f"Iteration {i} of {total}, loss {event['loss']:.4f}"
                    yield text, event["image"], gr.skip(), gr.skip()
                elif event["kind"] == "error":
                    raise gr.Error(event["message"], print_exception=False)
                else:
                    result = event["result"]
                    png, mp4 = save_result(result, folder, frames if video else None)
                    word = "Cancelled" if result.interrupted else "Done"
                    yield (f"{word}: {len(result.losses)} iterations, "
                           f"{result.timings['optimise_s']:.1f} s, saved {png.name}",
                           shown(result.image), result.settings.to_json(),
                           [str(p) for p in (png, mp4) if p is not None])  # fmt: skip

        def stop_run(stop: threading.Event | None) -> None:
            if stop is not None:
                stop.set()

        def pick(evt: gr.SelectData) -> tuple[str, Any]:
            items = gallery_items(folder)
            path = items[evt.index][0] if evt.index < len(items) else ""
            try:
                return path, read_meta(Path(path)).get("settings", {})
            except VqclipError as e:
                return path, {"error": str(e)}

        pick.__annotations__["evt"] = gr.SelectData  # Gradio reads the real class

        def load_settings(path: str) -> list[Any]:
            try:
                s = read_settings(Path(path))
            except VqclipError as e:
                raise gr.Error(str(e) if path else "pick a picture first",
                               print_exception=False) from None  # fmt: skip
            data = dataclasses.asdict(s)
            return [s.prompts, *(_widget_value(n, data[n]) for n in names)]

        def reproduce_it(path: str) -> str:
            try:
                s = read_settings(Path(path))
            except VqclipError as e:
                raise gr.Error(str(e) if path else "pick a picture first",
                               print_exception=False) from None  # fmt: skip
            result = None
            for event in runner.run(s, threading.Event()):
                if event["kind"] == "error":
                    raise gr.Error(event["message"], print_exception=False)
                if event["kind"] == "done":
                    result = event["result"]
            assert result is not None
            png, _ = save_result(result, folder)
            return str(png)

        # a fresh stop flag per run (outside the queue), then the run (one at a time)
        go.click(start, None, stop_flag, queue=False).then(
            run, [prompt, make_video, stop_flag, *ordered], [status, image, used, files],
            concurrency_limit=1, concurrency_id="device",
        )  # fmt: skip
        cancel.click(stop_run, stop_flag, None, queue=False)
        refresh.click(lambda: gallery_items(folder), None, gallery)
        gallery_tab.select(lambda: gallery_items(folder), None, gallery)
        gallery.select(pick, None, [picked, picked_settings])
        load.click(load_settings, picked, [prompt, *ordered])
        reproduce.click(reproduce_it, picked, reproduced, concurrency_limit=1,
                        concurrency_id="device")  # fmt: skip
    app.queue(default_concurrency_limit=1)
    app.vqclip_theme = theme
    return app


def _cached_models(kind: str) -> list[str]:
    """Public models already in vqclip's cache, so they load offline."""
    from vqclip.hub import home

    if kind == "vqgan":
        from vqclip.vqgan.load import REGISTRY

        return [n for n in REGISTRY if (home() / "vqgan" / f"{n}.ckpt").is_file()]
    from vqclip.clip.load import cached_pretrained

    return cached_pretrained()


def check_port(host: str, port: int) -> None:
    """Raises a one-line error when ``host:port`` cannot be bound (in use, or not ours)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as e:
            why = "is in use" if e.errno in (98, 48) else f"cannot be used ({e.strerror})"
            raise VqclipError(f"port {port} on {host} {why}; choose another --port") from None


def serve(folder: Path, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Builds the app and serves it until Ctrl-C."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise VqclipError("vqclip ui needs Gradio: pip install 'vqclip[ui]'") from None
    from vqclip.io import ensure_dir

    ensure_dir(folder)
    check_port(host, port)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup probes
    app = build_app(folder)
    log.info("vqclip ui on http://%s:%d (results in %s); Ctrl-C stops it", host, port, folder)
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False,
               show_error=True, quiet=True, theme=app.vqclip_theme)  # fmt: skip
