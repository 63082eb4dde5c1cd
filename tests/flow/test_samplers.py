"""Samplers on velocity fields with known solutions: they land on the data, Heun beats Euler on
a curved field, they are deterministic; plus the schedule and the guidance maths."""

from __future__ import annotations

import math

import pytest
import torch

from kinetoscope.flow import (
    FlowError,
    classifier_free_guidance,
    guided_velocity,
    sample_euler,
    sample_heun,
    shift_time,
    timestep_schedule,
)

SAMPLERS = [sample_euler, sample_heun]


def toward(data):
    """The exact velocity of the straight path from wherever x is to ``data``: for a single
    data point the flow is v(x, t) = (data - x) / (1 - t)."""

    def model(x, t):
        return (data - x) / (1 - t).view(-1, *([1] * (x.ndim - 1)))

    return model


def growth(x, t):
    """dx/dt = x: a curved path with the exact solution x(1) = e * x(0)."""
    return x


# ---- the schedule ------------------------------------------------------------------------------


def test_schedule_runs_from_exactly_zero_to_exactly_one():
    for steps, shift in [(1, 1.0), (7, 1.0), (30, 2.77)]:
        schedule = timestep_schedule(steps, shift)
        assert schedule.shape == (steps + 1,) and schedule.dtype == torch.float32
        assert schedule[0].item() == 0.0 and schedule[-1].item() == 1.0
        assert (schedule[1:] > schedule[:-1]).all()


def test_schedule_shift_one_is_even_and_larger_shifts_stay_near_noise():
    assert torch.equal(timestep_schedule(10), torch.linspace(0, 1, 11))
    shifted = timestep_schedule(10, shift=3.0)
    assert torch.equal(shifted, shift_time(torch.linspace(0, 1, 11), 3.0))
    assert (shifted[1:-1] < torch.linspace(0, 1, 11)[1:-1]).all()


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_schedule_rejects_bad_step_counts(steps):
    with pytest.raises(FlowError, match="steps must be an integer >= 1"):
        timestep_schedule(steps)


# ---- landing on the data -----------------------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("steps,shift", [(1, 1.0), (4, 1.0), (10, 3.0)])
def test_samplers_land_on_a_single_data_point(sampler, steps, shift):
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(2, 3, 4, 4, generator=generator)
    noise = torch.randn(2, 3, 4, 4, generator=generator)
    result = sampler(toward(data), noise, timestep_schedule(steps, shift))
    assert torch.isfinite(result).all()  # the singular t = 1 is never evaluated
    assert torch.allclose(result, data, atol=1e-5)


def test_heun_is_more_accurate_than_euler_on_a_curved_field():
    noise = torch.linspace(-2, 2, 9, dtype=torch.float64).view(9, 1)
    exact = math.e * noise
    schedule = timestep_schedule(8).double()
    euler_error = (sample_euler(growth, noise, schedule) - exact).abs().max().item()
    heun_error = (sample_heun(growth, noise, schedule) - exact).abs().max().item()
    assert heun_error < euler_error / 5


def test_euler_is_first_order_and_heun_second_order():
    noise = torch.ones(1, 1, dtype=torch.float64)

    def error(sampler, steps, end):
        schedule = torch.linspace(0, end, steps + 1, dtype=torch.float64)
        return (sampler(growth, noise, schedule) - math.exp(end)).abs().item()

    for end in (0.9, 1.0):  # without and with Heun's final Euler step
        euler_ratio = error(sample_euler, 16, end) / error(sample_euler, 32, end)
        heun_ratio = error(sample_heun, 16, end) / error(sample_heun, 32, end)
        assert euler_ratio == pytest.approx(2, rel=0.1)
        assert heun_ratio == pytest.approx(4, rel=0.15)


def test_heun_model_calls_and_its_final_euler_step():
    calls = []

    def counting(x, t):
        calls.append(t[0].item())
        return growth(x, t)

    noise = torch.ones(2, 3)
    sample_heun(counting, noise, timestep_schedule(5))
    assert len(calls) == 2 * 5 - 1 and max(calls) < 1  # never called at t = 1
    calls.clear()
    sample_heun(counting, noise, torch.linspace(0, 0.5, 6))
    assert len(calls) == 2 * 5 and max(calls) == 0.5
    # a final step that does not end at 1 is a full Heun step, by hand:
    x = sample_heun(growth, noise, torch.tensor([0.0, 0.5]))
    assert torch.allclose(x, noise + 0.5 * (noise + (noise + 0.5 * noise)) / 2)


# ---- determinism, callbacks, input checks ------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_are_deterministic_and_leave_the_noise_alone(sampler):
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))

    def model(x, t):
        with torch.no_grad():
            return network(torch.cat([x, t[:, None]], dim=1))

    noise = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    original = noise.clone()
    schedule = timestep_schedule(6, shift=2.0)
    first = sampler(model, noise, schedule)
    assert torch.equal(first, sampler(model, noise, schedule))
    assert torch.equal(noise, original)
    assert not torch.equal(first, noise)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_callback_sees_every_step(sampler):
    seen = []
    result = sampler(
        growth,
        torch.ones(2, 2),
        timestep_schedule(4),
        callback=lambda index, total, x: seen.append((index, total, x.clone())),
    )
    assert [(index, total) for index, total, _ in seen] == [(i, 4) for i in range(4)]
    assert torch.equal(seen[-1][2], result)
    assert seen[0][2][0, 0] > 1  # after the first step, not before it


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_check_the_schedule_before_calling_the_model(sampler):
    def never(x, t):
        raise AssertionError("the model must not be called")

    noise = torch.zeros(2, 3)
    with pytest.raises(FlowError, match="at least 2 times"):
        sampler(never, noise, torch.tensor([0.0]))
    with pytest.raises(FlowError, match="strictly increasing"):
        sampler(never, noise, torch.tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(FlowError, match="strictly increasing"):
        sampler(never, noise, torch.tensor([1.0, 0.0]))
    with pytest.raises(FlowError, match=r"lie in \[0, 1\]"):
        sampler(never, noise, torch.tensor([0.0, 1.5]))
    with pytest.raises(FlowError, match="batch"):
        sampler(never, torch.tensor(1.0), torch.tensor([0.0, 1.0]))


# ---- classifier-free guidance ------------------------------------------------------------------


def test_guided_velocity_maths():
    conditional = torch.tensor([1.0, 2.0, -3.0])
    unconditional = torch.tensor([0.5, -1.0, 1.0])
    assert torch.equal(guided_velocity(conditional, unconditional, 0.0), unconditional)
    assert torch.equal(guided_velocity(conditional, unconditional, 1.0), conditional)
    assert torch.equal(
        guided_velocity(conditional, unconditional, 3.0), torch.tensor([2.0, 8.0, -11.0])
    )


@pytest.mark.parametrize("guidance", [-0.5, math.nan, math.inf])
def test_guidance_must_be_finite_and_not_negative(guidance):
    zero = torch.zeros(2)
    with pytest.raises(FlowError, match="guidance must be a finite number >= 0"):
        guided_velocity(zero, zero, guidance)
    with pytest.raises(FlowError, match="guidance must be a finite number >= 0"):
        classifier_free_guidance(lambda x, t: x, guidance)


def test_classifier_free_guidance_runs_both_halves_in_one_call():
    calls = []
    scale = torch.tensor([2.0, -1.0, 3.0, 0.5])  # rows 0, 1 conditional; rows 2, 3 not

    def paired(x, t):
        calls.append((x.clone(), t.clone()))
        return x * scale[:, None] + t[:, None]

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([0.25, 0.75])
    velocity = classifier_free_guidance(paired, 4.0)(x, t)
    assert len(calls) == 1
    assert torch.equal(calls[0][0], torch.cat([x, x]))
    assert torch.equal(calls[0][1], torch.cat([t, t]))
    conditional = x * scale[:2, None] + t[:, None]
    unconditional = x * scale[2:, None] + t[:, None]
    assert torch.equal(velocity, guided_velocity(conditional, unconditional, 4.0))


def test_classifier_free_guidance_with_identical_halves_is_the_plain_model():
    data = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    paired = toward(torch.cat([data, data]))
    result = sample_euler(classifier_free_guidance(paired, 5.0), noise, timestep_schedule(3))
    assert torch.allclose(result, data, atol=1e-5)


def test_classifier_free_guidance_rejects_a_model_that_drops_rows():
    guided = classifier_free_guidance(lambda x, t: x[: x.shape[0] // 2], 2.0)
    with pytest.raises(FlowError, match="one velocity per input row"):
        guided(torch.zeros(2, 3), torch.zeros(2))
