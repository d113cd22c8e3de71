"""BalancerEngine with FakeIpvs and real TCP checks against listeners on 127.0.0.x."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyvrrpd.balancer.engine import BalancerEngine
from pyvrrpd.balancer.mapping import map_config
from pyvrrpd.balancer.virtual_server import VirtualServerState
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.model import Dest, DestKey, FwdMethod, Protocol, Service, ServiceKey
from pyvrrpd.ipvs.plan import AddDest, EditDest
from pyvrrpd.scripts import ScriptUser

from .conftest import conf

VIP = ServiceKey.of(Protocol.TCP, "10.0.0.1", 80)
TIMERS = " delay_loop 0.2\n connect_timeout 0.2\n retry 1\n delay_before_retry 0.1\n warmup 0\n"


class Listener:
    """A TCP listener on a fixed address and port that can be stopped and restarted."""

    def __init__(self, host: str) -> None:
        self.host = host
        with socket.socket() as s:
            s.bind((host, 0))
            self.port: int = s.getsockname()[1]
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.close()

        self.server = await asyncio.start_server(handle, self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    ls = [Listener("127.0.0.1"), Listener("127.0.0.2")]
    for lst in ls:
        await lst.start()
    yield ls
    for lst in ls:
        await lst.stop()


def vs_text(ls: list[Listener], extra: str = "", rs_extra: str = "", vip: str = "10.0.0.1") -> str:
    servers = "".join(
        f" real_server {lst.host} {lst.port} {{\n{rs_extra}  TCP_CHECK {{\n  }}\n }}\n"
        for lst in ls
    )
    return f"virtual_server {vip} 80 {{\n lvs_sched rr\n protocol TCP\n{TIMERS}{extra}{servers}}}\n"


def table(fake: FakeIpvs, key: ServiceKey = VIP) -> dict[str, int]:
    """{host:port -> weight} of one service in the fake kernel."""
    return {f"{k.address}:{k.port}": d.weight for k, d in fake.dests.get(key, {}).items()}


def names(ls: list[Listener]) -> list[str]:
    return [f"{lst.host}:{lst.port}" for lst in ls]


async def until(cond: Callable[[], bool], timeout: float = 3.0) -> float:
    """Wait for ``cond``; return how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not cond():
        if loop.time() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return loop.time() - start


def engine(text: str, fake: FakeIpvs, **kw: object) -> BalancerEngine:
    return BalancerEngine(conf(text), fake, script_user=ScriptUser.current(), **kw)  # type: ignore[arg-type]


async def test_checks_drive_the_table(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners), fake)
    await eng.start()
    try:
        a, b = names(listeners)
        assert fake.services[VIP] == Service(VIP, "rr")
        assert table(fake) == {a: 1, b: 1}
        await listeners[0].stop()
        took = await until(lambda: a not in table(fake))
        # next run <= delay_loop, then retry x delay_before_retry, each run <= connect_timeout
        assert took <= 0.2 + 2 * 0.2 + 1 * 0.1 + 0.5
        assert table(fake) == {b: 1}
        status = eng.status().virtual_servers[0]
        down = status.servers[0]
        assert not down.alive and not down.in_pool
        last = down.checks[0].last
        assert last is not None and not last.ok and last.latency >= 0
        await listeners[0].start()
        await until(lambda: a in table(fake))
        assert table(fake) == {a: 1, b: 1}
    finally:
        await eng.stop()
    assert fake.services == {}  # released at stop


async def test_a_failure_is_retried_before_removal(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    text = vs_text(listeners).replace("delay_before_retry 0.1", "delay_before_retry 0.6")
    eng = engine(text, fake)
    await eng.start()
    try:
        a = names(listeners)[0]
        await listeners[0].stop()
        took = await until(lambda: a not in table(fake))
        assert took >= 0.6  # one retry, delay_before_retry later
    finally:
        await eng.stop()


async def test_quorum_loss_brings_the_sorry_server(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    text = vs_text(listeners, " quorum 2\n sorry_server 192.168.9.9 8080\n")
    eng = engine(text, fake)
    await eng.start()
    try:
        a, b = names(listeners)
        assert table(fake) == {a: 1, b: 1}
        await listeners[1].stop()
        await until(lambda: "192.168.9.9:8080" in table(fake))
        assert table(fake) == {"192.168.9.9:8080": 1}  # the alive server left too
        assert not eng.status().virtual_servers[0].quorum_up
        await listeners[1].start()
        await until(lambda: "192.168.9.9:8080" not in table(fake))
        assert table(fake) == {a: 1, b: 1}
    finally:
        await eng.stop()


async def test_inhibit_on_failure_sets_weight_zero(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners, " inhibit_on_failure\n", rs_extra="  weight 4\n"), fake)
    await eng.start()
    try:
        a, b = names(listeners)
        await listeners[0].stop()
        await until(lambda: table(fake)[a] == 0)
        assert table(fake) == {a: 0, b: 4}
        await listeners[0].start()
        await until(lambda: table(fake)[a] == 4)
    finally:
        await eng.stop()


async def test_alpha_starts_without_servers(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners, " alpha\n"), fake)
    await eng.start()
    try:
        assert table(fake) == {}
        await until(lambda: len(table(fake)) == 2)
    finally:
        await eng.stop()


def desired_of(text: str) -> dict[ServiceKey, object]:
    config = conf(text)
    out: dict[ServiceKey, object] = {}
    for spec in map_config(config).virtual_servers:
        st = VirtualServerState(spec, [[] for _ in spec.real_servers])
        st.start()
        out.update(st.desired())
    return out


async def test_adoption_writes_nothing(listeners: list[Listener]) -> None:
    text = vs_text(listeners)
    fake = FakeIpvs()
    for key, entry in desired_of(text).items():
        fake.services[key] = entry.service  # type: ignore[attr-defined]
        fake.dests[key] = dict(entry.dests)  # type: ignore[attr-defined]
    eng = engine(text, fake, release_on_stop=False)
    await eng.start()
    try:
        await asyncio.sleep(0.5)  # a couple of check rounds
        await eng.settle()
        assert fake.writes == 0
    finally:
        await eng.stop()
    assert fake.writes == 0 and VIP in fake.services  # -I: nothing released


async def test_reload_like_restart_writes_one_change(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    first = engine(vs_text(listeners), fake, release_on_stop=False)
    await first.start()
    await first.stop()
    before = fake.writes
    assert before == 3  # one service, two destinations
    text = vs_text(listeners).replace("  TCP_CHECK", "  weight 5\n  TCP_CHECK", 1)
    second = engine(text, fake)
    await second.start()
    try:
        await eng_settle(second)
        assert fake.writes == before + 1
        (op,) = fake.calls[before:]
        assert isinstance(op, EditDest) and op.dest.weight == 5
    finally:
        await second.stop()


async def eng_settle(eng: BalancerEngine) -> None:
    await asyncio.sleep(0.3)
    await eng.settle()


async def test_foreign_services_are_left_alone(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    other = ServiceKey.of(Protocol.UDP, "10.9.9.9", 53)
    fake.services[other] = Service(other, "rr")
    fake.dests[other] = {}
    eng = engine(vs_text(listeners), fake)
    await eng.start()
    await eng.stop()
    assert list(fake.services) == [other]


async def test_lvs_flush_and_flush_on_stop(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    other = ServiceKey.of(Protocol.UDP, "10.9.9.9", 53)
    fake.services[other] = Service(other, "rr")
    fake.dests[other] = {}
    text = "global_defs {\n lvs_flush\n lvs_flush_on_stop\n}\n" + vs_text(listeners)
    eng = engine(text, fake)
    await eng.start()
    assert other not in fake.services and fake.calls[0] == "flush"
    fake.services[other] = Service(other, "rr")
    fake.dests[other] = {}
    await eng.stop()
    assert fake.services == {} and fake.calls[-1] == "flush"


async def test_identical_checks_run_once(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    text = vs_text(listeners) + vs_text(listeners, vip="10.0.0.2")
    eng = engine(text, fake)
    await eng.start()
    try:
        assert eng.check_tasks == 2  # two real servers, shared by both services
        second = ServiceKey.of(Protocol.TCP, "10.0.0.2", 80)
        a = names(listeners)[0]
        await listeners[0].stop()
        await until(lambda: a not in table(fake) and a not in table(fake, second))
    finally:
        await eng.stop()


async def test_failed_op_is_logged_with_its_object(
    listeners: list[Listener], caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIpvs()
    lst = listeners[0]
    dest = Dest(ip_address(lst.host), lst.port, FwdMethod.NAT, 1)
    fake.fail[AddDest(VIP, dest)] = 22
    fake.services[VIP] = Service(VIP, "rr")
    fake.dests[VIP] = {}
    eng = engine(vs_text(listeners[:1]), fake)
    with caplog.at_level(logging.ERROR, "pyvrrpd.balancer.engine"):
        await eng.start()
    try:
        assert eng.failed_ops == 1
        assert f"add destination {lst.host}:{lst.port} to TCP 10.0.0.1:80" in caplog.text
        assert DestKey(ip_address(lst.host), lst.port) not in fake.dests[VIP]
    finally:
        await eng.stop()


async def test_notify_and_quorum_scripts_run(listeners: list[Listener], tmp_path: Path) -> None:
    log_file = tmp_path / "events"
    script = tmp_path / "note.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log_file}\n')
    script.chmod(0o755)
    rs_extra = f'  notify_down "{script} down"\n  notify_up "{script} up"\n'
    extra = f' quorum 2\n quorum_down "{script} qdown"\n quorum_up "{script} qup"\n omega\n'
    fake = FakeIpvs()
    eng = engine(vs_text(listeners, extra, rs_extra), fake)
    await eng.start()
    try:
        await until(lambda: log_file.exists() and "qup" in log_file.read_text())
        await listeners[0].stop()
        await until(lambda: "qdown" in log_file.read_text())
        assert log_file.read_text().split() == ["qup", "down", "qdown"]
    finally:
        await eng.stop()
    # omega: the alive server's down script and quorum_down again at shutdown
    assert log_file.read_text().split() == ["qup", "down", "qdown", "down", "qdown"]


async def test_ha_suspend(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners, " ha_suspend\n"), fake)
    await eng.start()
    try:
        a = names(listeners)[0]
        assert eng.status().virtual_servers[0].suspended
        await listeners[0].stop()
        await asyncio.sleep(0.8)
        assert a in table(fake)  # checks suspended: nothing changes
        eng.set_local_address(ip_address("10.0.0.1"), True)
        assert not eng.status().virtual_servers[0].suspended
        await until(lambda: a not in table(fake))
    finally:
        await eng.stop()


async def test_restart_style_reload_deletes_dropped_services(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    text = vs_text(listeners) + vs_text(listeners, vip="10.0.0.2")
    first = engine(text, fake, release_on_stop=False)
    await first.start()
    await first.stop()
    dropped = ServiceKey.of(Protocol.TCP, "10.0.0.2", 80)
    assert dropped in fake.services
    before = fake.writes
    second = engine(vs_text(listeners), fake, previously_owned=first.owned)
    await second.start()
    try:
        assert dropped not in fake.services and VIP in fake.services
        assert fake.writes == before + 1  # one DelService; the kept service is adopted
    finally:
        await second.stop()
