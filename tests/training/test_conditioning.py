"""Frame-conditioning patterns: each mask is what its name says, draws follow the weights,
a frame is always left to generate, and draws are reproducible."""

import dataclasses
from collections import Counter

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.training.conditioning import (
    PATTERNS,
    ConditioningConfig,
    pattern_mask,
    sample_known_mask,
    with_known_frames,
)

T, F = True, False


def _only(name):
    """A config that draws ``name`` whenever it applies (and "none" otherwise)."""
    weights = {pattern: 0.0 for pattern in PATTERNS}
    weights[name] = 1.0
    weights["none"] = weights["none"] or 1e-12
    return ConditioningConfig(**weights)


@pytest.mark.parametrize(
    ("pattern", "count", "expected"),
    [
        ("none", 1, [F, F, F, F, F]),
        ("first_frame", 1, [T, F, F, F, F]),
        ("first_frames", 3, [T, T, T, F, F]),
        ("last_frame", 1, [F, F, F, F, T]),
        ("last_frames", 2, [F, F, F, T, T]),
        ("first_and_last", 1, [T, F, F, F, T]),
    ],
)
def test_each_fixed_pattern_knows_the_frames_its_name_says(pattern, count, expected):
    assert pattern_mask(pattern, 5, count).tolist() == expected


def test_both_ends_knows_a_run_at_each_end():
    assert pattern_mask("both_ends", 6, 2, 1).tolist() == [T, T, F, F, F, T]
    assert pattern_mask("both_ends", 6, 1, 3).tolist() == [T, F, F, T, T, T]
    with pytest.raises(KinetoscopeError, match="at most 5 in all of 6, got 3 \\+ 3"):
        pattern_mask("both_ends", 6, 3, 3)
    with pytest.raises(KinetoscopeError, match="at least one known frame at each end"):
        pattern_mask("both_ends", 6, 2, 0)


def test_drawn_both_ends_masks_are_two_runs_around_a_gap():
    masks, names = sample_known_mask(_only("both_ends"), 300, 6, torch.Generator().manual_seed(5))
    assert set(names) == {"both_ends"}
    shapes = set()
    for mask in masks.tolist():
        start = mask.index(False)
        end = mask[::-1].index(False)
        assert start >= 1 and end >= 1  # a known run at each end
        assert not any(mask[start : len(mask) - end])  # and only unknown frames between
        shapes.add((start, end))
    # every split with a frame left to generate is drawn: k + j <= 5
    assert shapes == {(k, j) for k in range(1, 5) for j in range(1, 6 - k)}


def test_drawn_patterns_have_their_shape_and_never_know_every_frame():
    generator = torch.Generator().manual_seed(0)
    for frames in (2, 3, 6):
        for name in ("first_frames", "last_frames", "random_frames"):
            masks, names = sample_known_mask(_only(name), 200, frames, generator)
            assert set(names) == {name}
            counts = masks.sum(dim=1)
            assert counts.min() >= 1 and counts.max() <= frames - 1  # k in 1 .. t-1
            assert counts.max() == frames - 1  # and the whole range is drawn
            for mask, k in zip(masks, counts.tolist(), strict=True):
                if name == "first_frames":
                    assert mask[:k].all() and not mask[k:].any()
                elif name == "last_frames":
                    assert mask[frames - k :].all() and not mask[: frames - k].any()


def test_patterns_follow_their_weights_over_many_draws():
    config = ConditioningConfig()
    _, names = sample_known_mask(config, 4000, 5, torch.Generator().manual_seed(1))
    counts = Counter(names)
    total = sum(config.weights())
    for name, weight in zip(PATTERNS, config.weights(), strict=True):
        assert counts[name] / 4000 == pytest.approx(weight / total, abs=0.03), name


def test_patterns_that_cannot_leave_a_frame_are_never_drawn():
    generator = torch.Generator().manual_seed(2)
    masks, names = sample_known_mask(ConditioningConfig(), 300, 1, generator)  # an image
    assert set(names) == {"none"} and not masks.any()
    _, names = sample_known_mask(ConditioningConfig(), 300, 2, generator)
    assert not {"first_and_last", "both_ends"} & set(names)
    assert len(set(names)) == len(PATTERNS) - 2


def test_a_config_saved_before_a_pattern_existed_reads_it_as_zero():
    saved = ConditioningConfig().to_dict()
    del saved["both_ends"]
    config = ConditioningConfig.from_dict(saved)
    assert config.both_ends == 0.0
    assert config.first_and_last == ConditioningConfig().first_and_last
    assert ConditioningConfig.from_dict(ConditioningConfig().to_dict()) == ConditioningConfig()


def test_draws_are_reproducible_from_the_generator():
    def draw(seed):
        return sample_known_mask(ConditioningConfig(), 64, 7, torch.Generator().manual_seed(seed))

    first, again, other = draw(3), draw(3), draw(4)
    assert torch.equal(first[0], again[0]) and first[1] == again[1]
    assert not torch.equal(first[0], other[0])


def test_known_frames_replace_the_noisy_input_exactly_where_known():
    x = torch.randn(2, 16, 4, 2, 2)
    known = torch.randn(2, 16, 4, 2, 2)
    mask = torch.tensor([[T, F, F, T], [F, F, F, F]])
    result = with_known_frames(x, known, mask)
    assert torch.equal(result[0, :, [0, 3]], known[0, :, [0, 3]])
    assert torch.equal(result[0, :, [1, 2]], x[0, :, [1, 2]])
    assert torch.equal(result[1], x[1])


def test_bad_weights_and_patterns_are_named():
    with pytest.raises(KinetoscopeError, match="first_frame must be >= 0"):
        ConditioningConfig(first_frame=-1).validate()
    with pytest.raises(KinetoscopeError, match="none must be > 0"):
        dataclasses.replace(ConditioningConfig(), none=0).validate()
    with pytest.raises(KinetoscopeError, match="unknown frame pattern"):
        pattern_mask("middle", 5)
    with pytest.raises(KinetoscopeError, match="at least 3 latent frames"):
        pattern_mask("first_and_last", 2)
    with pytest.raises(KinetoscopeError, match="1 to 4 known frames"):
        pattern_mask("first_frames", 5, count=5)
