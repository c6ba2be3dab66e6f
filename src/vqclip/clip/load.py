"""``load_clip(spec)``: the embedded model, any open_clip model, or a local checkpoint.

Specs:
- ``shapes``: the embedded Shapes CLIP shipped in the package;
- ``ARCH:TAG``: an open_clip architecture and pretrained tag (``ViT-B-32:openai``);
- a folder with ``open_clip_config.json`` and safetensors (or ``.bin``) weights;
- a file: an OpenAI CLIP checkpoint (state dict or TorchScript archive; the
  architecture is read off the tensors), or an open_clip checkpoint (``.pt``,
  ``.bin``, ``.safetensors``) with ``arch`` naming its architecture.

Nothing from a file is executed: pickles load with ``weights_only=True`` and
TorchScript archives are read by :mod:`vqclip.checkpoints`, never by ``torch.jit``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import open_clip
import torch

from vqclip.checkpoints import check_state, load_state_dict
from vqclip.clip.model import CONFIG_NAME, ClipBundle, build_model, make_bundle
from vqclip.errors import VqclipError
from vqclip.hub import home

log = logging.getLogger(__name__)

# Tensors some checkpoints carry that are no model parameters: OpenAI's JIT archives
# keep these sizes as tensors, and TorchScript keeps open_clip's non-persistent mask.
_NOT_PARAMETERS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def shapes_clip_dir() -> Path:
    """The folder of the embedded Shapes CLIP inside the package."""
    return Path(str(resources.files("vqclip") / "weights" / "shapes-clip"))


def load_clip(spec: str = "shapes", *, arch: str | None = None, device: str = "cpu") -> ClipBundle:
    """Loads a CLIP with its tokenizer and preprocessing.

    Args:
        spec: ``shapes``, ``ARCH:TAG``, a model folder, or a checkpoint file.
        arch: the open_clip architecture of an open_clip checkpoint file.
        device: where the model runs.

    Returns:
        A :class:`ClipBundle` in eval mode.

    Raises:
        VqclipError: unknown name or tag, missing or corrupt file, mismatched weights,
            or weights that are neither cached nor downloadable.
    """
    if spec == "shapes":
        bundle = _load_dir(shapes_clip_dir(), "shapes")
    elif Path(spec).is_dir():
        bundle = _load_dir(Path(spec), spec)
    elif Path(spec).is_file():
        bundle = _load_file(Path(spec), arch)
    elif ":" in spec and not spec.startswith(("/", ".")):
        bundle = _load_pretrained(*spec.split(":", 1))
    else:
        raise VqclipError(
            f"no CLIP {spec!r}: give 'shapes', ARCH:TAG (e.g. ViT-B-32:openai), "
            "a model folder or a checkpoint file"
        )
    bundle.model.to(device)
    return bundle


def _load_dir(folder: Path, name: str) -> ClipBundle:
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise VqclipError(f"{folder} holds no {CONFIG_NAME}; it is not an open_clip model folder")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise VqclipError(f"cannot read {cfg_path}: {e}") from None
    model_cfg = meta.get("model_cfg", meta)
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not weights:
        raise VqclipError(f"{folder} holds no weights (*.safetensors or *.bin)")
    model = build_model(model_cfg)
    _load_strict(model, load_state_dict(weights[0]), weights[0])
    return make_bundle(model, model_cfg, meta.get("preprocess_cfg"), name)


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Loads every parameter with matching shapes, or raises a one-line error."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    state = {
        k: v
        for k, v in state.items()
        if k in expected or k.rsplit(".", 1)[-1] not in _NOT_PARAMETERS
    }
    check_state(expected, state, str(source), "the architecture")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def _load_file(path: Path, arch: str | None) -> ClipBundle:
    state = load_state_dict(path)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if arch is not None:
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise VqclipError(
                f"unknown open_clip architecture {arch!r} (see open_clip.list_models())"
            )
        preprocess = None
    elif "visual.proj" in state and "text_projection" in state:
        model_cfg = openai_config_from_state_dict(state)
        preprocess = {"mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD}
    else:
        raise VqclipError(
            f"{path} is not an OpenAI CLIP checkpoint; for an open_clip checkpoint pass "
            "its architecture with --clip-arch (e.g. ViT-B-32)"
        )
    model = build_model(model_cfg)
    _load_strict(model, state, path)
    return make_bundle(model, model_cfg, preprocess, str(path))


def openai_config_from_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """An open_clip config for an OpenAI ViT CLIP, read off its tensors' shapes.

    As OpenAI's ``build_model`` does: widths from the projections and embeddings,
    depth from the number of residual blocks, patch size from the first conv.
    """
    if "visual.conv1.weight" not in state or "visual.class_embedding" not in state:
        raise VqclipError(
            "only ViT OpenAI checkpoints are inferred; for a ResNet one pass --clip-arch RN50"
        )
    width = state["visual.conv1.weight"].shape[0]
    patch = state["visual.conv1.weight"].shape[-1]
    v_layers = len(
        {k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")}
    )
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    t_width = state["ln_final.weight"].shape[0]
    t_layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    return {
        "embed_dim": state["text_projection"].shape[1],
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": grid * patch, "layers": v_layers, "width": width,
            "patch_size": patch, "head_width": 64,
        },
        "text_cfg": {
            "context_length": state["positional_embedding"].shape[0],
            "vocab_size": state["token_embedding.weight"].shape[0],
            "width": t_width, "heads": max(1, t_width // 64), "layers": t_layers,
        },
    }  # fmt: skip


def _reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host``:443 opens within ``timeout`` seconds."""
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _quiet_hub(offline: bool) -> Iterator[None]:
    """No hub or open_clip log lines; with ``offline``, the hub reads its cache only.

    Offline, an uncached model fails at once instead of after a minute of retries.
    """
    import huggingface_hub.constants as hub

    loggers = [logging.getLogger(n) for n in ("huggingface_hub", "open_clip", "root")]
    levels = [lg.level for lg in loggers]
    was = hub.HF_HUB_OFFLINE
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        hub.HF_HUB_OFFLINE = was or offline
        yield
    finally:
        hub.HF_HUB_OFFLINE = was
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def cached_pretrained() -> list[str]:
    """The open_clip ``ARCH:TAG`` models whose weights are already in vqclip's cache
    (``$VQCLIP_HOME/open_clip``), so they load offline; in open_clip's list order."""
    cache = home() / "open_clip"
    if not cache.is_dir():
        return []
    found = []
    for arch, tag in open_clip.list_pretrained():
        if _in_cache(open_clip.get_pretrained_cfg(arch, tag), cache):
            found.append(f"{arch}:{tag}")
    return found


def _in_cache(cfg: dict[str, Any], cache: Path) -> bool:
    """Whether open_clip's ``download_pretrained`` would find ``cfg``'s weights in ``cache``.

    As it does, a hub entry wins over a URL: then only the hub's snapshot layout counts (a
    ``.safetensors`` twin first, as open_clip looks for it); otherwise a file named after
    the URL.
    """
    from huggingface_hub import try_to_load_from_cache
    from open_clip.constants import HF_WEIGHTS_NAME
    from open_clip.pretrained import _get_safe_alternatives

    hub = cfg.get("hf_hub", "")
    if not hub:
        url = cfg.get("url", "")
        return bool(url) and (cache / url.rsplit("/", 1)[-1]).is_file()
    repo, _, filename = hub.rpartition("/")
    filename = filename or HF_WEIGHTS_NAME
    names = [*_get_safe_alternatives(filename), filename]  # the order open_clip tries them
    return any(
        isinstance(try_to_load_from_cache(repo, n, cache_dir=str(cache)), str) for n in names
    )


def _load_pretrained(arch: str, tag: str) -> ClipBundle:
    if arch not in open_clip.list_models():
        raise VqclipError(f"unknown open_clip architecture {arch!r} (see open_clip.list_models())")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise VqclipError(f"unknown tag {tag!r} for {arch}; known: {', '.join(tags) or 'none'}")
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    try:
        with _quiet_hub(offline=not _reachable("huggingface.co")):
            # fetch (or find in the cache) before building the model: fails in seconds
            open_clip.pretrained.download_pretrained(cfg, cache_dir=str(home() / "open_clip"))
            model = open_clip.create_model(
                arch, pretrained=tag, cache_dir=str(home() / "open_clip")
            )
    except Exception as e:  # network, hub and file errors all mean "weights not available"
        if cfg.get("url"):  # an OpenAI file: its architecture is read from the tensors
            fix = f"download {cfg['url']} and pass it with --clip FILE"
        else:
            repo = f"https://huggingface.co/{cfg.get('hf_hub', '').rstrip('/')}"
            fix = (
                f"download open_clip_model.safetensors from {repo} and pass it with "
                f"--clip FILE --clip-arch {arch}"
            )
        raise VqclipError(
            f"weights for {arch}:{tag} are not cached and could not be fetched "
            f"({type(e).__name__}); {fix}"
        ) from None
    model_cfg = open_clip.get_model_config(arch)
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return make_bundle(model, model_cfg, preprocess, f"{arch}:{tag}")
