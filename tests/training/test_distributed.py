"""Several processes: torchrun's environment, DDP and FSDP2 on gloo, full checkpoints.

The two-process runs go through a real ``torchrun`` and compare with a one-process run of the
same config: with the same samples split over the ranks, DDP and FSDP must reach the same
weights (up to the order of float additions), and an FSDP checkpoint must resume on one
process.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.training.checkpoint import load_checkpoint
from kinetoscope.training.conditioning import PATTERNS, ConditioningConfig
from kinetoscope.training.distributed import (
    full_model_state,
    init_distributed,
    shutdown,
    wrap_model,
)
from kinetoscope.training.train_dit import TRAIN_PRESETS, train_dit

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# Runs jobs in every process of a torchrun launch, in one process group: "train" is a
# train_dit call; "consistency" trains a DDP model whose ranks start from different weights
# and records whether all ranks end with the same ones.
RUNNER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch, torch.distributed as dist
    from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
    from kinetoscope.models.vae import VideoVAE
    from kinetoscope.training.distributed import init_distributed, wrap_model
    from kinetoscope.training.dit_data import DiTBatchStream
    from kinetoscope.training.train_dit import config_from_dict, train_dit, train_step

    def consistency(config, cache, result):
        context, strategy = init_distributed("cpu", "ddp")
        torch.manual_seed(context.rank)  # different weights on each rank, on purpose
        model = wrap_model(DiffusionTransformer(DIT_PRESETS[config.model]), context, strategy)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        vae = VideoVAE.from_pretrained(config.vae)
        stream = DiTBatchStream(
            config.data, vae, context.device, Path(cache), context.rank, context.world_size
        )
        for _ in range(2):
            train_step(model, next(stream), optimizer, config)
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        copies = [torch.empty_like(flat) for _ in range(context.world_size)]
        dist.all_gather(copies, flat)
        if context.is_main:
            same = all(torch.equal(copies[0], other) for other in copies)
            Path(result).write_text(json.dumps({"identical": same}))

    dist.init_process_group("gloo")
    for job in json.loads(Path(sys.argv[1]).read_text()):
        config = config_from_dict(job["config"])
        if job["kind"] == "train":
            train_dit(config, job["out"], stop_at=job.get("stop_at"))
        else:
            consistency(config, job["cache"], job["result"])
    dist.barrier()
    dist.destroy_process_group()
    """
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_needs_no_process_group(clean_env):
    context, strategy = init_distributed("cpu", "auto")
    assert strategy == "none" and not context.owns_group and not context.active
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert context.device == torch.device("cpu")
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, context, "none") is model
    with pytest.raises(KinetoscopeError, match="needs init_distributed"):
        wrap_model(model, context, "ddp")


def test_torchrun_settings_are_checked(clean_env):
    clean_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(KinetoscopeError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT"):
        init_distributed("cpu", "auto")
    for name, value in (("RANK", "1"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "localhost")):
        clean_env.setenv(name, value)
    clean_env.setenv("MASTER_PORT", "1")
    with pytest.raises(KinetoscopeError, match="need a parallel strategy"):
        init_distributed("cpu", "none")
    with pytest.raises(KinetoscopeError, match="unknown parallel strategy"):
        init_distributed("cpu", "zero")
    with pytest.raises(KinetoscopeError, match="device"):
        init_distributed("tpu", "auto")


def test_fsdp_on_one_process_starts_its_own_group_and_gathers_whole_weights(clean_env):
    torch.manual_seed(0)
    model = DiffusionTransformer(DIT_PRESETS["tiny"])
    expected = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    context, strategy = init_distributed("cpu", "fsdp")
    try:
        assert strategy == "fsdp" and context.owns_group and context.active
        sharded = wrap_model(model, context, strategy)
        weights = full_model_state(sharded)
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[name], expected[name]) for name in expected)
    finally:
        shutdown(context)
    assert not dist.is_initialized()


def test_ddp_and_fsdp_on_two_processes_match_one_process(tmp_path, clean_env):
    # 1. the reference: one process, conditioning off so every sample's loss counts the same
    # number of frames (then the mean over ranks of per-rank means is the one-process mean)
    torch.manual_seed(0)
    VideoVAE(VAE_PRESETS["tiny"]).save_pretrained(tmp_path / "vae")
    text_to_video = ConditioningConfig(**{name: float(name == "none") for name in PATTERNS})
    config = dataclasses.replace(
        TRAIN_PRESETS["tiny-cpu"],
        vae=str(tmp_path / "vae"),
        steps=3,
        conditioning=text_to_video,
    )
    train_dit(config, tmp_path / "single")
    reference = load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    # 2. two processes, sharing the reference's cache (so they need no text encoder)
    jobs = []
    for name, parallel, stop_at in (("ddp", "ddp", None), ("fsdp", "fsdp", 2)):
        shutil.copytree(tmp_path / "single" / "cache", tmp_path / name / "cache")
        run = dataclasses.replace(config, parallel=parallel).to_dict()
        jobs.append({"kind": "train", "config": run, "out": str(tmp_path / name)})
        jobs[-1]["stop_at"] = stop_at
    jobs.append(
        {
            "kind": "consistency",
            "config": config.to_dict(),
            "cache": str(tmp_path / "single" / "cache"),
            "result": str(tmp_path / "consistency.json"),
        }
    )
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "runner.py").write_text(RUNNER)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch += ["--nproc_per_node", "2", str(tmp_path / "runner.py"), str(tmp_path / "jobs.json")]
    done = subprocess.run(
        launch,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # 3. DDP: the same weights and EMA as one process after 3 steps, and every rank agrees
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    for part in ("model", "ema"):
        for name, tensor in reference[part].items():
            torch.testing.assert_close(ddp[part][name], tensor, rtol=0, atol=1e-5)
    assert json.loads((tmp_path / "consistency.json").read_text()) == {"identical": True}
    # 4. FSDP: stopped after 2 steps, its whole checkpoint resumes on one process to the same
    # weights as the one-process run
    fsdp = load_checkpoint(tmp_path / "fsdp" / "checkpoint.pt")
    assert fsdp["step"] == 2 and fsdp["world_size"] == 2
    train_dit(config, tmp_path / "fsdp", resume=True)
    resumed = load_checkpoint(tmp_path / "fsdp" / "checkpoint.pt")
    for part in ("model", "ema"):
        for name, tensor in reference[part].items():
            torch.testing.assert_close(resumed[part][name], tensor, rtol=0, atol=1e-5)
    moments = resumed["optimizer"]["state"]
    for name, state in reference["optimizer"]["state"].items():
        torch.testing.assert_close(moments[name]["exp_avg_sq"], state["exp_avg_sq"])
