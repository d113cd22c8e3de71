"""The check runner: failure isolation, cancellation, sharing of identical checks."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from pyvrrpd.checks.base import CheckResult, Schedule, Transition, passed
from pyvrrpd.checks.runner import CheckRegistry, CheckUpdate, Subscription, run_once
from pyvrrpd.checks.tcp import TcpCheck

from .conftest import ep, tcp_server

FAST = Schedule(delay_loop=0.05, retry=0)


@dataclass(frozen=True)
class Boom:
    """A checker that always raises."""

    kind: ClassVar[str] = "BOOM"
    name: str = "boom"

    async def check(self) -> CheckResult:
        raise RuntimeError("boom")


@dataclass(frozen=True)
class Fine:
    kind: ClassVar[str] = "FINE"
    name: str = "fine"

    async def check(self) -> CheckResult:
        await asyncio.sleep(0)
        return passed("fine")


@dataclass(frozen=True)
class Scripted:
    """Returns the outcomes of a shared script in order (then keeps the last)."""

    kind: ClassVar[str] = "SCRIPTED"
    outcomes: tuple[bool, ...]
    cursor: list[int] = field(default_factory=lambda: [0], compare=False, hash=False)

    async def check(self) -> CheckResult:
        i = min(self.cursor[0], len(self.outcomes) - 1)
        self.cursor[0] += 1
        return CheckResult(self.outcomes[i], f"#{i}")


@dataclass(frozen=True)
class SelfCancel:
    kind: ClassVar[str] = "CANCEL"

    async def check(self) -> CheckResult:
        raise asyncio.CancelledError


async def wait_for(cond: object, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_run_once_turns_exceptions_into_failures() -> None:
    res = await run_once(Boom())
    assert not res.ok and res.cause == "RuntimeError: boom" and res.latency >= 0


async def test_run_once_never_swallows_cancellation() -> None:
    with pytest.raises(asyncio.CancelledError):
        await run_once(SelfCancel())


async def test_a_crashing_checker_does_not_disturb_its_siblings() -> None:
    booms: list[CheckUpdate] = []
    fines: list[CheckUpdate] = []
    async with CheckRegistry(draw=lambda: 0.0) as reg:
        reg.subscribe(Boom(), FAST, booms.append)
        reg.subscribe(Fine(), FAST, fines.append)
        await wait_for(lambda: len(booms) >= 5 and len(fines) >= 5)
        assert reg.running() == 2
    assert all(not u.result.ok and u.result.cause == "RuntimeError: boom" for u in booms)
    assert booms[0].transition is Transition.DOWN and all(u.transition is None for u in booms[1:])
    assert all(u.result.ok for u in fines) and all(u.state.up for u in fines)


async def test_identical_checks_run_once_for_all_subscribers() -> None:
    """Three virtual servers checking the same real server: one connection per delay_loop."""

    async def idle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()

    sched = Schedule(delay_loop=0.1, retry=0)
    got: list[list[CheckUpdate]] = [[], [], []]
    loop = asyncio.get_running_loop()
    times: list[float] = []
    async with tcp_server(idle) as srv, CheckRegistry(draw=lambda: 0.0) as reg:
        subs: list[Subscription] = []

        def last(u: CheckUpdate) -> None:
            got[2].append(u)
            times.append(loop.time())
            if len(got[2]) == 4:  # stop right after the 4th run: no run can be in flight
                for s in subs:
                    s.close()

        subs += [reg.subscribe(TcpCheck(ep(srv.port)), sched, g.append) for g in got[:2]]
        subs += [reg.subscribe(TcpCheck(ep(srv.port)), sched, last)]
        other = reg.subscribe(TcpCheck(ep(srv.port)), Schedule(delay_loop=50), lambda u: None)
        assert reg.running() == 2  # the other schedule is another check
        await wait_for(lambda: len(got[2]) == 4)
        assert reg.running() == 1
        other.close()
        await wait_for(lambda: srv.connections >= 5)
        await asyncio.sleep(0.15)  # a further run would connect by now
        connections = srv.connections
    assert connections == 5  # 4 shared runs + the single run of the 50 s schedule
    assert [len(g) for g in got] == [4, 4, 4]
    assert all(u.result.ok for g in got for u in g)
    assert got[0] == got[1] == got[2]  # the very same updates
    assert all(b - a >= 0.099 for a, b in itertools.pairwise(times))  # one per delay_loop


async def test_last_unsubscribe_stops_the_check() -> None:
    seen: list[CheckUpdate] = []
    async with CheckRegistry(draw=lambda: 0.0) as reg:
        a = reg.subscribe(Fine(), FAST, seen.append)
        b = reg.subscribe(Fine(), FAST, lambda u: None)
        await wait_for(lambda: len(seen) >= 2)
        a.close()
        a.close()  # idempotent
        assert reg.running() == 1
        b.close()
        assert reg.running() == 0
        count = len(seen)
        await asyncio.sleep(0.15)
        assert len(seen) == count


async def test_hysteresis_and_retry_delay_through_the_runner() -> None:
    sched = Schedule(delay_loop=0.3, retry=1, delay_before_retry=0.05)
    checker = Scripted((True, False, False, True))
    seen: list[tuple[float, CheckUpdate]] = []
    loop = asyncio.get_running_loop()
    async with CheckRegistry(draw=lambda: 0.0) as reg:
        reg.subscribe(checker, sched, lambda u: seen.append((loop.time(), u)))
        await wait_for(lambda: len(seen) >= 4)
    transitions = [u.transition for _, u in seen[:4]]
    assert transitions == [None, None, Transition.DOWN, Transition.UP]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    # Sleeps never end early; the upper bounds leave room for a loaded machine.
    assert 0.299 <= gaps[0] < 0.6  # delay_loop after success
    assert 0.049 <= gaps[1] < 0.2  # delay_before_retry while retrying
    assert 0.299 <= gaps[2] < 0.6  # delay_loop once down


async def test_warmup_delays_the_first_run_and_a_bad_subscriber_is_contained() -> None:
    seen: list[float] = []
    loop = asyncio.get_running_loop()

    def bad(u: CheckUpdate) -> None:
        raise ValueError("subscriber bug")

    start = loop.time()
    async with CheckRegistry(draw=lambda: 1.0) as reg:
        reg.subscribe(Fine(), Schedule(delay_loop=0.05, warmup=0.3), bad)
        reg.subscribe(
            Fine(), Schedule(delay_loop=0.05, warmup=0.3), lambda u: seen.append(loop.time())
        )
        await wait_for(lambda: len(seen) >= 3)
    assert seen[0] - start >= 0.29


async def test_subscribe_outside_the_context_is_refused() -> None:
    reg = CheckRegistry()
    with pytest.raises(RuntimeError):
        reg.subscribe(Fine(), FAST, lambda u: None)
