"""The parameter EMA: exact update, swapping in and out, saving and loading."""

import pytest
import torch
from torch import nn

from kinetoscope.errors import KinetoscopeError
from kinetoscope.training.ema import EMA


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def test_update_is_decay_times_average_plus_the_rest_times_weights():
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for average, before, now in zip(ema.shadow, start, model.parameters(), strict=True):
        torch.testing.assert_close(average, 0.75 * before + 0.25 * now.detach(), rtol=0, atol=1e-6)


def test_swapping_shows_the_average_inside_and_restores_the_weights_after():
    model = _model()
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    ema.update(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    averages = {k: v.clone() for k, v in ema.state_dict().items()}
    with ema.swapped_into(model):
        assert all(torch.equal(model.state_dict()[k], averages[k]) for k in averages)
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
    assert all(torch.equal(ema.state_dict()[k], averages[k]) for k in averages)


def test_weights_loaded_while_swapped_in_become_the_average():
    model, other = _model(), nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    ema = EMA(model, decay=0.9)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.swapped_into(model):
        model.load_state_dict(other.state_dict())
    assert all(torch.equal(ema.state_dict()[k], other.state_dict()[k]) for k in weights)
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)


def test_state_round_trips_and_a_foreign_state_is_refused():
    model = _model()
    ema = EMA(model, decay=0.9)
    copy = EMA(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), decay=0.9)
    copy.load_state_dict(ema.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(copy.shadow, ema.shadow, strict=True))
    with pytest.raises(KinetoscopeError, match="does not fit"):
        copy.load_state_dict({"0.weight": torch.zeros(4, 3)})
    with pytest.raises(KinetoscopeError, match="decay"):
        EMA(model, decay=1.0)
