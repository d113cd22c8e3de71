"""Effective priority from tracker states (pure; keepalived's track_* weight rules).

For every tracked object the shell keeps a :class:`TrackerStatus` and calls
:func:`effective_priority` whenever one changes, then feeds the result to the
state machine as ``PriorityChanged(result.priority, result.blocks_up)``.

Rules (as keepalived):

* ``weight == 0``: the tracker can only put the instance in FAULT — when the
  tracked thing is down (``reverse``: when it is up).  An interface/script/
  process/BFD whose state is not known yet (``up is None``) holds the instance
  out of BACKUP/MASTER (``pending``) like keepalived's scripts in init state.
* ``weight > 0``: ``weight`` (``-weight`` with ``reverse``) is added while up.
* ``weight < 0``: ``weight`` (``-weight`` with ``reverse``) is added while down.
  An unknown state adds nothing.
* ``track_file``: the file's integer ``value`` times ``weight`` (times -1 with
  ``reverse``) is added, clamped to -254..253; a contribution of -254 means
  FAULT.  With ``weight == 0`` a non-zero value means FAULT (``reverse``: zero).
* The sum is clamped to 1..254.  An address owner (base 255) keeps 255 whatever
  the weights; weight-0 faults still apply to it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

PRIO_OWNER = 255
FILE_FAULT = -254


class TrackerKind(enum.Enum):
    """What a tracker watches."""

    INTERFACE = "interface"
    SCRIPT = "script"
    FILE = "file"
    PROCESS = "process"
    BFD = "bfd"


@dataclass(frozen=True, slots=True)
class TrackerStatus:
    """Current view of one tracked object for one instance.

    ``up`` is None while unknown; ``value`` is the number read from a tracked
    file (None is treated as 0).
    """

    name: str
    kind: TrackerKind
    up: bool | None = None
    weight: int = 0
    reverse: bool = False
    value: int | None = None


@dataclass(frozen=True, slots=True)
class PriorityResult:
    """Effective priority and why the instance may not run."""

    priority: int
    faulted_by: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    @property
    def fault(self) -> bool:
        """Some tracker puts the instance in FAULT."""
        return bool(self.faulted_by)

    @property
    def blocks_up(self) -> bool:
        """The instance must stay in FAULT (fault or trackers not yet known)."""
        return bool(self.faulted_by or self.pending)


def contribution(t: TrackerStatus) -> int | None:
    """Priority added by one tracker; None means the tracker puts the instance in FAULT.

    A weight-0 tracker of unknown state contributes 0 (see :func:`is_pending`).
    """
    mult = -1 if t.reverse else 1
    if t.kind is TrackerKind.FILE:
        value = t.value or 0
        if t.weight == 0:
            return None if (value != 0) != t.reverse else 0
        amount = max(FILE_FAULT, min(253, value * t.weight * mult))
        return None if amount == FILE_FAULT else amount
    if t.up is None:
        return 0
    if t.weight == 0:
        return None if t.up == t.reverse else 0
    active = t.up if t.weight > 0 else not t.up
    return t.weight * mult if active else 0


def is_pending(t: TrackerStatus) -> bool:
    """A weight-0 non-file tracker whose state is not known yet."""
    return t.kind is not TrackerKind.FILE and t.weight == 0 and t.up is None


def clamp_priority(total: int) -> int:
    """Clamp a non-owner priority sum into 1..254."""
    return max(1, min(PRIO_OWNER - 1, total))


def effective_priority(base: int, trackers: Iterable[TrackerStatus]) -> PriorityResult:
    """Combine the configured ``base`` priority (1..255) with all tracker states."""
    if not 1 <= base <= PRIO_OWNER:
        raise ValueError(f"base priority {base} not in 1..255")
    total = base
    faulted: list[str] = []
    pending: list[str] = []
    for t in trackers:
        amount = contribution(t)
        if amount is None:
            faulted.append(t.name)
        else:
            total += amount
        if is_pending(t):
            pending.append(t.name)
    prio = PRIO_OWNER if base == PRIO_OWNER else clamp_priority(total)
    return PriorityResult(prio, tuple(faulted), tuple(pending))
