"""Invisible watermark: a keyed spread-spectrum mark in the luma of uint8 frames (T, H, W, 3).

What it carries. A `PAYLOAD_BITS`-bit payload (for Kinetoscope, `payload_for` of the
generation id), protected by a rate-1/2 convolutional code (constraint length 7, generators
171 and 133 octal, six tail bits): 76 channel bits.

Embedding (`embed_watermark`). One keyed, periodic pattern, a `TILE` x `TILE` tile repeated over
every frame from the top-left corner, is added to R, G and B alike (which changes luma and leaves
chroma as it was; values are clipped to 0..255). The tile is built in the frequency domain:
every DFT bin of the tile whose radius lies in `BAND` (periods of 4.3 to 10.7 pixels) gets unit
amplitude and a phase drawn from the key. Some 17% of those bins (`PILOT_SHARE`, rounded so
that every channel bit gets 13 bins) are the *pilot*, whose phases are fixed by the key; in the
other bins, each assigned by the key to one channel bit, the phase is turned by half a turn when
that bit is 1. The pilot only has to find the alignment of a cropped or rescaled video; the
score that decides detection uses every bin. The band is high enough to stay clear of most
picture content and low enough to survive a 0.5x downscale and H.264. The amplitude follows the
picture, because noise shows most where there is nothing else: flat areas (the physics world's
backgrounds) get `FLAT_SHARE` of ``strength``, and each pixel gets one more ``strength`` per
`TEXTURE_LEVELS` levels of local detail (the RMS of luma minus its blur, over 7 x 7 pixels), up
to `TEXTURE_SHARE`. Each frame is then scaled down where needed so that its RMS change of luma
is at most ``strength`` 8-bit levels (2.2 by default: a PSNR of about 41 dB, more for frames
that are mostly flat).

Detection (`detect_watermark`). Frames are reduced to one residual image: each frame's luma
minus a Gaussian blur of it, divided by its local RMS (so that edges and texture, the host's
own energy, do not drown the mark), averaged over time. A crop moves the tile and a rescale
stretches it, so the detector searches scales from 0.45x to 2.1x (`SCALES`, 0.5% apart; every
fourth first, then all of them around the best few and around 1): it resamples the residual back
to the tile's scale, folds it onto one tile (summing it modulo `TILE`, which turns any crop
offset into a circular shift) and takes the DFT. Each band bin is divided by the larger of its
own magnitude and the RMS magnitude of its ring of the band, so that no strong feature of the
picture outweighs the rest. Cross-correlating the pilot bins with the key's phases finds the
shift. At the best alignments (to half a pixel) the channel bits are read from the data bins
and decoded (soft-decision Viterbi), and the *score* is computed: the correlation of all band
bins, pilot and data, with the tile of the decoded payload, in standard deviations.

Why a false alarm is rare by design. On a video that carries no mark of this key, the key's
phases are independent of the picture, so for one fixed alignment and payload the score is a
normalised sum of cosines of independent uniform phases, weighted by the bins' sizes (which
come from the picture, not the key), and its tail is at most exp(-z^2 / 2) (the moment
generating function of cos of a uniform phase is I0(t) <= exp(t^2 / 4)). The
decoder maximises the score over payloads (Viterbi finds the payload of highest correlation) and
the search over alignments, so the union bound over every payload and alignment it could pick
applies. The alignments fall into three nested searches, each given a third of the false-alarm
budget: *in place* (scale 1, no shift: the video was re-encoded or cut, not cropped or
rescaled; 2^32 hypotheses), *cropped* (scale 1, any half-pixel shift) and *rescaled* (any scale
of the grid, any shift). A search of ``n`` hypotheses detects at the score where
``3 n exp(-z^2 / 2)`` is `FALSE_ALARM_BOUND` (1e-6; `THRESHOLDS`: about 8.6, 9.8 and 10.4), so
an unmarked video is detected with probability at most 1e-6, for any video made without the
key. ``confidence`` is one minus that bound at the best score found (0 when it exceeds 1).

Limits. It survives re-encoding, rescaling by 0.45x to 2.1x, crops and excerpts (see
docs/benchmarks.md), but not rotation, mirroring or a change of aspect ratio; the default key is
public, so anyone can detect the mark and, with effort, remove or forge it: a deployment that
needs more sets its own secret key.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kinetoscope.errors import KinetoscopeError

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_STRENGTH",
    "FALSE_ALARM_BOUND",
    "MIN_SIDE",
    "PAYLOAD_BITS",
    "THRESHOLDS",
    "WatermarkError",
    "WatermarkReading",
    "add_visible_mark",
    "detect_watermark",
    "embed_watermark",
    "payload_for",
]

PAYLOAD_BITS = 32
DEFAULT_KEY = "kinetoscope/public-watermark/v1"  # public, so that anyone can verify
DEFAULT_STRENGTH = 2.2  # RMS change of luma per frame, in 8-bit levels, at most
MAX_STRENGTH = 16.0  # beyond this the mark is plainly visible
MIN_SIDE = 32  # pixels; a 64-pixel video downscaled by half must still be read
TILE = 128  # pixels: the period of the pattern
BAND = (12.0, 30.0)  # radii, in DFT bins of the tile, of the bins that carry the mark
PILOT_SHARE = 0.15  # of the band bins; the rest carry the channel bits
FLAT_SHARE = 0.5  # of ``strength`` in flat areas ...
TEXTURE_SHARE = 2.0  # ... rising to this in textured ones
TEXTURE_LEVELS = 2.0  # local RMS of detail (8-bit levels) that adds one ``strength``
SCALE_RANGE = (0.45, 2.1)  # rescaling of a marked video that detection searches
SCALE_STEP = 0.005  # ratio between neighbouring scales of the search
COARSE_STRIDE = 4  # the scale search looks at every 4th scale first ...
CANDIDATES = 3  # ... then at every scale around the best 3 of those
FALSE_ALARM_BOUND = 1e-6  # per video, whatever the video

_LUMA = (0.2126, 0.7152, 0.0722)  # BT.709, the matrix write_video encodes with
_DETAIL_SIGMA = 1.5  # pixels: blur whose residual is "detail" for the embedding mask
_DETAIL_WINDOW = 7  # pixels: box over which the detail's RMS is taken
_RESIDUAL_SIGMA = 3.0  # pixels: blur whose residual the detector reads
_GAIN_SIGMA = 4.0  # pixels: window of the local RMS the residual is divided by
_GAIN_FLOOR = 1.0  # 8-bit levels: keeps a perfectly flat area from dividing by zero
_RING_WIDTH = 3.0  # DFT bins: the band is cut into rings this wide to judge a bin's size
_CHUNK_FRAMES = 16  # frames processed at once, to bound memory on long videos
_CONSTRAINT = 7  # of the convolutional code
_GENERATORS = (0o171, 0o133)


class WatermarkError(KinetoscopeError, ValueError):
    """Bad input to the watermark functions; the message names the argument and the problem."""


@dataclass(frozen=True)
class WatermarkReading:
    """What `detect_watermark` found.

    ``detected``: the score reached the threshold of its search (`THRESHOLDS`), which an
    unmarked video does with probability at most `FALSE_ALARM_BOUND`. ``payload``: the decoded
    payload, None when not
    detected. ``confidence``: one minus the bound on the probability that a video without this
    key's mark scores as high (0 for scores an unmarked video reaches by chance; at least
    1 - `FALSE_ALARM_BOUND` when detected). ``bit_accuracy``: the fraction of the 76 channel
    bits whose raw reading agrees with the decoded payload's codeword, an estimate of how
    cleanly the bits were read (1.0 on a clean copy; about 0.8 on an unmarked video, since the
    decoder picks the codeword nearest to the noise).
    ``score``: the detection statistic in standard deviations. ``search``: the narrowest search
    holding the best alignment, "in place", "cropped" or "rescaled". ``scale``: how much the
    video was rescaled since it was marked (0.5: halved). ``best_payload``: the payload read at
    the best alignment whether or not it was detected (noise when it was not; for measurements).
    """

    detected: bool
    payload: int | None
    confidence: float
    bit_accuracy: float
    score: float
    search: str
    scale: float
    best_payload: int


def payload_for(generation_id: str) -> int:
    """A `PAYLOAD_BITS`-bit hash (SHA-256, first bytes) of a generation id."""
    if not isinstance(generation_id, str) or not generation_id:
        raise WatermarkError(f"generation_id must be a non-empty str, got {generation_id!r}")
    digest = hashlib.sha256(generation_id.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") >> (256 - PAYLOAD_BITS)


# ---------------------------------------------------------------------------------------------
# Embedding


def embed_watermark(
    frames: Tensor, payload: int, key: str = DEFAULT_KEY, strength: float | None = None
) -> Tensor:
    """Mark ``frames``, uint8 (T, H, W, 3), with ``payload``; returns new uint8 (T, H, W, 3).

    ``strength``: the most the luma of a frame changes, as an RMS in 8-bit levels (default
    `DEFAULT_STRENGTH`, a PSNR of about 41 dB). Flat areas get less than textured ones.
    """
    # 1. check everything before any work
    _check_frames(frames, "frames")
    _check_key(key)
    _check_payload(payload)
    strength = DEFAULT_STRENGTH if strength is None else _checked_strength(strength)
    # 2. the tile of this key and payload, repeated over the frame
    height, width = frames.shape[1:3]
    tile = torch.from_numpy(_tile(key, int(payload)))  # (TILE, TILE), unit RMS
    reps = (math.ceil(height / TILE), math.ceil(width / TILE))
    pattern = tile.repeat(reps)[:height, :width]  # (H, W)
    # 3. add it to each chunk of frames, shaped by the picture
    marked = torch.empty_like(frames, device="cpu")
    for start in range(0, frames.shape[0], _CHUNK_FRAMES):
        chunk = frames[start : start + _CHUNK_FRAMES].cpu()  # (t, H, W, 3) uint8
        # the same whole number of levels for R, G and B, so that chroma stays as it was
        change = _luma_change(chunk, pattern, strength).round_()  # (t, H, W)
        marked[start : start + _CHUNK_FRAMES] = (
            (chunk.float() + change[..., None]).clamp_(0, 255).to(torch.uint8)
        )
    return marked.to(frames.device)


def _luma_change(frames: Tensor, pattern: Tensor, strength: float) -> Tensor:
    """The change of luma for uint8 (t, H, W, 3) frames: ``pattern`` (H, W), unit RMS, scaled
    by the local detail of each frame, each frame's RMS at most ``strength``. (t, H, W)."""
    luma = _luma(frames)  # (t, H, W)
    detail = luma - _blur(luma, _DETAIL_SIGMA)
    detail_rms = _box_mean(detail.square(), _DETAIL_WINDOW).sqrt()  # (t, H, W)
    share = (FLAT_SHARE + detail_rms / TEXTURE_LEVELS).clamp(max=TEXTURE_SHARE)
    change = strength * share * pattern  # (t, H, W)
    rms = change.square().mean((1, 2), keepdim=True).sqrt()  # (t, 1, 1)
    return change * (strength / rms).clamp(max=1.0)


# ---------------------------------------------------------------------------------------------
# Detection


def detect_watermark(frames: Tensor, key: str = DEFAULT_KEY) -> WatermarkReading:
    """Look for ``key``'s mark in uint8 frames (T, H, W, 3), which may have been re-encoded,
    rescaled (0.45x to 2.1x), cropped or cut to an excerpt since they were marked."""
    # 1. check the input
    _check_frames(frames, "frames")
    _check_key(key)
    # 2. one residual image for the whole video, folded at each scale when asked for
    spectra = _FoldedSpectra(_residual(frames))
    # 3. the pilot proposes alignments, each is decoded, the best score wins
    return _read(spectra, _layout(key))


def _residual(frames: Tensor) -> Tensor:
    """The mean over time of each frame's luma detail divided by its local RMS. (H, W)."""
    total = torch.zeros(frames.shape[1:3])
    for start in range(0, frames.shape[0], _CHUNK_FRAMES):
        luma = _luma(frames[start : start + _CHUNK_FRAMES].cpu())  # (t, H, W)
        detail = luma - _blur(luma, _RESIDUAL_SIGMA)
        local_rms = (_blur(detail.square(), _GAIN_SIGMA) + _GAIN_FLOOR**2).sqrt()
        total += (detail / local_rms).sum(0)
    return total / frames.shape[0]


class _FoldedSpectra:
    """The residual resampled by 1 / s for scales s of `SCALES` (back to the tile's size, if
    the video was rescaled by s), folded onto one tile and transformed: the DFT (TILE, TILE)
    of each, computed when first asked for and kept (it does not depend on the key)."""

    def __init__(self, residual: Tensor) -> None:
        self.residual = residual  # (H, W)
        self._spectra: dict[int, Tensor] = {}

    def at(self, indices: list[int]) -> Tensor:
        """The spectra at scales ``SCALES[indices]``: (len(indices), TILE, TILE) complex64."""
        missing = [i for i in dict.fromkeys(indices) if i not in self._spectra]
        if missing:
            folded = [_fold(_rescaled(self.residual, 1.0 / SCALES[i])) for i in missing]
            self._spectra.update(zip(missing, torch.fft.fft2(torch.stack(folded)), strict=True))
        return torch.stack([self._spectra[i] for i in indices])


def _rescaled(image: Tensor, factor: float) -> Tensor:
    """An (H, W) image resampled by ``factor`` (bicubic; pixel centres map as in a resize)."""
    if factor == 1.0:
        return image
    return F.interpolate(
        image[None, None],  # (1, 1, H, W)
        scale_factor=factor,
        mode="bicubic",
        align_corners=False,
        recompute_scale_factor=False,
    )[0, 0]


def _fold(image: Tensor) -> Tensor:
    """Sum an (H, W) image modulo `TILE` in both directions: (TILE, TILE)."""
    height, width = image.shape
    padded = F.pad(image, (0, -width % TILE, 0, -height % TILE))
    rows, cols = padded.shape[0] // TILE, padded.shape[1] // TILE
    return padded.view(rows, TILE, cols, TILE).sum((0, 2))


@dataclass(frozen=True)
class _Candidate:
    """One alignment: a scale index and a shift of the tile, in (fractional) pixels."""

    scale_index: int
    shift: tuple[float, float]  # (y, x)


def _read(spectra: _FoldedSpectra, layout: _Layout) -> WatermarkReading:
    """Decode at the pilot's best alignments and report the one least likely by chance: the
    lowest false-alarm bound of its search at its score."""
    best: tuple[float, float, float, int, _Candidate] | None = None
    for candidate in _candidates(spectra, layout):
        score, agreement, payload = _decode(spectra, layout, candidate)
        log_bound = _log_bound(score, _search_of(candidate))
        if best is None or log_bound < best[0]:
            best = (log_bound, score, agreement, payload, candidate)
    assert best is not None  # there is always a candidate
    log_bound, score, agreement, payload, candidate = best
    detected = log_bound <= math.log(FALSE_ALARM_BOUND)
    return WatermarkReading(
        detected=detected,
        payload=payload if detected else None,
        confidence=float(-math.expm1(min(log_bound, 0.0))),
        bit_accuracy=agreement,
        score=score,
        search=_search_of(candidate).name,
        scale=float(SCALES[candidate.scale_index]),
        best_payload=payload,
    )


def _decode(
    spectra: _FoldedSpectra, layout: _Layout, candidate: _Candidate
) -> tuple[float, float, int]:
    """At one alignment: the score of the best payload, the share of channel bits that agree
    with its codeword, and the payload."""
    bins = _normalised_bins(spectra.at([candidate.scale_index]), layout)[0]  # (B,)
    bins = bins.numpy().astype(np.complex128)
    aligned = _aligned_parts(bins, layout, candidate.shift)  # (B,)
    data = layout.data
    soft = np.bincount(layout.owner[data], weights=aligned[data], minlength=_CODED_BITS)
    payload = _viterbi(soft)  # soft (76,): positive means channel bit 0
    codeword = _encode(payload)  # (76,) of 0 / 1
    signs = np.ones(len(bins))
    signs[data] = 1 - 2 * codeword[layout.owner[data]]
    # with the key's phases uniform, the sum's variance is this over 2 (cos has variance 1/2)
    weight = float(np.square(np.abs(bins)).sum())
    score = float((aligned * signs).sum() / math.sqrt(weight / 2)) if weight > 0 else 0.0
    agreement = float(np.mean((soft < 0) == (codeword == 1)))
    return score, agreement, payload


def _candidates(spectra: _FoldedSpectra, layout: _Layout) -> list[_Candidate]:
    """The alignments to decode, by pilot correlation, coarse to fine: every `COARSE_STRIDE`-th
    scale first; then every scale around scale 1 and around each of the `CANDIDATES` best of
    those (where the correlation peaks along the scales), each at its best shift; and scale 1
    without a shift. Near its true scale a small video's pilot peaks about as high at
    neighbouring scales, so all of them are decoded."""
    coarse = list(range(_ONE % COARSE_STRIDE, len(SCALES), COARSE_STRIDE))  # holds scale 1
    peaks, _, _ = _pilot_correlation(spectra.at(coarse), layout)
    higher = torch.ones_like(peaks, dtype=torch.bool)  # local maxima along the scales
    higher[1:] &= peaks[1:] >= peaks[:-1]
    higher[:-1] &= peaks[:-1] >= peaks[1:]
    ranked = [coarse[i] for i in torch.argsort(peaks, descending=True).tolist() if higher[i]]
    candidates = [_Candidate(_ONE, (0.0, 0.0))]  # in place: the likeliest alignment of all
    for centre in dict.fromkeys([_ONE, *ranked[:CANDIDATES]]):
        low, high = max(0, centre - COARSE_STRIDE + 1), min(len(SCALES), centre + COARSE_STRIDE)
        around = list(range(low, high))
        _, where, correlation = _pilot_correlation(spectra.at(around), layout)
        for i, scale_index in enumerate(around):
            row, col = divmod(int(where[i]), TILE)
            candidates.append(_Candidate(scale_index, _peak_position(correlation[i], row, col)))
    return list(dict.fromkeys(candidates))  # each once


def _pilot_correlation(spectra: Tensor, layout: _Layout) -> tuple[Tensor, Tensor, Tensor]:
    """Circular cross-correlation of the pilot bins with the key's phases: for (n, TILE, TILE)
    spectra, the highest value of each (n,) in standard deviations, where it is (n,) as a flat
    index, and the whole correlation (n, TILE, TILE), which peaks at the shift of the tile."""
    bins = _normalised_bins(spectra, layout)[:, layout.pilot]  # (n, P) complex64
    spread = torch.zeros_like(spectra)  # (n, TILE, TILE)
    spread[:, layout.pilot_rows, layout.pilot_cols] = bins * layout.pilot_conjugate
    deviation = (bins.abs().square().sum(1) / 2).sqrt().clamp_min(1e-30)  # (n,)
    correlation = torch.fft.ifft2(spread).real * TILE**2 / deviation[:, None, None]
    peaks, where = correlation.flatten(1).max(1)
    return peaks, where, correlation


def _peak_position(surface: Tensor, row: int, col: int) -> tuple[float, float]:
    """The peak of a correlation surface (TILE, TILE) near its highest sample (row, col),
    refined in each direction by a parabola through three samples."""
    return (
        row
        + _peak_offset(
            surface[(row - 1) % TILE, col], surface[row, col], surface[(row + 1) % TILE, col]
        ),
        col
        + _peak_offset(
            surface[row, (col - 1) % TILE], surface[row, col], surface[row, (col + 1) % TILE]
        ),
    )


def _peak_offset(before: Tensor, peak: Tensor, after: Tensor) -> float:
    """Where a parabola through three samples peaks, relative to the middle one, rounded to
    half a pixel (the shift grid that `THRESHOLDS` count)."""
    curvature = float(before - 2 * peak + after)
    if curvature >= 0:
        return 0.0
    offset = 0.5 * float(before - after) / curvature
    return round(2 * max(-0.5, min(0.5, offset))) / 2


def _normalised_bins(spectra: Tensor, layout: _Layout) -> Tensor:
    """The band bins of (n, TILE, TILE) spectra, each divided by the larger of its magnitude
    and the RMS magnitude of its ring of the band. A bin up to the ring's RMS keeps its relative
    size, so a bin where compression left little of the mark counts for little; a larger one (a
    strong periodic feature of the picture, say) counts as one of the RMS size. (n, B)."""
    values = spectra[:, layout.rows, layout.cols]  # (n, B)
    power = values.abs().square()
    ring_power = (
        torch.zeros(len(values), layout.ring_sizes.numel()).index_add_(1, layout.ring, power)
        / layout.ring_sizes
    )  # (n, rings)
    floor = ring_power[:, layout.ring].sqrt()  # (n, B)
    return values / torch.maximum(values.abs(), floor).clamp_min(1e-30)


def _aligned_parts(bins: np.ndarray, layout: _Layout, shift: tuple[float, float]) -> np.ndarray:
    """The part of each normalised band bin (B,) along the key's phase for it, once ``shift``
    is undone: |bin| times the cosine of the difference. (B,)."""
    ramp = 2 * np.pi * (layout.ky * shift[0] + layout.kx * shift[1]) / TILE  # (B,)
    return (bins * np.exp(1j * (ramp - layout.phase))).real


@dataclass(frozen=True)
class _Search:
    """A set of alignments the detector tries; each search has an equal share of the
    false-alarm budget."""

    name: str
    alignments: int  # (scale, half-pixel shift) pairs it holds

    @property
    def hypotheses(self) -> int:
        return self.alignments * 2**PAYLOAD_BITS


def _search_of(candidate: _Candidate) -> _Search:
    """The narrowest search that holds ``candidate``."""
    if candidate.scale_index != _ONE:
        return _SEARCHES[2]
    in_place = candidate.shift[0] % TILE == 0 and candidate.shift[1] % TILE == 0
    return _SEARCHES[0] if in_place else _SEARCHES[1]


def _log_bound(score: float, search: _Search) -> float:
    """The log of the union bound on an unmarked video scoring ``score`` or more in
    ``search``, scaled by the search's share of the budget."""
    return math.log(len(_SEARCHES) * search.hypotheses) - score * score / 2


# ---------------------------------------------------------------------------------------------
# The keyed layout and the tile


@dataclass(frozen=True, eq=False)
class _Layout:
    """What a key decides: the band bins (one of each conjugate pair), their phases, which are
    pilot and which channel bit each other bin carries."""

    ky: np.ndarray  # (B,) int64 frequencies, -TILE/2..TILE/2
    kx: np.ndarray  # (B,)
    phase: np.ndarray  # (B,) float64 in [0, 2 pi)
    owner: np.ndarray  # (B,) int64: the channel bit a data bin carries, -1 for pilot bins
    rows: Tensor  # (B,) ky modulo TILE, to index a spectrum
    cols: Tensor  # (B,)
    pilot_rows: Tensor  # (P,)
    pilot_cols: Tensor  # (P,)
    pilot_conjugate: Tensor  # (P,) complex64: exp(-i phase) of the pilot bins
    pilot: Tensor  # (B,) bool
    ring: Tensor  # (B,) int64: the ring of the band, `_RING_WIDTH` bins wide, a bin lies in
    ring_sizes: Tensor  # (rings,) float32: bins per ring

    @property
    def data(self) -> np.ndarray:
        """(B,) bool: the bins that carry channel bits."""
        return self.owner >= 0


@lru_cache(maxsize=8)
def _layout(key: str) -> _Layout:
    """The keyed layout of ``key`` (cached: detection with one key reuses it)."""
    frequencies = np.fft.fftfreq(TILE, 1 / TILE).astype(np.int64)  # 0, 1, ..., -1
    ky, kx = (grid.ravel() for grid in np.meshgrid(frequencies, frequencies, indexing="ij"))
    radius = np.hypot(ky, kx)
    one_of_pair = (ky > 0) | ((ky == 0) & (kx > 0))
    chosen = one_of_pair & (radius >= BAND[0]) & (radius <= BAND[1])
    ky, kx = ky[chosen], kx[chosen]
    draws = _keyed_uniforms(key, 2 * len(ky)).reshape(2, -1)  # (2, B) in [0, 1)
    phase = 2 * np.pi * draws[0]
    order = np.argsort(draws[1], kind="stable")  # a keyed shuffle of the bins
    data_bins = int((1 - PILOT_SHARE) * len(ky)) // _CODED_BITS * _CODED_BITS
    owner = np.full(len(ky), -1, dtype=np.int64)
    owner[order[:data_bins]] = np.arange(data_bins) % _CODED_BITS  # spread over the band
    pilot = owner < 0
    rings = max(1, round((BAND[1] - BAND[0]) / _RING_WIDTH))
    ring = np.minimum((radius[chosen] - BAND[0]) // _RING_WIDTH, rings - 1).astype(np.int64)
    return _Layout(
        ky=ky,
        kx=kx,
        phase=phase,
        owner=owner,
        rows=torch.from_numpy(ky % TILE),
        cols=torch.from_numpy(kx % TILE),
        pilot_rows=torch.from_numpy(ky[pilot] % TILE),
        pilot_cols=torch.from_numpy(kx[pilot] % TILE),
        pilot_conjugate=torch.from_numpy(np.exp(-1j * phase[pilot]).astype(np.complex64)),
        pilot=torch.from_numpy(pilot),
        ring=torch.from_numpy(ring),
        ring_sizes=torch.from_numpy(np.bincount(ring).astype(np.float32)),
    )


def _keyed_uniforms(key: str, count: int) -> np.ndarray:
    """``count`` numbers in [0, 1) drawn from ``key`` by SHAKE-256, the same on every platform
    and numpy version (numpy's generators promise no stable stream)."""
    stream = hashlib.shake_256(b"kinetoscope-watermark-v1\0" + key.encode("utf-8"))
    words = np.frombuffer(stream.digest(8 * count), dtype="<u8")
    return (words >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@lru_cache(maxsize=32)
def _tile(key: str, payload: int) -> np.ndarray:
    """The tile for ``key`` and ``payload``: (TILE, TILE) float32 with unit RMS."""
    layout = _layout(key)
    codeword = _encode(payload)  # (76,)
    phase = layout.phase.copy()
    phase[layout.data] += np.pi * codeword[layout.owner[layout.data]]
    spectrum = np.zeros((TILE, TILE), dtype=np.complex128)
    spectrum[layout.ky % TILE, layout.kx % TILE] = np.exp(1j * phase)
    spectrum[-layout.ky % TILE, -layout.kx % TILE] = np.exp(-1j * phase)  # real tile
    tile = np.fft.ifft2(spectrum).real
    return (tile / tile.std()).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The convolutional code: rate 1/2, constraint length 7, generators 171 and 133 (octal)

_CODED_BITS = 2 * (PAYLOAD_BITS + _CONSTRAINT - 1)
_STATES = 1 << (_CONSTRAINT - 1)


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


def _branch_bits(state: int, bit: int) -> tuple[int, int]:
    """The two channel bits sent when ``bit`` enters the encoder in ``state``."""
    register = (bit << (_CONSTRAINT - 1)) | state
    return _parity(register & _GENERATORS[0]), _parity(register & _GENERATORS[1])


def _encode(payload: int) -> np.ndarray:
    """The codeword of ``payload`` (most significant bit first, then six zero tail bits):
    (76,) int64 of 0 / 1."""
    bits = [(payload >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)]
    state, channel = 0, []
    for bit in bits + [0] * (_CONSTRAINT - 1):
        channel.extend(_branch_bits(state, bit))
        state = ((bit << (_CONSTRAINT - 1)) | state) >> 1
    return np.array(channel, dtype=np.int64)


def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For every next state and each of its two predecessors: the predecessor state and the
    signs (+1 for channel bit 0) of the two channel bits on that branch. (STATES, 2), (STATES,
    2, 2)."""
    predecessors = np.zeros((_STATES, 2), dtype=np.int64)
    signs = np.zeros((_STATES, 2, 2))
    for state in range(_STATES):
        bit = state >> (_CONSTRAINT - 2)  # the bit that entered is the new state's top bit
        for low in range(2):
            previous = ((state << 1) & (_STATES - 1)) | low
            predecessors[state, low] = previous
            signs[state, low] = [1 - 2 * b for b in _branch_bits(previous, bit)]
    return predecessors, signs


_PREDECESSORS, _BRANCH_SIGNS = _trellis()


def _viterbi(soft: np.ndarray) -> int:
    """The payload whose codeword correlates best with ``soft`` (76,), positive meaning
    channel bit 0: soft-decision Viterbi, ending in state 0 (the tail)."""
    steps = PAYLOAD_BITS + _CONSTRAINT - 1
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choices = np.zeros((steps, _STATES), dtype=np.int64)  # which predecessor won
    for step in range(steps):
        received = soft[2 * step : 2 * step + 2]  # (2,)
        candidates = metric[_PREDECESSORS] + _BRANCH_SIGNS @ received  # (STATES, 2)
        if step >= PAYLOAD_BITS:  # tail: only zeros enter, so only states with top bit 0
            candidates[_STATES // 2 :] = -np.inf
        choices[step] = np.argmax(candidates, axis=1)
        metric = np.max(candidates, axis=1)
    state, bits = 0, []
    for step in range(steps - 1, -1, -1):
        bits.append(state >> (_CONSTRAINT - 2))
        state = int(_PREDECESSORS[state, choices[step, state]])
    payload = 0
    for bit in reversed(bits[_CONSTRAINT - 1 :]):  # drop the tail, oldest bit first
        payload = (payload << 1) | int(bit)
    return payload


# ---------------------------------------------------------------------------------------------
# The search grid and the threshold


def _scale_grid() -> np.ndarray:
    """Scales SCALE_RANGE[0]..SCALE_RANGE[1], a ratio of 1 + SCALE_STEP apart, 1 included."""
    low = math.ceil(math.log(SCALE_RANGE[0]) / math.log1p(SCALE_STEP))
    high = math.floor(math.log(SCALE_RANGE[1]) / math.log1p(SCALE_STEP))
    return (1 + SCALE_STEP) ** np.arange(low, high + 1, dtype=np.float64)


SCALES = _scale_grid()
_ONE = int(np.argmin(np.abs(SCALES - 1.0)))  # the index of scale 1
_SEARCHES = (  # nested, each with a third of the false-alarm budget
    _Search("in place", 1),  # scale 1, no shift: re-encoded or cut, not cropped or rescaled
    _Search("cropped", (2 * TILE) ** 2),  # scale 1, any half-pixel shift
    _Search("rescaled", len(SCALES) * (2 * TILE) ** 2),  # any scale, any shift
)
THRESHOLDS = {  # the score at which each search detects
    search.name: math.sqrt(2 * (math.log(len(_SEARCHES) * search.hypotheses / FALSE_ALARM_BOUND)))
    for search in _SEARCHES
}


# ---------------------------------------------------------------------------------------------
# Pixels


def _luma(frames: Tensor) -> Tensor:
    """BT.709 luma of uint8 (t, H, W, 3) frames: float32 (t, H, W) in 0..255."""
    weights = torch.tensor(_LUMA, dtype=torch.float32)
    return frames.float() @ weights


def _blur(images: Tensor, sigma: float) -> Tensor:
    """A Gaussian blur of (t, H, W) images, edges mirrored (by multiplying DFTs, which is
    several times faster than a convolution at these widths)."""
    radius = min(math.ceil(3 * sigma), *(side - 1 for side in images.shape[1:]))
    padded = F.pad(images[:, None], (radius,) * 4, mode="reflect")[:, 0]  # (t, H + 2r, W + 2r)
    height, width = padded.shape[1:]
    fy = torch.fft.fftfreq(height)[:, None]  # cycles per pixel
    fx = torch.fft.rfftfreq(width)[None, :]
    response = torch.exp(-2 * math.pi**2 * sigma**2 * (fy.square() + fx.square()))
    blurred = torch.fft.irfft2(torch.fft.rfft2(padded) * response, s=(height, width))
    return blurred[:, radius : radius + images.shape[1], radius : radius + images.shape[2]]


def _box_mean(images: Tensor, window: int) -> Tensor:
    """The mean over a ``window`` x ``window`` box around each pixel of (t, H, W) images."""
    half = window // 2
    padded = F.pad(images[:, None], (half, half, half, half), mode="replicate")
    return F.avg_pool2d(padded, window, stride=1)[:, 0]


# ---------------------------------------------------------------------------------------------
# The visible mark

# 5 x 7 glyphs, one string per row, "#" for ink
_GLYPHS = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"),
}
_BADGE_TEXT = "AI"
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def add_visible_mark(frames: Tensor, corner: str = "bottom-right", opacity: float = 0.6) -> Tensor:
    """Draw a small "AI" badge (white letters on a dark box) in a corner of uint8 frames
    (T, H, W, 3); returns new frames. ``opacity`` in (0, 1] is how much the badge covers
    what is under it. The badge grows with the frame: one font pixel per 64 pixels of the
    short side."""
    # 1. check the arguments
    _check_frames(frames, "frames")
    if corner not in CORNERS:
        raise WatermarkError(f"corner must be one of {', '.join(CORNERS)}; got {corner!r}")
    if isinstance(opacity, bool) or not isinstance(opacity, int | float) or not (0 < opacity <= 1):
        raise WatermarkError(f"opacity must be a number in (0, 1], got {opacity!r}")
    # 2. the badge: ink (letters) and box masks at the frame's font scale
    height, width = frames.shape[1:3]
    unit = max(1, min(height, width) // 64)
    ink = _badge_ink(unit)  # (h, w) bool
    box_h, box_w = ink.shape
    # 3. where it goes, a margin from the corner
    margin = 2 * unit
    top = margin if corner.startswith("top") else height - margin - box_h
    left = margin if corner.endswith("left") else width - margin - box_w
    # 4. blend: the box darkens, the letters lighten
    marked = frames.clone()
    region = marked[:, top : top + box_h, left : left + box_w].float()  # (T, h, w, 3)
    target = ink[..., None].to(region.device).float() * 255  # (h, w, 1): white ink, black box
    blended = region * (1 - opacity) + target * opacity
    marked[:, top : top + box_h, left : left + box_w] = blended.round().to(torch.uint8)
    return marked


def _badge_ink(unit: int) -> Tensor:
    """The badge's letters as a bool mask (h, w), with one font pixel of padding around them
    and between letters, each font pixel ``unit`` x ``unit`` pixels."""
    rows = len(next(iter(_GLYPHS.values())))
    glyphs = [np.array([[c == "#" for c in row] for row in _GLYPHS[ch]]) for ch in _BADGE_TEXT]
    gap = np.zeros((rows, 1), dtype=bool)
    line = np.concatenate([part for glyph in glyphs for part in (gap, glyph)] + [gap], axis=1)
    padded = np.pad(line, ((1, 1), (0, 0)))
    return torch.from_numpy(np.kron(padded, np.ones((unit, unit), dtype=bool)))


# ---------------------------------------------------------------------------------------------
# Argument checks


def _check_frames(frames: object, name: str) -> None:
    """uint8 (T, H, W, 3), at least one frame, each side at least MIN_SIDE."""
    if not isinstance(frames, Tensor):
        raise WatermarkError(f"{name} must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise WatermarkError(f"{name} must be uint8 (0..255), got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise WatermarkError(f"{name} must have shape (T, H, W, 3), got {tuple(frames.shape)}")
    if frames.shape[0] < 1:
        raise WatermarkError(f"{name} holds no frames")
    if min(frames.shape[1:3]) < MIN_SIDE:
        raise WatermarkError(
            f"{name} are {frames.shape[2]}x{frames.shape[1]}; the watermark needs at least "
            f"{MIN_SIDE} pixels on each side"
        )


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise WatermarkError(f"key must be a non-empty str, got {key!r}")


def _check_payload(payload: object) -> None:
    if isinstance(payload, bool) or not isinstance(payload, int | np.integer):
        raise WatermarkError(f"payload must be an int, got {type(payload).__name__}")
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise WatermarkError(
            f"payload must be in 0..2**{PAYLOAD_BITS} - 1 ({PAYLOAD_BITS} bits), got {payload}"
        )


def _checked_strength(strength: object) -> float:
    if isinstance(strength, bool) or not isinstance(strength, int | float):
        raise WatermarkError(f"strength must be a number or None, got {strength!r}")
    if not (math.isfinite(strength) and 0 < strength <= MAX_STRENGTH):
        raise WatermarkError(
            f"strength must be in (0, {MAX_STRENGTH:g}] (RMS 8-bit levels), got {strength!r}"
        )
    return float(strength)
