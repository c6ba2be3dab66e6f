"""Reading checkpoints without running code from them.

- ``.safetensors``: read by safetensors (no code at all);
- pickles (``.pt``, ``.bin``, ``.ckpt``, ``.pth``): ``torch.load(weights_only=True)``,
  which builds only tensors and plain containers and refuses anything else;
- TorchScript archives (OpenAI's JIT CLIP files): their ``data.pkl`` is read by a
  restricted unpickler that knows tensors, storages and inert stand-ins for the
  archive's module objects. ``torch.jit.load`` is never called, so none of the
  archive's code is compiled or run.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vqclip.errors import VqclipError

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _StorageType:
    """Stands for ``torch.<X>Storage`` in a pickle; only its dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class ScriptObject:
    """An inert stand-in for a TorchScript module object: it only keeps its state."""

    state: dict[str, Any]

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"__state__": state}


def _passthrough(value: Any, *_: Any) -> Any:
    return value


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("collections", "OrderedDict"): dict,
    ("torch.jit._pickle", "build_intlist"): _passthrough,
    ("torch.jit._pickle", "build_doublelist"): _passthrough,
    ("torch.jit._pickle", "build_boollist"): _passthrough,
    ("torch.jit._pickle", "build_tensorlist"): _passthrough,
    ("torch.jit._pickle", "restore_type_tag"): _passthrough,
}


class _ScriptUnpickler(pickle.Unpickler):
    """Builds tensors and stand-ins only; any other global is refused."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module.startswith("__torch__"):
            return type(name, (ScriptObject,), {})
        raise pickle.UnpicklingError(f"the archive asks for {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        raw = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
        empty = torch.empty(0, dtype=torch.uint8)
        flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else empty
        return torch.storage.TypedStorage(
            wrap_storage=flat.untyped_storage(), dtype=storage_type.dtype, _internal=True
        )


def _flatten(obj: ScriptObject, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for key, value in obj.state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, ScriptObject):
            _flatten(value, f"{prefix}{key}.", out)


def is_torchscript(path: Path) -> bool:
    """True for a zip archive holding TorchScript code (``code/`` or ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def read_torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive, named as ``state_dict`` names them."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        data_pkl = next((n for n in names if n.endswith("/data.pkl")), None)
        if data_pkl is None:
            raise VqclipError(f"{path} is a zip archive without data.pkl; not a TorchScript file")
        prefix = data_pkl.rsplit("/", 1)[0]
        root = _ScriptUnpickler(zf.read(data_pkl), zf, prefix).load()
    if not isinstance(root, ScriptObject):
        raise VqclipError(f"{path}: the TorchScript archive holds no module")
    out: dict[str, torch.Tensor] = {}
    _flatten(root, "", out)
    return out


def load_state_dict(path: Path, safe_globals: Sequence[Any] = ()) -> dict[str, Any]:
    """Loads a checkpoint's contents without executing code from it.

    Returns the object stored (usually a dict of tensors, or a dict holding one).
    ``safe_globals`` adds ``(stand_in, "module.Name")`` pairs that a pickle may name.

    Raises:
        VqclipError: missing, truncated or corrupt file, or a pickle that asks to
            build anything but tensors and plain containers.
    """
    if not path.is_file():
        raise VqclipError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(path))
        if is_torchscript(path):
            return dict(read_torchscript_state(path))
        with torch.serialization.safe_globals(list(safe_globals)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0][:200]
        raise VqclipError(
            f"refusing to load {path}: it asks to build something other than tensors "
            f"and plain data ({reason}); vqclip never runs code from a checkpoint"
        ) from None
    except (RuntimeError, OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise VqclipError(
            f"cannot read checkpoint {path}: {reason} (truncated or corrupt?)"
        ) from None
    except Exception as e:  # safetensors raises its own error type for corrupt files
        raise VqclipError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise VqclipError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def check_state(
    expected: dict[str, torch.Tensor], state: dict[str, Any], source: str, against: str
) -> None:
    """Raises a one-line error unless ``state`` has exactly the keys and shapes expected.

    ``against`` names what the tensors must match ("the architecture", "its config").
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise VqclipError(
            f"{source} does not match {against}: {len(missing)} missing (e.g. {missing[:1]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:1]})"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise VqclipError(
                f"{source}: {k} has shape {tuple(v.shape)}, {against} wants "
                f"{tuple(expected[k].shape)}"
            )
