"""systemd's notify protocol without libsystemd: datagrams to ``$NOTIFY_SOCKET``.

``READY=1`` once sockets are bound and the configuration is running; ``RELOADING=1``
with ``MONOTONIC_USEC`` then ``READY=1`` around a reload; ``STOPPING=1`` on the way
out; ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` from the event loop (so a stuck loop
is what systemd sees); ``STATUS=`` lines for ``systemctl status``. A socket path that
starts with ``@`` is in the abstract namespace. Without ``$NOTIFY_SOCKET`` every call
is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("pyvrrpd")


def socket_address(path: str) -> str | bytes:
    """The address to send to: ``@name`` is the abstract socket ``\\0name``."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between keep-alives (half ``WATCHDOG_USEC``), or None when not asked for.

    ``WATCHDOG_PID``, when set, must be our pid (the watchdog is meant for another process
    otherwise).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wpid = env.get("WATCHDOG_PID", "")
    if wpid and wpid != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2e6


class SdNotifier:
    """Sends notify messages to ``$NOTIFY_SOCKET`` (read once, at construction)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = os.environ.get("NOTIFY_SOCKET") if path is None else path
        self.sent: int = 0
        self.failures: int = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def send(self, *fields: str) -> bool:
        """Send one message of ``KEY=value`` lines; False when it could not go out."""
        if not self.path:
            return False
        msg = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(socket_address(self.path))
                sock.sendall(msg)
        except OSError as exc:
            self.failures += 1
            if self.failures <= 3:
                log.warning("sd_notify to %s failed: %s", self.path, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with a STATUS line)."""
        return self.send("READY=1", *_status(status))

    def reloading(self, status: str | None = "Reloading configuration") -> bool:
        """``RELOADING=1`` with the monotonic clock in microseconds, as systemd wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = "Stopping") -> bool:
        """``STOPPING=1``."""
        return self.send("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        """A free-form ``STATUS=`` line."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """One ``WATCHDOG=1`` keep-alive."""
        return self.send("WATCHDOG=1")

    def start_watchdog(self, interval: float | None = None) -> bool:
        """Keep-alives from the running loop at ``interval`` (default: half WATCHDOG_USEC)."""
        interval = watchdog_interval() if interval is None else interval
        if not self.enabled or interval is None or self._task is not None:
            return False
        self._task = asyncio.get_running_loop().create_task(self._keepalive(interval))
        return True

    async def _keepalive(self, interval: float) -> None:
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    async def stop_watchdog(self) -> None:
        """Stop the keep-alives."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _status(text: str | None) -> tuple[str, ...]:
    return () if not text else (f"STATUS={_one_line(text)}",)
