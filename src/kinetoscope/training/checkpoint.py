"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one file, ``checkpoint.pt`` in the run folder, written atomically (a hidden
temporary file beside it, then `os.replace`), so a crash while saving leaves the previous one
intact. It holds plain data: state dicts (model, EMA, optimizers, scheduler, discriminator),
the data stream's state, the random number generators' states, the step and the run's config
as a dict. It is for resuming, not for shipping: `save_pretrained` writes the model users load.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kinetoscope.errors import KinetoscopeError

CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(run_folder: Path) -> Path:
    return Path(run_folder) / CHECKPOINT_NAME


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically; returns the path."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise KinetoscopeError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise KinetoscopeError(f"no checkpoint at {path}")
    try:
        # weights_only: plain containers, tensors and numbers only (the RNG states included)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, in one line
        raise KinetoscopeError(f"cannot read checkpoint {path}: {exc}".splitlines()[0]) from exc


def rng_states() -> dict[str, Any]:
    """The states of every random number generator training draws from."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """The inverse of `rng_states`."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def check_run_folder(
    out: Path, config: dict[str, Any], steps: int, resume: bool, resumable: Iterable[str]
) -> dict[str, Any] | None:
    """Check, before any compute, that ``out`` suits a fresh run or a resumption of the run
    configured by ``config`` (a JSON-like dict) for ``steps`` steps in all; returns the
    checkpoint to resume from (None for a fresh run). Only the options named in ``resumable``
    (dotted for nested ones: "data.workers") may differ from the saved run's."""
    out = Path(out)
    checkpoint = checkpoint_path(out)
    if out.exists() and not out.is_dir():
        raise KinetoscopeError(f"{out} is a file, not a folder for the training run")
    if not out.parent.resolve().is_dir():
        raise KinetoscopeError(f"{out}: the folder {out.parent} does not exist")
    if not resume:
        if checkpoint.exists():
            raise KinetoscopeError(
                f"{out} already holds a training run; pass --resume to continue it, "
                "or choose another --out"
            )
        return None
    if not checkpoint.exists():
        raise KinetoscopeError(f"nothing to resume: {checkpoint} does not exist")
    state = load_checkpoint(checkpoint)
    allowed = tuple(resumable)
    saved, wanted = flatten(state["config"]), flatten(config)
    changed = sorted(
        key
        for key in saved.keys() | wanted.keys()
        if key not in allowed and saved.get(key) != wanted.get(key)
    )
    if changed:
        raise KinetoscopeError(
            f"cannot resume {out} with different options: {', '.join(changed)} differ from "
            f"the saved run (only {', '.join(allowed)} may change)"
        )
    if state["step"] >= steps:
        raise KinetoscopeError(
            f"{out} already finished {state['step']} steps; pass a larger --steps to go on"
        )
    return state


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"data": {"size": 16}} -> {"data.size": 16}, so a message can name the exact option."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
