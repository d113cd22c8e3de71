"""UDP_CHECK against local UDP responders on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from pyvrrpd.checks.runner import run_once
from pyvrrpd.checks.udp import DEFAULT_PAYLOAD, UdpCheck, parse_hex_pattern

from .conftest import closed_port, ep


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[bytes], bytes | None], seen: list[bytes]) -> None:
        self.answer = answer
        self.seen = seen
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(data)
        out = self.answer(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


@asynccontextmanager
async def udp_server(
    answer: Callable[[bytes], bytes | None], seen: list[bytes] | None = None
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Proto(answer, seen if seen is not None else []), local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_echo_with_required_reply() -> None:
    seen: list[bytes] = []
    async with udp_server(lambda d: b"PONG" + d, seen) as port:
        res = await run_once(
            UdpCheck(
                ep(port),
                payload=b"PING",
                require_reply=True,
                reply_data=parse_hex_pattern("504f4e47")[0],
            )
        )
    assert res.ok, res.cause
    assert seen == [b"PING"]


async def test_default_payload_is_sent() -> None:
    seen: list[bytes] = []
    async with udp_server(lambda d: None, seen) as port:
        res = await run_once(UdpCheck(ep(port, timeout=0.2)))
    assert res.ok and seen == [DEFAULT_PAYLOAD]


async def test_silence_is_up_without_require_reply_and_down_with_it() -> None:
    async with udp_server(lambda d: None) as port:
        quiet_ok = await run_once(UdpCheck(ep(port, timeout=0.2)))
        quiet_bad = await run_once(UdpCheck(ep(port, timeout=0.2), require_reply=True))
    assert quiet_ok.ok
    assert not quiet_bad.ok and "no reply" in quiet_bad.cause


@pytest.mark.parametrize("require", [False, True])
async def test_port_unreachable_is_down(require: bool) -> None:
    res = await run_once(UdpCheck(ep(closed_port(), timeout=2.0), require_reply=require))
    assert not res.ok and "unreachable" in res.cause and res.latency < 1.0


@pytest.mark.parametrize(
    ("reply", "ok"),
    [(b"AB", True), (b"A", False), (b"ABCDEFGHIJ", False), (b"XB", False), (b"AZ", True)],
)
async def test_reply_length_and_pattern(reply: bytes, ok: bool) -> None:
    data, mask = parse_hex_pattern("41 Xx")  # 'A' then anything
    check = UdpCheck(
        ep(0),
        require_reply=True,
        reply_data=data,
        reply_mask=mask,
        min_reply_length=2,
        max_reply_length=4,
    )
    async with udp_server(lambda d: reply) as port:
        res = await run_once(dataclasses.replace(check, endpoint=ep(port)))
    assert res.ok is ok, res.cause


def test_parse_hex_pattern() -> None:
    assert parse_hex_pattern("0aFf") == (b"\x0a\xff", b"\x00\x00")
    assert parse_hex_pattern("x1 2X") == (b"\x01\x20", b"\xf0\x0f")
    assert parse_hex_pattern("abc") == (b"\xab\xc0", b"\x00\x00")
