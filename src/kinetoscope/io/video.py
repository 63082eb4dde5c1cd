"""Video files in and out: uint8 RGB frames (T, H, W, 3) plus an fps, through PyAV (FFmpeg).

The extension of the path picks the format:

- ``.mp4``: H.264 (libx264, yuv420p, CRF), moov atom at the front (``+faststart``).
- ``.webm``: VP9 (libvpx-vp9, yuv420p, constant quality CRF).
- ``.gif``: 256 colours per frame (FFmpeg ``palettegen``/``paletteuse``, one palette per frame).

Policies, each chosen on purpose:

- Colour. RGB is converted to YUV with the BT.709 matrix in limited range, and the stream is
  tagged BT.709, so players and `read_video` invert the same matrix. On reading, the matrix a
  stream is tagged with is used (untagged streams get FFmpeg's default, BT.601). Both ways use
  swscale's accurate rounding and full chroma interpolation (see ``_sws_flags``), and chroma
  is sampled where each decoder assumes it sits (left for H.264, centre for VP9): a mismatch
  shifts colour by half a pixel and doubles the error on gradients.
- Odd sizes. yuv420p needs an even width and height, so for mp4 and webm an odd-sized video is
  padded by one row and/or column that repeats the edge pixels, and its true size is stored as
  ``kinetoscope_size = "WxH"`` in the container metadata. `read_video` crops the padding off
  again when that key is present and the decoded size is the stored size or one pixel larger
  (so a stale key left by another tool that rescaled the file is ignored). The key round-trips
  in both mp4 and webm. GIF stores any size, so it is never padded.
- Frame rate. Written as the nearest fraction with a denominator of at most 1001 (24, 16,
  2997/100, 30000/1001 are all exact), at most 1000 fps; read from the stream's average rate,
  else its guessed rate. Every written frame has its own timestamp, so the decoded count
  equals the written one.
- GIF frame rate. GIF delays are whole centiseconds, so a GIF plays at 100 / round(100 / fps)
  frames per second, at most 50: 24 fps becomes 25, 16 fps becomes 16.67. `read_video` reports
  the rate the file really has. `crf` does not apply to GIF.
- Metadata. Keys and values are strings. mp4 is written with ``use_metadata_tags``, so every
  key (``title``, ``comment``, ``description`` and any custom key) round-trips; they are stored
  as QuickTime ``mdta`` keys rather than iTunes atoms. webm round-trips every key too; Matroska
  stores tag names upper-case, so `read_metadata` lower-cases every key. GIF carries no
  metadata: metadata given for a GIF is not stored. Both readers also see keys the muxer adds
  (``encoder``, ``major_brand``, ...). A ``kinetoscope_size`` key given by the caller is dropped:
  only `write_video` decides it.
- What counts as a video. Any file FFmpeg decodes into video frames, so a PNG or JPEG reads as a
  one-frame video (at the 25 fps FFmpeg's image demuxer reports).
- Truncation and corruption. A decoding error is a `VideoError`. When the container says how
  many frames it holds (mp4), fewer decoded frames is a `VideoError` naming both counts.
  Matroska/WebM records no count, so its per-stream duration times its fps gives an estimate,
  and more than one frame short of it is a `VideoError`. A GIF records neither, and FFmpeg
  decodes a cut GIF silently, so a GIF whose last byte is not the GIF trailer (0x3B) is a
  `VideoError`. A file with no decodable frame is a `VideoError` ("no video frames"). Reading
  stops at ``max_frames`` without these checks, so the intact start of a cut file can be read.
- Atomic writes. A video is encoded into a hidden temporary file in the target's directory and
  moved over the target with `os.replace` only once complete: a failure leaves no partial file
  and never harms an existing file. A missing parent directory is an error, not created.
- PyAV is imported by the functions that read or write a file, not with the module: `Video`,
  which the models, the physics world and the trainers use, needs no FFmpeg.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from kinetoscope.errors import VideoError

if TYPE_CHECKING:
    import av
    import av.filter
    from av.container import InputContainer, OutputContainer
    from av.filter.context import FilterContext
    from av.video.stream import VideoStream

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Video",
    "check_output_path",
    "read_metadata",
    "read_video",
    "write_video",
]

SIZE_KEY = "kinetoscope_size"  # "WxH" of a video padded to even size before encoding
_MAX_FPS_DENOMINATOR = 1001  # 30000/1001 (NTSC) is the finest rate in common use
_MAX_FPS = 1000  # Matroska timestamps are whole milliseconds; faster mp4s failed to decode
_ESTIMATE_SLACK = 1  # frames a duration-based frame count may be off by (rounding, last frame)


def _sws_flags() -> int:
    """swscale's flags for reading. Its default yuv420p -> RGB path rounds coarsely and repeats
    chroma samples: a mean error of about 2 levels on a smooth gradient before any compression.
    These flags cut it to 0.5. _link_yuv420_filters passes the same flags to the scale filter
    for writing."""
    from av.video.reformatter import Interpolation

    return Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == gives no single bool
class Video:
    """Frames and the rate they play at: the pixel boundary of Kinetoscope.

    ``frames`` is a uint8 tensor of shape (T, H, W, 3) holding RGB; ``fps`` is frames per
    second, positive and finite. ``seconds`` is the playing time, T / fps: every frame,
    the last included, is shown for 1 / fps.
    """

    frames: torch.Tensor  # (T, H, W, 3) uint8 RGB
    fps: float

    def __post_init__(self) -> None:
        problem = _frames_problem(self.frames) or _fps_problem(self.fps)
        if problem is not None:
            raise VideoError(f"invalid Video: {problem}")
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        """H, in pixels."""
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        """W, in pixels."""
        return self.frames.shape[2]

    @property
    def seconds(self) -> float:
        """Playing time T / fps, in seconds."""
        return self.num_frames / self.fps


def _frames_problem(frames: object) -> str | None:
    """What is wrong with a frames tensor, or None when it is a valid (T, H, W, 3) uint8."""
    if not isinstance(frames, torch.Tensor):
        return f"frames must be a torch.Tensor, got {type(frames).__name__}"
    if frames.dtype != torch.uint8:
        return f"frames must be uint8 (0..255), got {frames.dtype}; convert floats explicitly"
    if frames.ndim != 4 or frames.shape[-1] != 3:
        return f"frames must have shape (T, H, W, 3), got {tuple(frames.shape)}"
    if min(frames.shape) < 1:
        return f"frames must hold at least one 1x1 frame, got shape {tuple(frames.shape)}"
    return None


def _fps_problem(fps: object) -> str | None:
    """What is wrong with an fps, or None when it is a positive finite number."""
    if isinstance(fps, bool) or not isinstance(fps, int | float | Fraction | np.number):
        return f"fps must be a number, got {type(fps).__name__}"
    if not (math.isfinite(fps) and fps > 0):
        return f"fps must be positive and finite, got {fps}"
    return None


# ---------------------------------------------------------------------------------------------
# Formats


@dataclass(frozen=True)
class _Format:
    """How one file extension is written: muxer, encoder and their options."""

    muxer: str
    codec: str
    pix_fmt: str
    chroma_location: str | None  # where yuv420p chroma sits, as the decoder assumes; None: pal8
    max_crf: int | None  # None: the encoder has no CRF
    muxer_options: Mapping[str, str]
    codec_options: Mapping[str, str]


_FORMATS: dict[str, _Format] = {
    ".mp4": _Format(
        muxer="mp4",
        codec="libx264",
        pix_fmt="yuv420p",
        chroma_location="left",  # H.264's default when the stream does not say
        max_crf=51,
        # use_metadata_tags: store every metadata key, not only the iTunes ones
        muxer_options={"movflags": "+faststart+use_metadata_tags"},
        codec_options={"preset": "medium"},
    ),
    ".webm": _Format(
        muxer="webm",
        codec="libvpx-vp9",
        pix_fmt="yuv420p",
        chroma_location="center",  # what FFmpeg's VP9 decoder reports
        max_crf=63,
        muxer_options={},
        # b=0 makes CRF a constant-quality target instead of a cap on a default bitrate
        codec_options={"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
    ),
    ".gif": _Format(
        muxer="gif",
        codec="gif",
        pix_fmt="pal8",
        chroma_location=None,
        max_crf=None,
        muxer_options={},
        codec_options={},
    ),
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_FORMATS)


def _format_for(path: Path) -> _Format:
    """The format that the extension of ``path`` names."""
    extension = path.suffix.lower()
    if extension not in _FORMATS:
        supported = ", ".join(SUPPORTED_EXTENSIONS)
        shown = repr(extension) if extension else "no extension"
        raise VideoError(f"{path}: cannot write {shown}; supported extensions: {supported}")
    return _FORMATS[extension]


# ---------------------------------------------------------------------------------------------
# Reading


def read_video(path: str | os.PathLike[str], *, max_frames: int | None = None) -> Video:
    """Decode a video file (or anything FFmpeg decodes as video, such as a PNG) into a `Video`.

    Reads at most ``max_frames`` frames when given. Raises `VideoError`, naming the path and
    the problem, when the file is missing, empty, not decodable, has no video stream, or is
    truncated or corrupt (see the module docstring for how truncation is judged).
    """
    # 1. check the arguments and the file
    path = _existing_file(path)
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1
    ):
        raise VideoError(f"{path}: max_frames must be a positive int or None, got {max_frames!r}")
    # 2. find the video stream, its rate and how many frames it promises
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)
        expectation = _expected_frames(stream, fps)
        stored_size = _stored_size(_lowercase_keys(container.metadata))
        is_gif = container.format.name == "gif"
        # 3. decode
        decoded = _decode_rgb(container, stream, path, max_frames, expectation)
    # 4. judge completeness, unless we stopped early on purpose
    if not decoded:
        raise VideoError(f"{path}: no video frames could be decoded{_promise(expectation)}")
    if len(decoded) != max_frames:
        _check_complete(path, len(decoded), expectation, is_gif)
    # 5. undo the padding write_video added for odd sizes
    frames = _crop_to(np.stack(decoded), stored_size)  # (T, H, W, 3) uint8
    return Video(frames=torch.from_numpy(frames), fps=fps)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The container metadata of a media file, keys lower-cased (Matroska upper-cases them).

    Includes keys the muxer added, such as ``encoder``. Raises `VideoError` when the file is
    missing, empty or not a media file FFmpeg can open.
    """
    path = _existing_file(path)
    with _open_input(path) as container:
        return _lowercase_keys(container.metadata)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, after checking it is a non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")
    return path


def _open_input(path: Path) -> InputContainer:
    """Open ``path`` for demuxing, turning FFmpeg's refusal into a VideoError."""
    import av

    try:
        # undecodable metadata bytes must not make a readable video unreadable
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: not a readable video file ({_reason(exc)})") from exc


def _reason(exc: av.FFmpegError) -> str:
    """FFmpeg's own words for a failure, without PyAV's errno and file-name decoration."""
    return exc.strerror or str(exc)


def _lowercase_keys(metadata: Mapping[str, str]) -> dict[str, str]:
    """Metadata with lower-case keys, so the same key reads the same from every container."""
    return {key.lower(): value for key, value in metadata.items()}


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    """The container's main video stream."""
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["no streams"]
        raise VideoError(f"{path}: no video stream (found {', '.join(kinds)})")
    return container.streams.best("video")


def _stream_fps(stream: VideoStream, path: Path) -> float:
    """Frames per second: the average rate, else FFmpeg's guess."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and rate > 0:
            return float(rate)
    raise VideoError(f"{path}: the video stream has no frame rate")


@dataclass(frozen=True)
class _Expectation:
    """How many frames a stream must yield to count as complete, and how we know."""

    minimum_frames: int
    source: str  # for messages, e.g. "the container records 17 frames"


def _expected_frames(stream: VideoStream, fps: float) -> _Expectation | None:
    """The frames a stream promises: its recorded count, else duration x fps, else None."""
    if stream.frames > 0:
        return _Expectation(stream.frames, f"the container records {_frame_count(stream.frames)}")
    seconds = _stream_seconds(stream)
    if seconds is None:
        return None
    estimate = round(seconds * fps)
    source = f"its duration {seconds:.3f} s at {fps:g} fps implies about {_frame_count(estimate)}"
    return _Expectation(estimate - _ESTIMATE_SLACK, source)


def _stream_seconds(stream: VideoStream) -> float | None:
    """The duration of the video stream itself (not the container, which may hold longer audio)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    # Matroska keeps the per-stream duration only as a "HH:MM:SS.nnnnnnnnn" tag
    tag = _lowercase_keys(stream.metadata).get("duration")
    if tag is None:
        return None
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _decode_rgb(
    container: InputContainer,
    stream: VideoStream,
    path: Path,
    max_frames: int | None,
    expectation: _Expectation | None,
) -> list[np.ndarray]:
    """Decode up to ``max_frames`` frames to (H, W, 3) uint8 RGB arrays."""
    import av

    decoded: list[np.ndarray] = []
    flags = _sws_flags()
    try:
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24", interpolation=flags)  # (H, W, 3) uint8
            decoded.append(rgb)
            if len(decoded) == max_frames:
                break
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path}: corrupt or truncated video: decoding failed after "
            f"{_frame_count(len(decoded))}{_promise(expectation)} ({_reason(exc)})"
        ) from exc
    return decoded


def _frame_count(count: int) -> str:
    """'1 frame', '2 frames': counts in messages."""
    return f"{count} frame" if count == 1 else f"{count} frames"


def _promise(expectation: _Expectation | None) -> str:
    """The expected frame count as a clause to append to a message, or nothing."""
    return "" if expectation is None else f"; {expectation.source}"


def _check_complete(
    path: Path, num_decoded: int, expectation: _Expectation | None, is_gif: bool
) -> None:
    """Raise when the file was cut short: fewer frames than promised, or a GIF without its end."""
    if expectation is not None and num_decoded < expectation.minimum_frames:
        raise VideoError(
            f"{path}: truncated video: decoded only {_frame_count(num_decoded)}, "
            f"but {expectation.source}"
        )
    # FFmpeg decodes a cut GIF without complaint; only the missing trailer byte gives it away
    if is_gif and not _ends_with_gif_trailer(path):
        raise VideoError(
            f"{path}: truncated video: the GIF ends without its trailer byte "
            f"after {_frame_count(num_decoded)}"
        )


def _ends_with_gif_trailer(path: Path) -> bool:
    """Whether the file's last byte is the GIF trailer, 0x3B (';'), that ends every GIF."""
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\x3b"


def _stored_size(metadata: Mapping[str, str]) -> tuple[int, int] | None:
    """The (width, height) that write_video stored before padding, or None."""
    value = metadata.get(SIZE_KEY)
    if value is None:
        return None
    width, _, height = value.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return None
    return int(width), int(height)


def _crop_to(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Crop (T, H, W, 3) frames to a stored size that is at most one pixel smaller each way."""
    if size is None:
        return frames
    width, height = size
    if not (0 <= frames.shape[1] - height <= 1 and 0 <= frames.shape[2] - width <= 1):
        return frames  # not our padding: the file was rescaled since the key was written
    return np.ascontiguousarray(frames[:, :height, :width])


# ---------------------------------------------------------------------------------------------
# Writing


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Check, before any expensive work, that `write_video` could write ``path``: a supported
    extension and an existing, writable folder. Returns the path; raises `VideoError`."""
    path = Path(path)
    _format_for(path)
    _check_destination(path)
    return path


def write_video(
    path: str | os.PathLike[str],
    video: Video,
    *,
    metadata: Mapping[str, str] | None = None,
    crf: int = 18,
) -> Path:
    """Encode ``video`` to ``path`` (.mp4, .webm or .gif, by extension) and return the path.

    ``crf`` is the constant-rate factor (quality; lower is better): 0-51 for H.264, 0-63 for
    VP9; GIF ignores it. ``metadata`` is stored in the container (not in GIF). The file appears
    only once complete; an existing file at ``path`` is replaced then, and kept on failure.
    Raises `VideoError` for bad arguments, a missing directory or a failed encode.
    """
    # 1. check everything before any file is touched
    import av

    path = Path(path)
    video_format = _format_for(path)
    _check_video_argument(video, path)
    tags = _checked_metadata(metadata, path)
    _check_crf(crf, video_format, path)
    rate = _stream_rate(video.fps, video_format, path)
    _check_destination(path)
    # 2. encode into a hidden file beside the target, then move it into place in one step
    frames = video.frames.detach().cpu().numpy()  # (T, H, W, 3) uint8
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        _encode(temporary, video_format, frames, rate, tags, crf)
        os.replace(temporary, path)
    except av.FFmpegError as exc:
        size = f"{video.width}x{video.height}"
        raise VideoError(
            f"{path}: encoding {size} frames with {video_format.codec} failed ({_reason(exc)})"
        ) from exc
    except OSError as exc:
        raise VideoError(f"{path}: could not write the file ({exc})") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _check_video_argument(video: object, path: Path) -> None:
    """Re-check the frames and fps: a Video's tensor may have been swapped after construction."""
    if not isinstance(video, Video):
        raise VideoError(f"{path}: expected a Video, got {type(video).__name__}")
    problem = _frames_problem(video.frames) or _fps_problem(video.fps)
    if problem is not None:
        raise VideoError(f"{path}: {problem}")


def _checked_metadata(metadata: Mapping[str, str] | None, path: Path) -> dict[str, str]:
    """The caller's metadata as a plain dict, without the key write_video owns."""
    tags: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise VideoError(f"{path}: metadata must map str to str, got {key!r}: {value!r}")
        if not key or "\0" in key or "\0" in value:
            raise VideoError(f"{path}: metadata keys must be non-empty and free of NUL: {key!r}")
        if key.lower() != SIZE_KEY:
            tags[key] = value
    return tags


def _check_crf(crf: int, video_format: _Format, path: Path) -> None:
    """CRF must be an int inside the encoder's range (any int for GIF, which ignores it)."""
    if isinstance(crf, bool) or not isinstance(crf, int):
        raise VideoError(f"{path}: crf must be an int, got {crf!r}")
    top = video_format.max_crf
    if top is not None and not 0 <= crf <= top:
        raise VideoError(f"{path}: crf for {video_format.codec} must be in 0..{top}, got {crf}")


def _check_destination(path: Path) -> None:
    """The directory must exist and the path must not be a directory."""
    if not path.parent.is_dir():
        raise VideoError(f"{path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory")


def _encode(
    temporary: Path,
    video_format: _Format,
    frames: np.ndarray,
    rate: Fraction,
    tags: dict[str, str],
    crf: int,
) -> None:
    """Encode (T, H, W, 3) uint8 RGB ``frames`` at ``rate`` into ``temporary``."""
    import av

    height, width = frames.shape[1:3]
    rgb_frames: Iterable[np.ndarray] = frames
    if video_format.pix_fmt == "yuv420p" and (height % 2 or width % 2):
        tags = {**tags, SIZE_KEY: f"{width}x{height}"}
        rgb_frames = _even_sized(frames)
        height, width = height + height % 2, width + width % 2
    options = dict(video_format.muxer_options)
    with av.open(str(temporary), mode="w", format=video_format.muxer, options=options) as container:
        container.metadata.update(tags)  # the GIF muxer stores none of it
        stream = _add_stream(container, video_format, rate, width, height, crf)
        graph = _conversion_graph(video_format, width, height, rate)
        for frame in _converted_frames(graph, rgb_frames, rate):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the frames the encoder holds back


def _stream_rate(fps: float, video_format: _Format, path: Path) -> Fraction:
    """The rate the file will store: a fraction with a small denominator, or a GIF's rate."""
    if fps > _MAX_FPS:
        raise VideoError(f"{path}: fps {fps:g} is above {_MAX_FPS}, the most this module writes")
    if video_format.muxer == "gif":
        # GIF delays are whole centiseconds, 2..65535; browsers slow delays under 2 cs to
        # 10 cs, so 50 fps is the fastest honest rate
        delay_cs = round(min(max(100 / fps, 2), 65535))
        return Fraction(100, delay_cs)
    rate = Fraction(fps).limit_denominator(_MAX_FPS_DENOMINATOR)
    if rate == 0:
        raise VideoError(f"{path}: fps {fps:g} is too low to store")
    return rate


def _add_stream(
    container: OutputContainer,
    video_format: _Format,
    rate: Fraction,
    width: int,
    height: int,
    crf: int,
) -> VideoStream:
    """Add the video stream: codec, size, pixel format, quality and colour tags."""
    from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

    options = dict(video_format.codec_options)
    if video_format.max_crf is not None:
        options["crf"] = str(crf)
    stream = container.add_stream(video_format.codec, rate=rate, options=options)
    stream.width, stream.height, stream.pix_fmt = width, height, video_format.pix_fmt
    if video_format.pix_fmt == "yuv420p":
        # the tags say which matrix _link_yuv420_filters used, so decoders invert that one
        context = stream.codec_context
        context.colorspace = Colorspace.ITU709  # SWS_CS_ITU709 == AVCOL_SPC_BT709 == 1
        context.color_primaries = ColorPrimaries.BT709
        context.color_trc = ColorTrc.BT709
        context.color_range = ColorRange.MPEG
    return stream


def _even_sized(frames: np.ndarray) -> Iterator[np.ndarray]:
    """(T, H, W, 3) frames one by one, padded to even H and W by repeating the edge pixels."""
    height, width = frames.shape[1:3]
    padding = ((0, height % 2), (0, width % 2), (0, 0))
    for rgb in frames:
        yield np.pad(rgb, padding, mode="edge")  # (H + H % 2, W + W % 2, 3)


def _conversion_graph(
    video_format: _Format, width: int, height: int, rate: Fraction
) -> av.filter.Graph:
    """An FFmpeg filter graph from rgb24 frames to the pixel format the encoder takes."""
    import av.filter

    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=1 / rate)
    sink = graph.add("buffersink")
    if video_format.chroma_location is None:
        _link_palette_filters(graph, source, sink)
    else:
        _link_yuv420_filters(graph, source, sink, video_format.chroma_location)
    graph.configure()
    return graph


def _link_yuv420_filters(
    graph: av.filter.Graph, source: FilterContext, sink: FilterContext, chroma_location: str
) -> None:
    """RGB to BT.709 limited-range yuv420p, chroma sited where the decoder will assume it."""
    # the same swscale flags as _sws_flags gives for reading
    scale = graph.add(
        "scale",
        "out_color_matrix=bt709:out_range=tv:"
        f"out_chroma_loc={chroma_location}:flags=bilinear+accurate_rnd+full_chroma_int",
    )
    to_yuv420 = graph.add("format", "pix_fmts=yuv420p")
    graph.link_nodes(source, scale, to_yuv420, sink)


def _link_palette_filters(
    graph: av.filter.Graph, source: FilterContext, sink: FilterContext
) -> None:
    """RGB to pal8 with a 256-colour palette per frame and error-diffusion dithering.

    One palette per frame keeps colours close when the scene changes colour over time, which
    one palette for the whole video cannot; dithering hides the banding of 256 colours.
    """
    split = graph.add("split")
    palettegen = graph.add("palettegen", "stats_mode=single")
    paletteuse = graph.add("paletteuse", "new=1:dither=sierra2_4a")
    source.link_to(split)
    split.link_to(paletteuse, 0, 0)  # the frame to quantise
    split.link_to(palettegen, 1, 0)  # the same frame, to build its palette from
    palettegen.link_to(paletteuse, 0, 1)
    paletteuse.link_to(sink)


def _converted_frames(
    graph: av.filter.Graph, rgb_frames: Iterable[np.ndarray], rate: Fraction
) -> Iterator[av.VideoFrame]:
    """Push (H, W, 3) uint8 RGB frames through ``graph`` and yield what comes out, in order."""
    for index, rgb in enumerate(rgb_frames):
        graph.push(_rgb_frame(rgb, index, rate))
        yield from _pull_ready(graph)
    graph.push(None)  # end of stream: the graph releases what it still holds
    yield from _pull_ready(graph)


def _rgb_frame(rgb: np.ndarray, index: int, rate: Fraction) -> av.VideoFrame:
    """One (H, W, 3) uint8 RGB array as an av frame with timestamp ``index`` / ``rate``."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    frame.pts = index  # one tick per frame: no frame is dropped or repeated by the encoder
    frame.time_base = 1 / rate
    return frame


def _pull_ready(graph: av.filter.Graph) -> Iterator[av.VideoFrame]:
    """Every frame the filter graph can give now."""
    import av

    while True:
        try:
            yield graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
