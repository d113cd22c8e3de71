"""SMTP_CHECK: the server must greet with 220, accept ``HELO`` with 250 and answer QUIT."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from .base import CheckFailed, CheckResult, passed
from .conn import Endpoint, close_writer, open_stream

DEFAULT_HELO = "smtpchecker.pyvrrpd.invalid"
MAX_LINE = 4096


@dataclass(frozen=True, slots=True)
class SmtpCheck:
    """SMTP_CHECK parameters for one host; equal instances are one shared check."""

    kind: ClassVar[str] = "SMTP_CHECK"

    endpoint: Endpoint
    helo_name: str = DEFAULT_HELO

    async def check(self) -> CheckResult:
        """Banner 220, ``HELO`` 250, ``QUIT`` answered."""
        reader, writer = await open_stream(self.endpoint)
        try:
            code, text = await self._reply(reader)
            if code != 220:
                raise CheckFailed(f"bad banner {code}: {text!r}")
            await self._send(writer, f"HELO {self.helo_name}\r\n")
            code, text = await self._reply(reader)
            if code != 250:
                raise CheckFailed(f"HELO refused {code}: {text!r}")
            await self._send(writer, "QUIT\r\n")
            await self._reply(reader)  # any answer will do, as long as there is one
        finally:
            await close_writer(writer)
        return passed(f"SMTP server at {self.endpoint.describe()} answered")

    async def _send(self, writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(line.encode("ascii", "replace"))
        async with asyncio.timeout(self.endpoint.connect_timeout):
            await writer.drain()

    async def _reply(self, reader: asyncio.StreamReader) -> tuple[int, str]:
        """Read one reply (with its ``NNN-`` continuation lines): its code and last line."""
        while True:
            try:
                async with asyncio.timeout(self.endpoint.connect_timeout):
                    raw = await reader.readuntil(b"\n")
            except TimeoutError:
                raise CheckFailed("read timed out") from None
            except asyncio.IncompleteReadError:
                raise CheckFailed("connection closed by the server") from None
            except asyncio.LimitOverrunError:
                raise CheckFailed("reply line too long") from None
            line = raw.decode("latin-1").rstrip("\r\n")
            code = parse_code(line)
            if code >= 0 and len(line) > 3 and line[3] == "-":
                continue
            return code, line


def parse_code(line: str) -> int:
    """The 3-digit reply code at the start of ``line`` (-1 when there is none)."""
    head = line[:3]
    if len(head) == 3 and head.isdigit() and (len(line) == 3 or line[3] in " -"):
        return int(head)
    return -1
