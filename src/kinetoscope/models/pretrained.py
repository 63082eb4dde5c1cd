"""Checkpoints for every model of the project: a folder with ``config.json`` and safetensors.

Layout of a checkpoint folder::

    config.json                         {"model": "<class name>", <the config dataclass's fields>}
    model.safetensors                   all weights, when they fit in one shard; otherwise
    model-00001-of-00003.safetensors    shards of at most ``max_shard_bytes`` each, and
    model.safetensors.index.json        {"metadata": {"total_size": N}, "weight_map": {name: file}}

Policies, each chosen on purpose:

- Shards. The project's shipping rule is that no file is over 15 MiB, so `MAX_SHARD_BYTES` (the
  default limit) is 15 MiB less a margin. Tensors are packed into shards greedily in state-dict
  order; each shard's size is counted with a generous allowance for its JSON header, and every
  written file is checked against the limit. A single tensor too large for a shard is an error
  that names it (a model that breaks the shipping rule should fail at the first save).
- Atomic saves. Everything is written into a hidden temporary folder beside the target, which
  then replaces the target with two renames (old out of the way, new into place) and the old
  folder is deleted only after that. A failure leaves an existing checkpoint intact and no
  temporary folder behind; at worst a crash between the two renames leaves the old checkpoint
  in ``.<name>.<token>.old`` beside the target. Files in an existing folder that are not part of
  a checkpoint (a README, say) are copied into the new one, so they survive; stale shards do not.
  Missing parent folders are created.
- Loading. ``config.json`` is checked field by field against the config dataclass's types
  (JSON lists become tuples); an unknown field is an error, a missing field takes its default,
  so checkpoints stay loadable when a config grows a field. Every tensor's name and shape is
  checked against the model before any weight is copied. Errors are `CheckpointError`, naming
  the file, field or tensor at fault.
- Dtypes. ``save_pretrained(dtype=torch.bfloat16)`` stores floating tensors in bf16 (integer
  buffers keep theirs). ``load_pretrained`` builds the model in its own default dtype (float32)
  and copies the stored values in, unless ``dtype`` asks for another.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from kinetoscope.errors import KinetoscopeError

__all__ = [
    "CONFIG_FILE",
    "INDEX_FILE",
    "MAX_SHARD_BYTES",
    "WEIGHTS_FILE",
    "CheckpointError",
    "config_from_dict",
    "config_to_dict",
    "load_pretrained",
    "save_pretrained",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_SHARD_BYTES = 15 * 2**20 - 64 * 2**10  # the 15 MiB shipping rule, less a margin
MODEL_KEY = "model"  # the config.json field naming the model class
_SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_HEADER_BYTES = 1024  # a shard's fixed header allowance: length prefix, metadata, braces
_HEADER_BYTES_PER_TENSOR = (
    160  # plus its name: '"name":{"dtype":..,"shape":[..],"data_offsets":[..]}'
)

ModelT = TypeVar("ModelT", bound=nn.Module)
ConfigT = TypeVar("ConfigT")


class CheckpointError(KinetoscopeError):
    """A checkpoint could not be saved or loaded; the message names the file, field or tensor."""


# ---------------------------------------------------------------------------------------------
# Saving


def save_pretrained(
    model: nn.Module,
    config: object,
    folder: str | os.PathLike[str],
    dtype: torch.dtype | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """Write ``model``'s weights and ``config`` (a dataclass) to ``folder``, atomically.

    ``dtype`` converts floating tensors (bf16 for shipped weights); ``max_shard_bytes`` caps
    every weight file. Returns the folder. Raises `CheckpointError`.
    """
    # 1. check the arguments and plan the files before touching the disk
    folder = Path(folder)
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise CheckpointError(f"{folder}: config must be a dataclass instance, got {config!r}")
    if dtype is not None and not dtype.is_floating_point:
        raise CheckpointError(f"{folder}: dtype must be a floating dtype, got {dtype}")
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    tensors = _tensors_to_save(model, dtype)
    shards = _plan_shards(tensors, max_shard_bytes, folder)
    config_json = {MODEL_KEY: type(model).__name__, **config_to_dict(config)}
    # 2. write everything into a hidden folder beside the target
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.tmp")
    try:
        temporary.mkdir()
        _write_json(temporary / CONFIG_FILE, config_json)
        _write_weights(temporary, tensors, shards, max_shard_bytes)
        _carry_over_other_files(folder, temporary)
        # 3. swap it into place; the old checkpoint is deleted only once the new one is there
        _replace_folder(folder, temporary)
    except OSError as exc:
        raise CheckpointError(f"{folder}: could not write the checkpoint ({exc})") from exc
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def config_to_dict(config: object) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}


def _tensors_to_save(model: nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors that own their memory (safetensors refuses
    shared storage), floating ones converted to ``dtype`` when given."""
    tensors = {}
    for name, tensor in model.state_dict().items():
        target = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
        tensors[name] = tensor.detach().to(device="cpu", dtype=target, copy=True).contiguous()
    return tensors


def _tensor_bytes(name: str, tensor: torch.Tensor) -> int:
    """What a tensor adds to a shard file: its data plus its header entry, generously."""
    return tensor.numel() * tensor.element_size() + len(name) + _HEADER_BYTES_PER_TENSOR


def _plan_shards(
    tensors: Mapping[str, torch.Tensor], max_shard_bytes: int, folder: Path
) -> list[list[str]]:
    """Tensor names grouped into shards, greedily in order, each under ``max_shard_bytes``."""
    shards: list[list[str]] = [[]]
    used = _HEADER_BYTES
    for name, tensor in tensors.items():
        size = _tensor_bytes(name, tensor)
        if _HEADER_BYTES + size > max_shard_bytes:
            raise CheckpointError(
                f"{folder}: tensor {name!r} {tuple(tensor.shape)} {tensor.dtype} takes "
                f"{size} bytes, more than a shard may hold ({max_shard_bytes} bytes)"
            )
        if used + size > max_shard_bytes and shards[-1]:
            shards.append([])
            used = _HEADER_BYTES
        shards[-1].append(name)
        used += size
    return shards


def _write_weights(
    folder: Path,
    tensors: Mapping[str, torch.Tensor],
    shards: list[list[str]],
    max_shard_bytes: int,
) -> None:
    """One ``model.safetensors``, or numbered shards plus their index."""
    names = (
        [WEIGHTS_FILE]
        if len(shards) == 1
        else [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    )
    weight_map: dict[str, str] = {}
    for file_name, shard in zip(names, shards, strict=True):
        path = folder / file_name
        # bytes written by Python take the umask's permissions; safetensors' own file would be 0600
        path.write_bytes(save({name: tensors[name] for name in shard}, metadata={"format": "pt"}))
        if path.stat().st_size > max_shard_bytes:  # the header allowance should make this never
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, over {max_shard_bytes}")
        weight_map.update(dict.fromkeys(shard, file_name))
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        _write_json(
            folder / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map}
        )


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _is_checkpoint_file(name: str) -> bool:
    """Whether a file name is one that a save writes (and so replaces)."""
    return name in (CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE) or bool(_SHARD_NAME.fullmatch(name))


def _carry_over_other_files(folder: Path, temporary: Path) -> None:
    """Copy what an existing folder holds besides checkpoint files into the new folder."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if _is_checkpoint_file(entry.name):
            continue
        if entry.is_dir():
            shutil.copytree(entry, temporary / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, temporary / entry.name, follow_symlinks=False)


def _replace_folder(folder: Path, temporary: Path) -> None:
    """Move ``temporary`` to ``folder``, replacing an existing folder only once it is safe."""
    if not folder.exists():
        os.rename(temporary, folder)
        return
    old = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.old")
    os.rename(folder, old)
    try:
        os.rename(temporary, folder)
    except OSError:
        os.rename(old, folder)  # put the old checkpoint back
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Loading


def load_pretrained(
    cls: type[ModelT],
    config_cls: type[ConfigT],
    folder: str | os.PathLike[str],
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> ModelT:
    """Build ``cls(config)`` from a checkpoint folder and load its weights; in eval mode.

    ``device`` and ``dtype`` place the parameters (default: CPU and the model's own dtype).
    Raises `CheckpointError` naming what is missing or wrong.
    """
    # 1. the folder and its config
    folder = Path(folder)
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "no such folder"
        raise CheckpointError(f"{folder}: {problem}")
    config = _read_config(cls, config_cls, folder / CONFIG_FILE)
    # 2. the stored tensors, checked against the model before anything is copied
    model = cls(config)
    stored = _read_weights(folder)
    _check_tensors(model.state_dict(), stored, folder)
    model.load_state_dict(stored)
    # 3. place it
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model.eval()


def _read_json(path: Path, what: str) -> Any:
    """Parsed JSON, or a `CheckpointError` saying the file is missing or garbled and where."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path}: garbled {what}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable {what} ({exc})") from exc


def _read_config(cls: type, config_cls: type[ConfigT], path: Path) -> ConfigT:
    """config.json as a ``config_cls``, after checking that it describes a ``cls``."""
    data = _read_json(path, "model config")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    kind = data.pop(MODEL_KEY, None)
    if kind != cls.__name__:
        found = "no 'model' field" if kind is None else f"a {kind!r}"
        raise CheckpointError(f"{path}: expected a {cls.__name__!r} checkpoint, found {found}")
    return config_from_dict(config_cls, data, source=str(path))


def config_from_dict(config_cls: type[ConfigT], data: Mapping[str, Any], source: str) -> ConfigT:
    """Build a config dataclass from JSON data, checking every field against its type.

    Unknown fields are errors; missing fields take their defaults. The dataclass's own checks
    (``__post_init__``) run last. Errors are `CheckpointError` naming ``source`` and the field.
    """
    hints = typing.get_type_hints(config_cls)
    fields = {field.name: field for field in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}")
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _from_json(data[name], hints[name], name, source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise CheckpointError(f"{source}: missing field {name!r}")
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: {exc}") from exc


def _from_json(value: Any, annotation: Any, name: str, source: str) -> Any:
    """``value`` converted to ``annotation`` (int, float, bool, str, None, tuples, unions)."""
    converted = _convert(value, annotation)
    if converted is _MISMATCH:
        raise CheckpointError(
            f"{source}: field {name!r} must be {_describe(annotation)}, got {value!r}"
        )
    return converted


_MISMATCH = object()


def _convert(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation``, or `_MISMATCH`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            converted = _convert(value, arm)
            if converted is not _MISMATCH:
                return converted
        return _MISMATCH
    if origin is tuple:
        if not isinstance(value, list):
            return _MISMATCH
        arms = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(arms) != len(value):
            return _MISMATCH
        items = [_convert(item, arm) for item, arm in zip(value, arms, strict=True)]
        return _MISMATCH if _MISMATCH in items else tuple(items)
    if annotation is type(None):
        return None if value is None else _MISMATCH
    if annotation is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if annotation is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else _MISMATCH
    if annotation is str:
        return value if isinstance(value, str) else _MISMATCH
    return value  # Any, or a type this reader does not check


def _describe(annotation: Any) -> str:
    """A type annotation in words, for messages."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} items"
    if annotation is type(None):
        return "null"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(annotation, str(annotation))


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every stored tensor, from ``model.safetensors`` or from the shards an index names."""
    index_path = folder / INDEX_FILE
    if not index_path.exists():
        path = folder / WEIGHTS_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{folder}: missing weights: neither {WEIGHTS_FILE} nor {INDEX_FILE}"
            )
        return _read_safetensors(path)
    index = _read_json(index_path, "shard index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
        raise CheckpointError(f"{index_path}: must hold a 'weight_map' from tensor names to files")
    stored: dict[str, torch.Tensor] = {}
    for file_name in sorted(set(weight_map.values())):
        path = folder / file_name
        if Path(file_name).name != file_name or not path.is_file():
            raise CheckpointError(f"{index_path}: missing shard {file_name!r}")
        stored.update(_read_safetensors(path))
    listed, found = set(weight_map), set(stored)
    if listed != found:
        names = sorted(listed ^ found)[:5]
        raise CheckpointError(f"{index_path}: the index and the shards disagree about {names}")
    return stored


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def _check_tensors(
    expected: Mapping[str, torch.Tensor], stored: Mapping[str, torch.Tensor], folder: Path
) -> None:
    """Every tensor the model has is stored, nothing else is, and the shapes agree."""
    missing = [name for name in expected if name not in stored]
    if missing:
        raise CheckpointError(f"{folder}: missing tensor(s) {_few(missing)}")
    unexpected = [name for name in stored if name not in expected]
    if unexpected:
        raise CheckpointError(f"{folder}: unexpected tensor(s) {_few(unexpected)}")
    for name, tensor in expected.items():
        if stored[name].shape != tensor.shape:
            raise CheckpointError(
                f"{folder}: tensor {name!r} has shape {tuple(stored[name].shape)}, "
                f"the model expects {tuple(tensor.shape)}"
            )


def _few(names: list[str], limit: int = 5) -> str:
    """Up to ``limit`` names for a message, and how many more there are."""
    shown = ", ".join(map(repr, names[:limit]))
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
