"""DNS_CHECK: a query over UDP must get an answer with rcode NOERROR.

Like keepalived, answers too short to hold a header, with another ID, or that are not
responses are ignored (the wait goes on until the timeout); an ICMP error fails the check.
The answer section is not required to be non-empty.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import ClassVar

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from .base import CheckFailed, CheckResult, passed
from .conn import Endpoint, make_socket

TYPES = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY")
HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True, slots=True)
class DnsCheck:
    """DNS_CHECK parameters; equal instances are one shared check."""

    kind: ClassVar[str] = "DNS_CHECK"

    endpoint: Endpoint
    type: str = "SOA"
    name: str = "."

    def __post_init__(self) -> None:
        if self.type.upper() not in TYPES:
            raise ValueError(f"unsupported DNS_CHECK type {self.type!r}")

    def query(self) -> dns.message.QueryMessage:
        """A fresh query (random ID, recursion desired, no EDNS)."""
        return dns.message.make_query(self.name, dns.rdatatype.from_text(self.type.upper()))

    async def check(self) -> CheckResult:
        """Send the query and wait for the matching response."""
        loop = asyncio.get_running_loop()
        query = self.query()
        with make_socket(self.endpoint, socket.SOCK_DGRAM) as sock:
            await loop.sock_connect(sock, self.endpoint.sockaddr)
            await loop.sock_sendall(sock, query.to_wire())
            try:
                async with asyncio.timeout(self.endpoint.connect_timeout):
                    while True:
                        data = await loop.sock_recv(sock, 65535)
                        verdict = judge_reply(query.id, data)
                        if verdict is not None:
                            break
            except TimeoutError:
                raise CheckFailed("no answer before the timeout") from None
        if verdict:
            raise CheckFailed(verdict)
        return passed(f"{self.type} {self.name} answered")


def judge_reply(query_id: int, data: bytes) -> str | None:
    """None: not our answer, keep waiting; "": success; else why the answer fails."""
    if len(data) < HEADER.size:
        return None
    ident, flags, _qd, ancount, _ns, _ar = HEADER.unpack_from(data)
    if ident != query_id or not flags & dns.flags.QR:
        return None
    rcode = flags & 0x000F
    if rcode != dns.rcode.NOERROR:
        return f"rcode {dns.rcode.to_text(rcode)} ({ancount} answers)"
    return ""
