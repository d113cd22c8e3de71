"""Sync groups (``vrrp_sync_group``): members move between states together.

Pure logic over the member :class:`~pyvrrpd.vrrp.fsm.VrrpFsm` objects.  The shell
routes every event for a member through :meth:`SyncGroup.handle` (and timers
through :meth:`SyncGroup.handle_timers`); the group passes it to the member,
then applies its rules by feeding forced events to the members until nothing
changes, and returns all actions tagged with the instance name (group-level
:class:`GroupStateChanged` actions are tagged with the group name).

Rules (keepalived's ``vrrp_sync.c`` semantics):

1. FAULT: while any member's own trackers report a fault, every other member is
   held in FAULT (``SyncFault(True)``); a master forced to FAULT resigns with a
   priority 0 advert.  When no member is faulty any more they all leave FAULT
   to BACKUP together.
2. BACKUP: if a member is BACKUP while another is MASTER (a master heard a
   better advert and stepped down), the remaining masters step down too
   (``ForceBackup``, no priority 0 advert).
3. MASTER: a member whose master-down timer expires only *wants* MASTER (its
   ``want_state``).  When every member is MASTER or wants MASTER, all the
   BACKUP members are forced to MASTER at once (``ForceMaster``).  So a group
   never goes MASTER while one member still hears a better master or is not
   started, as keepalived prefers BACKUP "to avoid thrashing"; preempting a
   group therefore needs every member to out-prioritise the current masters.

An address owner inside a sync group starts as a normal BACKUP (its tiny skew
makes it want MASTER first) instead of going MASTER at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyvrrpd.vrrp.fsm import (
    Action,
    Event,
    ForceBackup,
    ForceMaster,
    State,
    SyncFault,
    Timer,
    VrrpFsm,
)


@dataclass(frozen=True, slots=True)
class GroupStateChanged:
    """The group's aggregate state changed (run the group's notify scripts)."""

    group: str
    previous: State
    state: State


GroupAction = Action | GroupStateChanged
Tagged = tuple[str, GroupAction]


class SyncGroup:
    """A ``vrrp_sync_group``: members are joined at construction (all must be in INIT)."""

    def __init__(self, name: str, members: Sequence[VrrpFsm]) -> None:
        names = [m.name for m in members]
        if not members:
            raise ValueError(f"sync group {name} has no members")
        if len(set(names)) != len(names):
            raise ValueError(f"sync group {name} has duplicate members")
        for m in members:
            if m.in_sync_group:
                raise ValueError(f"instance {m.name} is already in a sync group")
        for m in members:
            m.join_sync_group()
        self.name = name
        self._members = {m.name: m for m in members}
        self._state = State.INIT

    @property
    def members(self) -> tuple[VrrpFsm, ...]:
        """Member state machines in configuration order."""
        return tuple(self._members.values())

    @property
    def state(self) -> State:
        """Aggregate state: INIT until all started, FAULT if any member is, MASTER if all are."""
        return self._state

    def takeover_at(self) -> float | None:
        """Earliest time a backup member's timer may move the group to master."""
        times = [t for m in self._members.values() if (t := m.takeover_at()) is not None]
        return min(times) if times else None

    def next_deadline(self) -> float | None:
        """Earliest member deadline."""
        times = [t for m in self._members.values() if (t := m.next_deadline()) is not None]
        return min(times) if times else None

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        """Give ``event`` to ``member`` and enforce the group rules.

        Like a single machine, timers of any member due at ``now`` fire first
        (and again afterwards), so no member deadline is left ``<= now``.
        """
        fsm = self._members[member]
        out = self.handle_timers(now)
        out.extend((member, a) for a in fsm.handle(event, now))
        self._settle(now, out)
        out.extend(self.handle_timers(now))
        return out

    def handle_timers(self, now: float) -> list[Tagged]:
        """Fire every member timer due at ``now`` (members in configuration order)."""
        out: list[Tagged] = []
        for _ in range(2 * len(self._members) + 2):
            due = [
                m
                for m in self._members.values()
                if (d := m.next_deadline()) is not None and d <= now
            ]
            if not due:
                break
            for m in due:
                out.extend((m.name, a) for a in m.handle(Timer(), now))
                self._settle(now, out)
        self._settle(now, out)
        return out

    def _force(self, fsm: VrrpFsm, event: Event, now: float, out: list[Tagged]) -> None:
        out.extend((fsm.name, a) for a in fsm.handle(event, now))

    def _settle(self, now: float, out: list[Tagged]) -> None:
        members = list(self._members.values())
        for _ in range(4 * len(members) + 4):
            changed = False
            # Rule 1: fault propagation.
            for m in members:
                held = any(o.tracker_fault for o in members if o is not m)
                if m.forced_fault != held:
                    self._force(m, SyncFault(held), now, out)
                    changed = True
            states = [m.state for m in members]
            if State.MASTER in states and State.BACKUP in states:
                # Rule 2: one stepped down, the others follow.
                for m in members:
                    if m.state is State.MASTER:
                        self._force(m, ForceBackup(), now, out)
                changed = True
            elif State.BACKUP in states and all(m.want_state is State.MASTER for m in members):
                # Rule 3: everyone wants MASTER.
                for m in members:
                    if m.state is State.BACKUP:
                        self._force(m, ForceMaster(), now, out)
                changed = True
            if not changed:
                break
        else:  # pragma: no cover - the rules converge in two rounds
            raise RuntimeError(f"sync group {self.name} did not settle")
        self._update_state(out)

    def _update_state(self, out: list[Tagged]) -> None:
        states = {m.state for m in self._members.values()}
        if states == {State.STOPPED}:
            new = State.STOPPED
        elif State.INIT in states or State.STOPPED in states:
            new = State.INIT
        elif State.FAULT in states:
            new = State.FAULT
        elif states == {State.MASTER}:
            new = State.MASTER
        else:
            new = State.BACKUP
        if new is not self._state:
            out.append((self.name, GroupStateChanged(self.name, self._state, new)))
            self._state = new
