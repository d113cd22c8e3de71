"""What drives the state machines of running instances and owns their timer.

A :class:`Unit` is one instance (:class:`Solo`) or a ``vrrp_sync_group`` (:class:`Group`).
It feeds events to the machines with the loop's clock (or a packet's arrival time), hands
their actions to the instances, and keeps one alarm at the next deadline.

Before a backup's takeover deadline the unit wakes :data:`WARM_LEAD` early: after
milliseconds of idling, code paths run about ten times slower than warm ones (measured
here: 88 us cold against 8 us for the same advert encoding). It runs the takeover dry (the
machine on a copy, the instance's advert bytes, the backend's requests), then waits for the
deadline busy, as long as the loop has nothing else to do, so that the timer is not late by
the CPU's wake-up either.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .alarm import Alarm, make_alarm
from .fsm import VrrpFsm
from .fsm_types import Event, IllegalEvent, Timer
from .sync import GroupStateChanged, SyncGroup, Tagged

if TYPE_CHECKING:
    from .instance import VrrpInstance

log = logging.getLogger("pyvrrpd.vrrp")

GroupListener = Callable[[GroupStateChanged], None]

#: How long before a backup's takeover deadline the unit wakes to warm the takeover path.
WARM_LEAD = 0.001
#: How late a deadline that is not a takeover (a master's next advert) may be met, so
#: that the alarms of many instances share a wakeup (asyncio's own timers are up to 1 ms
#: late). After an idle spell a wakeup costs about 100 us of CPU here.
SLACK = 0.001
#: A warm-up within this long of another one is skipped: the code is warm already, and
#: many instances taking over together must not queue warm-ups before their deadlines.
WARM_AGAIN_AFTER = 0.005
_SPIN_LOOK = 5e-6


class Unit:
    """One instance or a sync group: machines, their alarm, and where actions go."""

    _last_warm_up = -math.inf  # process-wide: the code paths are shared

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.members: dict[str, VrrpInstance] = {}
        self.group_listeners: list[GroupListener] = []
        self._alarm: Alarm = make_alarm(loop, self._on_timer)
        self._warmed_for: float | None = None  # the takeover deadline last warmed for

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        raise NotImplementedError

    def handle_timers(self, now: float) -> list[Tagged]:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        raise NotImplementedError

    def last_time(self) -> float:
        """The latest time the machines have seen (they refuse to go back)."""
        raise NotImplementedError

    def takeover_at(self) -> float | None:
        """When a backup's timer may make this unit master, or None."""
        raise NotImplementedError

    def warm_up(self, deadline: float) -> None:
        """Run the takeover path dry: the machines on copies, the instances' preparation."""
        raise NotImplementedError

    def feed(self, member: str, event: Event, at: float | None = None) -> None:
        """One event for ``member``, which happened at ``at`` (default: now); actions go to
        the instances they are tagged with.

        A packet's arrival time is used when it is earlier than now, so that timers count
        from the arrival as RFC 5798 has it; never earlier than what the machines have seen.
        """
        now = self.loop.time()
        if at is not None and at < now:
            now = max(at, self.last_time())
        try:
            tagged = self.handle(member, event, now)
        except IllegalEvent as exc:
            log.debug("(%s) ignored %s: %s", member, type(event).__name__, exc)
            tagged = []
        self._dispatch(tagged)

    def _on_timer(self) -> None:
        now = self.loop.time()
        deadline = self.takeover_at()
        if (
            deadline is not None
            and now < deadline <= now + 2 * WARM_LEAD
            and deadline == self.next_deadline()
            and self._warmed_for != deadline
        ):
            self._warmed_for = deadline
            self._alarm.arm(deadline)
            if now - Unit._last_warm_up >= WARM_AGAIN_AFTER:
                Unit._last_warm_up = now
                try:
                    self.warm_up(deadline)
                except Exception:
                    log.exception("takeover warm-up failed")
            if not _wait_busy(self.loop, deadline):
                return  # the loop has work: the alarm fires after it
            self._alarm.disarm()
            now = self.loop.time()
        self._dispatch(self.handle_timers(now))

    def _dispatch(self, tagged: list[Tagged]) -> None:
        for name, action in tagged:
            if isinstance(action, GroupStateChanged):
                log.info(
                    "VRRP_Group(%s) Syncing instances to %s state", action.group, action.state.value
                )
                for listener in self.group_listeners:
                    listener(action)
            else:
                self.members[name].execute(action)
        self._arm()

    def _arm(self) -> None:
        """Keep the alarm at the next deadline: precisely (and :data:`WARM_LEAD` early,
        for the warm-up) when it is a takeover; otherwise with :data:`SLACK`, so that the
        adverts of many masters share wakeups."""
        deadline = self.next_deadline()
        if deadline is None:
            self._alarm.disarm()
            return
        slack = SLACK
        if deadline == self.takeover_at():
            slack = 0.0
            if deadline != self._warmed_for:
                deadline = max(deadline - WARM_LEAD, min(deadline, self.loop.time()))
        if self._alarm.when != deadline:
            self._alarm.arm(deadline, slack)

    def rearm(self) -> None:
        """Arm the alarm for the machines' next deadline (a unit taking over running ones)."""
        self._arm()

    def close(self) -> None:
        """Cancel the alarm and release it."""
        self._alarm.close()


def _wait_busy(loop: asyncio.AbstractEventLoop, deadline: float) -> bool:
    """Spin until ``deadline``; False as soon as the loop has I/O ready before it (a
    packet, another alarm), which must be seen first. Without a selector to ask, do not
    spin. (At the deadline our own alarm's descriptor turns ready too: that is not a no.)"""
    selector: Any = getattr(loop, "_selector", None)
    if selector is None:
        return False
    now = loop.time()
    while now < deadline:
        if selector.select(0):
            return loop.time() >= deadline
        look = min(now + _SPIN_LOOK, deadline)  # ask the selector every 5 us
        while now < look:
            now = loop.time()
    return True


class Solo(Unit):
    """A single instance outside any sync group."""

    def __init__(self, instance: VrrpInstance) -> None:
        super().__init__(instance.loop)
        self.fsm: VrrpFsm = instance.fsm
        self.name = instance.name
        self.members[instance.name] = instance

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        return [(member, a) for a in self.fsm.handle(event, now)]

    def handle_timers(self, now: float) -> list[Tagged]:
        return self.handle(self.name, Timer(), now)

    def next_deadline(self) -> float | None:
        return self.fsm.next_deadline()

    def last_time(self) -> float:
        return self.fsm.last_time

    def takeover_at(self) -> float | None:
        return self.fsm.takeover_at()

    def warm_up(self, deadline: float) -> None:
        self.fsm.dry_run(Timer(), deadline)
        self.members[self.name].warm_up()


class Group(Unit):
    """Instances of a ``vrrp_sync_group``, moving together."""

    def __init__(self, name: str, instances: list[VrrpInstance]) -> None:
        super().__init__(instances[0].loop)
        self.sync = SyncGroup(name, [i.fsm for i in instances])
        for inst in instances:
            self.members[inst.name] = inst
            inst.unit = self

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        return self.sync.handle(member, event, now)

    def handle_timers(self, now: float) -> list[Tagged]:
        return self.sync.handle_timers(now)

    def next_deadline(self) -> float | None:
        return self.sync.next_deadline()

    def last_time(self) -> float:
        return max(m.last_time for m in self.sync.members)

    def takeover_at(self) -> float | None:
        return self.sync.takeover_at()

    def warm_up(self, deadline: float) -> None:
        for fsm in self.sync.members:
            if fsm.takeover_at() is not None:
                fsm.dry_run(Timer(), max(deadline, fsm.last_time))
        for inst in self.members.values():
            inst.warm_up()
