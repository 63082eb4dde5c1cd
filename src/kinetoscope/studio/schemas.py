"""The API's request and response bodies (pydantic), which the OpenAPI schema documents.

`VideoCreate` is one body per video kind, told apart by ``kind``; references to inputs
(``image``, ``video``, ``video_a``, ``video_b``, a storyboard card's ``image`` or ``video``)
are ids: an upload of one's own, one's own finished video, or anyone's public video (whose
creator the new video then credits).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kinetoscope.curves import CURVES

MAX_PROMPT_CHARS = 1000
MAX_CARDS = 32
MAX_SEED = 2**31 - 1
Id = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
Prompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
# the database stores naive UTC: the API says it is UTC
UtcTime = Annotated[
    datetime, AfterValidator(lambda when: when if when.tzinfo else when.replace(tzinfo=UTC))
]
CurveName = Literal[tuple(CURVES)]  # type: ignore[valid-type]
CurvePoints = Annotated[
    list[Annotated[list[float], Field(min_length=2, max_length=2)]],
    Field(min_length=2, max_length=64),
]


class Strict(BaseModel):
    """Unknown fields are refused (a typo is an error, not silently ignored)."""

    model_config = ConfigDict(extra="forbid")


# ---- videos ----------------------------------------------------------------------------------


class Sampling(Strict):
    """Options every kind shares; missing ones take the model's defaults."""

    negative_prompt: Prompt = ""
    aspect: str | None = Field(
        None, max_length=8, description="e.g. 1:1, 16:9, 9:16; default: 16:9, or the input's"
    )
    size: int | None = Field(None, ge=16, le=1024, description="short side in pixels")
    fps: int | None = Field(None, ge=1, le=120)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="default: a random one")
    steps: int | None = Field(None, ge=1, le=200)
    guidance: float | None = Field(None, ge=0, le=30)
    sampler: Literal["euler", "heun"] | None = None
    title: str = Field("", max_length=200)
    public: bool = Field(False, description="show it in the feed once made")


class GenerateRequest(Sampling):
    kind: Literal["generate"]
    prompt: Prompt = Field(min_length=1)
    seconds: float | None = Field(None, gt=0, le=600, description="default: the model's longest")


class AnimateRequest(Sampling):
    kind: Literal["animate"]
    image: Id = Field(description="an image upload")
    prompt: Prompt = ""
    seconds: float | None = Field(None, gt=0, le=600)


class ExtendRequest(Sampling):
    kind: Literal["extend"]
    video: Id
    prompt: Prompt = ""
    seconds: float = Field(gt=0, le=600, description="seconds to add")
    direction: Literal["forward", "backward"] = "forward"


class RemixRequest(Sampling):
    kind: Literal["remix"]
    video: Id
    prompt: Prompt = ""
    strength: float = Field(0.6, ge=0, le=1, description="0 keeps the video, 1 only its length")


class ConnectRequest(Sampling):
    kind: Literal["connect"]
    video_a: Id
    video_b: Id
    prompt: Prompt = ""
    seconds: float = Field(1.0, gt=0, le=600, description="length of the transition")


class LoopRequest(Sampling):
    kind: Literal["loop"]
    prompt: Prompt = ""
    seconds: float | None = Field(None, gt=0, le=600, description="default: a video's + 1 s")
    video: Id | None = Field(None, description="loop this video (else generate from the prompt)")
    transition: float = Field(1.0, gt=0, le=60)


class BlendRequest(Sampling):
    kind: Literal["blend"]
    video_a: Id
    video_b: Id
    prompt: Prompt = ""
    curve: CurveName | CurvePoints = "ease-in-out"
    strength: float = Field(0.5, ge=0, le=1)


class CardIn(Strict):
    start: float = Field(ge=0, le=600, description="seconds")
    prompt: Prompt = ""
    image: Id | None = None
    video: Id | None = None


class BoardIn(Strict):
    seconds: float = Field(gt=0, le=600)
    cards: list[CardIn] = Field(min_length=1, max_length=MAX_CARDS)


class StoryboardRequest(Sampling):
    kind: Literal["storyboard"]
    board: BoardIn


VideoCreate = Annotated[
    GenerateRequest
    | AnimateRequest
    | ExtendRequest
    | RemixRequest
    | ConnectRequest
    | LoopRequest
    | BlendRequest
    | StoryboardRequest,
    Field(discriminator="kind"),
]


class VideoChange(Strict):
    """What the owner (``title``, ``public``) or an admin (``featured``) may change."""

    title: str | None = Field(None, max_length=200)
    public: bool | None = None
    featured: bool | None = None


class Created(BaseModel):
    id: str
    status: str


class VideoOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(description="0 to 1")
    error: str | None
    parameters: dict[str, Any]
    title: str
    creator: str
    credited_creator: str | None = Field(description="whose public video this one remixes")
    source_video: str | None
    public: bool
    featured: bool
    seconds: float
    size: int
    credits: int
    attempts: int
    likes: int
    liked: bool = Field(description="whether the caller likes it")
    mine: bool
    file_url: str | None
    created_at: UtcTime
    finished_at: UtcTime | None


class VideoList(BaseModel):
    videos: list[VideoOut]


# ---- uploads ---------------------------------------------------------------------------------


class UploadOut(BaseModel):
    id: str
    media: Literal["image", "video"]
    filename: str
    bytes: int
    frames: int
    width: int
    height: int
    fps: float
    seconds: float
    sha256: str
    rights_attested: bool
    created_at: UtcTime


# ---- accounts --------------------------------------------------------------------------------


class Login(Strict):
    name: str = Field(max_length=40)
    password: str = Field(max_length=200)


class UserCreate(Strict):
    name: str = Field(max_length=40)
    password: str | None = Field(None, max_length=200)
    tier: Literal["free", "plus", "pro"] = "free"
    admin: bool = False


class PlanOut(BaseModel):
    name: str
    max_seconds: float
    max_size: int
    concurrent_jobs: int
    monthly_credits: int
    max_upload_bytes: int


class UserOut(BaseModel):
    id: int
    name: str
    tier: str
    admin: bool
    plan: PlanOut
    credits_used: int = Field(description="this calendar month (UTC)")
    credits_left: int
    active_jobs: int


class KeyCreate(Strict):
    label: str = Field("", max_length=80)


class KeyOut(BaseModel):
    id: int
    prefix: str
    label: str
    created_at: UtcTime
    last_used_at: UtcTime | None


class NewKey(KeyOut):
    key: str = Field(description="shown once: keep it")


class NewUser(BaseModel):
    user: UserOut
    key: str = Field(description="an API key, shown once")


class ModelOut(BaseModel):
    """What the studio's model makes (the create form's choices)."""

    fps: int
    short_side: int
    sizes: list[int]
    aspects: list[str]
    min_seconds: float
    max_seconds: float
    steps: int
    guidance: float
