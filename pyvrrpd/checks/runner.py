"""Running checks on their schedule (asyncio shell over :mod:`pyvrrpd.checks.base`).

A :class:`CheckRegistry` runs each unique (checker, schedule) once: identical checks wanted
by several virtual servers share one run and every subscriber gets each update. One deadline
heap and one loop timer schedule every check; checks due within ``slack`` of each other run
in the same tick. A checker with a callback form (``start_check``, see :class:`Startable`,
e.g. TCP_CHECK) runs without a task or coroutine; any other runs in a task per run.
Any Exception from a checker becomes a failed result (its cause logged); CancelledError
always propagates.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Protocol

from .base import (
    Checker,
    CheckFailed,
    CheckResult,
    CheckState,
    Schedule,
    Step,
    Transition,
    advance,
    first_run_at,
)

log = logging.getLogger(__name__)

# How long one tick may spend starting due checks before yielding to other callbacks.
TICK_BUDGET = 0.005

# Failures that are ordinary for a health check: logged without a traceback.
EXPECTED = (CheckFailed, OSError, TimeoutError, EOFError, ssl.SSLError, ValueError)

# _with_latency rebuilds a CheckResult field by field (dataclasses.replace is slow).
if tuple(f.name for f in fields(CheckResult)) != (
    "ok",
    "cause",
    "latency",
    "weight",
    "weight_delta",
):  # pragma: no cover - a guard for whoever changes CheckResult
    raise ImportError("CheckResult fields changed: update runner._with_latency")


def describe(exc: BaseException) -> str:
    """A one-line cause for an exception."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _with_latency(r: CheckResult, latency: float) -> CheckResult:
    return CheckResult(r.ok, r.cause, latency, r.weight, r.weight_delta)


def _failure(checker: Checker, exc: Exception, latency: float) -> CheckResult:
    cause = describe(exc)
    if isinstance(exc, EXPECTED):
        log.debug("%s %s failed: %s", checker.kind, checker, cause)
    else:
        log.warning("%s %s raised: %s", checker.kind, checker, cause, exc_info=exc)
    return CheckResult(False, cause, latency)


async def run_once(checker: Checker) -> CheckResult:
    """Run ``checker`` once; the result carries the latency; exceptions become failures."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        result = await checker.check()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return _failure(checker, exc, loop.time() - start)
    return _with_latency(result, loop.time() - start)


class Cancellable(Protocol):
    """A check in flight that can be abandoned."""

    def cancel(self) -> None:
        """Stop the run; its callback is never called."""


Outcome = CheckResult | Exception
Done = Callable[[Outcome], None]


class Startable(Protocol):
    """The optional callback form of a checker, run by the registry without a task."""

    def start_check(self, loop: asyncio.AbstractEventLoop, done: Done) -> Cancellable | None:
        """Start one run; ``done`` follows once (None returned: it already ran)."""
        ...


@dataclass(frozen=True, slots=True)
class CheckUpdate:
    """One result of a shared check, as delivered to its subscribers."""

    checker: Checker
    result: CheckResult
    state: CheckState
    transition: Transition | None
    weight_changed: bool


Callback = Callable[[CheckUpdate], None]
Key = tuple[Checker, Schedule]


@dataclass(eq=False, slots=True)
class _Entry:
    checker: Checker
    schedule: Schedule
    state: CheckState
    subscribers: list[Subscription] = field(default_factory=list)
    runs: int = 0
    live: bool = True
    started: float = 0.0
    in_flight: bool = False  # a run started and its result not yet taken
    done: Done | None = None  # the callback of the fast form, bound once
    pending: Cancellable | None = None  # a fast run in flight
    task: asyncio.Task[None] | None = None  # a task run in flight


class Subscription:
    """A subscriber's handle on a (possibly shared) check."""

    def __init__(
        self, registry: CheckRegistry, key: Key, entry: _Entry, callback: Callback
    ) -> None:
        self._registry = registry
        self._key = key
        self._entry = entry
        self.callback = callback
        self.active = True

    @property
    def state(self) -> CheckState:
        """The check's current hysteresis state (frozen once the check stopped)."""
        return self._entry.state

    def close(self) -> None:
        """Stop receiving updates; the check stops when its last subscriber leaves."""
        if self.active:
            self.active = False
            self._registry._unsubscribe(self._key, self)


class CheckRegistry:
    """Owns the running checks; use as ``async with CheckRegistry() as checks:``.

    ``draw`` spreads first runs over ``warmup``; ``slack`` is how late a check may start so
    that checks due close together run in one tick (never early).
    """

    def __init__(self, *, draw: Callable[[], float] = random.random, slack: float = 0.001) -> None:
        self._draw = draw
        self._slack = slack
        self._entries: dict[Key, _Entry] = {}
        self._group: asyncio.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._timer: asyncio.Handle | None = None
        self._timer_at = math.inf
        self._ticking = False

    async def __aenter__(self) -> CheckRegistry:
        self._loop = asyncio.get_running_loop()
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for entry in self._entries.values():
            self._stop(entry)
        self._entries.clear()
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        group, self._group = self._group, None
        assert group is not None
        await group.__aexit__(et, exc, tb)

    def subscribe(self, checker: Checker, schedule: Schedule, callback: Callback) -> Subscription:
        """Get updates of ``checker`` run on ``schedule``, starting it if it is new."""
        if self._group is None or self._loop is None:
            raise RuntimeError("CheckRegistry is not running")
        key: Key = (checker, schedule)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(checker, schedule, CheckState.initial(schedule))
            if callable(getattr(checker, "start_check", None)):
                entry.done = self._fast_done(entry)
            self._entries[key] = entry
            self._schedule(entry, first_run_at(schedule, self._loop.time(), self._draw()))
        sub = Subscription(self, key, entry, callback)
        entry.subscribers.append(sub)
        return sub

    def running(self) -> int:
        """How many distinct checks are running."""
        return len(self._entries)

    def runs(self, checker: Checker, schedule: Schedule) -> int:
        """How many times a check has run so far."""
        entry = self._entries.get((checker, schedule))
        return 0 if entry is None else entry.runs

    def _unsubscribe(self, key: Key, sub: Subscription) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.subscribers.remove(sub)
        if not entry.subscribers:
            del self._entries[key]
            self._stop(entry)

    @staticmethod
    def _stop(entry: _Entry) -> None:
        """No more runs; abandon the one in flight (its heap item is skipped when due)."""
        entry.live = False
        pending, entry.pending = entry.pending, None
        if pending is not None:
            pending.cancel()
        if entry.task is not None:
            entry.task.cancel()

    # Scheduling: one heap of (due time, sequence, entry) and one loop timer for its head.

    def _schedule(self, entry: _Entry, when: float) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), entry))
        if not self._ticking and when < self._timer_at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when + self._slack, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer, self._timer_at = None, math.inf
        heap = self._heap
        now = loop.time()
        budget = now + TICK_BUDGET
        self._ticking = True
        try:
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)[2]
                if entry.live:
                    self._start(entry)
                    if entry.started > budget:  # let other callbacks run, then go on
                        break
        finally:
            self._ticking = False
            if heap and heap[0][0] <= now:
                self._timer_at = heap[0][0]
                self._timer = loop.call_soon(self._tick)
            elif heap:
                self._arm(heap[0][0])

    def _start(self, entry: _Entry) -> None:
        assert self._loop is not None and self._group is not None
        entry.started = self._loop.time()
        entry.in_flight = True
        if entry.done is None:
            entry.task = self._group.create_task(
                self._run_task(entry), name=f"check {entry.checker}"
            )
            return
        start: Callable[[asyncio.AbstractEventLoop, Done], Cancellable | None]
        start = entry.checker.start_check  # type: ignore[attr-defined]
        try:
            pending = start(self._loop, entry.done)
        except Exception as exc:
            entry.done(exc)
            return
        if pending is not None:
            if entry.live:
                entry.pending = pending
            else:  # stopped from inside its own start
                pending.cancel()

    def _fast_done(self, entry: _Entry) -> Done:
        loop = self._loop
        assert loop is not None

        def done(outcome: Outcome) -> None:
            entry.pending = None
            if not entry.live or not entry.in_flight:  # stopped, or a second call
                return
            entry.in_flight = False
            now = loop.time()
            if isinstance(outcome, CheckResult):
                result = _with_latency(outcome, now - entry.started)
            else:
                result = _failure(entry.checker, outcome, now - entry.started)
            self._complete(entry, result, now)

        return done

    async def _run_task(self, entry: _Entry) -> None:
        result = await run_once(entry.checker)
        entry.task = None
        entry.in_flight = False
        if entry.live:
            self._complete(entry, result, asyncio.get_running_loop().time())

    def _complete(self, entry: _Entry, result: CheckResult, now: float) -> None:
        entry.runs += 1
        step = advance(entry.state, entry.schedule, result, now)
        entry.state = step.state
        self._publish(entry, result, step)
        if entry.live:
            self._schedule(entry, step.next_at)

    def _publish(self, entry: _Entry, result: CheckResult, step: Step) -> None:
        if step.transition is not None:
            log.info(
                "%s %s is now %s: %s",
                entry.checker.kind,
                entry.checker,
                step.transition.value,
                result.cause,
            )
        update = CheckUpdate(
            entry.checker, result, step.state, step.transition, step.weight_changed
        )
        for sub in list(entry.subscribers):
            if not sub.active:
                continue
            try:
                sub.callback(update)
            except Exception:
                log.exception("check subscriber failed on %s", entry.checker)
