"""The attention dispatch point against a plain softmax(q k^T / sqrt(d)) v, with and without
a key-padding mask, and its shape checks."""

from __future__ import annotations

import math

import pytest
import torch

from kinetoscope.models.attention import attention, key_padding_mask


def reference(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v written out, padding keys at -inf."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, heads, Lq, Lk)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return scores.softmax(dim=-1) @ v  # (B, heads, Lq, d)


def qkv(batch=2, heads=3, queries=7, keys=5, dim=8, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, queries, dim), (batch, heads, keys, dim), (batch, heads, keys, dim)]
    return [torch.randn(shape, generator=generator, dtype=dtype) for shape in shapes]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_without_mask(dtype):
    q, k, v = qkv(dtype=dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(attention(q, k, v), reference(q, k, v), atol=tolerance, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_with_mask(dtype):
    q, k, v = qkv(dtype=dtype)
    mask = torch.tensor([[True, True, False, True, False], [True, False, False, False, False]])
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    expected = reference(q, k, v, mask)
    torch.testing.assert_close(attention(q, k, v, mask), expected, atol=tolerance, rtol=0)
    # and the mask matters: without it the answer is different
    assert (attention(q, k, v) - expected).abs().max() > 1e-2


def test_masked_keys_have_no_influence():
    q, k, v = qkv()
    mask = torch.tensor([[True, True, True, False, False], [True, False, True, False, True]])
    k2, v2 = k.clone(), v.clone()
    k2[~mask[:, None, :, None].expand_as(k)] = 100.0  # anything at the padding keys
    v2[~mask[:, None, :, None].expand_as(v)] = -7.0
    torch.testing.assert_close(attention(q, k2, v2, mask), attention(q, k, v, mask))


def test_all_true_mask_equals_no_mask():
    q, k, v = qkv()
    mask = torch.ones(2, 5, dtype=torch.bool)
    torch.testing.assert_close(attention(q, k, v, mask), attention(q, k, v), atol=1e-6, rtol=0)


def test_bfloat16_is_close_to_float32():
    q, k, v = qkv()
    mask = torch.tensor([[True, True, False, True, False], [True] * 5])
    low = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), reference(q, k, v, mask), atol=3e-2, rtol=0)


def test_key_padding_mask_broadcasts_over_heads_and_queries():
    mask = torch.tensor([[True, False, True], [False, True, True]])
    assert key_padding_mask(mask).shape == (2, 1, 1, 3)
    assert torch.equal(key_padding_mask(mask)[:, 0, 0], mask)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda q, k, v, m: (q[0], k, v, m), r"\(B, heads, L, d\)"),
        (lambda q, k, v, m: (q, k, v[..., :4], m), "k, v"),
        (lambda q, k, v, m: (q[..., :4], k, v, m), "q"),
        (lambda q, k, v, m: (q, k, v, m.float()), "bool"),
        (lambda q, k, v, m: (q, k, v, m[:, :3]), r"\(B, Lk\)"),
    ],
)
def test_bad_shapes_are_named(change, message):
    q, k, v = qkv()
    mask = torch.ones(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        attention(*change(q, k, v, mask))
