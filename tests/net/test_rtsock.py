"""RtSocket's dispatch, with a datagram socketpair standing in for the kernel (port id 1).

The kernel usually answers inside ``send`` (the fast path); here nothing is there until
the test writes it, so these cover the other path: the event-loop reader, replies out of
order across requests in flight, dumps in several datagrams, errors and notifications.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Iterator

import pytest

from pyvrrpd.net import rtnl
from pyvrrpd.net.backend import NetError
from pyvrrpd.net.rtsock import RtSocket


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    yield ours, kernel
    ours.close()
    kernel.close()


def ack(seq: int, code: int = 0) -> bytes:
    return rtnl.nlmsg(
        rtnl.NLMSG_ERROR, rtnl.NLM_F_CAPPED, seq, struct.pack("=i", -code) + b"\0" * 16, pid=1
    )


def link(seq: int, index: int, name: str, flags: int = 0x41) -> bytes:
    body = struct.pack("=BxHiII", 0, 0, index, flags, 0) + rtnl.nla(
        rtnl.IFLA_IFNAME, name.encode() + b"\0"
    )
    return rtnl.nlmsg(
        rtnl.RTM_NEWLINK, rtnl.NLM_F_MULTI if seq else 0, seq, body, pid=1 if seq else 0
    )


def done(seq: int) -> bytes:
    return rtnl.nlmsg(rtnl.NLMSG_DONE, rtnl.NLM_F_MULTI, seq, b"\0" * 4, pid=1)


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_requests_in_flight_answered_out_of_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, kernel = pair
    rt = RtSocket(ours)
    add = asyncio.create_task(rt.request(1, rtnl.link_get(1, "a")))
    dump = asyncio.create_task(rt.request(2, rtnl.link_dump(2)))
    bad = asyncio.create_task(rt.request(3, rtnl.link_get(3, "nope")))
    await settle()
    assert [rtnl.split(kernel.recv(4096))[0].seq for _ in range(3)] == [1, 2, 3]
    assert not (add.done() or dump.done() or bad.done())
    kernel.send(link(2, 1, "lo") + link(2, 2, "eth0"))  # a dump in two datagrams
    kernel.send(ack(3, errno.ENODEV) + link(2, 3, "eth1"))
    kernel.send(link(1, 2, "eth0") + ack(1))
    await settle()
    assert not dump.done()
    kernel.send(done(2))
    names = [rtnl.decode_link(m).name for m in await dump]
    assert names == ["lo", "eth0", "eth1"]
    (reply,) = await add
    assert rtnl.decode_link(reply).name == "eth0"
    with pytest.raises(NetError) as exc:
        await bad
    assert (exc.value.errno, str(exc.value)) == (errno.ENODEV, "No such device")
    assert not rt._pending and not rt._reading  # the reader goes with the last request
    rt.close()


async def test_fast_path_reads_a_reply_already_queued(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, kernel = pair
    rt = RtSocket(ours)
    kernel.send(ack(7))  # "answered inside send"
    assert await rt.request(7, rtnl.link_get(7, "x")) == []
    assert not rt._reading
    rt.close()


async def test_notifications_and_stale_replies(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    rt = RtSocket(ours, groups=rtnl.RTMGRP_LINK, portid=1)
    rt._want_reader(True)
    kernel.send(ack(99) + link(0, 5, "eth5"))  # a reply nobody waits for, then an event
    event = await asyncio.wait_for(rt.next_event(), 1)
    assert event is not None and rtnl.decode_link(event).name == "eth5"
    waiter = asyncio.create_task(rt.next_event())
    await settle()
    assert not waiter.done()
    kernel.send(link(0, 6, "eth6"))
    got = await asyncio.wait_for(waiter, 1)
    assert got is not None and rtnl.decode_link(got).index == 6
    # caused by another socket's request numbered like ours: still an event, not our reply
    request = asyncio.create_task(rt.request(7, rtnl.link_dump(7)))
    await settle()
    foreign = bytearray(link(7, 8, "eth8"))
    struct.pack_into("=I", foreign, 12, 4242)  # nlmsg_pid of the other socket
    kernel.send(bytes(foreign))
    got = await asyncio.wait_for(rt.next_event(), 1)
    assert got is not None and (got.seq, rtnl.decode_link(got).name) == (7, "eth8")
    kernel.send(done(7))
    assert await request == []
    rt.close()
    with pytest.raises(NetError):
        await rt.next_event()


async def test_garbage_fails_the_requests_and_close_fails_the_rest(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, kernel = pair
    rt = RtSocket(ours)
    first = asyncio.create_task(rt.request(1, rtnl.link_dump(1)))
    await settle()
    kernel.send(b"\x05\0\0\0garbage")
    with pytest.raises(NetError) as exc:
        await first
    assert exc.value.errno == errno.EBADMSG
    second = asyncio.create_task(rt.request(2, rtnl.link_dump(2)))
    await settle()
    rt.close()
    with pytest.raises(NetError) as exc:
        await second
    assert exc.value.errno == errno.EBADF
    with pytest.raises(NetError):
        await rt.request(3, rtnl.link_dump(3))


def test_sequence_numbers_skip_zero() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rt = RtSocket(a)
    rt._seq = 0xFFFFFFFE
    assert [rt.next_seq() for _ in range(3)] == [0xFFFFFFFF, 1, 2]
    a.close()
    b.close()
