"""DNS_CHECK against a local UDP DNS responder on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import dns.message
import dns.rcode
import dns.rrset
import pytest

from pyvrrpd.checks.dns import DnsCheck, judge_reply
from pyvrrpd.checks.runner import run_once

from .conftest import closed_port, ep

Answer = Callable[[bytes], list[bytes]]


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer, seen: list[dns.message.Message]) -> None:
        self.answer = answer
        self.seen = seen
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(dns.message.from_wire(data))
        assert self.transport is not None
        for reply in self.answer(data):
            self.transport.sendto(reply, addr)


@asynccontextmanager
async def dns_server(
    answer: Answer, seen: list[dns.message.Message] | None = None
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Proto(answer, seen if seen is not None else []), local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def reply(rcode: dns.rcode.Rcode = dns.rcode.NOERROR, answers: bool = True) -> Answer:
    def make(data: bytes) -> list[bytes]:
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        if answers:
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
        return [r.to_wire()]

    return make


async def test_up_and_query_shape() -> None:
    seen: list[dns.message.Message] = []
    async with dns_server(reply(), seen) as port:
        res = await run_once(DnsCheck(ep(port), type="a", name="www.example."))
    assert res.ok, res.cause
    q = seen[0]
    assert str(q.question[0].name) == "www.example." and q.question[0].rdtype == 1
    assert q.flags & dns.flags.RD and q.edns == -1


async def test_empty_answer_with_noerror_is_up() -> None:
    async with dns_server(reply(answers=False)) as port:
        res = await run_once(DnsCheck(ep(port)))
    assert res.ok, res.cause


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN, dns.rcode.REFUSED])
async def test_error_rcode_is_down(rcode: dns.rcode.Rcode) -> None:
    async with dns_server(reply(rcode)) as port:
        res = await run_once(DnsCheck(ep(port)))
    assert not res.ok and dns.rcode.to_text(rcode) in res.cause


async def test_garbage_and_foreign_datagrams_are_ignored_until_timeout() -> None:
    def garbage(data: bytes) -> list[bytes]:
        wrong_id = bytes([data[0] ^ 0xFF, data[1]]) + b"\x81\x80" + bytes(8)
        as_query = data[:2] + b"\x01\x00" + bytes(8)  # our ID but QR clear
        return [b"\x00garbage", wrong_id, as_query]

    async with dns_server(garbage) as port:
        res = await run_once(DnsCheck(ep(port, timeout=0.3)))
    assert not res.ok and "no answer" in res.cause


async def test_good_answer_after_garbage_is_up() -> None:
    good = reply()

    def mixed(data: bytes) -> list[bytes]:
        return [b"junk", *good(data)]

    async with dns_server(mixed) as port:
        res = await run_once(DnsCheck(ep(port)))
    assert res.ok, res.cause


async def test_port_unreachable_is_down_fast() -> None:
    res = await run_once(DnsCheck(ep(closed_port(), timeout=2.0)))
    assert not res.ok and "ConnectionRefused" in res.cause and res.latency < 1.0


def test_judge_reply_header_rules() -> None:
    assert judge_reply(7, b"\x00\x07") is None
    assert judge_reply(7, b"\x00\x07\x81\x80" + bytes(8)) == ""
    assert judge_reply(7, b"\x00\x08\x81\x80" + bytes(8)) is None
    assert judge_reply(7, b"\x00\x07\x01\x00" + bytes(8)) is None
    assert "SERVFAIL" in (judge_reply(7, b"\x00\x07\x81\x82" + bytes(8)) or "")
    with pytest.raises(ValueError):
        DnsCheck(ep(53), type="PTR")
