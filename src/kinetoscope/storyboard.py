"""Storyboards: cards of text, an image or a video at times on a timeline, made into one video.

A board (JSON or YAML) gives the video's length and its cards, each with a start time in
seconds and a prompt, an image or a video (image and video cards may carry a prompt too,
for what follows them):

    {"seconds": 8,
     "cards": [{"start": 0, "prompt": "A red circle rolls to the right."},
               {"start": 3, "image": "blue_square.png", "prompt": "The blue square falls."},
               {"start": 6, "video": "ending.mp4"}]}

The first card starts at 0; starts increase and lie inside the video; paths are relative to
the board's file. Each card holds the screen from its start until the next card's:

- a text card is generated (from noise, or continuing the video so far under its prompt);
- an image or a video card appears exactly at its start: the video so far arrives at it
  through a transition (about 1 s, from the end of the previous card's time), then the
  card's prompt carries it on until the next card. A video must end before the next card
  starts (leaving at least 0.25 s for a transition into an image or video card after it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import Tensor

from kinetoscope.creative import GROUP
from kinetoscope.errors import KinetoscopeError
from kinetoscope.inputs import LoadedInput, check_rights, load_input

if TYPE_CHECKING:
    from kinetoscope.creative import Composer

TRANSITION_GROUPS = 4  # 16 frames, 1 s at 16 fps: the longest transition into a media card


class StoryboardError(KinetoscopeError, ValueError):
    """A board that cannot be made; the message names the card and the problem."""


@dataclass(frozen=True)
class Card:
    """One card: where it starts and what it shows."""

    start: float  # seconds
    prompt: str = ""
    image: str | None = None  # a path (relative to the board's folder)
    video: str | None = None

    @property
    def media(self) -> str | None:
        """The card's image or video path, or None for a text card."""
        return self.image or self.video

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"start": self.start, "prompt": self.prompt}
        for key in ("image", "video"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


@dataclass(frozen=True, eq=False)
class Segment:
    """A card placed in frames: it holds [start, end); ``frames`` are its image or video
    (fitted), None for text; ``transition`` is the groups of the bridge into the next card
    (0 when the next card is text, or there is none)."""

    start: int
    end: int
    prompt: str
    frames: Tensor | None
    transition: int


@dataclass(frozen=True)
class Storyboard:
    """A checked board: its length in seconds, its cards in time order, and the folder its
    paths are relative to."""

    seconds: float
    cards: tuple[Card, ...]
    folder: str = "."

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Storyboard:
        """Read a board from a .json, .yaml or .yml file."""
        path = Path(path)
        if path.suffix.lower() not in (".json", ".yaml", ".yml"):
            raise StoryboardError(f"{path}: a storyboard is a .json, .yaml or .yml file")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoryboardError(f"cannot read storyboard {path}: {exc.strerror}") from exc
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise StoryboardError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
        return cls.from_dict(data, folder=path.parent.resolve())

    @classmethod
    def from_dict(cls, data: object, folder: str | os.PathLike[str] = ".") -> Storyboard:
        """A board from its JSON form, checked (times, kinds, types): `StoryboardError`."""
        if not isinstance(data, dict) or not isinstance(data.get("cards"), list):
            raise StoryboardError('a storyboard is an object with "seconds" and a list of "cards"')
        unknown = set(data) - {"seconds", "cards"}
        if unknown:
            raise StoryboardError(
                f"unknown storyboard keys {sorted(unknown)}; keys: seconds, cards"
            )
        seconds = data.get("seconds")
        if not _is_number(seconds) or seconds <= 0:
            raise StoryboardError(
                f"the storyboard's seconds must be a positive number, got {seconds!r}"
            )
        cards = tuple(_card(number, item) for number, item in enumerate(data["cards"], start=1))
        board = cls(float(seconds), cards, str(folder))
        board.check_times()
        return board

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with paths made absolute (so a record replays from anywhere)."""
        cards = []
        for card in self.cards:
            data = card.to_dict()
            for key in ("image", "video"):
                if key in data:
                    data[key] = str(self.path(data[key]))
            cards.append(data)
        return {"seconds": self.seconds, "cards": cards}

    def path(self, relative: str) -> Path:
        return Path(self.folder) / relative

    def check_times(self) -> None:
        """Starts: the first at 0, increasing, inside the video."""
        if not self.cards:
            raise StoryboardError("the storyboard has no cards")
        if self.cards[0].start != 0:
            raise StoryboardError(f"card 1 must start at 0, not {self.cards[0].start:g} s")
        for number, (before, card) in enumerate(zip(self.cards, self.cards[1:], strict=False), 2):
            if card.start <= before.start:
                raise StoryboardError(
                    f"card {number} starts at {card.start:g} s, not after card {number - 1} "
                    f"({before.start:g} s): cards overlap; list them in time order"
                )
        for number, card in enumerate(self.cards, start=1):
            if card.start >= self.seconds:
                raise StoryboardError(
                    f"card {number} starts at {card.start:g} s, outside the "
                    f"{self.seconds:g} s storyboard"
                )

    def load_inputs(self, rights_attested: bool) -> list[LoadedInput]:
        """Read every image and video card (role "card N"); they need a rights attestation."""
        if any(card.media for card in self.cards):
            check_rights(rights_attested, "images and videos of the storyboard")
        return [
            load_input(
                self.path(card.media), f"card {number}", rights_attested, image=bool(card.image)
            )
            for number, card in enumerate(self.cards, start=1)
            if card.media
        ]

    def segments(self, fps: int, total: int, media: dict[str, Tensor]) -> list[Segment]:
        """The cards in frames of a ``total``-frame video; ``media``: fitted frames by role.
        Checks that every video ends in time (before any compute)."""
        starts = [round(card.start * fps) for card in self.cards] + [total]
        segments, prompt = [], ""
        for number, card in enumerate(self.cards, start=1):
            start, end = starts[number - 1], starts[number]
            prompt = card.prompt or prompt  # a media card without a prompt keeps the last one
            frames = media.get(f"card {number}")
            next_is_media = number < len(self.cards) and self.cards[number].media is not None
            own = 1 if frames is None else frames.shape[0]  # frames the card itself fills
            room = (end - start - own) // GROUP  # groups left for a transition
            if frames is not None and start + own > end:
                raise StoryboardError(
                    f"card {number}'s video ({own / fps:g} s) runs past "
                    f"{'the next card' if number < len(self.cards) else 'the end'} at "
                    f"{end / fps:g} s"
                )
            if next_is_media and room < 1:
                raise StoryboardError(
                    f"card {number + 1} needs at least {GROUP / fps:g} s after card {number}'s "
                    "content for a transition into it"
                )
            transition = min(TRANSITION_GROUPS, room) if next_is_media else 0
            segments.append(Segment(start, end, prompt, frames, transition))
        return segments


def compose_storyboard(composer: Composer, segments: list[Segment]) -> Tensor:
    """Make the segments one video, in order: (total, H, W, 3)."""
    out: Tensor | None = None
    for segment in segments:
        stop = segment.end - GROUP * segment.transition  # where the bridge to the next begins
        if segment.frames is None:  # text: generate, or carry the video on
            if out is None:
                out = composer.clip(segment.prompt, stop)
            else:
                out = composer.forward(out, stop - out.shape[0], segment.prompt)
        else:  # media: arrive at it exactly at its start, then carry on
            if out is not None:
                groups = (segment.start - out.shape[0]) // GROUP
                bridge = composer.bridge(out, segment.frames, groups, segment.prompt)
                out = torch.cat([out, bridge[1:-1]])
            out = segment.frames if out is None else torch.cat([out, segment.frames])
            if stop > out.shape[0]:
                out = composer.forward(out, stop - out.shape[0], segment.prompt)
    assert out is not None  # a board has at least one card
    return out[: segments[-1].end]


def _card(number: int, item: object) -> Card:
    if not isinstance(item, dict):
        raise StoryboardError(f"card {number} must be an object, got {item!r}")
    unknown = set(item) - {"start", "prompt", "image", "video"}
    if unknown:
        raise StoryboardError(
            f"card {number} has unknown keys {sorted(unknown)}; keys: start, prompt, image, video"
        )
    start = item.get("start")
    if not _is_number(start) or start < 0:
        raise StoryboardError(
            f"card {number}'s start must be a number of seconds >= 0, got {start!r}"
        )
    prompt = item.get("prompt", "")
    if not isinstance(prompt, str):
        raise StoryboardError(f"card {number}'s prompt must be text, got {prompt!r}")
    image, video = item.get("image"), item.get("video")
    if image is not None and video is not None:
        raise StoryboardError(f"card {number} has both an image and a video; give one")
    for key, value in (("image", image), ("video", video)):
        if value is not None and (not isinstance(value, str) or not value):
            raise StoryboardError(f"card {number}'s {key} must be a file path, got {value!r}")
    if image is None and video is None and not prompt.strip():
        raise StoryboardError(f"card {number} has no prompt, image or video")
    return Card(float(start), prompt, image, video)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
