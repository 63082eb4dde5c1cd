"""The video kinds: a request checked against the model, the account and its inputs, and
turned into the call of the creative tool that makes it.

`prepare` runs in the web app before anything is queued, so that a bad request is a 4xx
answer with a clear message, not a failed job: it resolves every input id to its file,
checks the sampling options with the model's own rules (`Pipeline.plan`, on the model index
alone: no weights are loaded in the web app), runs the tools' cheap checks (strength, curve,
storyboard) and estimates the video's length and size for the plan. `tool_call` gives the
tool's name and keyword arguments; the worker calls it again with the same parameters.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from kinetoscope.curves import check_curve
from kinetoscope.errors import KinetoscopeError
from kinetoscope.inputs import nearest_aspect
from kinetoscope.pipeline import GenerationConfig, ModelIndex, Pipeline, check_strength
from kinetoscope.results import read_record, record_path
from kinetoscope.safety.policy import PolicyRefusal, default_policy
from kinetoscope.storyboard import Storyboard
from kinetoscope.studio.db import Upload, User, Video
from kinetoscope.studio.errors import NotFoundError, StudioError
from kinetoscope.studio.schemas import MAX_SEED, Sampling
from kinetoscope.studio.storage import Storage

SAMPLING_KEYS = ("negative_prompt", "aspect", "size", "fps", "seed", "steps", "guidance", "sampler")
NOT_PARAMETERS = {"title", "public"}  # about the video, not how it is made
# the fields that hold input ids, and the media each wants
REFERENCE_FIELDS = {"image": "image", "video": "video", "video_a": "video", "video_b": "video"}


class InputRefusedError(StudioError):
    """An input id that exists but cannot serve where it is given."""

    status = 422


@dataclass(frozen=True)
class Reference:
    """An input id, resolved."""

    id: str
    path: Path
    media: str  # "image" or "video"
    seconds: float
    height: int
    width: int
    owner_id: int
    is_video: bool  # a studio video (else an upload)


@dataclass(frozen=True)
class PreparedJob:
    """A checked request: what to store and queue."""

    kind: str
    parameters: dict[str, Any]  # the request as made, the seed filled in
    seconds: float  # of the video, estimated
    size: int  # short side in pixels
    source_video_id: str | None  # the first studio video it is made from
    credited_user_id: int | None  # that video's creator, when it is someone else


Resolver = Callable[[str, str], Reference]  # (id, wanted media) -> the input


def resolver(session: Session, storage: Storage, user: User) -> Resolver:
    """Resolve ids as ``user`` may: their own uploads and finished videos, and anyone's
    public finished video."""

    def resolve(reference_id: str, media: str) -> Reference:
        upload = session.get(Upload, reference_id)
        if upload is not None and upload.user_id == user.id:
            if upload.media != media:
                raise InputRefusedError(
                    f"upload {reference_id} is an {upload.media}, not a {media}"
                )
            return Reference(
                reference_id,
                storage.path(upload.file),
                upload.media,
                upload.frames / upload.fps if upload.media == "video" else 0.0,
                upload.height,
                upload.width,
                upload.user_id,
                is_video=False,
            )
        video = session.get(Video, reference_id)
        if video is None or (video.user_id != user.id and not video.public):
            raise NotFoundError(f"no upload or video {reference_id} that you can use")
        if media != "video":
            raise InputRefusedError(f"{reference_id} is a video; an image upload is needed here")
        if video.status != "succeeded" or video.file is None:
            raise InputRefusedError(f"video {reference_id} is {video.status}, not finished")
        path = storage.path(video.file)
        height, width = _frame_size(path, video.size)
        return Reference(
            reference_id, path, "video", video.seconds, height, width, video.user_id, is_video=True
        )

    return resolve


def prepare(request: Sampling, user: User, resolve: Resolver, index: ModelIndex) -> PreparedJob:
    """Check ``request`` (one of the `VideoCreate` bodies) and estimate what it makes."""
    parameters = request.model_dump(exclude=NOT_PARAMETERS, exclude_none=True)
    if parameters.get("seed") is None:
        parameters["seed"] = secrets.randbelow(MAX_SEED + 1)
    kind = parameters["kind"]
    references = _references(parameters, resolve)
    # 1. the sampling options, by the model's rules (the length only where it is the clip's)
    first = references[0] if references else None
    aspect = parameters.get("aspect") or (
        nearest_aspect(first.height, first.width) if first is not None else "16:9"
    )
    native = parameters.get("seconds") if kind in ("generate", "animate") else None
    config = GenerationConfig(
        prompt=parameters.get("prompt", ""),
        negative_prompt=parameters["negative_prompt"],
        seconds=native,
        aspect=aspect,
        **{key: parameters[key] for key in SAMPLING_KEYS[2:] if parameters.get(key) is not None},
    )
    plan = Pipeline.plan(_IndexOnly(index), config)  # type: ignore[arg-type]
    # 2. the tool's own cheap checks, on the call the worker will make
    by_id = {reference.id: reference.path for reference in references}
    _, arguments = tool_call(parameters, by_id.__getitem__)
    _check_prompts(arguments)
    if "strength" in arguments:
        check_strength(arguments["strength"])
    if "curve" in arguments:
        check_curve(arguments["curve"])
    if (
        kind == "loop"
        and arguments["video"] is None
        and (arguments["seconds"] is None or not arguments["prompt"].strip())
    ):
        raise StudioError("a loop needs a video, or a prompt and its seconds", status=422)
    # 3. what it makes, for the plan
    seconds = _estimate_seconds(kind, parameters, references, plan.bucket.seconds)
    sources = [reference for reference in references if reference.is_video]
    credited = next((s.owner_id for s in sources if s.owner_id != user.id), None)
    return PreparedJob(
        kind=kind,
        parameters=parameters,
        seconds=seconds,
        size=min(plan.bucket.height, plan.bucket.width),
        source_video_id=sources[0].id if sources else None,
        credited_user_id=credited,
    )


def _check_prompts(arguments: dict[str, Any]) -> None:
    """The prompt policy, at submit time: a refused prompt never reaches the queue."""
    prompts = [arguments.get("prompt") or ""]
    board = arguments.get("board")
    if isinstance(board, dict):
        prompts += [card.get("prompt") or "" for card in board.get("cards", [])]
    try:
        default_policy().enforce(*(p for p in prompts if isinstance(p, str)))
    except PolicyRefusal as exc:
        raise StudioError(str(exc), status=400) from exc


def tool_call(
    parameters: dict[str, Any], path_of: Callable[[str], Path]
) -> tuple[str, dict[str, Any]]:
    """The creative tool and its keyword arguments for stored ``parameters``, with each input
    id replaced by its file (``path_of``). Every input is an upload made with a rights
    attestation, or a studio video."""
    kind = parameters["kind"]
    arguments = {
        key: value
        for key, value in parameters.items()
        if key not in SAMPLING_KEYS and key not in ("kind", "board") and value is not None
    }
    arguments |= {key: parameters[key] for key in SAMPLING_KEYS if parameters.get(key) is not None}
    for field in REFERENCE_FIELDS:
        if arguments.get(field) is not None:
            arguments[field] = str(path_of(arguments[field]))
    if kind == "storyboard":
        board = parameters["board"]
        cards = []
        for card in board["cards"]:
            placed = {key: value for key, value in card.items() if value is not None}
            for field in ("image", "video"):
                if field in placed:
                    placed[field] = str(path_of(placed[field]))
            cards.append(placed)
        arguments["board"] = Storyboard.from_dict({"seconds": board["seconds"], "cards": cards})
    if kind == "loop":
        arguments.setdefault("video", None)
        arguments.setdefault("seconds", None)
    if kind != "generate":
        arguments["rights_attested"] = True
    return kind, arguments


def _frame_size(path: Path, short_side: int) -> tuple[int, int]:
    """A studio video's (height, width), from its sidecar record (square when unreadable)."""
    try:
        output = read_record(record_path(path))["output"]
        return int(output["height"]), int(output["width"])
    except (KinetoscopeError, KeyError, TypeError, ValueError):
        return short_side, short_side


class _IndexOnly:
    """Enough of a `Pipeline` for `Pipeline.plan`, which reads only the model index."""

    def __init__(self, index: ModelIndex) -> None:
        self.index = index


def _references(parameters: dict[str, Any], resolve: Resolver) -> list[Reference]:
    """Every input of a request, in order (the storyboard's cards included)."""
    wanted = [
        (parameters[field], media)
        for field, media in REFERENCE_FIELDS.items()
        if parameters.get(field) is not None
    ]
    for card in parameters.get("board", {}).get("cards", []) if parameters.get("board") else []:
        wanted += [(card[field], field) for field in ("image", "video") if card.get(field)]
    return [resolve(reference_id, media) for reference_id, media in wanted]


def _estimate_seconds(
    kind: str, parameters: dict[str, Any], references: list[Reference], clip_seconds: float
) -> float:
    """The length of the video a request makes (what the plan limits and charges)."""
    inputs = [reference.seconds for reference in references]
    if kind in ("generate", "animate"):
        return clip_seconds
    if kind == "extend":
        return inputs[0] + parameters["seconds"]
    if kind == "remix":
        return inputs[0]
    if kind == "connect":
        return parameters["seconds"]
    if kind == "loop":
        if parameters.get("seconds") is not None:
            return parameters["seconds"]
        return inputs[0] + parameters["transition"]
    if kind == "blend":
        return min(inputs)
    return parameters["board"]["seconds"]  # storyboard
