"""What both trainers share about where a run starts and how long it lasts: a wall-clock
budget (``--minutes``) and initial weights from an earlier model (``--init``).

A time budget fits the run's step count to the clock: after a few settling steps (graph
compilation, kernel autotuning, data workers starting) the run times its steps, and at every
logged step it sets its total to what the remaining minutes allow, never more than the
configured ``steps``; a budget given without a step count is bounded by the clock alone, not
by the preset's steps (`budget_steps`). The learning-rate schedule spans that total, so a
budgeted run cools down and exports like any other instead of stopping mid-schedule. Export
(and a last evaluation) come on top of the budget.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

from torch import nn

from kinetoscope.errors import KinetoscopeError

SETTLE_STEPS = 3  # a call's first steps, not timed: compilation, autotuning, workers starting
PACE_STEPS = 10  # timed steps before the first plan
CLOCK_BOUND_STEPS = 1_000_000_000  # the step bound of minutes given without steps: none in effect


class TimeBudget:
    """Plans how many steps a run can take to train for about ``minutes`` of wall clock.

    Make one when the loop starts (``step`` is where it starts: 0, or the resumed step) and
    call `plan` at logged steps: the answer is the run's new total step count, or None while
    the pace is still unknown. The total never exceeds ``max_steps`` and never falls below the
    current step, so a run past its budget ends at the next logged step."""

    def __init__(
        self,
        minutes: float,
        step: int,
        max_steps: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        check_minutes(minutes)
        self.seconds = minutes * 60.0
        self.first_step = step
        self.max_steps = max_steps
        self.clock = clock
        self.start = clock()
        self._mark: tuple[int, float] | None = None  # (step, clock) when timing began

    def plan(self, step: int) -> int | None:
        now = self.clock()
        if self._mark is None:
            if step - self.first_step >= SETTLE_STEPS:
                self._mark = (step, now)
            return None
        mark_step, mark_clock = self._mark
        if step - mark_step < PACE_STEPS:
            return None
        pace = (now - mark_clock) / (step - mark_step)  # seconds per step
        remaining = self.seconds - (now - self.start)
        affordable = math.floor(max(remaining, 0.0) / pace)
        return min(self.max_steps, step + affordable)


def budget_steps(steps: int | None, minutes: float | None) -> int | None:
    """The step count to override a preset's with (None: keep the preset's): ``steps`` when
    given; for ``minutes`` alone `CLOCK_BOUND_STEPS`, so that the clock ends the run."""
    if steps is None and minutes is not None:
        return CLOCK_BOUND_STEPS
    return steps


def check_minutes(minutes: float | None) -> None:
    """Raise KinetoscopeError unless ``minutes`` is None or a positive finite number."""
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise KinetoscopeError(f"minutes must be a positive number, got {minutes}")


def check_init_folder(folder: str | None, what: str) -> None:
    """Raise KinetoscopeError unless ``folder`` is None or holds a saved model's config."""
    if folder is not None and not (Path(folder) / "config.json").is_file():
        raise KinetoscopeError(
            f"--init {folder} is not a saved {what} (it has no config.json); pass the folder "
            "that save_pretrained wrote"
        )


def load_initial_weights(model: nn.Module, loaded: nn.Module, ignore: tuple[str, ...] = ()) -> None:
    """Copy ``loaded``'s weights (a model read with ``from_pretrained``) into ``model``, after
    checking that both have the same config except the fields in ``ignore``."""
    mine, theirs = model.config, loaded.config
    differences = [
        field.name
        for field in dataclasses.fields(mine)
        if field.name not in ignore and getattr(mine, field.name) != getattr(theirs, field.name)
    ]
    if differences:
        raise KinetoscopeError(
            "the --init model has a different architecture from the run's preset: "
            + ", ".join(
                f"{name} {getattr(theirs, name)!r} != {getattr(mine, name)!r}"
                for name in differences
            )
        )
    model.load_state_dict(loaded.state_dict())  # copied into the model's own dtype
