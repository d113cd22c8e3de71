"""Every checker is a hashable Checker with its keepalived keyword."""

from __future__ import annotations

import inspect
from ipaddress import IPv4Address

from pyvrrpd.checks.base import Checker
from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.checks.dns import DnsCheck
from pyvrrpd.checks.file import FileCheck
from pyvrrpd.checks.http import HttpCheck, TlsParams, Url
from pyvrrpd.checks.misc import MiscCheck
from pyvrrpd.checks.ping import PingCheck
from pyvrrpd.checks.smtp import SmtpCheck
from pyvrrpd.checks.tcp import TcpCheck
from pyvrrpd.checks.udp import UdpCheck


def make_all() -> list[Checker]:
    e = Endpoint(IPv4Address("127.0.0.1"), 1)
    return [
        TcpCheck(e),
        HttpCheck(e, (Url("/"),)),
        HttpCheck(e, (Url("/"),), tls=TlsParams()),
        SmtpCheck(e),
        DnsCheck(e),
        UdpCheck(e),
        PingCheck(e),
        MiscCheck(("x",), 1.0),
        FileCheck("f"),
    ]


def test_kinds_hashing_and_equality() -> None:
    first, second = make_all(), make_all()
    kinds = [c.kind for c in first]
    assert kinds == [
        "TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK",
        "UDP_CHECK", "PING_CHECK", "MISC_CHECK", "FILE_CHECK",
    ]  # fmt: skip
    for a, b in zip(first, second, strict=True):
        assert a == b and hash(a) == hash(b)
        assert inspect.iscoroutinefunction(type(a).check)
    assert len(set(first)) == len(first)
