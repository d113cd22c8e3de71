"""``track_file`` (alias ``vrrp_track_file``): an integer read from a file.

The file holds a number in text (``strtol`` base 0: decimal, ``0x`` hex, leading-0
octal; leading whitespace and trailing junk ignored; no digits, an empty or a missing
file read as 0; a number outside the 32-bit range is ignored and the previous value
kept). A deleted or renamed-away file reads as 0. How the value changes priority
(value x weight, weight 0 meaning "non-zero is FAULT") is :mod:`pyvrrpd.vrrp.priority`'s
job; this module reports the value.

The directory is watched with inotify (close-after-write, delete, rename), through
ctypes on libc; if that is unavailable the file is polled every second.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_READ_LIMIT = 127

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


def parse_track_value(data: bytes) -> int | None:
    """The number keepalived reads from ``data``; None if it must be ignored (overflow)."""
    text = data[:_READ_LIMIT].decode("latin-1")
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    base, digits = 10, "0123456789"
    if text[i : i + 2] in ("0x", "0X") and i + 2 < n and text[i + 2] in "0123456789abcdefABCDEF":
        base, digits, i = 16, "0123456789abcdefABCDEF", i + 2
    elif text[i : i + 1] == "0":
        base, digits = 8, "01234567"
    j = i
    while j < n and text[j] in digits:
        j += 1
    if j == i:
        return 0
    value = sign * int(text[i:j], base)
    if not _LONG_MIN <= value <= _LONG_MAX:
        return None
    if value < INT32_MIN or value > INT32_MAX + 1:
        return None
    return value


def read_track_file(path: str) -> int | None:
    """Read ``path`` as keepalived does: missing/unreadable/empty is 0, None to ignore."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        data = os.read(fd, _READ_LIMIT)
    except OSError:
        return 0
    finally:
        os.close(fd)
    return parse_track_value(data)


@dataclass(frozen=True, slots=True)
class FileParams:
    """One ``track_file`` block: ``init_value`` set means ``init_file [VALUE] [overwrite]``."""

    name: str
    path: str
    init_value: int | None = None
    init_overwrite: bool = False


def init_track_file(params: FileParams, reload: bool = False) -> str | None:
    """Apply ``init_file``: write the value if the file is missing (or ``overwrite``).

    Nothing is written on reload. Returns an error message, or None.
    """
    if params.init_value is None or reload:
        return None
    exists = os.path.lexists(params.path)
    if exists and not params.init_overwrite:
        return None
    if exists and not os.path.isfile(params.path):
        return f"cannot initialise track file {params.name}: {params.path} is not a regular file"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(params.path, flags, 0o644)
        try:
            os.write(fd, f"{params.init_value}\n".encode())
        finally:
            os.close(fd)
    except OSError as exc:
        return f"unable to initialise track file {params.name}: {exc.strerror}"
    return None


class Inotify:
    """Minimal inotify through ctypes: one fd, directory watches, parsed events."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        if name is None:
            raise OSError(errno.ENOSYS, "libc not found")
        libc = ctypes.CDLL(name, use_errno=True)
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add_watch.restype = ctypes.c_int
        init1 = libc.inotify_init1
        init1.argtypes = [ctypes.c_int]
        init1.restype = ctypes.c_int
        fd = init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd

    def add_watch(self, directory: str, mask: int) -> int:
        """Watch ``directory``; returns the watch descriptor."""
        wd = int(self._add_watch(self.fd, os.fsencode(directory), mask))
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch({directory}): {os.strerror(err)}")
        return wd

    def read_events(self) -> list[tuple[int, int, str]]:
        """Pending events as ``(wd, mask, name)``; empty when none are queued."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return events
            except InterruptedError:
                continue
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + length].split(b"\0", 1)[0]
                offset += length
                events.append((wd, mask, os.fsdecode(raw)))

    def close(self) -> None:
        """Close the inotify fd."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


OnFileChange = Callable[[str, int], None]


class FileTracker:
    """Watches one track file and reports value changes as ``on_change(name, value)``.

    :meth:`start` reads the current value into :attr:`value` without calling back (the
    caller uses it for the initial priority), then watches; only changes call back.
    """

    def __init__(
        self,
        params: FileParams,
        on_change: OnFileChange,
        *,
        use_inotify: bool = True,
        poll_interval: float = 1.0,
    ) -> None:
        self.params = params
        self.path = self._resolve(params.path)
        self.value = 0
        self.mode: str | None = None  # "inotify" or "poll" once started
        self._on_change = on_change
        self._use_inotify = use_inotify
        self._poll_interval = poll_interval
        self._inotify: Inotify | None = None
        self._wd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_task: asyncio.Task[None] | None = None

    @staticmethod
    def _resolve(path: str) -> str:
        directory, base = os.path.split(os.path.abspath(path))
        return os.path.join(os.path.realpath(directory), base)

    def start(self) -> None:
        """Read the initial value and start watching (inotify, else polling)."""
        self._loop = asyncio.get_running_loop()
        initial = read_track_file(self.path)
        self.value = initial if initial is not None else 0
        if self._use_inotify:
            try:
                self._start_inotify()
                return
            except OSError as exc:
                log.warning(
                    "track_file %s: inotify unavailable (%s); polling every %gs",
                    self.params.name,
                    exc,
                    self._poll_interval,
                )
                self._stop_inotify()
        self.mode = "poll"
        self._poll_task = self._loop.create_task(
            self._poll(), name=f"track_file {self.params.name}"
        )

    def _start_inotify(self) -> None:
        assert self._loop is not None
        self._inotify = Inotify()
        directory = os.path.dirname(self.path)
        mask = IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        self._wd = self._inotify.add_watch(directory, mask)
        self._loop.add_reader(self._inotify.fd, self._on_inotify)
        self.mode = "inotify"

    def _stop_inotify(self) -> None:
        if self._inotify is not None:
            if self._loop is not None and self._inotify.fd >= 0:
                self._loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None

    def _on_inotify(self) -> None:
        assert self._inotify is not None
        base = os.path.basename(self.path)
        try:
            events = self._inotify.read_events()
        except OSError as exc:
            log.warning("track_file %s: inotify read failed: %s", self.params.name, exc)
            return
        for wd, mask, name in events:
            if wd != self._wd or name != base or mask & IN_ISDIR:
                continue
            if mask & (IN_DELETE | IN_MOVED_FROM):
                self._update(0)
            else:
                self._update(read_track_file(self.path))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            self._update(read_track_file(self.path))

    def _update(self, value: int | None) -> None:
        if value is None:
            log.info("track_file %s: invalid number in %s - ignoring", self.params.name, self.path)
            return
        if value == self.value:
            return
        self.value = value
        try:
            self._on_change(self.params.name, value)
        except Exception:
            log.exception("track_file %s: change callback failed", self.params.name)

    async def stop(self) -> None:
        """Stop watching."""
        self._stop_inotify()
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
