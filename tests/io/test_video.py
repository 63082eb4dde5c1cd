"""Video files: round trips, metadata, odd sizes, atomic writes, and every way a read can fail."""

import math
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from kinetoscope.errors import VideoError
from kinetoscope.io.video import SUPPORTED_EXTENSIONS, Video, read_metadata, read_video, write_video

# ---------------------------------------------------------------------------------------------
# Helpers


def smooth_frames(num_frames: int = 9, height: int = 32, width: int = 48) -> torch.Tensor:
    """A smooth, slowly moving colour pattern: (T, H, W, 3) uint8, well inside 0..255."""
    t = torch.arange(num_frames).float()[:, None, None]  # (T, 1, 1)
    y = torch.arange(height).float()[None, :, None] / height  # (1, H, 1)
    x = torch.arange(width).float()[None, None, :] / width  # (1, 1, W)
    red = 40 + 150 * x + 3 * t
    green = 30 + 180 * y
    blue = 100 + 60 * torch.sin(3 * x + 2 * y + t / 5)
    channels = [c.expand(num_frames, height, width) for c in (red, green, blue)]
    return torch.stack(channels, dim=-1).round().clamp(0, 255).to(torch.uint8)  # (T, H, W, 3)


def mean_abs_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def write_sample(path: Path, num_frames: int = 17, fps: float = 24) -> Path:
    return write_video(path, Video(smooth_frames(num_frames), fps))


def write_audio_only(path: Path) -> Path:
    """An AAC-in-mp4 file with no video stream."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(4):
            samples = np.zeros((1, 1024), dtype=np.float32)  # (channels, samples)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """A one-image PNG written by FFmpeg's image muxer."""
    with av.open(str(path), mode="w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def raises_video_error(path: Path, *fragments: str):
    """Expect a VideoError whose message names the path and then every fragment, in order."""
    return pytest.raises(VideoError, match=".*".join(map(re.escape, (str(path), *fragments))))


# ---------------------------------------------------------------------------------------------
# The Video value


def test_video_properties():
    video = Video(smooth_frames(9, 32, 48), fps=24)
    assert (video.num_frames, video.height, video.width) == (9, 32, 48)
    assert video.seconds == pytest.approx(9 / 24)
    assert isinstance(video.fps, float)


@pytest.mark.parametrize(
    ("frames", "fragment"),
    [
        (torch.zeros(2, 4, 4, 3), "uint8"),  # float frames are the commonest mistake
        (torch.zeros(4, 4, 3, dtype=torch.uint8), "(T, H, W, 3)"),
        (torch.zeros(2, 4, 4, 4, dtype=torch.uint8), "(T, H, W, 3)"),
        (torch.zeros(0, 4, 4, 3, dtype=torch.uint8), "at least one"),
        (torch.zeros(2, 0, 4, 3, dtype=torch.uint8), "at least one"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "torch.Tensor"),
    ],
)
def test_video_rejects_bad_frames(frames, fragment):
    with pytest.raises(VideoError, match=re.escape(fragment)):
        Video(frames, fps=24)


@pytest.mark.parametrize("fps", [0, -24, math.nan, math.inf, True, "24", None])
def test_video_rejects_bad_fps(fps):
    with pytest.raises(VideoError, match="fps"):
        Video(smooth_frames(2), fps=fps)


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize(
    ("extension", "read_fps", "max_error"),
    [(".mp4", 24.0, 3.0), (".webm", 24.0, 3.0), (".gif", 25.0, 6.0)],  # GIF: 4 cs delays
)
def test_round_trip(tmp_path, extension, read_fps, max_error):
    frames = smooth_frames(13, 32, 48)
    path = write_video(tmp_path / f"clip{extension}", Video(frames, fps=24))
    video = read_video(path)
    assert video.frames.dtype == torch.uint8
    assert video.frames.shape == frames.shape
    assert video.fps == read_fps
    assert mean_abs_error(video.frames, frames) < max_error


@pytest.mark.parametrize("extension", SUPPORTED_EXTENSIONS)
def test_single_frame_round_trip(tmp_path, extension):
    frames = smooth_frames(1, 16, 16)
    video = read_video(write_video(tmp_path / f"still{extension}", Video(frames, fps=24)))
    assert video.frames.shape == (1, 16, 16, 3)


@pytest.mark.parametrize("extension", [".mp4", ".webm"])
@pytest.mark.parametrize("fps", [16, 29.97, 30000 / 1001, 12.5])
def test_fps_and_frame_count_round_trip(tmp_path, extension, fps):
    path = write_video(tmp_path / f"clip{extension}", Video(smooth_frames(11, 16, 16), fps))
    video = read_video(path)
    assert video.num_frames == 11  # no frame dropped or repeated by the encoder
    assert video.fps == pytest.approx(fps, rel=1e-12)


@pytest.mark.parametrize(("fps", "gif_fps"), [(16, 100 / 6), (24, 25.0), (10, 10.0), (60, 50.0)])
def test_gif_fps_is_a_whole_number_of_centiseconds(tmp_path, fps, gif_fps):
    video = read_video(write_video(tmp_path / "clip.gif", Video(smooth_frames(5, 8, 8), fps)))
    assert video.fps == pytest.approx(gif_fps)
    assert video.num_frames == 5


@pytest.mark.parametrize("extension", [".mp4", ".webm"])
def test_saturated_colours_survive(tmp_path, extension):
    """Writer and reader must use the same RGB<->YUV matrix, or saturated colours shift."""
    colours = torch.tensor(
        [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40], [128, 128, 128]],
        dtype=torch.uint8,
    )  # (T, 3)
    frames = colours[:, None, None, :].expand(5, 32, 32, 3).contiguous()  # (T, H, W, 3)
    video = read_video(write_video(tmp_path / f"colours{extension}", Video(frames, 8)))
    mean_colours = video.frames.float().mean(dim=(1, 2))  # (T, 3)
    assert (mean_colours - colours.float()).abs().max().item() < 3


@pytest.mark.parametrize("extension", [".mp4", ".webm"])
def test_crf_0_leaves_only_colour_conversion_error(tmp_path, extension):
    """At crf 0 the codecs are (near) lossless, so what remains is RGB -> yuv420p -> RGB.

    That is about 0.5 levels when writer and decoder agree on the matrix and on where chroma
    samples sit; coarse swscale rounding or chroma sited half a pixel off each double it.
    """
    frames = smooth_frames(5, 32, 48)
    video = read_video(write_video(tmp_path / f"fine{extension}", Video(frames, 24), crf=0))
    assert mean_abs_error(video.frames, frames) < 0.8


def test_non_contiguous_frames_are_written(tmp_path):
    wide = smooth_frames(5, 32, 96)
    frames = wide[:, :, ::2]  # (T, 32, 48, 3), a strided view
    assert not frames.is_contiguous()
    video = read_video(write_video(tmp_path / "strided.mp4", Video(frames, 24)))
    assert mean_abs_error(video.frames, frames) < 3


def test_max_frames_limits_the_read(tmp_path):
    path = write_sample(tmp_path / "clip.mp4", num_frames=17)
    assert read_video(path, max_frames=4).num_frames == 4
    assert read_video(path, max_frames=100).num_frames == 17
    for bad in (0, -1, 2.5, True):
        with raises_video_error(path, "max_frames"):
            read_video(path, max_frames=bad)


# ---------------------------------------------------------------------------------------------
# Odd sizes


@pytest.mark.parametrize("extension", SUPPORTED_EXTENSIONS)
@pytest.mark.parametrize(("height", "width"), [(33, 47), (32, 47), (33, 48), (1, 1)])
def test_odd_sizes_keep_their_shape(tmp_path, extension, height, width):
    frames = smooth_frames(3, height, width)
    video = read_video(write_video(tmp_path / f"odd{extension}", Video(frames, 24)))
    assert video.frames.shape == (3, height, width, 3)
    assert mean_abs_error(video.frames, frames) < 8


@pytest.mark.parametrize("extension", [".mp4", ".webm"])
def test_odd_size_is_padded_by_edge_pixels_and_recorded(tmp_path, extension):
    frames = smooth_frames(3, 33, 47)
    path = write_video(tmp_path / f"odd{extension}", Video(frames, 24))
    assert read_metadata(path)["kinetoscope_size"] == "47x33"
    with av.open(str(path)) as container:  # the stream itself holds the padded size
        stored = next(container.decode(video=0)).to_ndarray(format="rgb24")  # (34, 48, 3)
    assert stored.shape == (34, 48, 3)
    # the extra column and row repeat their neighbours, so they are as close as codec noise allows
    padding_step = np.abs(stored[:33, 47].astype(int) - stored[:33, 46].astype(int)).mean()
    assert padding_step < 4


def test_even_size_stores_no_size_key_even_when_the_caller_gives_one(tmp_path):
    frames = smooth_frames(3, 32, 48)
    path = write_video(
        tmp_path / "even.mp4", Video(frames, 24), metadata={"KINETOSCOPE_SIZE": "3x3"}
    )
    assert "kinetoscope_size" not in read_metadata(path)
    assert read_video(path).frames.shape == (3, 32, 48, 3)


# ---------------------------------------------------------------------------------------------
# Metadata


@pytest.mark.parametrize("extension", [".mp4", ".webm"])
def test_metadata_round_trip(tmp_path, extension):
    metadata = {
        "title": "A ball rolls",
        "comment": "seed=7",
        "description": "Über-smooth ✓ motion",
        "prompt": "a red ball rolls down a ramp",
    }
    path = write_video(
        tmp_path / f"tagged{extension}", Video(smooth_frames(3), 24), metadata=metadata
    )
    stored = read_metadata(path)
    assert {key: stored.get(key) for key in metadata} == metadata


def test_gif_stores_no_metadata(tmp_path):
    path = write_video(tmp_path / "clip.gif", Video(smooth_frames(3), 24), metadata={"title": "x"})
    assert "title" not in read_metadata(path)


@pytest.mark.parametrize("metadata", [{"title": 3}, {3: "x"}, {"": "x"}, {"title": "a\0b"}])
def test_bad_metadata_is_rejected(tmp_path, metadata):
    path = tmp_path / "clip.mp4"
    with raises_video_error(path, "metadata"):
        write_video(path, Video(smooth_frames(2), 24), metadata=metadata)
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# Writing: arguments, destination, atomicity


@pytest.mark.parametrize("name", ["clip.avi", "clip.MOV", "clip"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    with raises_video_error(path, "supported extensions: .mp4, .webm, .gif"):
        write_video(path, Video(smooth_frames(2), 24))
    assert list(tmp_path.iterdir()) == []


def test_extension_is_case_insensitive(tmp_path):
    path = write_sample(tmp_path / "CLIP.MP4", num_frames=3)
    assert read_video(path).num_frames == 3


def test_missing_directory_is_an_error_not_created(tmp_path):
    path = tmp_path / "missing" / "clip.mp4"
    with raises_video_error(path, "does not exist"):
        write_video(path, Video(smooth_frames(2), 24))
    assert not path.parent.exists()


def test_directory_as_target_is_an_error(tmp_path):
    path = tmp_path / "folder.mp4"
    path.mkdir()
    with raises_video_error(path, "is a directory"):
        write_video(path, Video(smooth_frames(2), 24))


@pytest.mark.parametrize(("extension", "crf"), [(".mp4", 52), (".webm", 64), (".mp4", -1)])
def test_crf_out_of_range(tmp_path, extension, crf):
    path = tmp_path / f"clip{extension}"
    with raises_video_error(path, "crf"):
        write_video(path, Video(smooth_frames(2), 24), crf=crf)


def test_crf_changes_quality(tmp_path):
    frames = smooth_frames(9, 64, 96)
    fine = read_video(write_video(tmp_path / "fine.mp4", Video(frames, 24), crf=10))
    coarse = read_video(write_video(tmp_path / "coarse.mp4", Video(frames, 24), crf=45))
    assert mean_abs_error(fine.frames, frames) < mean_abs_error(coarse.frames, frames)


@pytest.mark.parametrize(("fps", "fragment"), [(1e5, "above 1000"), (1e-9, "too low")])
def test_fps_a_container_cannot_store(tmp_path, fps, fragment):
    path = tmp_path / "clip.mp4"
    with raises_video_error(path, fragment):
        write_video(path, Video(smooth_frames(2), fps))


def test_non_video_argument_is_rejected(tmp_path):
    path = tmp_path / "clip.mp4"
    with raises_video_error(path, "expected a Video"):
        write_video(path, smooth_frames(2))


def test_new_file_has_ordinary_permissions(tmp_path):
    reference = tmp_path / "reference.txt"
    reference.write_text("x")
    path = write_sample(tmp_path / "clip.mp4", num_frames=2)
    assert path.stat().st_mode == reference.stat().st_mode


def test_overwrite_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = write_sample(tmp_path / "clip.mp4", num_frames=3)
    write_sample(path, num_frames=7)
    assert read_video(path).num_frames == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_invalid_frames_leave_an_existing_file_untouched(tmp_path):
    path = write_sample(tmp_path / "clip.mp4", num_frames=3)
    before = path.read_bytes()
    video = Video(smooth_frames(3), 24)
    object.__setattr__(video, "frames", video.frames.float())  # bypass the frozen dataclass
    with raises_video_error(path, "uint8"):
        write_video(path, video)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_failed_encode_leaves_an_existing_file_untouched(tmp_path):
    """libx264 refuses a 17000-pixel-wide frame only once encoding has begun."""
    path = write_sample(tmp_path / "clip.mp4", num_frames=3)
    before = path.read_bytes()
    too_wide = Video(torch.zeros(1, 2, 17000, 3, dtype=torch.uint8), 24)
    with raises_video_error(path, "encoding 17000x2 frames with libx264 failed"):
        write_video(path, too_wide)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# ---------------------------------------------------------------------------------------------
# Reading: every way a file can be bad


def test_missing_file(tmp_path):
    path = tmp_path / "nothing.mp4"
    with raises_video_error(path, "no such file"):
        read_video(path)
    with raises_video_error(path, "no such file"):
        read_metadata(path)


def test_directory_is_not_a_video(tmp_path):
    with raises_video_error(tmp_path, "not a regular file"):
        read_video(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with raises_video_error(path, "empty (0 bytes)"):
        read_video(path)
    with raises_video_error(path, "empty (0 bytes)"):
        read_metadata(path)


@pytest.mark.parametrize(
    "content",
    [b"hello, this is plainly a text file\n" * 20, np.random.default_rng(0).bytes(5000)],
    ids=["text", "random-bytes"],
)
def test_not_a_video(tmp_path, content):
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with raises_video_error(path, "not a readable video file"):
        read_video(path)
    with raises_video_error(path, "not a readable video file"):
        read_metadata(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = write_audio_only(tmp_path / "sound.m4a")
    with raises_video_error(path, "no video stream (found audio)"):
        read_video(path)
    assert isinstance(read_metadata(path), dict)  # metadata of any media file is readable


def test_png_reads_as_a_one_frame_video(tmp_path):
    rgb = smooth_frames(1, 12, 20)[0].numpy()  # (H, W, 3)
    video = read_video(write_png(tmp_path / "still.png", rgb))
    assert video.frames.shape == (1, 12, 20, 3)
    assert torch.equal(video.frames[0], torch.from_numpy(rgb))  # PNG is lossless


def test_mp4_with_overwritten_middle_is_corrupt(tmp_path):
    path = write_sample(tmp_path / "clip.mp4", num_frames=17)
    data = bytearray(path.read_bytes())
    middle, span = len(data) // 2, len(data) // 8
    data[middle - span : middle + span] = np.random.default_rng(1).bytes(2 * span)
    path.write_bytes(bytes(data))
    # the damage either stops the decoder or leaves nothing decodable; both name the promise
    with pytest.raises(VideoError, match=re.escape(str(path))) as caught:
        read_video(path)
    assert "17 frames" in str(caught.value)


@pytest.mark.parametrize("extension", SUPPORTED_EXTENSIONS)
def test_file_cut_in_half_is_truncated(tmp_path, extension):
    path = write_sample(tmp_path / f"clip{extension}", num_frames=17)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with raises_video_error(path, "truncated"):
        read_video(path)


def test_truncated_webm_names_expected_and_decoded_counts(tmp_path):
    """Matroska records no frame count: the stream's duration gives the expected one."""
    path = write_sample(tmp_path / "clip.webm", num_frames=17)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as caught:
        read_video(path)
    message = str(caught.value)
    assert "about 17 frames" in message
    decoded = int(re.search(r"decoded only (\d+) frame", message).group(1))
    assert 0 < decoded < 16


def test_truncated_file_still_reads_up_to_max_frames(tmp_path):
    """Asking for fewer frames than survive the cut is not an error."""
    path = write_sample(tmp_path / "clip.webm", num_frames=17)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert read_video(path, max_frames=1).num_frames == 1


def test_fps_fraction_input(tmp_path):
    video = Video(smooth_frames(3, 16, 16), Fraction(24000, 1001))
    assert read_video(write_video(tmp_path / "ntsc.mp4", video)).fps == pytest.approx(24000 / 1001)


def test_write_accepts_str_paths(tmp_path):
    path = write_video(os.fspath(tmp_path / "clip.webm"), Video(smooth_frames(2), 24))
    assert isinstance(path, Path)
    assert read_video(os.fspath(path)).num_frames == 2
