"""TCP_CHECK: the real server must accept a TCP connection within ``connect_timeout``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from .base import CheckResult, passed
from .conn import Endpoint, PendingConnect, connect_tcp, start_connect


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """TCP_CHECK parameters; equal instances are one shared check."""

    kind: ClassVar[str] = "TCP_CHECK"

    endpoint: Endpoint
    _passed: CheckResult = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_passed", passed(f"connected to {self.endpoint.describe()}"))

    async def check(self) -> CheckResult:
        """Connect, then close at once."""
        sock = await connect_tcp(self.endpoint)
        sock.close()
        return self._passed

    def start_check(
        self, loop: asyncio.AbstractEventLoop, done: Callable[[CheckResult | Exception], None]
    ) -> PendingConnect | None:
        """:meth:`check` as callbacks (no task): ``done`` gets the result or the exception.

        Returns None when ``done`` was already called, else the handle that cancels the run.
        """
        ok = self._passed

        def connected(sock: socket.socket | None, exc: Exception | None) -> None:
            if sock is not None:
                sock.close()
                done(ok)
            else:
                assert exc is not None
                done(exc)

        return start_connect(self.endpoint, loop, connected)
