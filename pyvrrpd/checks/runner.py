"""Running checks on their schedule (asyncio shell over :mod:`pyvrrpd.checks.base`).

A :class:`CheckRegistry` runs one task per unique (checker, schedule): identical checks
wanted by several virtual servers run once and every subscriber gets each update.
Any Exception from a checker becomes a failed result (its cause logged); CancelledError
always propagates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType

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

# Failures that are ordinary for a health check: logged without a traceback.
EXPECTED = (CheckFailed, OSError, TimeoutError, EOFError, ssl.SSLError, ValueError)


def describe(exc: BaseException) -> str:
    """A one-line cause for an exception."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


async def run_once(checker: Checker) -> CheckResult:
    """Run ``checker`` once; the result carries the latency; exceptions become failures."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        result = await checker.check()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        cause = describe(exc)
        if isinstance(exc, EXPECTED):
            log.debug("%s %s failed: %s", checker.kind, checker, cause)
        else:
            log.warning("%s %s raised: %s", checker.kind, checker, cause, exc_info=exc)
        result = CheckResult(False, cause)
    return replace(result, latency=loop.time() - start)


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


@dataclass(eq=False)
class _Entry:
    checker: Checker
    schedule: Schedule
    state: CheckState
    task: asyncio.Task[None] | None = None
    subscribers: list[Subscription] = field(default_factory=list)
    runs: int = 0


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
    """Owns the check tasks; use as ``async with CheckRegistry() as checks:``."""

    def __init__(self, *, draw: Callable[[], float] = random.random) -> None:
        self._draw = draw
        self._entries: dict[Key, _Entry] = {}
        self._group: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> CheckRegistry:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for entry in list(self._entries.values()):
            if entry.task is not None:
                entry.task.cancel()
        self._entries.clear()
        group, self._group = self._group, None
        assert group is not None
        await group.__aexit__(et, exc, tb)

    def subscribe(self, checker: Checker, schedule: Schedule, callback: Callback) -> Subscription:
        """Get updates of ``checker`` run on ``schedule``, starting it if it is new."""
        if self._group is None:
            raise RuntimeError("CheckRegistry is not running")
        key: Key = (checker, schedule)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(checker, schedule, CheckState.initial(schedule))
            self._entries[key] = entry
            entry.task = self._group.create_task(self._loop(entry), name=f"check {checker}")
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
            if entry.task is not None:
                entry.task.cancel()

    async def _loop(self, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        next_at = first_run_at(entry.schedule, loop.time(), self._draw())
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            result = await run_once(entry.checker)
            entry.runs += 1
            step = advance(entry.state, entry.schedule, result, loop.time())
            entry.state = step.state
            self._publish(entry, result, step)
            next_at = step.next_at

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
