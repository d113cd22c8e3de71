"""PING_CHECK on loopback (DGRAM and raw ICMP sockets, IPv4 and IPv6)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from ipaddress import IPv6Address

import pytest

from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.checks.ping import (
    PingCheck,
    dgram_allowed,
    echo_request,
    inet_checksum,
    match_reply,
)
from pyvrrpd.checks.runner import run_once

from .conftest import LOCAL


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")
@pytest.mark.parametrize("raw", [False, True])
async def test_loopback_answers(raw: bool) -> None:
    res = await run_once(PingCheck(Endpoint(LOCAL, connect_timeout=1.0), force_raw=raw))
    assert res.ok, res.cause
    assert res.latency < 0.5


@pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("raw", [False, True])
async def test_ipv6_loopback_answers(raw: bool) -> None:
    check = PingCheck(Endpoint(IPv6Address("::1"), connect_timeout=1.0), force_raw=raw)
    res = await run_once(check)
    assert res.ok, res.cause


def test_checksum_and_reply_matching() -> None:
    # RFC 1071 example words 0001 f203 f4f5 f6f7 sum to ddf2; checksum is its complement.
    assert inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    req = echo_request(4, 0x1234, 7, b"data")
    assert inet_checksum(req) == 0  # a packet with its checksum sums to zero
    reply = bytes([0, 0]) + req[2:]
    assert match_reply(4, reply, ident=0x1234, seq=7, payload=b"data", ip_header=False)
    assert not match_reply(4, reply, ident=0x1235, seq=7, payload=b"data", ip_header=False)
    assert not match_reply(4, reply, ident=None, seq=8, payload=b"data", ip_header=False)
    assert not match_reply(4, reply, ident=None, seq=7, payload=b"date", ip_header=False)
    assert not match_reply(4, req, ident=None, seq=7, payload=b"data", ip_header=False)
    ip = bytes([0x45]) + bytes(19)
    assert match_reply(4, ip + reply, ident=None, seq=7, payload=b"data", ip_header=True)
    v6 = bytes([129, 0]) + echo_request(6, 1, 2, b"x")[2:]
    assert match_reply(6, v6, ident=1, seq=2, payload=b"x", ip_header=False)


def test_ping_group_range() -> None:
    assert dgram_allowed("0 0\n", {0})
    assert not dgram_allowed("1 0\n", {0, 5})  # the kernel's "nobody" default
    assert dgram_allowed("100 200", {5, 150})
    assert not dgram_allowed("garbage", {0})


_CHILD = """
import asyncio, ipaddress
from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.checks.ping import PingCheck
from pyvrrpd.checks.runner import run_once
ep = Endpoint(ipaddress.ip_address("127.0.0.1"), connect_timeout=0.5)
r = asyncio.run(run_once(PingCheck(ep)))
print("OK" if r.ok else "DOWN:" + r.cause)
"""


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_unanswered_echo_is_down() -> None:
    """In a namespace that ignores echo requests, the check times out."""
    ns = f"pyvrrpd-ping-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        run = ["ip", "netns", "exec", ns]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*run, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"], check=True)
        out = subprocess.run(
            [*run, sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=20
        )
        assert out.stdout.strip() == "DOWN:no echo reply from 127.0.0.1", out.stderr
        subprocess.run([*run, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=0"], check=True)
        out = subprocess.run(
            [*run, sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=20
        )
        assert out.stdout.strip() == "OK", out.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
