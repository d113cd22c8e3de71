"""Alarms on the loop clock: the shared timerfd clock and the call_at fallback behave alike."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable

import pytest

from pyvrrpd.vrrp.alarm import COARSE, NEAR, Alarm, ClockAlarm, LoopAlarm, clock_for, make_alarm

Factory = Callable[[asyncio.AbstractEventLoop, Callable[[], None]], Alarm]
KINDS: list[Factory] = [LoopAlarm, lambda loop, cb: clock_for(loop).alarm(cb)]
IDS = ["call_at", "timerfd"]


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
async def test_fires_once_not_before_its_time(kind: Factory) -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    alarm = kind(loop, lambda: fired.append(loop.time()))
    try:
        when = loop.time() + 0.05
        alarm.arm(when)
        assert alarm.when == when
        await asyncio.sleep(0.3)
        assert len(fired) == 1 and fired[0] >= when  # a correctness bound, not a speed goal
        assert alarm.when is None
    finally:
        alarm.close()


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
async def test_disarm_rearm_and_past_times(kind: Factory) -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    alarm = kind(loop, lambda: fired.append("x"))
    try:
        alarm.arm(loop.time() + 0.05)
        alarm.disarm()
        await asyncio.sleep(0.15)
        assert fired == [] and alarm.when is None
        alarm.arm(loop.time() + 10)
        alarm.arm(loop.time() + 0.02)  # re-armed earlier: only the new time counts
        await asyncio.sleep(0.15)
        assert fired == ["x"]
        alarm.arm(loop.time() - 1.0)  # already past: fires at once
        await asyncio.sleep(0.05)
        assert fired == ["x", "x"]
        alarm.arm(loop.time() + 0.02)
        alarm.arm(loop.time() + 0.3)  # re-armed later: the earlier time no longer counts
        await asyncio.sleep(0.1)
        assert fired == ["x", "x"]
    finally:
        alarm.close()


async def test_many_alarms_share_one_descriptor_and_fire_in_order() -> None:
    loop = asyncio.get_running_loop()
    before = len(os.listdir("/proc/self/fd"))
    order: list[int] = []
    alarms = [clock_for(loop).alarm(lambda i=i: order.append(i)) for i in range(50)]
    assert len(os.listdir("/proc/self/fd")) == before + 1
    start = loop.time() + 0.02
    offsets = list(range(50))
    random.Random(7).shuffle(offsets)
    for i, a in enumerate(alarms):
        a.arm(start + offsets[i] * 0.002)
    for a in alarms[:10]:  # disarmed ones never fire
        a.disarm()
    await asyncio.sleep(0.25)
    expected = sorted(range(10, 50), key=lambda i: offsets[i])
    assert order == expected
    for a in alarms:
        a.close()
    assert len(os.listdir("/proc/self/fd")) == before


async def test_rearm_churn_keeps_the_heap_bounded() -> None:
    loop = asyncio.get_running_loop()
    clock = clock_for(loop)
    alarms = [clock.alarm(lambda: None) for _ in range(10)]
    try:
        for n in range(5000):  # near alarms moved again and again: stale heap entries
            alarms[n % 10].arm(loop.time() + NEAR / 2 + n * 1e-7)
        assert len(clock) <= 10 + 2 * 64 + 10
    finally:
        for a in alarms:
            a.close()


async def test_far_and_coarse_alarms_wait_on_call_at() -> None:
    loop = asyncio.get_running_loop()
    clock = clock_for(loop)
    fired: list[str] = []
    far = clock.alarm(lambda: fired.append("far"))
    coarse = clock.alarm(lambda: fired.append("coarse"))
    try:
        far_when = loop.time() + 0.2
        far.arm(far_when)
        coarse.arm(loop.time() + 0.02, slack=COARSE)
        assert len(clock) == 0  # neither is in the precise heap yet
        for _ in range(100):  # a backup re-arming on every advert: no heap entry either
            far.arm(far_when)
        assert len(clock) == 0
        await asyncio.sleep(0.03)
        assert fired == ["coarse"] and len(clock) == 0
        await asyncio.sleep(far_when - NEAR / 2 - loop.time())  # within NEAR: in the heap
        assert len(clock) == 1 and far.when == far_when
        await asyncio.sleep(0.05)
        assert fired == ["coarse", "far"]
    finally:
        far.close()
        coarse.close()


async def test_a_failing_callback_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    bad = clock_for(loop).alarm(boom)
    good = clock_for(loop).alarm(lambda: fired.append("good"))
    try:
        when = loop.time() + 0.02
        bad.arm(when)
        good.arm(when)
        await asyncio.sleep(0.1)
        assert fired == ["good"]
        assert "alarm callback failed" in caplog.text
    finally:
        bad.close()
        good.close()


async def test_units_default_to_the_shared_clock_and_closed_alarms_refuse() -> None:
    loop = asyncio.get_running_loop()
    alarm = make_alarm(loop, lambda: None)
    assert isinstance(alarm, ClockAlarm)
    assert isinstance(make_alarm(loop, lambda: None, precise=False), LoopAlarm)
    alarm.close()
    with pytest.raises(RuntimeError):
        alarm.arm(loop.time() + 1)
