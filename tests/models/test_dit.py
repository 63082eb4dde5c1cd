"""The diffusion transformer on the tiny preset: shapes, zero-init, frame and text
conditioning, the null prompt, rotary positions, checkpoints, input checks, gradients, presets
and the FLOP count."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.dit import (
    DIT_PRESETS,
    DiffusionTransformer,
    DiTConfig,
    DiTInputError,
    RotaryEmbedding3D,
    apply_rotary,
    frame_conditioning,
    patch_positions,
)
from kinetoscope.models.text import TEXT_DIM, TextEmbedding

TINY = DIT_PRESETS["tiny"]
CHANNELS = TINY.latent_channels

# exact parameter counts of the presets, as in the table of dit.py's docstring
PRESET_PARAMETERS = {
    "tiny": 87_008,
    "S": 16_303_936,
    "B": 120_881_344,
    "L": 415_976_384,
    "XL": 1_391_716_288,
}


def scrambled_model(config: DiTConfig = TINY, seed: int = 0) -> DiffusionTransformer:
    """A model as if trained a little: every parameter moved by small noise, so the zero-
    initialised paths (modulation, gates, cross-attention output, final layer) all act."""
    torch.manual_seed(seed)
    model = DiffusionTransformer(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


def make_latents(batch=2, frames=3, height=8, width=8, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, CHANNELS, frames, height, width, generator=generator)


def make_text(lengths=(5, 3), seed=2) -> TextEmbedding:
    """Random prompts with the given numbers of real tokens, zero at padding (as the text
    encoder returns them)."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]  # (B, L)
    tokens = torch.randn(len(lengths), length, TEXT_DIM, generator=generator) * mask[..., None]
    pooled = F.normalize(torch.randn(len(lengths), TEXT_DIM, generator=generator), dim=-1)
    return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled)


def timesteps(batch=2):
    return torch.linspace(0.2, 0.7, batch)


@pytest.fixture(scope="module")
def model() -> DiffusionTransformer:
    return scrambled_model()


# ---- shapes and initialisation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "height", "width"), [(1, 4, 4), (3, 8, 8), (2, 4, 10), (5, 6, 2), (4, 12, 6)]
)
def test_output_shape_for_any_duration_size_and_aspect(model, frames, height, width):
    latents = make_latents(frames=frames, height=height, width=width)
    with torch.no_grad():
        velocity = model(latents, timesteps(), make_text())
    assert velocity.shape == latents.shape
    assert velocity.dtype == latents.dtype
    assert torch.isfinite(velocity).all()


def test_untrained_model_predicts_exactly_zero():
    torch.manual_seed(0)
    fresh = DiffusionTransformer(TINY)
    latents = make_latents()
    with torch.no_grad():
        assert torch.equal(fresh(latents, timesteps(), make_text()), torch.zeros_like(latents))
        assert scrambled_model()(latents, timesteps(), make_text()).abs().max() > 1e-2


def test_every_block_starts_as_the_identity():
    torch.manual_seed(0)
    fresh = DiffusionTransformer(TINY)
    x = torch.randn(2, 12, TINY.width)
    modulation = torch.randn(2, 6, TINY.width)  # whatever the shared layer gives later
    rope = fresh.rope(patch_positions((3, 2, 2), "cpu"))
    context, context_mask = torch.randn(2, 4, TINY.width), torch.ones(2, 4, dtype=torch.bool)
    with torch.no_grad():
        for block in fresh.blocks:
            # gates are modulation + offset: zero when the shared output is zero, as at init
            assert torch.equal(block(x, 0 * modulation, rope, context, context_mask), x)


def test_batch_rows_are_independent(model):
    latents, text, t = make_latents(), make_text(), timesteps()
    with torch.no_grad():
        both = model(latents, t, text)
        for row in range(2):
            alone = TextEmbedding(
                text.tokens[row : row + 1], text.mask[row : row + 1], text.pooled[row : row + 1]
            )
            single = model(latents[row : row + 1], t[row : row + 1], alone)
            torch.testing.assert_close(both[row : row + 1], single, atol=1e-5, rtol=0)


def test_timestep_changes_the_output(model):
    latents, text = make_latents(), make_text()
    with torch.no_grad():
        early = model(latents, torch.tensor([0.1, 0.1]), text)
        late = model(latents, torch.tensor([0.9, 0.9]), text)
    assert (early - late).abs().max() > 1e-3


# ---- frame conditioning ----------------------------------------------------------------------


def test_frame_conditioning_layout():
    latents = make_latents(frames=3)
    known = make_latents(frames=3, seed=5)
    mask = torch.tensor([[True, False, False], [False, False, True]])
    model_input = frame_conditioning(latents, known, mask)
    assert model_input.shape == (2, 2 * CHANNELS + 1, 3, 8, 8)
    assert torch.equal(model_input[:, :CHANNELS], latents)
    assert torch.equal(model_input[0, CHANNELS:-1, 0], known[0, :, 0])
    assert torch.equal(model_input[1, CHANNELS:-1, 2], known[1, :, 2])
    assert (model_input[0, CHANNELS:-1, 1:] == 0).all()
    assert (model_input[1, CHANNELS:-1, :2] == 0).all()
    expected_mask = mask[:, None, :, None, None].float().expand(2, 1, 3, 8, 8)
    assert torch.equal(model_input[:, -1:], expected_mask)
    empty = frame_conditioning(latents, None, None)
    assert torch.equal(empty[:, :CHANNELS], latents) and (empty[:, CHANNELS:] == 0).all()


def test_known_frames_change_the_output(model):
    latents, text, t = make_latents(), make_text(), timesteps()
    known = make_latents(seed=7)
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    first = torch.tensor([[True, False, False]] * 2)
    with torch.no_grad():
        unconditioned = model(latents, t, text)
        # no frame marked known: the known latents are ignored, exactly
        assert torch.equal(model(latents, t, text, known, nothing), unconditioned)
        with_first = model(latents, t, text, known, first)
        assert (with_first - unconditioned).abs().max() > 1e-3
        # only the known frames' latents are read
        other = known.clone()
        other[:, :, 1:] = 123.0
        assert torch.equal(model(latents, t, text, other, first), with_first)


# ---- text and the null prompt ----------------------------------------------------------------


def test_text_changes_the_output(model):
    latents, t = make_latents(), timesteps()
    with torch.no_grad():
        one = model(latents, t, make_text(seed=2))
        other = model(latents, t, make_text(seed=3))
    assert (one - other).abs().max() > 1e-3


def test_text_padding_does_not_change_the_output(model):
    latents, t = make_latents(), timesteps()
    text = make_text(lengths=(5, 3))
    # four more padding tokens holding garbage, not zeros: the mask alone must hide them
    garbage = torch.randn(2, 4, TEXT_DIM, generator=torch.Generator().manual_seed(4)) * 5
    padded = TextEmbedding(
        tokens=torch.cat([text.tokens, garbage], dim=1),
        mask=torch.cat([text.mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1),
        pooled=text.pooled,
    )
    with torch.no_grad():
        torch.testing.assert_close(
            model(latents, t, padded), model(latents, t, text), atol=1e-5, rtol=0
        )


def test_null_text_shapes(model):
    null = model.null_text(3)
    tokens = TINY.null_text_tokens
    assert null.tokens.shape == (3, tokens, TEXT_DIM) and null.pooled.shape == (3, TEXT_DIM)
    assert null.mask.shape == (3, tokens) and null.mask.dtype == torch.bool and null.mask.all()
    assert torch.equal(null.tokens[2], model.null_tokens[0])
    assert model.null_text(1, dtype=torch.bfloat16).tokens.dtype == torch.bfloat16


@pytest.mark.parametrize("lengths", [(5, 3), (2, 1)])  # longer and shorter than the null prompt
def test_drop_text_equals_the_null_prompt(model, lengths):
    latents, t, text = make_latents(), timesteps(), make_text(lengths=lengths)
    with torch.no_grad():
        conditional = model(latents, t, text)
        unconditional = model(latents, t, model.null_text(2))
        dropped = model(latents, t, text, drop_text=torch.tensor([True, True]))
        torch.testing.assert_close(dropped, unconditional, atol=1e-6, rtol=0)
        mixed = model(latents, t, text, drop_text=torch.tensor([True, False]))
        torch.testing.assert_close(mixed[0], unconditional[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(mixed[1], conditional[1], atol=1e-6, rtol=0)
        kept = model(latents, t, text, drop_text=torch.tensor([False, False]))
        torch.testing.assert_close(kept, conditional, atol=1e-6, rtol=0)
    assert (conditional - unconditional).abs().max() > 1e-3


# ---- rotary positions ------------------------------------------------------------------------


def test_rotary_split_covers_the_head_dimension():
    for config in DIT_PRESETS.values():
        dims = config.rope_dims
        assert sum(dims) == config.head_dim and all(d > 0 and d % 2 == 0 for d in dims)
    assert DIT_PRESETS["S"].rope_dims == (24, 20, 20)


def test_patch_positions_follow_the_token_order():
    """Token i of PatchEmbed is the patch at patch_positions[i]: feed coordinates in as
    channels and read them back from each patch's first voxel."""
    torch.manual_seed(0)
    embed = DiffusionTransformer(TINY).patch_embed
    frames, height, width = 3, 6, 10
    t, h, w = torch.meshgrid(
        torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij"
    )
    volume = torch.zeros(1, TINY.in_channels, frames, height, width)
    volume[0, 0], volume[0, 1], volume[0, 2] = t.float(), h.float(), w.float()
    voxels = TINY.patch_volume  # inputs are (channel, pt, ph, pw) per patch
    with torch.no_grad():
        embed.proj.weight.zero_()
        embed.proj.bias.zero_()
        for axis in range(3):
            embed.proj.weight[axis, axis * voxels] = 1.0  # channel `axis` at the first voxel
        tokens = embed(volume)[0, :, :3]  # (L, 3)
    positions = patch_positions((frames, height // 2, width // 2), "cpu")
    expected = positions * torch.tensor([1, 2, 2])  # first voxel of patch (t, h, w)
    assert torch.equal(tokens, expected.float())


def test_rotary_scores_depend_on_relative_position_only():
    rope = RotaryEmbedding3D((8, 4, 4), theta=10000.0)
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 6, 16, generator=generator)
    k = torch.randn(1, 1, 6, 16, generator=generator)
    positions = torch.randint(0, 20, (6, 3), generator=generator)

    def scores(pos):
        cis = rope(pos)
        return apply_rotary(q, cis) @ apply_rotary(k, cis).transpose(-1, -2)  # (1, 1, 6, 6)

    base = scores(positions)
    shifted = scores(positions + torch.tensor([7, -3, 11]))
    torch.testing.assert_close(shifted, base, atol=1e-4, rtol=0)
    # but moving one token relative to the others changes its scores
    moved = positions.clone()
    moved[0] += torch.tensor([0, 1, 0])
    assert (scores(moved)[..., 0, 1:] - base[..., 0, 1:]).abs().max() > 1e-3
    # each axis counts: a shift along w alone changes scores too
    moved = positions.clone()
    moved[0] += torch.tensor([0, 0, 1])
    assert (scores(moved)[..., 0, 1:] - base[..., 0, 1:]).abs().max() > 1e-3


def test_rotary_is_a_rotation():
    rope = RotaryEmbedding3D((8, 4, 4), theta=10000.0)
    x = torch.randn(2, 3, 5, 16)
    positions = torch.randint(0, 50, (5, 3))
    rotated = apply_rotary(x, rope(positions))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(apply_rotary(x, rope(torch.zeros(5, 3, dtype=torch.long))), x)


def test_self_attention_output_is_shift_invariant(model):
    attention = model.blocks[0].self_attn
    x = torch.randn(2, 24, TINY.width)
    positions = patch_positions((2, 3, 4), "cpu")
    with torch.no_grad():
        base = attention(x, model.rope(positions))
        shifted = attention(x, model.rope(positions + torch.tensor([5, 9, 2])))
        scrambled = attention(x, model.rope(positions.flip(0)))
    torch.testing.assert_close(shifted, base, atol=1e-5, rtol=0)
    assert (scrambled - base).abs().max() > 1e-3  # positions do matter


# ---- checkpoints -----------------------------------------------------------------------------


def test_save_and_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "transformer")
    loaded = DiffusionTransformer.from_pretrained(tmp_path / "transformer")
    assert loaded.config == model.config and not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    latents, t, text = make_latents(), timesteps(), make_text()
    with torch.no_grad():
        assert torch.equal(loaded(latents, t, text), model(latents, t, text))


def test_sharded_checkpoint_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "sharded", max_shard_bytes=100_000)
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    loaded = DiffusionTransformer.from_pretrained(tmp_path / "sharded")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_bfloat16_checkpoint_loads_close(model, tmp_path):
    model.save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    loaded = DiffusionTransformer.from_pretrained(tmp_path / "bf16")
    assert loaded.null_tokens.dtype == torch.float32
    torch.testing.assert_close(loaded.null_tokens, model.null_tokens, atol=1e-2, rtol=1e-2)


# ---- input checks ----------------------------------------------------------------------------


def _text_with(**fields):
    text = make_text()
    values = {"tokens": text.tokens, "mask": text.mask, "pooled": text.pooled, **fields}
    return TextEmbedding(**values)


def _nan_latents():
    latents = make_latents()
    latents[0, 0, 0, 0, 0] = float("nan")
    return latents


BAD_INPUTS = {
    "not a tensor": ({"latents": [1.0]}, "latents must be a torch.Tensor"),
    "rank": ({"latents": make_latents()[:, :, 0]}, r"latents must be 5D"),
    "channels": ({"latents": make_latents()[:, :15]}, r"5D \(B, 16, t, h, w\)"),
    "odd height": ({"latents": make_latents(height=7)}, "height .* divisible by the patch"),
    "odd width": ({"latents": make_latents(width=5)}, "width .* divisible by the patch"),
    "empty": ({"latents": make_latents(frames=0)}, "empty"),
    "integer latents": ({"latents": make_latents().long()}, "float tensor"),
    "float64 latents": ({"latents": make_latents().double()}, "float64 .*float32"),
    "NaN latents": ({"latents": _nan_latents()}, "latents hold 1 NaN"),
    "timesteps shape": ({"timesteps": torch.rand(3)}, r"timesteps must have shape \(B,\)"),
    "integer timesteps": ({"timesteps": torch.tensor([0, 1])}, "timesteps must be floats"),
    "timesteps range": ({"timesteps": torch.tensor([0.5, 1.5])}, r"\[0, 1\]"),
    "NaN timesteps": ({"timesteps": torch.tensor([0.5, float("nan")])}, "timesteps hold"),
    "text type": ({"text": "a red ball"}, "text must be a TextEmbedding"),
    "text batch": ({"text": make_text(lengths=(2, 2, 2))}, "3 row.* latents 2"),
    "text width": ({"text": _text_with(tokens=torch.randn(2, 5, 300))}, "text.tokens must be"),
    "float mask": ({"text": _text_with(mask=torch.ones(2, 5))}, "text.mask must be a bool"),
    "mask shape": (
        {"text": _text_with(mask=torch.ones(2, 4, dtype=torch.bool))},
        r"text.mask must have shape \(B, L\)",
    ),
    "empty prompt": (
        {"text": _text_with(mask=torch.tensor([[True] * 5, [False] * 5]))},
        r"no real token .* row\(s\) \[1\]",
    ),
    "pooled shape": ({"text": _text_with(pooled=torch.randn(2, 5))}, "text.pooled must have"),
    "NaN text": (
        {"text": _text_with(tokens=torch.full((2, 5, TEXT_DIM), float("nan")))},
        "text.tokens hold",
    ),
    "known without mask": ({"known_latents": make_latents()}, "both or neither"),
    "mask without known": ({"known_mask": torch.ones(2, 3, dtype=torch.bool)}, "both or neither"),
    "known shape": (
        {"known_latents": make_latents(frames=2), "known_mask": torch.ones(2, 3, dtype=bool)},
        "known_latents must have the latents' shape",
    ),
    "known mask shape": (
        {"known_latents": make_latents(), "known_mask": torch.ones(2, 8, dtype=torch.bool)},
        r"known_mask must have shape \(B, t\)",
    ),
    "known mask dtype": (
        {"known_latents": make_latents(), "known_mask": torch.ones(2, 3)},
        "known_mask must be a bool",
    ),
    "drop_text shape": (
        {"drop_text": torch.ones(3, dtype=torch.bool)},
        r"drop_text must have shape \(B,\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_named(model, case):
    changes, message = BAD_INPUTS[case]
    inputs = {"latents": make_latents(), "timesteps": timesteps(), "text": make_text()}
    inputs.update(changes)
    with pytest.raises(DiTInputError, match=message) as raised:
        model(**inputs)
    assert isinstance(raised.value, KinetoscopeError) and isinstance(raised.value, ValueError)


def test_other_dtypes_pass_under_autocast(model):
    # autocast chooses the compute dtype, so a bf16 input to float32 weights is fine there
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        velocity = model(make_latents().bfloat16(), timesteps(), make_text())
    assert velocity.dtype == torch.bfloat16 and torch.isfinite(velocity).all()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"width": 30, "heads": 4}, "divisible by heads"),
        ({"width": 36, "heads": 4}, "even"),  # head dim 9
        ({"width": 8, "heads": 2}, "at least 6"),  # head dim 4
        ({"depth": 0}, "depth"),
        ({"patch_size": (1, 2)}, "patch_size"),
        ({"patch_size": (1, 0, 2)}, "patch_size"),
        ({"mlp_ratio": -1.0}, "mlp_ratio"),
        ({"rope_theta": 0.5}, "rope_theta"),
        ({"qk_norm_eps": 0.0}, "qk_norm_eps"),
        ({"timestep_frequencies": 255}, "even"),
        ({"null_text_tokens": 0}, "null_text_tokens"),
    ],
)
def test_config_checks(fields, named):
    with pytest.raises(ValueError, match=named):
        replace(TINY, **fields)


# ---- gradients -------------------------------------------------------------------------------


def _loss(model):
    latents, text = make_latents(), make_text()
    known = make_latents(seed=9)
    known_mask = torch.tensor([[True, False, False], [False, False, False]])
    drop = torch.tensor([True, False])  # one row through the null prompt
    velocity = model(latents, timesteps(), text, known, known_mask, drop_text=drop)
    return F.mse_loss(velocity, make_latents(seed=11))


def _without_gradient(model):
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is None or not parameter.grad.abs().sum() > 0
    ]


def test_gradients_reach_every_parameter():
    model = scrambled_model().train()
    _loss(model).backward()
    assert _without_gradient(model) == []


def test_gradients_reach_every_parameter_after_training_from_init():
    """From the zero init, gradients first reach only the output layer; two optimizer steps
    open every path (adaLN-zero's staged start)."""
    torch.manual_seed(0)
    model = DiffusionTransformer(TINY).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _loss(model).backward()
    assert "blocks.0.self_attn.qkv.weight" in _without_gradient(model)
    for _ in range(2):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _loss(model).backward()
    assert _without_gradient(model) == []


def test_gradient_checkpointing_gives_the_same_gradients():
    model = scrambled_model().train()
    _loss(model).backward()
    plain = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.enable_gradient_checkpointing()
    _loss(model).backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, plain[name], atol=1e-6, rtol=1e-5)


# ---- presets and FLOPs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DIT_PRESETS))
def test_presets_have_the_reported_sizes(name):
    with torch.device("meta"):  # no memory, no init work: the 1.4 B model builds in no time
        model = DiffusionTransformer(DIT_PRESETS[name])
    assert model.num_parameters() == PRESET_PARAMETERS[name]


def test_preset_sizes():
    millions = {name: count / 1e6 for name, count in PRESET_PARAMETERS.items()}
    assert 10 <= millions["S"] <= 25
    assert 100 <= millions["B"] <= 160
    assert 380 <= millions["L"] <= 500
    assert millions["XL"] >= 1000
    assert DiTConfig() == DIT_PRESETS["S"]  # the default config is the shipped model's


def test_forward_flops_match_a_flop_counter():
    """forward_flops counts exactly the matrix products torch's FLOP counter sees, attention
    included (the math kernel, whose products the counter can see)."""
    torch.manual_seed(0)
    model = DiffusionTransformer(TINY)
    latents, text = make_latents(batch=1, frames=3, height=8, width=12), make_text(lengths=(5,))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as count:
        model(latents, timesteps(1), text)
    assert TINY.forward_flops(tokens=3 * 4 * 6, text_tokens=5) == count.get_total_flops()
