"""PING_CHECK: an ICMP (or ICMPv6) echo must be answered within ``connect_timeout``.

Uses an unprivileged ``SOCK_DGRAM`` ICMP socket when ``net.ipv4.ping_group_range`` admits
one of our groups, a raw socket otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import ClassVar

from .base import CheckFailed, CheckResult, passed
from .conn import Endpoint, make_socket

PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
ICMP_HEADER = struct.Struct("!BBHHH")
PAYLOAD_SIZE = 56

_sequence = itertools.count(1)


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dgram_allowed(range_text: str, gids: set[int]) -> bool:
    """Whether ``ping_group_range`` (``"lo hi"``) admits one of ``gids``."""
    try:
        low, high = (int(v) for v in range_text.split())
    except ValueError:
        return False
    return any(low <= gid <= high for gid in gids)


def _can_use_dgram() -> bool:
    try:
        text = PING_GROUP_RANGE.read_text()
    except OSError:
        return False
    return dgram_allowed(text, {os.getgid(), os.getegid(), *os.getgroups()})


def echo_request(version: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request; the checksum is filled for IPv4 (the kernel does it for ICMPv6)."""
    kind = ECHO_REQUEST[version]
    header = ICMP_HEADER.pack(kind, 0, 0, ident, seq)
    if version == 6:
        return header + payload
    csum = inet_checksum(header + payload)
    return ICMP_HEADER.pack(kind, 0, csum, ident, seq) + payload


def match_reply(
    version: int, packet: bytes, *, ident: int | None, seq: int, payload: bytes, ip_header: bool
) -> bool:
    """Whether ``packet`` is the echo reply to our request (``ident`` None: not checked)."""
    if ip_header:
        if len(packet) < 20:
            return False
        packet = packet[(packet[0] & 0x0F) * 4 :]
    if len(packet) < ICMP_HEADER.size:
        return False
    kind, code, _csum, rid, rseq = ICMP_HEADER.unpack_from(packet)
    if kind != ECHO_REPLY[version] or code != 0 or rseq != seq:
        return False
    if ident is not None and rid != ident:
        return False
    return packet[ICMP_HEADER.size :] == payload


@dataclass(frozen=True, slots=True)
class PingCheck:
    """PING_CHECK parameters (the endpoint's port is unused); equal ones are shared."""

    kind: ClassVar[str] = "PING_CHECK"

    endpoint: Endpoint
    force_raw: bool = False

    async def check(self) -> CheckResult:
        """Send one echo request and wait for its reply."""
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        version = ep.address.version
        proto = socket.IPPROTO_ICMP if version == 4 else socket.IPPROTO_ICMPV6
        raw = self.force_raw or not _can_use_dgram()
        kind = socket.SOCK_RAW if raw else socket.SOCK_DGRAM
        seq = next(_sequence) & 0xFFFF
        ident = os.getpid() & 0xFFFF
        payload = seq.to_bytes(2, "big") + os.urandom(PAYLOAD_SIZE - 2)
        with make_socket(ep, kind, proto) as sock:
            target = (str(ep.address), 0)
            await loop.sock_sendto(sock, echo_request(version, ident, seq, payload), target)
            try:
                async with asyncio.timeout(ep.connect_timeout):
                    while True:
                        packet, source = await loop.sock_recvfrom(sock, 2048)
                        if raw and ip_address(source[0].split("%")[0]) != ep.address:
                            continue
                        if match_reply(
                            version,
                            packet,
                            ident=ident if raw else None,
                            seq=seq,
                            payload=payload,
                            ip_header=raw and version == 4,
                        ):
                            break
            except TimeoutError:
                raise CheckFailed(f"no echo reply from {ep.address}") from None
        return passed(f"echo reply from {ep.address}")
