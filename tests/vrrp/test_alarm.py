"""Alarms on the loop clock: timerfd (Linux) and the call_at fallback behave alike."""

from __future__ import annotations

import asyncio
import os

import pytest

from pyvrrpd.vrrp.alarm import LoopAlarm, TimerfdAlarm, make_alarm

KINDS = [LoopAlarm, TimerfdAlarm]


@pytest.mark.parametrize("kind", KINDS)
async def test_fires_once_not_before_its_time(kind: type) -> None:
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


@pytest.mark.parametrize("kind", KINDS)
async def test_disarm_rearm_and_past_times(kind: type) -> None:
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
    finally:
        alarm.close()


async def test_timerfd_close_releases_the_descriptor() -> None:
    loop = asyncio.get_running_loop()
    before = len(os.listdir("/proc/self/fd"))
    alarms = [TimerfdAlarm(loop, lambda: None) for _ in range(20)]
    for a in alarms:
        a.arm(loop.time() + 60)
    assert len(os.listdir("/proc/self/fd")) >= before + 20
    for a in alarms:
        a.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert isinstance(make_alarm(loop, lambda: None, precise=True), TimerfdAlarm)
    assert isinstance(make_alarm(loop, lambda: None), LoopAlarm)  # the units' default
