"""The in-memory FakeNetBackend: kernel-like idempotence, recording, events, failures."""

from __future__ import annotations

import asyncio
import errno
import ipaddress

import pytest

from pyvrrpd.net.backend import (
    AddressSpec,
    NetBackend,
    NetError,
    RouteSpec,
    RouteType,
    RuleSpec,
    VmacSpec,
)
from pyvrrpd.net.fake import FakeNetBackend


def vip(text: str, dev: str = "eth0", **kw: object) -> AddressSpec:
    return AddressSpec(address=ipaddress.ip_interface(text), dev=dev, **kw)  # type: ignore[arg-type]


@pytest.fixture
def net() -> FakeNetBackend:
    fake = FakeNetBackend()
    fake.add_link("eth0", mac=bytes.fromhex("020000000001"))
    return fake


def test_fake_satisfies_protocol(net: FakeNetBackend) -> None:
    backend: NetBackend = net  # mypy checks the structural match
    assert backend is net


async def test_address_add_is_idempotent_and_listed(net: FakeNetBackend) -> None:
    await net.add_address(vip("10.0.0.1/24", label="eth0:vip"))
    await net.add_address(vip("10.0.0.1/24"))
    await net.add_address(vip("fd00::1/64"))
    listed = await net.list_addresses("eth0")
    assert [str(a.address) for a in listed] == ["10.0.0.1/24", "fd00::1/64"]
    assert listed[0].label == "eth0:vip"
    assert [str(a.address) for a in await net.list_addresses("eth0", 6)] == ["fd00::1/64"]
    assert len(net.called("add_address")) == 3


async def test_remove_missing_address_is_success(net: FakeNetBackend) -> None:
    await net.remove_address(vip("10.0.0.9/32"))
    await net.add_address(vip("10.0.0.9/32"))
    await net.remove_address(vip("10.0.0.9/32"))
    assert not net.has_address("eth0", "10.0.0.9/32")


async def test_unknown_interface_raises_enodev(net: FakeNetBackend) -> None:
    with pytest.raises(NetError) as info:
        await net.add_address(vip("10.0.0.1/32", dev="nope"))
    assert info.value.errno == errno.ENODEV


async def test_routes_and_rules_idempotent(net: FakeNetBackend) -> None:
    route = RouteSpec(dst=ipaddress.ip_network("192.0.2.0/24"), type=RouteType.BLACKHOLE)
    rule = RuleSpec(src=ipaddress.ip_network("10.0.0.0/8"), table=100, priority=100)
    for _ in range(2):
        await net.add_route(route)
        await net.add_rule(rule)
    assert net.routes == [route]
    assert net.rules == [rule]
    await net.remove_route(route)
    await net.remove_route(route)
    await net.remove_rule(rule)
    assert net.routes == [] and net.rules == []


async def test_garp_and_na_record_the_mac_used(net: FakeNetBackend) -> None:
    await net.send_garp("eth0", ipaddress.IPv4Address("10.0.0.1"))
    await net.send_garp("eth0", ipaddress.IPv4Address("10.0.0.1"), mac=b"\x00\x00^\x00\x01\x01")
    await net.send_na("eth0", ipaddress.IPv6Address("fd00::1"))
    garps = net.called("send_garp")
    assert garps[0].kwargs["mac"] == bytes.fromhex("020000000001")
    assert garps[1].kwargs["mac"] == bytes.fromhex("00005e000101")
    assert net.called("send_na")[0].args == ("eth0", ipaddress.IPv6Address("fd00::1"))


async def test_vmac_create_and_delete(net: FakeNetBackend) -> None:
    info = await net.create_vmac(VmacSpec(parent="eth0", vrid=10, version=6))
    assert info.name == "vrrp.10"
    assert info.mac == bytes.fromhex("00005e00020a")
    assert info.parent == net.links["eth0"].index
    await net.delete_vmac("vrrp.10")
    await net.delete_vmac("vrrp.10")
    assert "vrrp.10" not in net.links


async def test_vmac_refuses_a_foreign_interface(net: FakeNetBackend) -> None:
    with pytest.raises(NetError):
        await net.create_vmac(VmacSpec(parent="eth0", vrid=1, name="eth0"))


async def test_watch_links_reports_changes_only(net: FakeNetBackend) -> None:
    events = net.watch_links()
    net.set_link("eth0", up=True)  # no change: no event
    net.set_link("eth0", up=False)
    net.set_link("eth0", up=True)
    got = [await asyncio.wait_for(anext(events), 1) for _ in range(2)]
    assert [(e.ifname, e.up) for e in got] == [("eth0", False), ("eth0", True)]
    await events.aclose()
    net.set_link("eth0", up=False)
    assert events._queue.empty()  # unsubscribed


async def test_injected_failure_raises_once(net: FakeNetBackend) -> None:
    net.fail_next("add_address", NetError("boom", errno.EPERM))
    with pytest.raises(NetError, match="boom"):
        await net.add_address(vip("10.0.0.1/32"))
    await net.add_address(vip("10.0.0.1/32"))
    assert net.has_address("eth0", "10.0.0.1/32")


async def test_primary_address_picks_ipv4_and_link_local(net: FakeNetBackend) -> None:
    await net.add_address(vip("fd00::5/64"))
    await net.add_address(vip("fe80::5/64"))
    await net.add_address(vip("10.1.1.1/24"))
    assert await net.primary_address("eth0", 4) == ipaddress.IPv4Address("10.1.1.1")
    assert await net.primary_address("eth0", 6) == ipaddress.IPv6Address("fe80::5")


def test_address_spec_defaults_follow_keepalived() -> None:
    assert vip("fd00::1/128").effective_preferred_lft() == 0
    assert vip("fd00::1/64").effective_preferred_lft() == 0xFFFFFFFF
    assert vip("fd00::1/128", preferred_lft=30).effective_preferred_lft() == 30
    assert str(vip("10.0.0.5/24", broadcast="+").broadcast_address()) == "10.0.0.255"
    assert str(vip("10.0.0.5/24", broadcast="-").broadcast_address()) == "10.0.0.0"
    assert vip("10.0.0.5/24").broadcast_address() is None
