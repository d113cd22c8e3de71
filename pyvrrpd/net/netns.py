"""Run a blocking call inside a named network namespace, on a thread of its own.

``setns(2)`` changes the namespace of the calling thread only, so a fresh thread joins
the namespace, runs the call and exits; sockets created there stay in that namespace,
and ``/proc/sys/net`` opened there shows that namespace's settings. Named namespaces are
those of ``ip netns`` (``/run/netns/NAME``).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")

_libc: ctypes.CDLL | None = None


def _setns(path: Path) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def netns_path(name: str) -> Path:
    """Where ``ip netns`` keeps the namespace `name`."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"bad network namespace name: {name!r}")
    return NETNS_RUN_DIR / name


def run_in_netns(name: str | None, fn: Callable[[], T]) -> T:
    """Call `fn` in namespace `name` (None: here, on the calling thread) and return its value."""
    if name is None:
        return fn()
    path = netns_path(name)
    box: list[T] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            _setns(path)
            box.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


async def call_in_netns(name: str | None, fn: Callable[[], T]) -> T:
    """Like :func:`run_in_netns`, without blocking the event loop (in our own namespace
    ``fn`` runs at once: the callers only open a socket or touch a sysctl file)."""
    if name is None:
        return fn()
    path = netns_path(name)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(value: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def body() -> None:
        try:
            _setns(path)
            value = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, value, None)

    threading.Thread(target=body, name=f"netns-{name}", daemon=True).start()
    return await future
