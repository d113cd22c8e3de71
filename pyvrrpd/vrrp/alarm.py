"""One-shot alarms on the event loop's clock, to the microsecond where Linux allows.

asyncio's timers fire up to a millisecond late: the selector's wait is rounded up to whole
milliseconds. On a VRRP backup that millisecond is added to every takeover (the skew time
after a priority-0 advert is 30 ms at a 0.05 s interval). :class:`TimerfdAlarm` arms a
``timerfd`` on CLOCK_MONOTONIC (the clock of ``loop.time()``) with an absolute expiry and
waits for it with ``add_reader``, so the kernel wakes the loop on time. Where timerfd is
not available, :class:`LoopAlarm` falls back to ``loop.call_at``.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable
from typing import Protocol

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

    def arm(self, when: float) -> None:
        """Fire at ``when`` (replaces an earlier arming)."""

    def disarm(self) -> None:
        """Do not fire."""

    def close(self) -> None:
        """Disarm for good and release what the alarm holds."""


class LoopAlarm:
    """An alarm on ``loop.call_at`` (millisecond precision)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def when(self) -> float | None:
        return None if self._handle is None else self._handle.when()

    def arm(self, when: float) -> None:
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


class TimerfdAlarm:
    """An alarm on a Linux timerfd (CLOCK_MONOTONIC, absolute), read with ``add_reader``.

    The file descriptor is opened on the first :meth:`arm` and closed by :meth:`close`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        if _TIMERFD is None:
            raise OSError("timerfd is not available")
        self._loop = loop
        self._callback = callback
        self._fd = -1
        self._when: float | None = None

    @property
    def when(self) -> float | None:
        return self._when

    def _set(self, when: float) -> None:
        assert _TIMERFD is not None
        sec = int(when)
        nsec = min(int((when - sec) * 1e9), 999_999_999)
        if sec == 0 and nsec == 0:
            nsec = 1  # zero would disarm; any past time fires at once
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, nsec))
        if _TIMERFD[1](self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def arm(self, when: float) -> None:
        assert _TIMERFD is not None
        if self._fd < 0:
            fd = _TIMERFD[0](_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            self._fd = fd
            self._loop.add_reader(fd, self._ready)
        self._when = when
        self._set(when)

    def disarm(self) -> None:
        if self._fd >= 0 and self._when is not None:
            spec = _Itimerspec(_Timespec(0, 0), _Timespec(0, 0))
            assert _TIMERFD is not None
            _TIMERFD[1](self._fd, 0, ctypes.byref(spec), None)
        self._when = None

    def close(self) -> None:
        self._when = None
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _ready(self) -> None:
        try:
            os.read(self._fd, 8)
        except (BlockingIOError, InterruptedError):
            return  # disarmed or re-armed after it expired: nothing to do
        if self._when is None:
            return
        self._when = None
        self._callback()


def make_alarm(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *, precise: bool = False
) -> Alarm:
    """A ``call_at`` alarm; with ``precise``, a timerfd alarm where Linux provides one.

    The VRRP units use ``call_at``: one timerfd per instance costs one epoll wakeup and two
    system calls per expiry, measured at +0.5 CPU s/min for 200 instances at 1 s (master
    0.71 -> 1.24), for about 1 ms of precision. One shared timerfd for all units (a
    deadline heap, as the check registry has) would give both; until then precision is
    opt-in.
    """
    if precise and _TIMERFD is not None:
        return TimerfdAlarm(loop, callback)
    return LoopAlarm(loop, callback)
