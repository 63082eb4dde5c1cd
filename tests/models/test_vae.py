"""The causal video VAE on the tiny preset: shapes, causality, chunked and tiled coding, the
pixel-boundary padding policy, input checks, the posterior, and a short overfit."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from kinetoscope.models.layers import CausalCache, FrameAttention, ResBlock
from kinetoscope.models.vae import (
    VAE_PRESETS,
    DiagonalGaussian,
    FrameLayout,
    Tiling,
    VAEConfig,
    VAEInputError,
    VideoVAE,
    decode_video,
    encode_video,
    frames_to_tensor,
    tensor_to_frames,
)

TINY = VAE_PRESETS["tiny"]
LATENT = TINY.latent_channels
CHUNK_TOLERANCE = 1e-5  # float32: chunked coding equals whole-clip coding up to rounding


def scrambled_vae(config: VAEConfig = TINY, seed: int = 0) -> VideoVAE:
    """A VAE as if lightly trained: the weights that start at zero (the last conv of each
    residual branch, the attention output) get small random values, so every path of the
    network shows in the outputs while they stay well scaled."""
    torch.manual_seed(seed)
    vae = VideoVAE(config)
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, ResBlock):
                module.conv2.conv.weight.normal_(std=0.02)
            elif isinstance(module, FrameAttention):
                module.proj.conv.weight.normal_(std=0.02)
    return vae.eval()


def pixels(frames: int, height: int = 16, width: int = 16, batch: int = 1, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=generator) * 2 - 1


def smooth_clip(frames: int = 9, size: int = 16) -> torch.Tensor:
    """(1, 3, T, size, size) moving sinusoids in [-0.8, 0.8]."""
    t = torch.linspace(0, 1, frames)[:, None, None]
    grid = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    channels = [
        torch.sin(3 * x + 6 * t),
        torch.cos(2 * y - 3 * t),
        (x * y).expand(frames, size, size),
    ]
    return 0.8 * torch.stack(channels)[None]


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    return scrambled_vae()


# ---- configuration ---------------------------------------------------------------------------


def test_presets_build_and_grow():
    counts = {
        name: sum(p.numel() for p in VideoVAE(c).parameters()) for name, c in VAE_PRESETS.items()
    }
    assert counts["tiny"] < 30_000 < counts["small"] < counts["base"] <= 15_500_000


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"temporal_downsample": 2}, "temporal_downsample"),
        ({"spatial_downsample": 16}, "spatial_downsample"),
        ({"channel_multipliers": (1, 2, 4)}, "channel_multipliers"),
        ({"latent_channels": 0}, "latent_channels"),
        ({"scaling_factor": (1.0, 2.0)}, "scaling_factor"),
        ({"scaling_factor": 0.0}, "scaling_factor"),
        ({"shift_factor": float("nan")}, "shift_factor"),
    ],
)
def test_bad_config_names_the_field(fields, named):
    with pytest.raises(ValueError, match=named):
        VAEConfig(**fields)


# ---- shapes and causality --------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 5, 9, 13])
def test_shapes(vae, frames):
    x = pixels(frames, 16, 24, batch=2)
    with torch.no_grad():
        posterior = vae.encode(x)
        assert posterior.mean.shape == (2, LATENT, 1 + (frames - 1) // 4, 2, 3)
        assert posterior.sample().shape == posterior.mode().shape
        assert vae.decode(posterior.mode()).shape == x.shape


def test_shapes_with_changing_widths():
    vae = scrambled_vae(replace(TINY, channel_multipliers=(1, 2, 2, 3), blocks_per_level=2))
    x = pixels(5, 16, 16)
    with torch.no_grad():
        reconstruction, posterior = vae(x)
    assert posterior.mean.shape == (1, LATENT, 2, 2, 2)
    assert reconstruction.shape == x.shape


def test_an_image_is_a_one_frame_video(vae):
    clip = pixels(9)
    with torch.no_grad():
        image_latent = vae.encode(clip[:, :, :1]).mode()  # (1, C, 1, 2, 2)
        clip_latents = vae.encode(clip).mode()  # (1, C, 3, 2, 2)
        decoded = vae.decode(image_latent)
    assert image_latent.shape == (1, LATENT, 1, 2, 2)
    torch.testing.assert_close(image_latent, clip_latents[:, :, :1], rtol=0, atol=1e-6)
    assert decoded.shape == (1, 3, 1, 16, 16)


@pytest.mark.parametrize("frame", [0, 1, 4, 5, 8, 12])
def test_encoder_is_causal(vae, frame):
    x = pixels(13)
    changed = x.clone()
    changed[:, :, frame] = -changed[:, :, frame]
    with torch.no_grad():
        before, after = vae.encode(x).moments, vae.encode(changed).moments
    latent = -(-frame // 4)  # frame 0 -> latent 0; frames 4j-3 .. 4j -> latent j
    torch.testing.assert_close(before[:, :, :latent], after[:, :, :latent], rtol=0, atol=1e-6)
    assert (before[:, :, latent] - after[:, :, latent]).abs().max() > 1e-3


@pytest.mark.parametrize("latent", [0, 1, 2, 3])
def test_decoder_is_causal(vae, latent):
    z = torch.randn(1, LATENT, 4, 2, 2, generator=torch.Generator().manual_seed(2))
    changed = z.clone()
    changed[:, :, latent] += 1.0
    with torch.no_grad():
        before, after = vae.decode(z), vae.decode(changed)
    first = max(0, 4 * latent - 3)  # the first frame latent j stands for
    torch.testing.assert_close(before[:, :, :first], after[:, :, :first], rtol=0, atol=1e-6)
    assert (before[:, :, first] - after[:, :, first]).abs().max() > 1e-3


# ---- chunks and tiles ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_frames", [4, 8, 12, 16])
def test_chunked_encode_equals_whole(vae, chunk_frames):
    x = pixels(17, 16, 24, batch=2)
    with torch.no_grad():
        whole = vae.encode(x).moments
        chunked = vae.encode(x, chunk_frames=chunk_frames).moments
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max() <= CHUNK_TOLERANCE


@pytest.mark.parametrize("chunk_latents", [1, 2, 3, 5])
def test_chunked_decode_equals_whole(vae, chunk_latents):
    z = torch.randn(2, LATENT, 5, 2, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = vae.decode(z)
        chunked = vae.decode(z, chunk_latents=chunk_latents)
    assert chunked.shape == whole.shape == (2, 3, 17, 16, 24)
    assert (chunked - whole).abs().max() <= CHUNK_TOLERANCE


def test_streams_of_uneven_chunks_equal_whole(vae):
    x = pixels(21)
    with torch.no_grad():
        whole = vae.encode(x)
        chunks = [x[:, :, :1], x[:, :, 1:9], x[:, :, 9:13], x[:, :, 13:13], x[:, :, 13:21]]
        chunks = [c for c in chunks if c.shape[2]]
        streamed = torch.cat([p.moments for p in vae.encode_stream(chunks)], dim=2)
        assert (streamed - whole.moments).abs().max() <= CHUNK_TOLERANCE
        z = whole.mode()  # (1, C, 6, 2, 2)
        decoded = vae.decode(z)
        pieces = list(vae.decode_stream([z[:, :, :2], z[:, :, 2:3], z[:, :, 3:6]]))
    assert [p.shape[2] for p in pieces] == [5, 4, 12]
    assert (torch.cat(pieces, dim=2) - decoded).abs().max() <= CHUNK_TOLERANCE


def test_encode_stream_checks_each_chunk(vae):
    with pytest.raises(VAEInputError, match="multiple of 4"):
        list(vae.encode_stream([pixels(5), pixels(3)]))
    with pytest.raises(VAEInputError, match="1 \\+ 4k"):
        list(vae.encode_stream([pixels(4)]))


def test_cache_keeps_only_a_few_frames(vae):
    """What a cache holds between chunks does not grow with the chunk (bounded memory)."""
    kept = []
    for frames in (8, 32):
        cache = CausalCache()
        with torch.no_grad():
            vae.encoder(pixels(1 + frames), cache)
        kept.append(sum(t.shape[2] for t in cache._kept.values()))
    assert kept[0] == kept[1]


def test_a_tile_larger_than_the_frame_is_no_tiling(vae):
    x = pixels(5, 16, 24)
    with torch.no_grad():
        z = vae.encode(x).mode()
        assert torch.equal(vae.encode(x, tile=Tiling(32, 8)).mode(), z)
        assert torch.equal(vae.decode(z, tile=Tiling(24, 8)), vae.decode(z))


def test_tiling_seams_are_small():
    """Tiles see no context beyond their edges, so tiling is approximate; the blended overlap
    keeps the error small, far smaller than without overlap. Measured on the freshly
    initialised model, whose receptive field is a few latent pixels (trained models differ)."""
    torch.manual_seed(0)
    vae = VideoVAE(TINY).eval()
    x = smooth_clip(5, 128)
    with torch.no_grad():
        z = vae.encode(x).mode()
        decoded = vae.decode(z)
        errors = {}
        for overlap in (0, 32):
            tile = Tiling(64, overlap)
            errors[overlap] = (
                (vae.encode(x, tile=tile).mode() - z).abs(),
                (vae.decode(z, tile=tile) - decoded).abs(),
            )
    for overlapped, hard in zip(errors[32], errors[0], strict=True):
        assert overlapped.mean() < hard.mean() / 3
        assert overlapped.max() < hard.max() / 2
    assert errors[32][0].mean() < 0.03 * z.std()
    assert errors[32][1].mean() < 0.03 * decoded.std()


def test_tiles_and_chunks_combine_exactly(vae):
    """Each tile has its own cache: chunked tiled coding equals whole-clip tiled coding."""
    x = pixels(9, 48, 48)
    tile = Tiling(32, 16)  # two tiles each way
    with torch.no_grad():
        whole = vae.encode(x, tile=tile).moments
        chunked = vae.encode(x, chunk_frames=4, tile=tile).moments
        z = vae.encode(x).mode()
        decoded = vae.decode(z, tile=tile)
        decoded_chunks = vae.decode(z, chunk_latents=1, tile=tile)
    assert (chunked - whole).abs().max() <= CHUNK_TOLERANCE
    assert (decoded_chunks - decoded).abs().max() <= CHUNK_TOLERANCE


@pytest.mark.parametrize(("size", "overlap"), [(12, 0), (16, 4), (16, 16), (0, 0)])
def test_bad_tiling(size, overlap):
    with pytest.raises(ValueError, match="Tiling"):
        Tiling(size, overlap)


# ---- pixel boundary --------------------------------------------------------------------------


def test_frames_to_tensor_round_trip():
    frames = torch.randint(0, 256, (3, 5, 7, 3), dtype=torch.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (1, 3, 3, 5, 7) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(tensor_to_frames(x), frames)


@pytest.mark.parametrize(("frames", "height", "width"), [(1, 16, 16), (7, 13, 21), (10, 8, 9)])
def test_padding_policy_round_trip(vae, frames, height, width):
    video = torch.randint(0, 256, (frames, height, width, 3), dtype=torch.uint8)
    with torch.no_grad():
        latents, layout = encode_video(vae, video)
        decoded = decode_video(vae, latents, layout)
    assert layout == FrameLayout(frames, height, width)
    latent_frames = 1 + -(-(frames - 1) // 4)
    assert latents.shape == (1, LATENT, latent_frames, -(-height // 8), -(-width // 8))
    assert decoded.shape == video.shape and decoded.dtype == torch.uint8


def test_padding_repeats_the_last_frame_and_edges(vae):
    """Padding by repetition: a clip of 6 frames codes like the same clip with frame 5
    repeated up to 9 frames, and so for the rows and columns up to a multiple of 8."""
    video = torch.randint(0, 256, (6, 12, 13, 3), dtype=torch.uint8)
    padded = torch.cat([video, video[-1:].expand(3, -1, -1, -1)])
    padded = torch.cat([padded, padded[:, -1:].expand(-1, 4, -1, -1)], dim=1)
    padded = torch.cat([padded, padded[:, :, -1:].expand(-1, -1, 3, -1)], dim=2)
    with torch.no_grad():
        latents, _ = encode_video(vae, video)
        expected, _ = encode_video(vae, padded)
    assert torch.equal(latents, expected)


def test_latent_normalisation_round_trip():
    scale = tuple(float(i + 1) for i in range(LATENT))
    vae = VideoVAE(replace(TINY, scaling_factor=scale, shift_factor=0.5))
    z = torch.randn(2, LATENT, 3, 2, 2)
    normalised = vae.normalize_latents(z)
    torch.testing.assert_close(normalised[:, 3], (z[:, 3] - 0.5) * 4.0)
    torch.testing.assert_close(vae.denormalize_latents(normalised), z)


# ---- bad input -------------------------------------------------------------------------------


def _with(x: torch.Tensor, frame: int, value: float) -> torch.Tensor:
    x = x.clone()
    x[0, 0, frame, 0, 0] = value
    return x


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _with(pixels(5), 2, float("nan")), "NaN"),
        (lambda: _with(pixels(5), 4, float("inf")), "infinite"),
        (lambda: (pixels(5) * 127 + 128).to(torch.uint8), "uint8"),
        (lambda: pixels(5).double(), "float64"),
        (lambda: pixels(5)[0], "5D"),
        (lambda: pixels(5)[:, :2], "3 channels"),
        (lambda: pixels(5)[:0], "empty"),
        (lambda: pixels(6), "1 \\+ 4k frames"),
        (lambda: pixels(5, 12, 16), "divisible by 8"),
        (lambda: pixels(5).numpy(), "torch.Tensor"),
    ],
)
def test_bad_pixels_raise_named_errors(vae, make, message):
    with pytest.raises(VAEInputError, match=message):
        vae.encode(make())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: torch.randn(1, 4, 2, 2, 2), f"{LATENT} channels"),
        (lambda: torch.full((1, LATENT, 2, 2, 2), float("nan")), "NaN"),
        (lambda: torch.randn(LATENT, 2, 2, 2), "5D"),
        (lambda: torch.randn(1, LATENT, 0, 2, 2), "empty"),
        (lambda: torch.randn(1, LATENT, 2, 2, 2).half(), "weights are torch.float32"),
    ],
)
def test_bad_latents_raise_named_errors(vae, make, message):
    with pytest.raises(VAEInputError, match=message):
        vae.decode(make())


def test_bad_arguments_raise_named_errors(vae):
    with pytest.raises(VAEInputError, match="chunk_frames"):
        vae.encode(pixels(9), chunk_frames=6)
    with pytest.raises(VAEInputError, match="chunk_latents"):
        vae.decode(torch.randn(1, LATENT, 2, 2, 2), chunk_latents=0)
    with pytest.raises(VAEInputError, match="Tiling"):
        vae.encode(pixels(5), tile=64)
    with pytest.raises(VAEInputError, match="uint8"):
        encode_video(vae, torch.rand(5, 16, 16, 3))
    with pytest.raises(VAEInputError, match="empty"):
        encode_video(vae, torch.zeros(0, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(VAEInputError, match="\\(T, H, W, 3\\)"):
        encode_video(vae, torch.zeros(5, 3, 16, 16, dtype=torch.uint8))


def test_bfloat16_weights_and_autocast(vae):
    x = pixels(5)
    bf16 = scrambled_vae().to(torch.bfloat16)
    with torch.no_grad():
        assert bf16.decode(bf16.encode(x.bfloat16()).mode()).dtype == torch.bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reconstruction, _ = vae(x, sample=False)
    assert reconstruction.shape == x.shape


# ---- posterior and training ------------------------------------------------------------------


def test_kl_of_a_standard_normal_is_zero():
    posterior = DiagonalGaussian(torch.zeros(2, 2 * LATENT, 3, 4, 4))
    assert posterior.kl().shape == (2, LATENT, 3, 4, 4)
    assert posterior.kl().abs().max() == 0
    shifted = DiagonalGaussian(
        torch.cat([torch.ones(1, 4, 1, 1, 1), torch.zeros(1, 4, 1, 1, 1)], 1)
    )
    torch.testing.assert_close(shifted.kl(), torch.full((1, 4, 1, 1, 1), 0.5))


def test_sampling_is_reproducible_and_spread():
    moments = torch.cat(
        [torch.full((1, 4, 8, 16, 16), 2.0), torch.full((1, 4, 8, 16, 16), -2.0)], 1
    )
    posterior = DiagonalGaussian(moments)
    first = posterior.sample(torch.Generator().manual_seed(5))
    assert torch.equal(first, posterior.sample(torch.Generator().manual_seed(5)))
    assert abs(first.mean().item() - 2.0) < 0.05
    assert abs(first.std().item() - torch.exp(torch.tensor(-1.0)).item()) < 0.02
    assert torch.equal(posterior.mode(), moments[:, :4])


def test_a_tiny_vae_overfits_one_clip():
    torch.manual_seed(0)
    vae = VideoVAE(TINY)
    clip = smooth_clip(9, 16)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    with torch.no_grad():
        start = (vae(clip, sample=False)[0] - clip).pow(2).mean().item()
    for _ in range(200):
        reconstruction, _ = vae(clip, sample=False)
        loss = (reconstruction - clip).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        end = (vae(clip, sample=False)[0] - clip).pow(2).mean().item()
    assert end < start / 10


def test_stream_chunks_must_share_their_size(vae):
    with pytest.raises(VAEInputError, match="share B, C, H and W"):
        list(vae.encode_stream([pixels(5, 16, 16), pixels(4, 16, 24)]))
    with pytest.raises(VAEInputError, match="share B, C, H and W"):
        list(vae.decode_stream([torch.randn(1, LATENT, 2, 2, 2), torch.randn(2, LATENT, 2, 2, 2)]))
