"""Plans: what each tier may make, enforced by the server before a job is queued.

| tier | longest video | largest short side | jobs at once | credits a month | queue priority |
|------|---------------|--------------------|--------------|-----------------|----------------|
| free | 4 s           | 128 px             | 1            | 100             | 0              |
| plus | 30 s          | 192 px             | 2            | 1000            | 10             |
| pro  | 120 s         | 256 px             | 4            | 5000            | 20             |

A video costs `credits_for` its length and size: one credit per second at a 128-pixel short
side, scaled by the area (at least one credit). Credits are counted over the calendar month
(UTC) of the videos made, queued or running; a failed or cancelled video costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from kinetoscope.errors import KinetoscopeError
from kinetoscope.studio.errors import StudioError

BASE_SIDE = 128  # the short side one credit a second pays for


class PlanLimitError(StudioError):
    """A request the account's plan does not allow: 403 for a limit of one video, 429 for
    too many jobs at once, 402 for credits spent."""

    status = 403


@dataclass(frozen=True)
class Plan:
    name: str
    max_seconds: float  # of one video
    max_size: int  # short side in pixels
    concurrent_jobs: int  # queued or running at once
    monthly_credits: int
    max_upload_bytes: int
    priority: int  # higher runs first when the queue supports priorities

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "max_seconds": self.max_seconds,
            "max_size": self.max_size,
            "concurrent_jobs": self.concurrent_jobs,
            "monthly_credits": self.monthly_credits,
            "max_upload_bytes": self.max_upload_bytes,
        }


_MB = 1 << 20
PLANS: dict[str, Plan] = {
    "free": Plan("free", 4.0, 128, 1, 100, 16 * _MB, 0),
    "plus": Plan("plus", 30.0, 192, 2, 1000, 32 * _MB, 10),
    "pro": Plan("pro", 120.0, 256, 4, 5000, 64 * _MB, 20),
}
TIERS = tuple(PLANS)


def plan_for(tier: str) -> Plan:
    """The plan of a tier name, or a `KinetoscopeError` listing the tiers."""
    if tier not in PLANS:
        raise KinetoscopeError(f"unknown tier {tier!r}; tiers: {', '.join(TIERS)}")
    return PLANS[tier]


def credits_for(seconds: float, size: int) -> int:
    """The credits a video of ``seconds`` at a short side of ``size`` pixels costs."""
    return max(1, math.ceil(seconds * (size / BASE_SIDE) ** 2 - 1e-9))


def month_start(now: datetime) -> datetime:
    """The first instant of ``now``'s calendar month."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def check_request(
    plan: Plan, seconds: float, size: int, active_jobs: int, credits_used: int
) -> int:
    """The credits a video of ``seconds`` at ``size`` costs, or a `PlanLimitError` saying
    which limit of ``plan`` it passes (``active_jobs``: queued or running now;
    ``credits_used``: this month's)."""
    if seconds > plan.max_seconds + 1e-9:
        raise PlanLimitError(
            f"the {plan.name} plan makes videos up to {plan.max_seconds:g} s; this one would be "
            f"{seconds:g} s"
        )
    if size > plan.max_size:
        raise PlanLimitError(
            f"the {plan.name} plan makes videos up to a {plan.max_size}-pixel short side; "
            f"this one asks for {size}"
        )
    if active_jobs >= plan.concurrent_jobs:
        raise PlanLimitError(
            f"the {plan.name} plan runs {plan.concurrent_jobs} job(s) at once and you have "
            f"{active_jobs} queued or running: wait for one to finish or cancel it",
            status=429,
        )
    cost = credits_for(seconds, size)
    left = plan.monthly_credits - credits_used
    if cost > left:
        raise PlanLimitError(
            f"this video costs {cost} credits and {max(left, 0)} of the {plan.name} plan's "
            f"{plan.monthly_credits} are left this month",
            status=402,
        )
    return cost
