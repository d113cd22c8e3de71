"""Units: the busy wait before a takeover yields to I/O; warm-ups are not repeated."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import replace

from pyvrrpd.net.fake import FakeNetBackend
from pyvrrpd.vrrp.fsm_types import State
from pyvrrpd.vrrp.instance import VrrpInstance
from pyvrrpd.vrrp.unit import _wait_busy
from tests.vrrp.test_instance_shell import Sent, settings


async def test_busy_wait_reaches_the_deadline_when_the_loop_is_idle() -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.002
    assert _wait_busy(loop, deadline) is True
    assert loop.time() >= deadline


async def test_busy_wait_gives_way_to_ready_io() -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    got: list[bytes] = []
    try:
        loop.add_reader(a.fileno(), lambda: got.append(a.recv(10)))
        b.send(b"x")  # a packet is waiting: the loop must see it before the deadline
        deadline = loop.time() + 5.0
        assert _wait_busy(loop, deadline) is False
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
        assert got == [b"x"]
    finally:
        loop.remove_reader(a.fileno())
        a.close()
        b.close()


async def test_backups_taking_over_together_warm_up_once() -> None:
    net = FakeNetBackend()
    net.add_link("eth0")
    fast = replace(settings(), version=3, advert_int=0.05)
    insts = [
        VrrpInstance(
            replace(fast, name=f"VI_{i}", vrid=51 + i),
            net,
            Sent(),
            ipaddress.ip_address("10.0.0.2"),
        )
        for i in range(3)
    ]
    for inst in insts:
        inst.start()
    deadline = max(i.fsm.takeover_at() or 0.0 for i in insts)
    await asyncio.sleep(deadline - asyncio.get_running_loop().time() + 0.1)
    assert all(i.state is State.MASTER for i in insts)
    assert len(net.warmed) == 1  # the code paths are shared: one warm-up serves all
    for inst in insts:
        await inst.stop()
