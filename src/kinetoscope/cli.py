"""The `kinetoscope` command: a thin layer that parses options into dataclasses and calls the
library. Every error a user can cause is reported in one line, with exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kinetoscope import __version__
from kinetoscope.curves import CURVES
from kinetoscope.errors import KinetoscopeError
from kinetoscope.studio.cli import add_studio_commands

console = Console(stderr=True)
StepCallback = Callable[[int, dict[str, float]], None]  # (step, logged numbers) from a trainer


# ---- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderOptions:
    out: Path
    seed: int = 0
    spec: Path | None = None
    width: int = 128
    height: int = 128
    fps: float = 16.0
    seconds: float | None = None
    spec_out: Path | None = None


@dataclass(frozen=True)
class ScoreOptions:
    video: Path
    spec: Path | None = None
    as_json: bool = False


@dataclass(frozen=True)
class DemoOptions:
    out: Path = Path("demo")
    seed: int = 3


@dataclass(frozen=True)
class TrainVAEOptions:
    """`train vae`: a preset, where to write, and the preset's options to override (None:
    keep the preset's)."""

    preset: str
    out: Path
    steps: int | None = None
    batch: int | None = None
    size: int | None = None
    frames: int | None = None
    lr: float | None = None
    device: str | None = None
    workers: int | None = None
    minutes: float | None = None
    init: Path | None = None
    decoder_only: bool = False
    mix: str | None = None  # "WORLD,CAMERA,STILL": the data's shares
    resume: bool = False
    stop_at: int | None = None


@dataclass(frozen=True)
class TrainDiTOptions:
    """`train dit`: a preset, where to write, and the preset's options to override (None:
    keep the preset's)."""

    preset: str
    out: Path
    vae: Path | None = None
    steps: int | None = None
    batch: int | None = None
    size: int | None = None
    lr: float | None = None
    device: str | None = None
    workers: int | None = None
    parallel: str | None = None
    eval_every: int | None = None
    video_folder: Path | None = None
    video_weight: float | None = None
    seed: int | None = None
    minutes: float | None = None
    init: Path | None = None
    scenes: int | None = None
    patterns: str | None = None  # "NAME=WEIGHT,...": frame-pattern weights
    resume: bool = False
    stop_at: int | None = None


@dataclass(frozen=True)
class EvalVAEOptions:
    videos: tuple[Path, ...]
    model: Path | None = None
    size: int = 256
    frames: int = 65
    device: str = "cpu"
    as_json: bool = False


@dataclass(frozen=True)
class ToolOptions:
    """A creative-tool command (generate, animate, extend, ...): the tool, its own arguments,
    the shared sampling options given (the rest: the model's defaults), and the output."""

    tool: str
    out: Path
    arguments: dict[str, Any]
    sampling: dict[str, Any]
    model: Path | None = None
    device: str | None = None
    rights_attested: bool = False


@dataclass(frozen=True)
class ReproduceOptions:
    record: Path
    out: Path | None = None
    device: str | None = None


@dataclass(frozen=True)
class VerifyOptions:
    """`verify`: the file, the output form, and trust anchors (empty: the defaults)."""

    file: Path
    as_json: bool = False
    trust: tuple[Path, ...] = ()


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), e.g. '224x128'."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 128x128, got {text!r}") from None
    if width < 2 or height < 2:
        raise argparse.ArgumentTypeError(f"size must be at least 2x2 pixels, got {text!r}")
    return width, height


# the presets of kinetoscope.training.train_vae, named here so that building the parser does
# not import torch (a test checks the two agree)
TRAIN_PRESET_NAMES = "tiny-cpu, cpu or gpu"
TRAIN_DIT_PRESET_NAMES = "tiny-cpu, cpu, gpu or gpu-1b"  # kinetoscope.training.train_dit's
PARALLEL_STRATEGIES = ("auto", "none", "ddp", "fsdp")  # kinetoscope.training.distributed's
PATTERN_NAMES = (  # kinetoscope.training.conditioning's PATTERNS
    "none",
    "first_frame",
    "first_frames",
    "last_frame",
    "last_frames",
    "first_and_last",
    "both_ends",
    "random_frames",
)
VAE_DATA_MIX = "0.5,0.35,0.15"  # every VAE preset's world, camera and still weights


# ---- commands --------------------------------------------------------------------------------


def run_render(options: RenderOptions) -> int:
    from kinetoscope.io.video import check_output_path, write_video
    from kinetoscope.world.captions import caption
    from kinetoscope.world.render import render
    from kinetoscope.world.sampler import sample_scene

    check_output_path(options.out)
    if options.spec_out is not None:
        _check_folder(options.spec_out)
    aspect = options.width / options.height
    if options.spec is not None:
        scene = _read_spec(options.spec)
        if options.seconds is not None:
            scene = scene.with_seconds(options.seconds)
    else:
        scene = sample_scene(options.seed, aspect=aspect, seconds=options.seconds)
    scene.validate()
    with console.status("rendering"):
        video = render(scene, options.width, options.height, options.fps)
    text = caption(scene, style="long", seed=options.seed, aspect=aspect)
    metadata = {"comment": text, "description": scene.to_json(indent=None)}
    write_video(options.out, video, metadata=metadata)
    if options.spec_out is not None:
        _write_text(options.spec_out, scene.to_json() + "\n")
    console.print(f"[green]wrote[/green] {options.out} ({video.num_frames} frames): {text}")
    return 0


def run_score(options: ScoreOptions) -> int:
    from kinetoscope.io.video import read_metadata, read_video
    from kinetoscope.world.judge import judge
    from kinetoscope.world.spec import SceneSpec

    if options.spec is not None:
        scene = _read_spec(options.spec)
    else:
        stored = read_metadata(options.video).get("description")
        if not stored:
            raise KinetoscopeError(
                f"{options.video} carries no scene spec; pass one with --spec spec.json"
            )
        scene = SceneSpec.from_json(stored)
    video = read_video(options.video)
    with console.status("judging"):
        scores = judge(video.frames.numpy(), video.fps, scene)
    if options.as_json:
        print(json.dumps(scores.to_dict()))
    else:
        _print_scores(scores.to_dict(), title=str(options.video))
    return 0


def run_dataset(out: Path, config: object) -> int:
    from kinetoscope.world.dataset import build_dataset, finished_indices

    done = len(finished_indices(out))
    with _bar("rendering clips", config.count) as update:
        update(done, config.count)  # at once: a resumed run shows the clips already there
        made = build_dataset(config, out, lambda n: update(n, config.count))
    there = f"{done} was" if done == 1 else f"{done} were"
    console.print(f"[green]{_count(made, 'clip')} made[/green], {there} already there: {out}")
    return 0


def run_demo(options: DemoOptions) -> int:
    """The main job on a fresh machine: text to video with the shipped model, judged against
    the scene its prompt describes; before a model ships, a rendered clip, judged."""
    from kinetoscope.pipeline import has_default_model

    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    clip, spec = out / "clip.mp4", out / "spec.json"
    if has_default_model():
        _generate_demo_clip(clip, spec, options.seed)
    else:
        console.print("[yellow]no default model ships yet:[/yellow] rendering instead")
        run_render(RenderOptions(out=clip, seed=options.seed, seconds=4.0, spec_out=spec))
    from kinetoscope.io.video import read_video
    from kinetoscope.world.judge import judge

    video = read_video(clip)
    with console.status("judging the clip against its spec"):
        scores = judge(video.frames.numpy(), video.fps, _read_spec(spec)).to_dict()
    _write_text(out / "scores.json", json.dumps(scores, indent=2) + "\n")
    _print_scores(scores, title=f"judge scores for {clip}")
    return 0


def _generate_demo_clip(clip: Path, spec: Path, seed: int) -> None:
    """Generate the caption of an evaluation scene (one training never saw) at a duration the
    shipped model makes, keeping the scene beside the clip for the judge."""
    from kinetoscope.adherence import native_durations, prompt_cases
    from kinetoscope.pipeline import DEFAULT_MODEL_DIR, read_model_index

    durations = native_durations(read_model_index(DEFAULT_MODEL_DIR))
    case = prompt_cases(seed + 1, durations=durations)[seed]
    _write_text(spec, case.scene.to_json())
    console.print(f"prompt: {case.prompt}")
    arguments = {"prompt": case.prompt, "seconds": case.seconds}
    sampling = {"aspect": case.aspect, "seed": seed}
    run_tool(ToolOptions("generate", clip, arguments, sampling, device="cpu"))


def run_train_vae(options: TrainVAEOptions) -> int:
    from kinetoscope.training.train_vae import train_preset, train_vae, with_overrides

    config = with_overrides(
        train_preset(options.preset),
        steps=options.steps,
        batch=options.batch,
        size=options.size,
        frames=options.frames,
        lr=options.lr,
        device=options.device,
        workers=options.workers,
        minutes=options.minutes,
        init=None if options.init is None else str(options.init),
        decoder_only=options.decoder_only or None,
        mix=None if options.mix is None else _data_mix(options.mix),
    ).validate()
    shown = ("total", "l1", "l2", "perceptual", "kl", "generator_adversarial")

    def describe(terms: dict[str, float]) -> str:
        return " ".join(f"{name} {terms[name]:.4g}" for name in shown if name in terms)

    def train(on_step: StepCallback) -> tuple[int, bool, Path | None]:
        result = train_vae(
            config, options.out, resume=options.resume, stop_at=options.stop_at, on_step=on_step
        )
        return result.step, result.finished, result.model_folder

    return _run_training("training the VAE", config.steps, options.out, train, describe)


def _data_mix(text: str) -> tuple[float, float, float]:
    """``--mix WORLD,CAMERA,STILL`` as three numbers; the data config checks their values."""
    parts = text.split(",")
    try:
        shares = tuple(float(part) for part in parts)
    except ValueError:
        shares = ()
    if len(shares) != 3:
        raise KinetoscopeError(
            f"--mix takes three numbers WORLD,CAMERA,STILL (e.g. 0.8,0.15,0.05), got {text!r}"
        )
    return shares


def run_train_dit(options: TrainDiTOptions) -> int:
    """Train the transformer, showing progress on rank 0 (``torchrun`` runs one per process)."""
    from kinetoscope.training.train_dit import train_dit, train_preset, with_overrides

    def folder(path: Path | None) -> str | None:
        return None if path is None else str(path)

    config = with_overrides(
        train_preset(options.preset),
        vae=folder(options.vae),
        steps=options.steps,
        batch=options.batch,
        size=options.size,
        lr=options.lr,
        device=options.device,
        workers=options.workers,
        parallel=options.parallel,
        eval_every=options.eval_every,
        video_folder=folder(options.video_folder),
        video_weight=options.video_weight,
        seed=options.seed,
        minutes=options.minutes,
        init=folder(options.init),
        scenes=options.scenes,
        patterns=None if options.patterns is None else _pattern_weights(options.patterns),
    ).validate()

    def describe(numbers: dict[str, float]) -> str:
        return f"loss {numbers['loss']:.4g}"

    def train(on_step: StepCallback) -> tuple[int, bool, Path | None]:
        result = train_dit(
            config, options.out, resume=options.resume, stop_at=options.stop_at, on_step=on_step
        )
        return result.step, result.finished, result.pipeline_folder

    return _run_training("training the DiT", config.steps, options.out, train, describe)


def _count(number: int, noun: str) -> str:
    """'1 clip', '2 clips': counts in messages."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _pattern_weights(text: str) -> dict[str, float]:
    """``--patterns NAME=WEIGHT,...`` as a dict; the training config checks names and values."""
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, equals, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            equals = ""
        if not equals:
            raise KinetoscopeError(
                f"--patterns takes NAME=WEIGHT pairs separated by commas "
                f"(e.g. none=0.35,first_frame=0.15), got {text!r}"
            )
    return weights


def _run_training(
    title: str,
    steps: int,
    out: Path,
    train: Callable[[StepCallback], tuple[int, bool, Path | None]],
    describe: Callable[[dict[str, float]], str],
) -> int:
    """Run ``train(on_step)`` -> (step, finished, exported folder) under a progress bar, then
    say where the result is. A time budget's total is unknown (no bar) until it is planned."""
    from kinetoscope.training.budget import CLOCK_BOUND_STEPS

    def known(total: int) -> int | None:
        return None if total >= CLOCK_BOUND_STEPS else total

    with _bar(title, known(steps), TextColumn("{task.fields[numbers]}"), numbers="") as update:

        def show(step: int, numbers: dict[str, float]) -> None:
            total = int(numbers.get("steps", steps))  # a time-budgeted run plans its total
            update(step, known(total), numbers=describe(numbers))

        step, finished, folder = train(show)
    if not finished:
        console.print(f"[yellow]stopped[/yellow] at step {step}; continue with --resume: {out}")
    else:
        console.print(f"[green]trained[/green] {_count(step, 'step')}: {folder}")
    return 0


def run_tool(options: ToolOptions) -> int:
    """Run a creative tool with the shipped model (or ``--model``) and write the video, its
    sidecar record, and (for .mp4) its signed manifest."""
    from kinetoscope.io.video import check_output_path
    from kinetoscope.pipeline import Pipeline
    from kinetoscope.training.train_vae import check_device

    # 1. everything that can be checked cheaply, before any model loads
    check_output_path(options.out)
    if options.device is not None:
        check_device(options.device)
    # 2. the model, then the tool, with a progress bar over every sampling step
    with console.status("loading the model"):
        pipeline = Pipeline.from_pretrained(options.model, device=options.device)
    _say_model_status(pipeline)
    tool = getattr(pipeline, options.tool)
    extra = {"rights_attested": True} if options.rights_attested else {}
    with _bar(options.tool) as update, warnings.catch_warnings(record=True) as notices:
        warnings.simplefilter("always")
        result = tool(**options.arguments, **options.sampling, **extra, progress=update)
    _show_notices(notices)
    return _save(result, options.out)


def run_reproduce(options: ReproduceOptions) -> int:
    """Make a sidecar record's video again, with the same model, inputs and arguments."""
    from kinetoscope.io.video import check_output_path
    from kinetoscope.results import (
        check_inputs,
        load_recorded_model,
        read_record,
        reproduce,
        same_frames,
    )

    record = read_record(options.record)
    video_name = options.record.name.removesuffix(".json")
    default_out = options.record.with_name(
        f"{Path(video_name).stem}.reproduced{Path(video_name).suffix or '.mp4'}"
    )
    out = check_output_path(options.out or default_out)
    check_inputs(record)
    with console.status("loading the model"):
        pipeline = load_recorded_model(record, options.device)
    with _bar(f"reproducing {record['tool']}") as update:
        result = reproduce(record, pipeline, update)
    if same_frames(record, result.record):
        console.print("[green]identical frames[/green] to the record's")
    else:
        console.print(
            "[yellow]the frames differ from the record's[/yellow] (another machine, device or "
            "library version?)"
        )
    return _save(result, out)


def _save(result: object, out: Path) -> int:
    from kinetoscope.results import record_path, save

    save(result, out)  # type: ignore[arg-type]
    frames, height, width = result.frames.shape[:3]  # type: ignore[attr-defined]
    console.print(
        f"[green]wrote[/green] {out} ({frames} frames, {width}x{height}) and "
        f"{record_path(out).name}"
    )
    return 0


def _say_model_status(pipeline: object) -> None:
    extra = pipeline.index.extra  # type: ignore[attr-defined]
    if "status" in extra:  # e.g. an interim model says what it is
        console.print(f"[yellow]model:[/yellow] {escape(str(extra['status']))}")


def _show_notices(notices: list[warnings.WarningMessage]) -> None:
    for notice in notices:
        if issubclass(notice.category, UserWarning):
            console.print(f"[yellow]note:[/yellow] {escape(str(notice.message))}", soft_wrap=True)


def run_eval_vae(options: EvalVAEOptions) -> int:
    from kinetoscope.evaluation import check_eval_options, evaluate_vae, load_vae
    from kinetoscope.training.train_vae import check_device

    check_eval_options(options.size, options.frames)
    check_device(options.device)
    for path in options.videos:
        if not path.is_file():
            raise KinetoscopeError(f"{path}: no such video file")
    vae = load_vae(options.model, device=options.device)
    with console.status(f"coding {_count(len(options.videos), 'video')}"):
        report = evaluate_vae(vae, options.videos, size=options.size, frames=options.frames)
    if options.as_json:
        print(json.dumps(report.to_dict()))
        return 0
    table = Table(title=f"VAE reconstruction at {report.size}x{report.size}")
    table.add_column("video", overflow="fold")  # long paths wrap rather than vanish
    for column in ("frames", "PSNR (dB)", "SSIM", "flicker"):
        table.add_column(column, justify="right")
    rows = [(c.video, c.frames, c.psnr, c.ssim, c.flicker) for c in report.clips]
    means = report.means()
    rows.append(("mean", "", means["psnr"], means["ssim"], means["flicker"]))
    for video, frames, *numbers in rows:
        cells = ["-" if n is None else f"{n:.{3 if i else 2}f}" for i, n in enumerate(numbers)]
        table.add_row(video, str(frames), *cells, style="bold" if video == "mean" else "")
    Console().print(table)
    return 0


def run_verify(options: VerifyOptions) -> int:
    """A video's C2PA manifest and watermark, as a table or one JSON object; exit status 0
    whatever they say (2 only when the file cannot be read)."""
    from kinetoscope.provenance.verify import verify_file

    with console.status("verifying"):
        report = verify_file(options.file, list(options.trust) or None).to_dict()
    if options.as_json:
        print(json.dumps(report))
        return 0
    colour = {"valid": "green", "invalid": "red", "missing": "yellow"}[report["manifest"]]
    mark = report["watermark"]
    found = f"payload {mark['payload']}" if mark["detected"] else "not detected"
    rows = {
        "manifest": f"[{colour}]{report['manifest']}[/{colour}]",
        "trusted": "yes" if report["trusted"] else "no",
        "reason": escape(report["reason"] or "-"),
        "watermark": f"{found} (confidence {mark['confidence']:.2f})"
        if mark["checked"]
        else "not checked: the frames are too small to carry it",
    }
    for name, value in report["summary"].items():
        if value not in (None, "", [], {}):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            rows[name] = escape(shown)
    table = Table(title=escape(str(options.file)), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in rows.items():
        table.add_row(name, value)
    Console().print(table)
    return 0


# ---- helpers ---------------------------------------------------------------------------------


def _read_spec(path: Path) -> object:
    from kinetoscope.world.spec import SceneSpec

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KinetoscopeError(f"cannot read spec {path}: {exc.strerror}") from exc
    try:
        return SceneSpec.from_json(text)
    except KinetoscopeError as exc:
        raise KinetoscopeError(f"{path}: {exc}") from exc


def _check_folder(path: Path) -> None:
    if not path.parent.resolve().is_dir():
        raise KinetoscopeError(f"{path}: the folder {path.parent} does not exist")


def _write_text(path: Path, text: str) -> None:
    """Write a small text file atomically (temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise KinetoscopeError(f"cannot write {path}: {exc.strerror}") from exc


def _print_scores(scores: dict[str, float], title: str) -> None:
    table = Table(title=title)
    table.add_column("dimension")
    table.add_column("score", justify="right")
    for name, value in scores.items():
        style = "bold" if name == "overall" else ""
        table.add_row(name, f"{value:.3f}", style=style)
    Console().print(table)


@contextmanager
def _bar(
    title: str, total: int | None = None, *extra: ProgressColumn, **fields: str
) -> Iterator[Callable[..., None]]:
    """A progress bar that appears with its first update(completed, total, **fields), so that
    an error found before any work starts (a bad size, say) prints alone."""
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        *extra,
        console=console,
    )
    task = progress.add_task(title, total=total, **fields)

    def update(completed: int, now_total: int | None, **now_fields: str) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=completed, total=now_total, **now_fields)

    try:
        yield update
    finally:
        progress.stop()


# ---- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinetoscope",
        description="Open, self-hostable text-to-video, and the physics world it learns from.",
    )
    parser.add_argument("--version", action="version", version=f"kinetoscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="generate a clip from a physics-world caption and judge it",
        description="Generate the caption of a physics-world scene with the shipped model and "
        "judge the clip against that scene (without a shipped model, render the scene).",
    )
    demo.add_argument("--out", type=Path, default=Path("demo"), help="output folder (demo/)")
    demo.add_argument("--seed", type=int, default=3, help="which evaluation scene (3)")
    demo.set_defaults(handler=lambda a: run_demo(DemoOptions(out=a.out, seed=a.seed)))

    _add_tools(commands)
    _add_verify(commands)
    add_studio_commands(commands)

    world = commands.add_parser("world", help="the procedural physics world")
    world_commands = world.add_subparsers(dest="world_command", required=True, metavar="COMMAND")
    _add_render(world_commands)
    _add_dataset(world_commands)
    _add_score(world_commands)

    train = commands.add_parser("train", help="train a model")
    train_commands = train.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    _add_train_vae(train_commands)
    _add_train_dit(train_commands)

    evaluate = commands.add_parser("eval", help="measure a model")
    eval_commands = evaluate.add_subparsers(dest="eval_command", required=True, metavar="MODEL")
    _add_eval_vae(eval_commands)
    return parser


# the sampling options every tool takes: (flag, keyword, type, help)
SAMPLING_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--negative", "negative_prompt", str, "what to steer away from"),
    ("--aspect", "aspect", str, "1:1, 16:9 or 9:16 (16:9; for inputs, the closest to theirs)"),
    ("--size", "size", int, "short side in pixels (the model's own)"),
    ("--fps", "fps", int, "frames per second (the model's own)"),
    ("--seed", "seed", int, "the same seed, the same video (0)"),
    ("--steps", "steps", int, "sampling steps per window (the model's default)"),
    ("--guidance", "guidance", float, "classifier-free guidance scale (the model's default)"),
    ("--sampler", "sampler", str, "euler or heun (euler)"),
)


def _add_tools(commands: argparse._SubParsersAction) -> None:
    """generate, animate, extend, remix, connect, loop, blend, storyboard and reproduce."""
    generate = _tool_parser(commands, "generate", "make a video from a text prompt", inputs=False)
    generate.add_argument("prompt", help='what to show, e.g. "A red circle falls and bounces."')
    generate.add_argument("--seconds", type=float, help="seconds (the model's longest clip)")

    animate = _tool_parser(commands, "animate", "make a video that starts from an image")
    animate.add_argument("image", type=Path, help="the first frame (png, jpg, ...)")
    animate.add_argument("--prompt", required=True, help="what happens next")
    animate.add_argument("--seconds", type=float, help="seconds (the model's longest clip)")

    extend = _tool_parser(commands, "extend", "make a video longer, forwards or backwards")
    extend.add_argument("video", type=Path, help="the video to extend; the output is all of it")
    extend.add_argument("--prompt", required=True, help="what happens in the new part")
    extend.add_argument("--seconds", type=float, required=True, help="seconds to add")
    extend.add_argument("--direction", default="forward", choices=["forward", "backward"])

    remix = _tool_parser(commands, "remix", "make a video again under a new prompt")
    remix.add_argument("video", type=Path, help="the video to remix")
    remix.add_argument("--prompt", required=True, help="what it should show now")
    remix.add_argument(
        "--strength", type=float, default=0.6, help="0 keeps it, 1 only its length (0.6)"
    )

    connect = _tool_parser(commands, "connect", "make a transition from one video to another")
    connect.add_argument("video_a", type=Path, help="the transition starts at its last frame")
    connect.add_argument("video_b", type=Path, help="and arrives at its first frame")
    connect.add_argument("--prompt", default="", help="what happens in between")
    connect.add_argument("--seconds", type=float, default=1.0, help="transition length (1)")

    loop = _tool_parser(commands, "loop", "make a seamless loop from a prompt or a video")
    loop.add_argument("video", type=Path, nargs="?", help="a video to loop (or give --prompt)")
    loop.add_argument("--prompt", default="", help="what to show (without a video: required)")
    loop.add_argument("--seconds", type=float, help="loop length (a video's: its own + 1 s)")
    loop.add_argument("--transition", type=float, default=1.0, help="seconds to flow back (1)")

    blend = _tool_parser(commands, "blend", "mix two videos with a weight over time")
    blend.add_argument("video_a", type=Path, help="weight 0")
    blend.add_argument("video_b", type=Path, help="weight 1")
    blend.add_argument("--prompt", default="", help="what the mix should show")
    blend.add_argument(
        "--curve", default="ease-in-out", help=f"{', '.join(CURVES)} or JSON points [[t, w], ...]"
    )
    blend.add_argument("--strength", type=float, default=0.5, help="how much to regenerate (0.5)")

    board = _tool_parser(commands, "storyboard", "make one video from cards on a timeline")
    board.add_argument("board", type=Path, help="a .json or .yaml storyboard (see docs/tools.md)")

    reproduce = commands.add_parser(
        "reproduce",
        help="make a video again from its sidecar record",
        description="Run the tool, model and arguments of a sidecar record (VIDEO.json) again; "
        "on the same machine the frames are identical.",
    )
    reproduce.add_argument("record", type=Path, help="the sidecar record (clip.mp4.json)")
    reproduce.add_argument("--out", type=Path, help="default: NAME.reproduced.mp4 beside it")
    reproduce.add_argument("--device", help="cpu or cuda[:N] (the record's)")
    reproduce.set_defaults(
        handler=lambda a: run_reproduce(ReproduceOptions(a.record, a.out, a.device))
    )


def _tool_parser(
    commands: argparse._SubParsersAction, tool: str, summary: str, inputs: bool = True
) -> argparse.ArgumentParser:
    """A tool's parser with the options every tool shares; its handler builds `ToolOptions`
    from the tool's own arguments (every destination that is not shared)."""
    parser = commands.add_parser(
        tool,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}, "
        "with the shipped model (or --model), on the CPU by default, with no network.",
    )
    parser.add_argument("--out", type=Path, required=True, help="video file (.mp4, .webm, .gif)")
    for flag, keyword, kind, text in SAMPLING_FLAGS:
        parser.add_argument(flag, dest=keyword, type=kind, help=text)
    parser.add_argument("--model", type=Path, help="a pipeline folder (default: shipped)")
    parser.add_argument("--device", help="cpu or cuda[:N] (a GPU when there is one)")
    if inputs:
        parser.add_argument(
            "--i-own-the-rights",
            dest="rights_attested",
            action="store_true",
            help="attest that you hold the rights to the images and videos you give",
        )
    shared = {"out", "model", "device", "rights_attested", "handler", "command"}
    shared |= {keyword for _, keyword, _, _ in SAMPLING_FLAGS}

    def handle(a: argparse.Namespace) -> int:
        values = vars(a)
        arguments = {key: value for key, value in values.items() if key not in shared}
        if tool == "storyboard":
            arguments = {"board": _read_board(arguments.pop("board"))}
        if tool == "blend":
            arguments["curve"] = _parse_curve(arguments["curve"])
        if tool == "loop" and arguments["video"] is None and not arguments["prompt"].strip():
            raise KinetoscopeError("loop needs a video or a --prompt")
        sampling = {k: values[k] for _, k, _, _ in SAMPLING_FLAGS if values[k] is not None}
        return run_tool(
            ToolOptions(
                tool=tool,
                out=a.out,
                arguments=arguments,
                sampling=sampling,
                model=a.model,
                device=a.device,
                rights_attested=values.get("rights_attested", False),
            )
        )

    parser.set_defaults(handler=handle)
    return parser


def _read_board(path: Path) -> object:
    from kinetoscope.storyboard import Storyboard

    return Storyboard.from_file(path)


def _parse_curve(text: str) -> object:
    """A curve name, or JSON points."""
    if not text.lstrip().startswith("["):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise KinetoscopeError(
            f"--curve {text!r} is neither a name nor JSON points: {exc}"
        ) from exc


def _add_render(commands: argparse._SubParsersAction) -> None:
    render = commands.add_parser("render", help="render one scene to a video file")
    render.add_argument("--seed", type=int, default=0, help="scene to sample (0)")
    render.add_argument("--spec", type=Path, help="render this scene spec (JSON) instead")
    render.add_argument("--size", type=parse_size, default=(128, 128), help="WxH (128x128)")
    render.add_argument("--fps", type=float, default=16.0, help="frames per second (16)")
    render.add_argument("--seconds", type=float, help="duration (default: the scene's own)")
    render.add_argument("--out", type=Path, required=True, help="clip.mp4, .webm or .gif")
    render.add_argument("--spec-out", type=Path, help="also write the scene spec (JSON) here")

    def handle(a: argparse.Namespace) -> int:
        width, height = a.size
        return run_render(
            RenderOptions(
                out=a.out,
                seed=a.seed,
                spec=a.spec,
                width=width,
                height=height,
                fps=a.fps,
                seconds=a.seconds,
                spec_out=a.spec_out,
            )
        )

    render.set_defaults(handler=handle)


def _add_dataset(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser(
        "dataset", help="render many captioned clips (resumable: rerun to continue)"
    )
    dataset.add_argument("--count", type=int, required=True, help="number of clips")
    dataset.add_argument("--out", type=Path, required=True, help="dataset folder")
    dataset.add_argument("--size", type=parse_size, default=(128, 128), help="WxH (128x128)")
    dataset.add_argument("--fps", type=float, default=16.0, help="frames per second (16)")
    dataset.add_argument("--seconds", type=float, help="duration (default: 1-4 s per clip)")
    dataset.add_argument("--seed", type=int, default=0, help="clip i uses scene seed + i (0)")
    dataset.add_argument("--batch", type=int, default=16, help="clips rendered together (16)")

    def handle(a: argparse.Namespace) -> int:
        from kinetoscope.world.dataset import DatasetConfig

        width, height = a.size
        config = DatasetConfig(
            count=a.count,
            width=width,
            height=height,
            fps=a.fps,
            seconds=a.seconds,
            seed=a.seed,
            batch=a.batch,
        )
        return run_dataset(a.out, config)

    dataset.set_defaults(handler=handle)


def _add_score(commands: argparse._SubParsersAction) -> None:
    score = commands.add_parser("score", help="judge a video against its scene spec")
    score.add_argument("video", type=Path, help="the clip to judge")
    score.add_argument("--spec", type=Path, help="scene spec (default: the one in the clip)")
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.set_defaults(
        handler=lambda a: run_score(ScoreOptions(video=a.video, spec=a.spec, as_json=a.json))
    )


def _add_train_vae(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "vae", help="train the video autoencoder (resumable: --resume continues a run)"
    )
    train.add_argument("--preset", required=True, help=f"training preset: {TRAIN_PRESET_NAMES}")
    train.add_argument("--out", type=Path, required=True, help="run folder")
    train.add_argument("--steps", type=int, help="optimisation steps in all")
    train.add_argument("--batch", type=int, help="clips per batch")
    train.add_argument("--size", type=int, help="frame side in pixels, a multiple of 8")
    train.add_argument("--frames", type=int, help="frames per clip, 1 + 4k")
    train.add_argument("--lr", type=float, help="peak learning rate")
    train.add_argument("--device", help="auto, cpu or cuda[:N] (the preset's: auto)")
    train.add_argument("--workers", type=int, help="data-loading processes")
    train.add_argument(
        "--minutes", type=float, help="train for about this long (at most --steps, if given)"
    )
    train.add_argument("--init", type=Path, help="a saved VAE of the preset's size to start from")
    train.add_argument(
        "--decoder-only",
        action="store_true",
        help="fine-tune --init's decoder alone: its latents (and models on them) stay valid",
    )
    train.add_argument(
        "--mix",
        metavar="WORLD,CAMERA,STILL",
        help="shares of physics-world clips, camera moves over photographs and stills "
        f"(every preset's: {VAE_DATA_MIX})",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--stop-at", type=int, help="stop after this step; --resume goes on")

    def handle(a: argparse.Namespace) -> int:
        return run_train_vae(
            TrainVAEOptions(
                preset=a.preset,
                out=a.out,
                steps=a.steps,
                batch=a.batch,
                size=a.size,
                frames=a.frames,
                lr=a.lr,
                device=a.device,
                workers=a.workers,
                minutes=a.minutes,
                init=a.init,
                decoder_only=a.decoder_only,
                mix=a.mix,
                resume=a.resume,
                stop_at=a.stop_at,
            )
        )

    train.set_defaults(handler=handle)


def _add_train_dit(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "dit",
        help="train the text-to-video diffusion transformer (resumable: --resume continues)",
        description="Several processes: torchrun --nproc_per_node N -m kinetoscope train dit ...",
    )
    train.add_argument("--preset", required=True, help=f"training preset: {TRAIN_DIT_PRESET_NAMES}")
    train.add_argument("--out", type=Path, required=True, help="run folder")
    train.add_argument("--vae", type=Path, help="VAE folder (default: the shipped VAE)")
    train.add_argument("--steps", type=int, help="optimisation steps in all")
    train.add_argument("--batch", type=int, help="clips per step, over all processes")
    train.add_argument("--size", type=int, help="short side in pixels, a multiple of 16")
    train.add_argument("--lr", type=float, help="peak learning rate")
    train.add_argument("--device", help="auto, cpu or cuda[:N] (the preset's)")
    train.add_argument("--workers", type=int, help="data-loading processes")
    train.add_argument("--parallel", choices=PARALLEL_STRATEGIES, help="multi-process strategy")
    train.add_argument("--eval-every", type=int, help="steps between judge evaluations (0: off)")
    train.add_argument("--video-folder", type=Path, help="videos + captions.jsonl to train on")
    train.add_argument("--video-weight", type=float, help="share of video-folder clips (0.5)")
    train.add_argument("--seed", type=int, help="seed of the weights and the data")
    train.add_argument(
        "--minutes", type=float, help="train for about this long (at most --steps, if given)"
    )
    train.add_argument(
        "--init",
        type=Path,
        help="a transformer or pipeline folder of the preset's size to start from",
    )
    train.add_argument("--scenes", type=int, help="physics-world scenes in the training pool")
    train.add_argument(
        "--patterns",
        metavar="NAME=WEIGHT,...",
        help=f"frame-pattern weights ({', '.join(PATTERN_NAMES)}); the rest keep the preset's",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--stop-at", type=int, help="stop after this step; --resume goes on")

    def handle(a: argparse.Namespace) -> int:
        weight = a.video_weight
        if a.video_folder is not None and weight is None:
            weight = 0.5
        return run_train_dit(
            TrainDiTOptions(
                preset=a.preset,
                out=a.out,
                vae=a.vae,
                steps=a.steps,
                batch=a.batch,
                size=a.size,
                lr=a.lr,
                device=a.device,
                workers=a.workers,
                parallel=a.parallel,
                eval_every=a.eval_every,
                video_folder=a.video_folder,
                video_weight=weight,
                seed=a.seed,
                minutes=a.minutes,
                init=a.init,
                scenes=a.scenes,
                patterns=a.patterns,
                resume=a.resume,
                stop_at=a.stop_at,
            )
        )

    train.set_defaults(handler=handle)


def _add_eval_vae(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "vae", help="PSNR, SSIM and flicker of the autoencoder's reconstructions"
    )
    evaluate.add_argument("--model", type=Path, help="a saved VAE folder (default: shipped)")
    evaluate.add_argument(
        "--videos", type=Path, nargs="+", required=True, help="video files (mp4, avi, ...)"
    )
    evaluate.add_argument("--size", type=int, default=256, help="square frame side (256)")
    evaluate.add_argument("--frames", type=int, default=65, help="first frames, 1 + 4k (65)")
    evaluate.add_argument("--device", default="cpu", help="cpu or cuda[:N] (cpu)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(
        handler=lambda a: run_eval_vae(
            EvalVAEOptions(
                videos=tuple(a.videos),
                model=a.model,
                size=a.size,
                frames=a.frames,
                device=a.device,
                as_json=a.json,
            )
        )
    )


def _add_verify(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify",
        help="check a video's C2PA manifest and invisible watermark",
        description="Validate a video's C2PA manifest (embedded, or the FILE.c2pa sidecar of a "
        ".webm) and look for the Kinetoscope watermark in its frames. Exit status 0 whatever "
        "is found; 2 when the file cannot be read.",
    )
    verify.add_argument("file", type=Path, help="the video to check")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="PEM",
        default=[],
        help="a trusted root certificate (PEM); repeatable; default: the local root and "
        "$KINETOSCOPE_C2PA_TRUST",
    )
    verify.set_defaults(
        handler=lambda a: run_verify(
            VerifyOptions(file=a.file, as_json=a.json, trust=tuple(a.trust))
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KinetoscopeError as exc:
        # soft_wrap: a long path stays on one line; escape: brackets in messages are not markup
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
