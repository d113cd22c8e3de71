"""UDP_CHECK: a datagram is sent; an ICMP port unreachable (or a wrong reply) fails.

Without ``require_reply`` silence until the timeout counts as success (as in keepalived).
With it, a reply must come, its length must lie within [min, max] and, if ``reply_data`` is
set, its first bytes must match it outside the wildcard ``reply_mask``.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import ClassVar

from .base import CheckFailed, CheckResult, passed
from .conn import Endpoint, make_socket

DEFAULT_PAYLOAD = bytes(range(32))  # what we send when no payload is configured


def parse_hex_pattern(text: str) -> tuple[bytes, bytes]:
    """``reply_data`` hex text to (data, mask); an ``x``/``X`` nibble matches anything.

    The mask has a 1 bit for every "don't care" bit.
    """
    digits = "".join(text.split())
    if len(digits) % 2:
        digits += "0"
    data = bytearray()
    mask = bytearray()
    for i in range(0, len(digits), 2):
        byte = 0
        care = 0
        for nibble in digits[i : i + 2]:
            byte <<= 4
            care <<= 4
            if nibble in "xX":
                care |= 0xF
            else:
                byte |= int(nibble, 16)
        data.append(byte)
        mask.append(care)
    return bytes(data), bytes(mask)


@dataclass(frozen=True, slots=True)
class UdpCheck:
    """UDP_CHECK parameters; equal instances are one shared check."""

    kind: ClassVar[str] = "UDP_CHECK"

    endpoint: Endpoint
    payload: bytes | None = None
    require_reply: bool = False
    reply_data: bytes = b""
    reply_mask: bytes = b""
    min_reply_length: int = 0
    max_reply_length: int = 255

    def judge(self, reply: bytes) -> str | None:
        """Why ``reply`` is not acceptable, or None."""
        if not self.min_reply_length <= len(reply) <= self.max_reply_length:
            return (
                f"reply of {len(reply)} bytes outside "
                f"[{self.min_reply_length}, {self.max_reply_length}]"
            )
        for i, want in enumerate(self.reply_data[: len(reply)]):
            ignore = self.reply_mask[i] if i < len(self.reply_mask) else 0
            if (reply[i] ^ want) & ~ignore & 0xFF:
                return f"reply differs from reply_data at byte {i}"
        return None

    async def check(self) -> CheckResult:
        """Send the payload and wait for a reply, an ICMP error or the timeout."""
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        with make_socket(ep, socket.SOCK_DGRAM) as sock:
            await loop.sock_connect(sock, ep.sockaddr)
            await loop.sock_sendall(sock, DEFAULT_PAYLOAD if self.payload is None else self.payload)
            try:
                async with asyncio.timeout(ep.connect_timeout):
                    reply = await loop.sock_recv(sock, max(self.max_reply_length, 1) + 1)
            except TimeoutError:
                if self.require_reply:
                    raise CheckFailed(f"no reply from {ep.describe()}") from None
                return passed("no ICMP error before the timeout")
            except ConnectionRefusedError:
                raise CheckFailed(f"port unreachable at {ep.describe()}") from None
        if self.require_reply:
            why = self.judge(reply)
            if why is not None:
                raise CheckFailed(why)
        return passed(f"reply of {len(reply)} bytes")
