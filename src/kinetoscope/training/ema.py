"""Exponential moving average (EMA) of a model's parameters, for both trainers.

``ema <- decay * ema + (1 - decay) * weights`` after every optimiser step. The average is kept
as plain tensors beside the model, one per parameter, on the parameter's device and with its
sharding: under FSDP2 each rank averages only its own shard (the local tensor of each
DTensor), so the EMA costs no communication and no memory beyond one more copy of the shard.

There is no second model object. To use the averaged weights (evaluate, export, save a full
checkpoint) `swapped_into(model)` exchanges them with the model's for the length of a `with`
block; whatever reads or loads the model's weights inside it (``state_dict``,
``get_model_state_dict``, ``set_model_state_dict``) then reads or writes the EMA. Buffers are not
averaged (the models here have none that training changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from kinetoscope.errors import KinetoscopeError


def local_tensor(parameter: Tensor) -> Tensor:
    """The part of ``parameter`` this process holds: the local shard of an FSDP2 DTensor, or
    the parameter itself; detached, sharing its storage."""
    to_local = getattr(parameter, "to_local", None)  # DTensor, without importing it
    return (to_local() if to_local is not None else parameter).detach()


class EMA:
    """The running average of ``model``'s parameters, with decay ``decay`` per update."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise KinetoscopeError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.names = [name for name, _ in model.named_parameters()]
        self.shadow = [local_tensor(p).clone() for _, p in model.named_parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema <- decay * ema + (1 - decay) * model, every parameter at once."""
        torch._foreach_lerp_(self.shadow, self._locals(model), 1.0 - self.decay)

    @contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the EMA weights (and the EMA the model's); on exit
        they are exchanged back, so weights loaded into the model inside become the EMA."""
        self._swap(model)
        try:
            yield model
        finally:
            self._swap(model)

    def state_dict(self) -> dict[str, Tensor]:
        """Parameter name -> this process's averaged tensor (the full one without sharding)."""
        return dict(zip(self.names, self.shadow, strict=True))

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = sorted(set(self.names) - set(state))
        unexpected = sorted(set(state) - set(self.names))
        if missing or unexpected:
            raise KinetoscopeError(
                f"the saved EMA does not fit the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        with torch.no_grad():
            for name, tensor in zip(self.names, self.shadow, strict=True):
                tensor.copy_(state[name])

    def _locals(self, model: nn.Module) -> list[Tensor]:
        params = [local_tensor(p) for _, p in model.named_parameters()]
        if len(params) != len(self.shadow):
            raise KinetoscopeError(
                f"the EMA holds {len(self.shadow)} tensors, the model {len(params)} parameters"
            )
        return params

    @torch.no_grad()
    def _swap(self, model: nn.Module) -> None:
        for weight, average in zip(self._locals(model), self.shadow, strict=True):
            held = weight.clone()
            weight.copy_(average)
            average.copy_(held)
