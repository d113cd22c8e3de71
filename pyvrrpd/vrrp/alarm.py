"""One-shot alarms on the event loop's clock, to the microsecond where Linux allows.

asyncio's timers fire up to a millisecond late: the selector's wait is rounded up to whole
milliseconds. On a VRRP backup that millisecond is added to every takeover (the skew time
after a priority-0 advert is 30 ms at a 0.05 s interval). :class:`TimerfdClock` keeps the
near deadlines of the precise alarms on a loop in one heap and arms a single ``timerfd``
on CLOCK_MONOTONIC (the clock of ``loop.time()``) at the earliest, read with
``add_reader``: the kernel wakes the loop on time. Alarms that may be late (``slack``) and
alarms still far off stay on ``call_at``, which costs no system call to re-arm and gathers
many instances' alarms into one wakeup. Where timerfd is not available,
:class:`LoopAlarm` falls back to ``loop.call_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import logging
import math
import os
import weakref
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("pyvrrpd.vrrp")

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc_timerfd() -> tuple[Callable[..., int], Callable[..., int]] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(_Itimerspec),
        ctypes.POINTER(_Itimerspec),
    ]
    settime.restype = ctypes.c_int
    return create, settime


_TIMERFD = _libc_timerfd()


class Alarm(Protocol):
    """A one-shot alarm calling back on the loop at (or just after) ``when``."""

    @property
    def when(self) -> float | None:
        """The armed expiry (loop time), or None."""

    def arm(self, when: float, slack: float = 0.0) -> None:
        """Fire at ``when``, or up to ``slack`` later if that saves a wakeup (replaces an
        earlier arming)."""

    def disarm(self) -> None:
        """Do not fire."""

    def close(self) -> None:
        """Disarm for good and release what the alarm holds."""


class LoopAlarm:
    """An alarm on ``loop.call_at`` (up to 1 ms late: ``slack`` is implicit)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def when(self) -> float | None:
        return None if self._handle is None else self._handle.when()

    def arm(self, when: float, slack: float = 0.0) -> None:
        self.disarm()
        self._handle = self._loop.call_at(when, self._fire)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        self.disarm()

    def _fire(self) -> None:
        self._handle = None
        self._callback()


#: A precise alarm further away than this waits on ``call_at`` first (re-arming it is then
#: a heap push in asyncio, no system call: a backup re-arms on every advert it hears).
NEAR = 0.005
#: Alarms with at least this much slack stay on ``call_at`` (late by up to 1 ms anyway),
#: whose rounding gathers the alarms of many instances into one wakeup.
COARSE = 0.001


class ClockAlarm:
    """An alarm of a :class:`TimerfdClock`: on ``call_at`` while far or coarse, in the
    clock's heap (on time to the microsecond) for the last :data:`NEAR` seconds."""

    __slots__ = ("_callback", "_clock", "_closed", "_handle", "_in_heap", "_token", "_when")

    def __init__(self, clock: TimerfdClock, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._when: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._in_heap = False
        self._token = 0  # bumped whenever the heap entry goes stale
        self._closed = False

    @property
    def when(self) -> float | None:
        return self._when

    def arm(self, when: float, slack: float = 0.0) -> None:
        if self._closed:
            raise RuntimeError("alarm is closed")
        self.disarm()
        self._when = when
        loop = self._clock._loop
        if slack >= COARSE:
            self._handle = loop.call_at(when, self._fire_coarse)
        elif when - loop.time() > NEAR:
            self._handle = loop.call_at(when - NEAR, self._go_precise)
        else:
            self._go_precise()

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._in_heap:
            clock = self._clock
            was_head = clock._armed_for is self
            self._token += 1
            self._in_heap = False
            clock._stale += 1
            if was_head:
                clock._reprogram()
        self._when = None

    def close(self) -> None:
        if not self._closed:
            self.disarm()
            self._closed = True
            self._clock._release()

    def _go_precise(self) -> None:
        self._handle = None
        if self._when is None:
            return
        self._token += 1
        self._in_heap = True
        self._clock._push(self._when, self, self._token)

    def _fire_coarse(self) -> None:
        self._handle = None
        self._when = None
        self._callback()


_Entry = tuple[float, int, ClockAlarm, int]


class TimerfdClock:
    """One timerfd for the near, precise alarms of a loop, set to the earliest.

    Alarms enter the heap only for their last :data:`NEAR` seconds (see
    :class:`ClockAlarm`), so it holds few entries and is rarely re-set: after an idle spell
    a wakeup costs about 100 us of CPU here, and every alarm on its own descriptor, or
    re-set on every advert, was measured at +0.5 CPU s/min with 200 instances. Disarmed
    alarms leave stale entries, skipped when they reach the head; the descriptor is re-set
    when the alarm it was set for moves. The descriptor opens with the first alarm and
    closes with the last.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if _TIMERFD is None:
            raise OSError("timerfd is not available")
        self._loop = loop
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._fd = -1
        self._armed: float | None = None  # what the descriptor is set to
        self._armed_for: ClockAlarm | None = None  # the alarm whose entry that is
        self._users = 0
        self._stale = 0
        self._spec = _Itimerspec()

    def alarm(self, callback: Callable[[], None]) -> ClockAlarm:
        """A new alarm on this clock (the descriptor opens with the first)."""
        assert _TIMERFD is not None
        if self._fd < 0:
            fd = _TIMERFD[0](_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            self._fd = fd
            self._loop.add_reader(fd, self._ready)
        self._users += 1
        return ClockAlarm(self, callback)

    def __len__(self) -> int:
        """Heap entries, stale ones included (for tests and statistics)."""
        return len(self._heap)

    @staticmethod
    def _live(entry: _Entry) -> bool:
        alarm = entry[2]
        return alarm._in_heap and alarm._token == entry[3]

    def _push(self, when: float, alarm: ClockAlarm, token: int) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), alarm, token))
        if self._armed is None or when < self._armed:
            self._program(when, alarm)
        if self._stale > 64 and self._stale > len(self._heap) // 2:
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._live(e)]
        heapq.heapify(self._heap)
        self._stale = 0

    def _program(self, when: float, alarm: ClockAlarm | None) -> None:
        """Set the descriptor to ``when`` for ``alarm`` (0: disarm)."""
        assert _TIMERFD is not None
        spec = self._spec
        if when <= 0.0:
            spec.it_value.tv_sec = spec.it_value.tv_nsec = 0
        else:  # rounded up: the kernel must not fire before loop.time() reaches ``when``
            sec = int(when)
            nsec = math.ceil((when - sec) * 1e9)
            if nsec >= 1_000_000_000:
                sec, nsec = sec + 1, 0
            spec.it_value.tv_sec, spec.it_value.tv_nsec = sec, nsec
        if _TIMERFD[1](self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._armed = when if when > 0.0 else None
        self._armed_for = alarm if when > 0.0 else None

    def _ready(self) -> None:
        # re-programmed after it expired, the read finds nothing: the heap says what is due
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self._fd, 8)
        self._armed = self._armed_for = None
        now = self._loop.time()
        heap = self._heap
        due: list[ClockAlarm] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._live(entry):
                alarm = entry[2]
                alarm._in_heap = False
                alarm._when = None
                due.append(alarm)
            else:
                self._stale = max(0, self._stale - 1)
        for alarm in due:
            try:
                alarm._callback()
            except Exception:
                log.exception("alarm callback failed")
        self._reprogram()

    def _reprogram(self) -> None:
        """Set the descriptor to the earliest live entry (dropping stale ones above it)."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
            self._stale = max(0, self._stale - 1)
        if heap:
            if self._armed != heap[0][0] or self._armed_for is not heap[0][2]:
                self._program(heap[0][0], heap[0][2])
        elif self._armed is not None:
            self._program(0.0, None)

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._armed = self._armed_for = None
            self._heap.clear()
            self._stale = 0
            _CLOCKS.pop(self._loop, None)


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerfdClock] = (
    weakref.WeakKeyDictionary()
)


def clock_for(loop: asyncio.AbstractEventLoop) -> TimerfdClock:
    """The loop's shared timerfd clock (created on first use)."""
    clock = _CLOCKS.get(loop)
    if clock is None:
        clock = _CLOCKS[loop] = TimerfdClock(loop)
    return clock


def make_alarm(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *, precise: bool = True
) -> Alarm:
    """An alarm on the loop's shared timerfd clock, or on ``call_at`` where there is none
    (or ``precise`` is false)."""
    if precise and _TIMERFD is not None:
        return clock_for(loop).alarm(callback)
    return LoopAlarm(loop, callback)
