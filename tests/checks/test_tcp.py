"""TCP_CHECK against listeners on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from ipaddress import IPv4Address

from pyvrrpd.checks.runner import run_once
from pyvrrpd.checks.tcp import TcpCheck

from .conftest import closed_port, ep, tcp_server


async def _idle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await r.read()


async def test_up_when_listening() -> None:
    async with tcp_server(_idle) as srv:
        res = await run_once(TcpCheck(ep(srv.port)))
        assert res.ok, res.cause
        assert 0 < res.latency < 2
        for _ in range(50):
            if srv.connections:
                break
            await asyncio.sleep(0.01)
        assert srv.connections == 1


async def test_down_when_nothing_listens() -> None:
    res = await run_once(TcpCheck(ep(closed_port())))
    assert not res.ok
    assert "ConnectionRefused" in res.cause


async def test_slow_accept_queue_full_times_out() -> None:
    """A listener whose accept queue is full drops SYNs: the connect must time out."""
    with socket.socket() as lsn:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(0)
        port = lsn.getsockname()[1]
        fillers = []
        for _ in range(3):  # fill the queue (backlog 0 admits one) without accepting
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        await asyncio.sleep(0.05)
        try:
            res = await run_once(TcpCheck(ep(port, timeout=0.3)))
        finally:
            for c in fillers:
                c.close()
    assert not res.ok
    assert "timed out" in res.cause
    assert 0.25 < res.latency < 1.5


async def test_bindto_and_bind_port_set_the_source() -> None:
    seen: list[tuple[str, int]] = []

    async def record(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(w.get_extra_info("peername"))

    src_port = closed_port()
    async with tcp_server(record) as srv:
        check = TcpCheck(ep(srv.port, bindto=IPv4Address("127.0.0.2"), bind_port=src_port))
        res = await run_once(check)
        assert res.ok, res.cause
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.01)
    assert seen == [("127.0.0.2", src_port)]


async def test_fwmark_and_bind_if_are_applied() -> None:
    """SO_MARK and SO_BINDTODEVICE on lo still reach a local listener."""
    async with tcp_server(_idle) as srv:
        res = await run_once(TcpCheck(ep(srv.port, fwmark=7, bind_if="lo")))
        assert res.ok, res.cause
        bad = await run_once(TcpCheck(ep(srv.port, bind_if="no-such-if0")))
        assert not bad.ok and "No such device" in bad.cause


async def test_identical_checks_are_equal_and_hashable() -> None:
    a, b = TcpCheck(ep(80)), TcpCheck(ep(80))
    assert a == b and hash(a) == hash(b) and a != TcpCheck(ep(81))
