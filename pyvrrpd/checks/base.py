"""Health-check results and the retry hysteresis of one check (pure: no I/O, no clock).

The scheduling follows keepalived's checkers: a check starts *up* (or *down* with ``alpha``),
runs first after ``warmup * random`` seconds, then every ``delay_loop``. While up, a failure
is retried after ``delay_before_retry``; only ``retry + 1`` consecutive failures take it down.
One success brings it up again. The shell passes ``now`` and the random draw in.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of running a check once.

    ``weight`` is None when the check does not set a weight. Otherwise it is an absolute
    weight for the real server (MISC_CHECK ``misc_dynamic``), or, when ``weight_delta`` is
    true, an amount added to the configured weight (FILE_CHECK, like keepalived's track_file).
    """

    ok: bool
    cause: str = ""
    latency: float = 0.0
    weight: int | None = None
    weight_delta: bool = False


def passed(cause: str = "", weight: int | None = None, *, delta: bool = False) -> CheckResult:
    """A successful result (latency is filled in by the runner)."""
    return CheckResult(True, cause, 0.0, weight, delta)


def failed(cause: str) -> CheckResult:
    """A failed result with its cause (latency is filled in by the runner)."""
    return CheckResult(False, cause, 0.0, None)


class CheckFailed(Exception):
    """Raised inside a checker to fail the check with a readable cause."""


class Checker(Hashable, Protocol):
    """A health check: frozen, hashable parameters plus the coroutine that runs them once.

    Two checkers that compare equal are the same check and are run only once.
    Raising any Exception from :meth:`check` counts as a failed result.
    """

    @property
    def kind(self) -> str:
        """The keepalived keyword of this check, e.g. ``TCP_CHECK``."""
        ...

    async def check(self) -> CheckResult:
        """Run the check once."""
        ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a check runs and how many failures take it down (keepalived's checker options)."""

    delay_loop: float = 60.0
    retry: int = 1
    delay_before_retry: float = 1.0
    alpha: bool = False
    warmup: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_loop <= 0:
            raise ValueError("delay_loop must be positive")
        if self.retry < 0 or self.delay_before_retry < 0 or self.warmup < 0:
            raise ValueError("retry, delay_before_retry and warmup must not be negative")


class Transition(enum.Enum):
    """A change of a check's up/down state."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class CheckState:
    """The hysteresis state of one check.

    ``failures`` counts the retries already spent in the current run of failures while up;
    ``has_run`` is false until the first result; ``weight`` is the last weight reported by a
    successful result (None: the configured weight).
    """

    up: bool
    has_run: bool = False
    failures: int = 0
    weight: int | None = None
    weight_delta: bool = False
    last: CheckResult | None = None

    @classmethod
    def initial(cls, schedule: Schedule) -> CheckState:
        """The state before the first run: up, or down when ``alpha`` is set."""
        return cls(up=not schedule.alpha)


@dataclass(frozen=True, slots=True)
class Step:
    """What one result did: the new state, when to run next, and what changed."""

    state: CheckState
    next_at: float
    transition: Transition | None
    weight_changed: bool
    retrying: bool


def first_run_at(schedule: Schedule, now: float, draw: float) -> float:
    """When the first run happens: ``now`` plus ``warmup`` scaled by ``draw`` in [0, 1]."""
    if not 0.0 <= draw <= 1.0:
        raise ValueError("draw must be within [0, 1]")
    return now + schedule.warmup * draw


def advance(state: CheckState, schedule: Schedule, result: CheckResult, now: float) -> Step:
    """Apply one result at time ``now`` (when the run ended); return the next step."""
    # (CheckState is built directly: dataclasses.replace costs several times more, and this
    # runs once per check result)
    if result.ok:
        new = CheckState(True, True, 0, result.weight, result.weight_delta, result)
        changed = (new.weight, new.weight_delta) != (state.weight, state.weight_delta)
        transition = Transition.UP if not state.up else None
        return Step(new, now + schedule.delay_loop, transition, changed, False)
    weight, delta = state.weight, state.weight_delta
    if (state.up or not state.has_run) and state.failures >= schedule.retry:
        new = CheckState(False, True, 0, weight, delta, result)
        transition = Transition.DOWN if state.up else None
        return Step(new, now + schedule.delay_loop, transition, False, False)
    if state.up:
        new = CheckState(True, True, state.failures + 1, weight, delta, result)
        return Step(new, now + schedule.delay_before_retry, None, False, True)
    new = CheckState(False, True, state.failures, weight, delta, result)
    return Step(new, now + schedule.delay_loop, None, False, False)
