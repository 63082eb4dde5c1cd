"""Training on several processes: torchrun's environment, DDP or FSDP2, full checkpoints.

Launch with ``torchrun --nproc_per_node N -m kinetoscope train dit ...``; a plain run is one
process and needs none of this. The pieces:

- `init_distributed` reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
  MASTER_PORT) and joins the process group: NCCL on CUDA (one GPU per process, LOCAL_RANK),
  gloo on CPUs. Without them it returns a one-process `Distributed` and starts nothing.
- `wrap_model`: "ddp" keeps a whole replica per process and all-reduces gradients; "fsdp"
  (PyTorch's FSDP2, `fully_shard`) shards parameters, gradients and optimiser state over the
  processes, each transformer block a unit that is gathered just before it runs, so the
  largest presets fit. "none" is the model itself (one process only).
- Full state dicts (`full_model_state`, `full_optimizer_state` and their loaders) go through
  `torch.distributed.checkpoint.state_dict`, which understands all three: the saved tensors
  are whole, keyed by parameter name, and identical whatever the strategy and process count,
  so a checkpoint of a 2-process FSDP run resumes on one process and back. Gathering is
  collective (every rank calls it); only rank 0 receives the tensors (on the CPU) and writes.
- Data: every rank derives its share of a batch from the same (seed, step) plan, so no
  sampler state is exchanged (see `dit_data.rank_indices`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from kinetoscope.errors import KinetoscopeError

STRATEGIES = ("auto", "none", "ddp", "fsdp")  # auto: none on one process, ddp on several
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: its rank among ``world_size`` and the device it uses."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process group was started by `init_distributed`

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, writes checkpoints and exports."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether a process group is running (collectives must then be called on every rank)."""
        return dist.is_available() and dist.is_initialized()


def init_distributed(
    device: str = "auto", strategy: str = "auto", timeout_minutes: float = 30.0
) -> tuple[Distributed, str]:
    """Join the process group torchrun set up (or describe a single process); returns where
    this process stands and the resolved strategy ("none", "ddp" or "fsdp").

    ``device`` is "auto", "cpu" or "cuda[:N]": with several processes on CUDA each takes the
    GPU of its LOCAL_RANK (a "cuda:N" is refused there, as it would put every rank on one GPU).
    ``strategy`` "auto" is "ddp" on several processes and "none" on one. FSDP on a single
    process without torchrun gets a one-rank process group of its own, so the same run
    configuration works on one GPU and on many.
    """
    check_device(device)
    if strategy not in STRATEGIES:
        raise KinetoscopeError(f"unknown parallel strategy {strategy!r}; choose from {STRATEGIES}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise KinetoscopeError(
                f"WORLD_SIZE is {world_size} but {', '.join(missing)} are not set: launch "
                "several processes with torchrun"
            )
    if strategy == "auto":
        strategy = "ddp" if world_size > 1 else "none"
    if strategy == "none" and world_size > 1:
        raise KinetoscopeError(
            f"{world_size} processes need a parallel strategy (ddp or fsdp), not none"
        )
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    here = resolve_device(device)
    if world_size > 1 and here.type == "cuda":
        if device not in ("auto", "cuda"):
            raise KinetoscopeError(
                f"with several processes, pass device auto or cuda (each rank uses the GPU of "
                f"its LOCAL_RANK), not {device}"
            )
        if local_rank >= torch.cuda.device_count():
            raise KinetoscopeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible"
            )
        here = torch.device("cuda", local_rank)
    if here.type == "cuda":
        if here.index is None:  # "auto" or "cuda": the current GPU, named by its index
            here = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(here)
    owns_group = strategy != "none" and not dist.is_initialized()
    if owns_group:
        backend = "nccl" if here.type == "cuda" else "gloo"
        timeout = timedelta(minutes=timeout_minutes)
        if "MASTER_ADDR" in os.environ:  # launched by torchrun
            dist.init_process_group(backend, timeout=timeout)
        else:  # one process on its own: a private one-rank group
            dist.init_process_group(
                backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout
            )
    context = Distributed(here, rank, world_size, local_rank, owns_group)
    return context, strategy


def shutdown(context: Distributed) -> None:
    """Leave the process group `init_distributed` started (after a barrier, so no rank exits
    while others still talk); a group the caller started is left running."""
    if context.owns_group and context.active:
        dist.barrier()
        dist.destroy_process_group()


def check_device(name: str) -> None:
    """Raise KinetoscopeError unless ``name`` is auto, cpu, or a CUDA device that exists."""
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise KinetoscopeError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KinetoscopeError(f"device {name} asked for, but CUDA is not available here")


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when there is one, else the CPU; otherwise the named device."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---- the model -------------------------------------------------------------------------------


def wrap_model(
    model: nn.Module, context: Distributed, strategy: str, bf16: bool = False
) -> nn.Module:
    """``model`` (already on ``context.device``) prepared for ``strategy`` ("none", "ddp" or
    "fsdp", as `init_distributed` resolved it). ``bf16`` (CUDA only) has FSDP gather and
    compute in bf16 while it keeps float32 master weights and reduces gradients in float32."""
    if strategy == "none":
        return model
    if not context.active:
        raise KinetoscopeError(f"parallel strategy {strategy} needs init_distributed first")
    if strategy == "ddp":
        device_ids = [context.local_rank] if context.device.type == "cuda" else None
        # gradients as views of the all-reduce buckets: no copy, and no stride mismatch warning
        # for parameters whose gradients come out of a broadcast (the null prompt)
        return nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, gradient_as_bucket_view=True
        )
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy()
        if bf16 and context.device.type == "cuda":
            # inputs keep their dtype: cast to bf16, flow times would move in steps of ~0.004
            policy = MixedPrecisionPolicy(
                param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False
            )
        # one unit per block: only one block's full weights exist at a time (plus the root's)
        for block in getattr(model, "blocks", ()):
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model
    raise KinetoscopeError(f"unknown parallel strategy {strategy!r}; choose from {STRATEGIES}")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (FSDP2 shards in place: the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ---- full state dicts ------------------------------------------------------------------------

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights by name, on the CPU, on rank 0 (other ranks get {} once a
    process group runs); copies, never views of the live weights. Collective: every rank must
    call it."""
    return _rebuilt(get_model_state_dict(model, options=_GATHER), clone=True)


def load_full_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a `full_model_state` into ``model``, whatever its strategy. With a process group,
    rank 0's ``state`` is sent to every rank (the others may pass {}). Collective."""
    set_model_state_dict(model, _rebuilt(state, clone=False), options=_loading())


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's state keyed by parameter name, whole and on the CPU, on rank 0; copies.
    Collective."""
    return _rebuilt(get_optimizer_state_dict(model, optimizer, options=_GATHER), clone=True)


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Load a `full_optimizer_state` (rank 0's is sent to every rank). Collective."""
    set_optimizer_state_dict(model, optimizer, _rebuilt(state, clone=False), options=_loading())


def _rebuilt(value: Any, clone: bool) -> Any:
    """Dicts, lists and tuples rebuilt (the state-dict loaders rename and replace entries of
    what they are given); tensors cloned when ``clone``: on a CPU the gathered "full" tensors
    of an unsharded model are the live parameters themselves, which training (or an EMA swap)
    would change under a saved checkpoint."""
    if isinstance(value, dict):
        return {key: _rebuilt(item, clone) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_rebuilt(item, clone) for item in value)
    if clone and isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


def _loading() -> StateDictOptions:
    return StateDictOptions(
        full_state_dict=True, broadcast_from_rank0=dist.is_available() and dist.is_initialized()
    )


# ---- metrics and small messages --------------------------------------------------------------


def mean_over_ranks(values: dict[str, float], context: Distributed) -> dict[str, float]:
    """Each value averaged over the ranks (for logging); the values themselves on one process.
    Collective."""
    if not context.active or not values:
        return values
    names = sorted(values)
    device = context.device if dist.get_backend() == "nccl" else torch.device("cpu")
    summed = torch.tensor([values[name] for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(summed)
    return {name: float(v) / context.world_size for name, v in zip(names, summed, strict=True)}


def broadcast_object(value: object, context: Distributed) -> object:
    """Rank 0's ``value`` on every rank (for small things: a checkpoint's step, an error)."""
    if not context.active:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
