"""``load_vqgan(spec)``: the embedded model, a registry name, or official local files.

Official taming-transformers checkpoints are PyTorch Lightning pickles. They are read
with ``torch.load(weights_only=True)``: only tensors and plain containers are built,
plus inert stand-ins for the few Lightning/numpy names those files mention (a
callback class used as a dict key, numpy scalars). Nothing in the file is called.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from vqclip.checkpoints import check_state, load_state_dict
from vqclip.errors import VqclipError
from vqclip.vqgan.model import VQGAN, DDConfig, VQGANConfig

log = logging.getLogger(__name__)

# Lightning targets of taming's configs and the quantiser each one uses.
TARGETS = {"taming.models.vqgan.VQModel": "vq", "taming.models.vqgan.GumbelVQ": "gumbel"}
# Keys of ``model.params`` that describe training, not the network; read and dropped.
_TRAINING_PARAMS = {
    "lossconfig", "ckpt_path", "ignore_keys", "image_key", "colorize_nlabels", "monitor",
    "temperature_scheduler_config", "remap", "sane_index_shape",
}  # fmt: skip
# State-dict prefixes of training-only modules (perceptual loss, discriminator).
TRAINING_ONLY_PREFIXES = ("loss.",)

_F16 = {
    "double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3,
    "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16],
    "dropout": 0.0,
}  # fmt: skip
_F8 = {**_F16, "ch_mult": [1, 1, 2, 4], "attn_resolutions": [32]}
_HEIBOX = "https://heibox.uni-heidelberg.de/d/{}/files/?p=%2F{}&dl=1"


@dataclass(frozen=True)
class RegistryEntry:
    """A public checkpoint: where to get it and its network config."""

    name: str
    checkpoint_url: str
    config_url: str
    params: dict[str, Any]
    target: str = "taming.models.vqgan.VQModel"
    sha256: str | None = None  # None where no published checksum is known
    size_mb: int = 0
    aliases: tuple[str, ...] = field(default=())


REGISTRY: dict[str, RegistryEntry] = {
    e.name: e
    for e in (
        RegistryEntry(
            "imagenet_f16_1024",
            _HEIBOX.format("8088892a516d4e3baf92", "ckpts%2Flast.ckpt"),
            _HEIBOX.format("8088892a516d4e3baf92", "configs%2Fmodel.yaml"),
            {"embed_dim": 256, "n_embed": 1024, "ddconfig": _F16},
            size_mb=957,
        ),
        RegistryEntry(
            "imagenet_f16_16384",
            _HEIBOX.format("a7530b09fed84f80a887", "ckpts%2Flast.ckpt"),
            _HEIBOX.format("a7530b09fed84f80a887", "configs%2Fmodel.yaml"),
            {"embed_dim": 256, "n_embed": 16384, "ddconfig": _F16},
            size_mb=980,
        ),
        RegistryEntry(
            "gumbel_f8_8192",
            _HEIBOX.format("2e5662443a6b4307b470", "ckpts%2Flast.ckpt"),
            _HEIBOX.format("2e5662443a6b4307b470", "configs%2Fmodel.yaml"),
            {"embed_dim": 256, "n_embed": 8192, "kl_weight": 1e-8, "ddconfig": _F8},
            target="taming.models.vqgan.GumbelVQ",
            size_mb=376,
            aliases=("openimages_f8_8192",),
        ),
        RegistryEntry(
            "wikiart_16384",
            "http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.ckpt",
            "http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.yaml",
            {"embed_dim": 256, "n_embed": 16384, "ddconfig": _F16},
            size_mb=958,
        ),
    )
}


def config_from_params(params: dict[str, Any], target: str) -> VQGANConfig:
    """A :class:`VQGANConfig` from taming's ``model.params`` and ``model.target``.

    Raises:
        VqclipError: unknown target, or a missing or unknown key.
    """
    if target not in TARGETS:
        raise VqclipError(f"unknown model.target {target!r}; expected one of {sorted(TARGETS)}")
    if not isinstance(params, dict):
        raise VqclipError("model.params must be a mapping")
    network = {k: v for k, v in params.items() if k not in _TRAINING_PARAMS}
    for key in ("embed_dim", "n_embed", "ddconfig"):
        if key not in network:
            raise VqclipError(f"the VQGAN config lacks model.params.{key}")
    known = {"embed_dim", "n_embed", "ddconfig", "kl_weight", "beta", "legacy"}
    unknown = sorted(set(network) - known)
    if unknown:
        raise VqclipError(f"unknown key(s) in model.params: {unknown}")
    return VQGANConfig(
        embed_dim=int(network["embed_dim"]),
        n_embed=int(network["n_embed"]),
        ddconfig=DDConfig.from_dict(dict(network["ddconfig"])),
        quantizer=TARGETS[target],
        kl_weight=float(network.get("kl_weight", 1e-8)),
        legacy=bool(network.get("legacy", True)),
        beta=float(network.get("beta", 0.25)),
    )


def read_yaml_config(path: Path) -> VQGANConfig:
    """Reads an official taming yaml (``model.target`` + ``model.params``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise VqclipError(f"cannot read VQGAN config {path}: {e}") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or "target" not in model or "params" not in model:
        raise VqclipError(f"{path} lacks model.target and model.params")
    return config_from_params(model["params"], model["target"])


class _Inert:
    """Stands for a Lightning or numpy name in an official checkpoint; never called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _inert_scalar(*args: Any) -> None:
    return None


# Names that official Lightning checkpoints mention, mapped to inert stand-ins.
_LIGHTNING_NAMES: list[Any] = [
    (_Inert, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
    (_inert_scalar, "numpy.core.multiarray.scalar"),
    (_Inert, "numpy.dtype"),
]


def read_lightning_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read without running its code."""
    obj = load_state_dict(path, safe_globals=_LIGHTNING_NAMES)
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict):
        raise VqclipError(f"{path} holds no state_dict")
    return state


def build_from_state(cfg: VQGANConfig, state: dict[str, Any], source: str) -> VQGAN:
    """Builds the model and loads ``state`` strictly, after dropping training-only keys."""
    dropped = sorted(k for k in state if k.startswith(TRAINING_ONLY_PREFIXES))
    if dropped:
        log.info("dropping %d training-only tensors (%s...)", len(dropped), dropped[0])
    state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
    model = VQGAN(cfg)
    check_state(model.state_dict(), state, source, "its config")
    model.load_state_dict(state, strict=True)
    return model.eval()


def shapes_vqgan_dir() -> Path:
    """The folder of the embedded Shapes VQGAN inside the package."""
    return Path(str(resources.files("vqclip") / "weights" / "shapes-vqgan"))


def load_vqgan_dir(folder: Path) -> VQGAN:
    """Loads a vqclip model folder (``config.json`` + ``vqgan.safetensors``)."""
    try:
        cfg = VQGANConfig.from_dict(json.loads((folder / "config.json").read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise VqclipError(f"cannot read {folder}/config.json: {e}") from None
    path = folder / "vqgan.safetensors"
    return build_from_state(cfg, load_state_dict(path), str(path))


def resolve_name(name: str) -> RegistryEntry:
    for entry in REGISTRY.values():
        if name in (entry.name, *entry.aliases):
            return entry
    raise VqclipError(
        f"unknown VQGAN {name!r}; known: shapes, {', '.join(REGISTRY)} (see 'vqclip models')"
    )


def load_vqgan(
    spec: str = "shapes",
    *,
    config: str | Path | None = None,
    checkpoint: str | Path | None = None,
    download: bool = True,
    device: str = "cpu",
) -> VQGAN:
    """Loads a VQGAN in eval mode.

    Args:
        spec: ``shapes``, a registry name (``imagenet_f16_16384``, ...) or a vqclip
            model folder; ignored when ``config`` and ``checkpoint`` are given.
        config: an official yaml (with ``checkpoint``).
        checkpoint: an official Lightning ``.ckpt`` (with ``config``).
        download: fetch a registry checkpoint that is not cached yet.
        device: where the model runs.

    Raises:
        VqclipError: unknown name, bad yaml, mismatched tensors, missing files.
    """
    if (config is None) != (checkpoint is None):
        raise VqclipError("give both --vqgan-config X.yaml and --vqgan-checkpoint X.ckpt")
    if config is not None and checkpoint is not None:
        cfg = read_yaml_config(Path(config))
        model = build_from_state(cfg, read_lightning_state(Path(checkpoint)), str(checkpoint))
    elif spec == "shapes":
        model = load_vqgan_dir(shapes_vqgan_dir())
    elif Path(spec).is_dir():
        model = load_vqgan_dir(Path(spec))
    else:
        from vqclip.hub import fetch

        entry = resolve_name(spec)
        path = fetch(entry.checkpoint_url, f"vqgan/{entry.name}.ckpt", entry.sha256, download)
        cfg = config_from_params(entry.params, entry.target)
        model = build_from_state(cfg, read_lightning_state(path), str(path))
    return model.to(device)
