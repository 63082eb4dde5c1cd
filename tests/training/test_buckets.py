"""Clip buckets: the native shapes, the size and duration rules, and the per-step sampler."""

from collections import Counter

import pytest

from kinetoscope.errors import KinetoscopeError
from kinetoscope.training.buckets import (
    Bucket,
    BucketSampler,
    batch_size_for,
    bucket,
    buckets_for,
    clip_frames,
    frame_size,
)


def test_the_default_buckets_are_every_aspect_and_duration_at_128_pixels():
    buckets = buckets_for()
    assert len(buckets) == 12
    assert {b.frames for b in buckets} == {17, 33, 49, 65}
    assert {(b.aspect, b.height, b.width) for b in buckets} == {
        ("1:1", 128, 128),
        ("16:9", 128, 224),
        ("9:16", 224, 128),
    }
    for b in buckets:
        assert b.height % 16 == 0 and b.width % 16 == 0 and (b.frames - 1) % 4 == 0


def test_latent_shape_and_tokens_follow_the_compressions():
    four_seconds = bucket(128, "1:1", 4.0, 16.0)
    assert four_seconds == Bucket("1:1", 4.0, 65, 128, 128)
    assert four_seconds.latent_shape == (16, 17, 16, 16)
    assert four_seconds.tokens == 17 * 8 * 8 == 1088
    assert bucket(128, "16:9", 4.0, 16.0).tokens == 17 * 8 * 14
    assert bucket(128, "16:9", 2.0, 16.0).name == "16x9-2s-128x224"


@pytest.mark.parametrize(
    ("short", "aspect", "size"),
    [
        (64, "16:9", (64, 112)),
        (64, "9:16", (112, 64)),
        (256, "16:9", (256, 448)),
        (16, "1:1", (16, 16)),
    ],
)
def test_frame_size_rounds_the_long_side_to_16_pixels(short, aspect, size):
    assert frame_size(short, aspect) == size


def test_unsupported_sizes_aspects_and_durations_say_what_is_supported():
    with pytest.raises(KinetoscopeError, match=r"'4:3'.*'1:1', '16:9', '9:16'"):
        frame_size(128, "4:3")
    with pytest.raises(KinetoscopeError, match="multiple of 16"):
        frame_size(100, "1:1")
    with pytest.raises(KinetoscopeError, match=r"18 frames.*try 1 s \(17 frames\) or 1.25 s"):
        clip_frames(1.1, 16.0)
    assert clip_frames(2.5, 16.0) == 41


def test_the_sampler_is_a_pure_function_of_seed_and_step():
    buckets = buckets_for(64)
    first = [BucketSampler(buckets, seed=1)(step) for step in range(50)]
    again = [BucketSampler(buckets, seed=1)(step) for step in range(50)]
    other = [BucketSampler(buckets, seed=2)(step) for step in range(50)]
    assert first == again and first != other
    assert BucketSampler(buckets, seed=1)(37) == first[37]  # no hidden position


def test_uniform_and_token_weightings_draw_in_proportion():
    buckets = buckets_for(128, aspects=("1:1",), durations=(1.0, 4.0))
    uniform = Counter(BucketSampler(buckets)(step).seconds for step in range(3000))
    assert uniform[1.0] / 3000 == pytest.approx(0.5, abs=0.04)
    tokens = Counter(
        BucketSampler(buckets, weighting="tokens")(step).seconds for step in range(3000)
    )
    assert tokens[4.0] / tokens[1.0] == pytest.approx(1088 / 320, rel=0.15)


def test_a_token_cap_shrinks_batches_of_long_clips_but_keeps_one():
    long_clip = bucket(128, "16:9", 4.0, 16.0)  # 1904 tokens
    assert batch_size_for(long_clip, 8, None) == 8
    assert batch_size_for(long_clip, 8, 4000) == 2
    assert batch_size_for(long_clip, 8, 100) == 1


def test_bad_sampler_settings_are_named():
    buckets = buckets_for(64)
    with pytest.raises(KinetoscopeError, match="unknown weighting"):
        BucketSampler(buckets, weighting="area")
    with pytest.raises(KinetoscopeError, match="12 numbers"):
        BucketSampler(buckets, weights=[1.0, 2.0])
