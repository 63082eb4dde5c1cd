"""The rectified-flow objective: the path's endpoints and velocity, the masked loss, the time
shift and the training-time distribution, checked exactly where the maths allows."""

from __future__ import annotations

import math

import pytest
import torch

from kinetoscope.flow import (
    FlowError,
    flow_matching_loss,
    interpolate,
    sample_timesteps,
    shift_time,
    timestep_shift,
    velocity_target,
)
from kinetoscope.flow.objective import BASE_LENGTH, MAX_LENGTH, TIME_EPS


def pair(shape=(3, 4, 5, 2, 2), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


# ---- the path and its velocity ---------------------------------------------------------------


def test_interpolate_endpoints_are_exactly_noise_and_data():
    noise, data = pair()
    assert torch.equal(interpolate(noise, data, torch.zeros(3)), noise)
    assert torch.equal(interpolate(noise, data, torch.ones(3)), data)


def test_interpolate_broadcasts_one_time_per_sample():
    noise, data = pair()
    t = torch.tensor([0.0, 0.25, 1.0])
    x_t = interpolate(noise, data, t)
    for row in range(3):
        expected = (1 - t[row]) * noise[row] + t[row] * data[row]
        assert torch.equal(x_t[row], expected)
    assert torch.allclose(x_t[1], 0.75 * noise[1] + 0.25 * data[1])


def test_velocity_target_is_the_derivative_of_the_path():
    noise, data = pair((2, 3, 4))
    target = velocity_target(noise, data)
    assert torch.equal(target, data - noise)
    t0, t1 = torch.full((2,), 0.2, dtype=torch.float64), torch.full((2,), 0.7, dtype=torch.float64)
    noise, data = noise.double(), data.double()
    difference = interpolate(noise, data, t1) - interpolate(noise, data, t0)
    assert torch.allclose(difference, 0.5 * velocity_target(noise, data), atol=1e-12)


def test_path_shapes_are_checked():
    noise, data = pair()
    with pytest.raises(FlowError, match="noise has shape"):
        interpolate(noise, data[:, :2], torch.zeros(3))
    with pytest.raises(FlowError, match=r"t must have shape \(3,\)"):
        interpolate(noise, data, torch.zeros(2))
    with pytest.raises(FlowError, match=r"t must have shape \(3,\)"):
        interpolate(noise, data, torch.zeros(3, 1))
    with pytest.raises(FlowError, match="noise has shape"):
        velocity_target(noise, data[:1])


# ---- the loss ----------------------------------------------------------------------------------


def test_loss_without_mask_is_the_mean_squared_error():
    noise, data = pair()
    predicted, _ = pair(seed=1)
    expected = ((predicted - (data - noise)) ** 2).mean()
    assert torch.allclose(flow_matching_loss(predicted, noise, data), expected, rtol=1e-6)
    assert flow_matching_loss(data - noise, noise, data).item() == 0.0


def test_loss_mask_counts_only_the_masked_frames():
    noise, data = pair()  # (B=3, C=4, T=5, 2, 2)
    predicted, _ = pair(seed=1)
    frame_mask = torch.zeros(3, 1, 5, 1, 1, dtype=torch.bool)
    frame_mask[0, 0, 1:] = True  # sample 0: frames 1..4 count (frame 0 is known)
    frame_mask[2, 0, :2] = True  # sample 2: frames 0, 1
    # manual: collect every counted element, then average
    counted = []
    for b in range(3):
        for f in range(5):
            if frame_mask[b, 0, f]:
                counted.append((predicted[b, :, f] - (data[b, :, f] - noise[b, :, f])).flatten())
    expected = torch.cat(counted).square().mean()
    loss = flow_matching_loss(predicted, noise, data, frame_mask)
    assert torch.allclose(loss, expected, rtol=1e-6)
    assert torch.allclose(flow_matching_loss(predicted, noise, data, frame_mask.float()), loss)
    # errors on frames that do not count change nothing
    spoiled = predicted.clone()
    spoiled[1] += 100.0
    spoiled[0, :, 0] -= 50.0
    assert torch.equal(flow_matching_loss(spoiled, noise, data, frame_mask), loss)


def test_loss_with_a_mask_that_counts_nothing_is_zero():
    noise, data = pair()
    loss = flow_matching_loss(noise, noise, data, torch.zeros(3, 1, 5, 1, 1))
    assert loss.item() == 0.0


def test_loss_is_float32_and_checks_shapes():
    noise, data = pair()
    loss = flow_matching_loss(noise.bfloat16(), noise, data)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    with pytest.raises(FlowError, match="predicted velocity has shape"):
        flow_matching_loss(noise[:, :2], noise, data)
    with pytest.raises(FlowError, match="does not broadcast"):
        flow_matching_loss(noise, noise, data, torch.ones(3, 1, 4, 1, 1))


def test_loss_has_gradients_only_through_the_prediction():
    noise, data = pair()
    predicted = torch.zeros_like(data, requires_grad=True)
    flow_matching_loss(predicted, noise, data).backward()
    expected = 2 * (predicted.detach() - (data - noise)) / data.numel()
    assert torch.allclose(predicted.grad, expected, rtol=1e-5, atol=1e-9)


# ---- the time shift ----------------------------------------------------------------------------


def test_shift_one_is_exactly_the_identity():
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        t = torch.cat(
            [torch.tensor([0.0, 1e-7, 0.5, 1.0]), torch.rand(10_000, generator=generator)]
        )
        t = t.to(dtype)
        assert torch.equal(shift_time(t, 1.0), t), dtype


def test_shift_moves_times_towards_noise_and_keeps_order_and_ends():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for shift in (1.5, 3.0, 10.0):
        shifted = shift_time(t, shift)
        assert shifted[0] == 0 and shifted[-1] == 1
        assert (shifted[1:] > shifted[:-1]).all()  # still increasing
        assert (shifted[1:-1] < t[1:-1]).all()  # earlier: noisier
        # the noise-level form s' = shift * s / (1 + (shift - 1) * s)
        s = 1 - t
        assert torch.allclose(1 - shifted, shift * s / (1 + (shift - 1) * s), atol=1e-15)
    assert (shift_time(t[1:-1], 0.5) > t[1:-1]).all()  # below 1: towards data
    with pytest.raises(FlowError, match="shift must be"):
        shift_time(t, 0.0)
    with pytest.raises(FlowError, match="shift must be"):
        shift_time(t, math.nan)


def test_timestep_shift_is_log_linear_in_sequence_length():
    assert timestep_shift(BASE_LENGTH) == pytest.approx(1.0)
    assert timestep_shift(MAX_LENGTH) == pytest.approx(3.0)
    lengths = [64, 320, 560, 1088, 1904]
    shifts = [timestep_shift(n) for n in lengths]
    assert shifts == sorted(shifts) and len(set(shifts)) == len(shifts)
    mus = [math.log(s) for s in shifts]
    slopes = [(mus[i + 1] - mus[i]) / (lengths[i + 1] - lengths[i]) for i in range(4)]
    assert slopes == pytest.approx([slopes[0]] * 4)
    # custom line through (256, 0.5) and (4096, 1.15)
    assert timestep_shift(256, 256, 4096, 0.5, 1.15) == pytest.approx(math.exp(0.5))
    assert timestep_shift(2176, 256, 4096, 0.5, 1.15) == pytest.approx(math.exp(0.825))
    with pytest.raises(FlowError, match="sequence_length"):
        timestep_shift(0)
    with pytest.raises(FlowError, match="max_length"):
        timestep_shift(100, base_length=256, max_length=256)


# ---- training times ----------------------------------------------------------------------------


def test_sampled_timesteps_lie_strictly_inside_the_unit_interval():
    t = sample_timesteps(50_000, 1088, generator=torch.Generator().manual_seed(0), std=4.0)
    assert t.shape == (50_000,) and t.dtype == torch.float32
    assert t.min() >= TIME_EPS and t.max() <= 1 - TIME_EPS
    assert (t > 0).all() and (t < 1).all()


def test_sampled_timesteps_are_logit_normal_then_shifted():
    t = sample_timesteps(20_000, BASE_LENGTH, generator=torch.Generator().manual_seed(1))
    logits = torch.logit(t.double())  # shift 1: plain logit-normal
    assert abs(logits.mean().item()) < 0.05 and abs(logits.std().item() - 1) < 0.05
    for length in (320, 1904):
        shifted = sample_timesteps(20_000, length, generator=torch.Generator().manual_seed(1))
        # the same normal draws, shifted: exactly shift_time of the unshifted times
        expected = shift_time(t, timestep_shift(length))
        assert torch.allclose(shifted, expected, atol=1e-6)
        assert shifted.median().item() == pytest.approx(1 / (1 + timestep_shift(length)), abs=0.01)


def test_longer_sequences_get_noisier_timesteps():
    def draw(length):
        return sample_timesteps(4096, length, generator=torch.Generator().manual_seed(2))

    short, medium, long = draw(64), draw(320), draw(1904)
    assert (medium < short).all() and (long < medium).all()  # the same draws, each noisier
    assert short.mean() > medium.mean() + 0.01 > long.mean() + 0.1


def test_sample_timesteps_is_deterministic_and_checks_input():
    first = sample_timesteps(8, 320, generator=torch.Generator().manual_seed(3))
    second = sample_timesteps(8, 320, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    with pytest.raises(FlowError, match="batch"):
        sample_timesteps(0, 320)
    with pytest.raises(FlowError, match="sequence_length"):
        sample_timesteps(4, 0)
    with pytest.raises(FlowError, match="std"):
        sample_timesteps(4, 320, std=0.0)
