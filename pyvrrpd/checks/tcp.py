"""TCP_CHECK: the real server must accept a TCP connection within ``connect_timeout``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import CheckResult, passed
from .conn import Endpoint, connect_tcp


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """TCP_CHECK parameters; equal instances are one shared check."""

    kind: ClassVar[str] = "TCP_CHECK"

    endpoint: Endpoint

    async def check(self) -> CheckResult:
        """Connect, then close at once."""
        sock = await connect_tcp(self.endpoint)
        sock.close()
        return passed(f"connected to {self.endpoint.describe()}")
