"""LinuxBackend against the real kernel, in a namespace lab, observed from outside.

The router namespace ``r1`` is driven by the backend; ``ip`` in that namespace and
tcpdump in the client namespace ``c`` are the witnesses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from pyvrrpd.net.backend import (
    AddressSpec,
    NetBackend,
    Nexthop,
    RouteSpec,
    RouteType,
    RuleAction,
    RuleSpec,
    VmacSpec,
)
from pyvrrpd.net.linux import LinuxBackend
from tests.netlab import Host, Lab, have_root_netns

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2"),
]

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab() as lab:
        lab.add_host("r1", ["10.9.0.1/24", "fd00:9::1/64"])
        lab.add_host("c", ["10.9.0.100/24", "fd00:9::100/64"])
        yield lab


@pytest.fixture
def r1(lab: Lab) -> Host:
    return lab.hosts["r1"]


@pytest.fixture
def client(lab: Lab) -> Host:
    return lab.hosts["c"]


@pytest.fixture
async def net(r1: Host) -> AsyncIterator[LinuxBackend]:
    async with LinuxBackend(r1.ns) as backend:
        yield backend


def vip(text: str, dev: str = "eth0", **kw: object) -> AddressSpec:
    return AddressSpec(address=ipaddress.ip_interface(text), dev=dev, **kw)  # type: ignore[arg-type]


def test_backend_satisfies_protocol() -> None:
    backend: NetBackend = LinuxBackend()
    assert isinstance(backend, LinuxBackend)


async def test_ipv4_vip_with_label_added_and_removed(lab: Lab, r1: Host, net: LinuxBackend) -> None:
    spec = vip("10.9.0.254/24", label="eth0:vip", broadcast="+")
    await net.add_address(spec)
    await net.add_address(spec)  # idempotent
    shown = lab.ip("-4", "addr", "show", "dev", "eth0", ns=r1)
    assert "inet 10.9.0.254/24 brd 10.9.0.255 scope global secondary eth0:vip" in shown
    listed = {str(a.address): a for a in await net.list_addresses("eth0", 4)}
    assert listed["10.9.0.254/24"].label == "eth0:vip"
    assert await net.primary_address("eth0", 4) == ipaddress.IPv4Address("10.9.0.1")
    await net.remove_address(spec)
    await net.remove_address(spec)  # idempotent
    assert "10.9.0.254" not in lab.ip("-4", "addr", "show", "dev", "eth0", ns=r1)


async def test_ipv4_host_scope_vip(lab: Lab, r1: Host, net: LinuxBackend) -> None:
    from pyvrrpd.net.backend import Scope

    spec = vip("10.9.1.1/32", scope=Scope.HOST)
    await net.add_address(spec)
    try:
        assert "inet 10.9.1.1/32 scope host eth0" in lab.ip("-4", "addr", ns=r1)
    finally:
        await net.remove_address(spec)


async def test_ipv6_vip_is_not_tentative(lab: Lab, r1: Host, net: LinuxBackend) -> None:
    wide, host = vip("fd00:9::fe/64"), vip("fd00:9::fd/128")
    await net.add_address(wide)
    await net.add_address(host)
    try:
        shown = lab.ip("-6", "addr", "show", "dev", "eth0", ns=r1)
        lines = {ln.split()[1]: ln for ln in shown.splitlines() if "inet6" in ln}
        assert "tentative" not in lines["fd00:9::fe/64"]
        assert "nodad" in lines["fd00:9::fe/64"]
        # keepalived's default: a /128 VIP is deprecated (preferred_lft 0), not a source.
        assert "deprecated" in lines["fd00:9::fd/128"]
        infos = {str(a.address): a for a in await net.list_addresses("eth0", 6)}
        assert not infos["fd00:9::fe/64"].tentative
        assert infos["fd00:9::fd/128"].deprecated
    finally:
        await net.remove_address(wide)
        await net.remove_address(host)
    assert "fd00:9::fe" not in lab.ip("-6", "addr", "show", "dev", "eth0", ns=r1)


async def test_get_link_and_unknown_interface(lab: Lab, net: LinuxBackend) -> None:
    from pyvrrpd.net.backend import NetError

    info = await net.get_link("eth0")
    assert info.up
    assert ":".join(f"{b:02x}" for b in info.mac) == lab.mac("r1")
    with pytest.raises(NetError):
        await net.get_link("nope0")
    await net.remove_address(vip("10.9.0.77/32", dev="nope0"))  # absent device: success


@needs_tcpdump
async def test_garp_on_the_wire(lab: Lab, client: Host, net: LinuxBackend) -> None:
    spec = vip("10.9.0.200/24")
    with lab.capture(client, "arp", name="garp") as cap:
        started = time.time()
        await net.add_address(spec)
        await net.send_garp("eth0", ipaddress.IPv4Address("10.9.0.200"))
    try:
        pkts = [p for p in cap.packets() if ARP in p]
        assert cap.complete, cap.stderr
        assert len(pkts) == 1
        p = pkts[0]
        assert p[Ether].src == lab.mac("r1")
        assert p[Ether].dst == "ff:ff:ff:ff:ff:ff"
        assert (p[ARP].op, p[ARP].psrc, p[ARP].pdst) == (1, "10.9.0.200", "10.9.0.200")
        assert p[ARP].hwsrc == lab.mac("r1")
        delay = float(p.time) - started
        print(f"\nadd_address call -> GARP on the wire: {delay * 1000:.2f} ms")
        assert 0 <= delay < 0.5
        if shutil.which("tshark"):
            out = subprocess.run(
                ["tshark", "-r", str(cap.path), "-T", "fields", "-e", "arp.isgratuitous",
                 "-e", "arp.src.proto_ipv4", "-e", "arp.src.hw_mac"],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            assert out[1:] == ["10.9.0.200", lab.mac("r1")]
            assert out[0] in ("1", "True")
    finally:
        await net.remove_address(spec)


@needs_tcpdump
async def test_unsolicited_na_on_the_wire(lab: Lab, client: Host, net: LinuxBackend) -> None:
    spec = vip("fd00:9::200/64")
    target = ipaddress.IPv6Address("fd00:9::200")
    with lab.capture(client, "icmp6 and ip6[40] == 136", name="na") as cap:
        await net.add_address(spec)
        await net.send_na("eth0", target)
    try:
        pkts = [p for p in cap.packets() if ICMPv6ND_NA in p]
        assert cap.complete, cap.stderr
        assert len(pkts) == 1
        p = pkts[0]
        assert p[Ether].src == lab.mac("r1")
        assert p[Ether].dst == "33:33:00:00:00:01"
        assert (p[IPv6].src, p[IPv6].dst, p[IPv6].hlim) == (str(target), "ff02::1", 255)
        assert (p[ICMPv6ND_NA].tgt, p[ICMPv6ND_NA].O, p[ICMPv6ND_NA].S) == (str(target), 1, 0)
        assert p[ICMPv6ND_NA].R == 0  # forwarding is off in the lab namespace
        assert p[ICMPv6NDOptDstLLAddr].lladdr == lab.mac("r1")
    finally:
        await net.remove_address(spec)


@needs_tcpdump
async def test_vmac_lifecycle_and_garp_from_vrrp_mac(
    lab: Lab, r1: Host, client: Host, net: LinuxBackend
) -> None:
    conf = "/proc/sys/net/ipv4/conf"

    def sysctl(name: str) -> str:
        return lab.exec(r1, ["cat", f"{conf}/{name}"]).stdout.strip()

    before = sysctl("eth0/arp_ignore"), sysctl("eth0/arp_filter")
    info = await net.create_vmac(VmacSpec(parent="eth0", vrid=10))
    try:
        shown = lab.ip("-d", "link", "show", "dev", "vrrp.10", ns=r1)
        assert "link/ether 00:00:5e:00:01:0a" in shown
        assert "macvlan mode private" in shown
        assert "vrrp.10@eth0" in shown
        assert info.up and info.kind == "macvlan"
        assert (sysctl("vrrp.10/arp_ignore"), sysctl("vrrp.10/accept_local")) == ("1", "1")
        assert sysctl("vrrp.10/rp_filter") == "0"
        assert (sysctl("eth0/arp_ignore"), sysctl("eth0/arp_filter")) == ("1", "1")
        assert "inet6" not in lab.ip("addr", "show", "dev", "vrrp.10", ns=r1)
        spec = vip("10.9.0.210/24", dev="vrrp.10")
        with lab.capture(client, "arp", name="vmac") as cap:
            await net.add_address(spec)
            await net.send_garp("vrrp.10", ipaddress.IPv4Address("10.9.0.210"))
        pkts = [p for p in cap.packets() if ARP in p]
        assert [(p[Ether].src, p[ARP].hwsrc, p[ARP].psrc) for p in pkts] == [
            ("00:00:5e:00:01:0a", "00:00:5e:00:01:0a", "10.9.0.210")
        ]
    finally:
        await net.delete_vmac("vrrp.10")
    assert "vrrp.10" not in lab.ip("link", ns=r1)
    assert (sysctl("eth0/arp_ignore"), sysctl("eth0/arp_filter")) == before
    await net.delete_vmac("vrrp.10")  # idempotent


async def test_ipv6_vmac_has_vrrp_mac_and_parent_link_local(
    lab: Lab, r1: Host, net: LinuxBackend
) -> None:
    parent_ll = await net.primary_address("eth0", 6)
    assert parent_ll is not None and parent_ll.is_link_local
    await net.create_vmac(VmacSpec(parent="eth0", vrid=11, version=6, name="vr6"))
    try:
        shown = lab.ip("addr", "show", "dev", "vr6", ns=r1)
        assert "link/ether 00:00:5e:00:02:0b" in shown
        six = [ln.split()[1] for ln in shown.splitlines() if "inet6" in ln]
        assert six == [f"{parent_ll}/64"]  # no EUI-64 address of its own
    finally:
        await net.delete_vmac("vr6")


async def test_link_watcher_sees_down_and_up(lab: Lab, r1: Host, net: LinuxBackend) -> None:
    watcher = net.watch_links()
    await watcher.start()
    try:
        for side, state in (("host", False), ("host", True), ("bridge", False), ("bridge", True)):
            (lab.link_up if state else lab.link_down)(r1, side=side)
            event = await asyncio.wait_for(anext(watcher), 1.0)  # an event, not a poll
            assert (event.ifname, event.up) == ("eth0", state), side
    finally:
        await watcher.aclose()
        lab.link_up(r1, side="host")
        lab.link_up(r1, side="bridge")


async def test_routes_added_and_removed(lab: Lab, r1: Host, net: LinuxBackend) -> None:
    via = RouteSpec(
        dst=ipaddress.ip_network("192.0.2.0/24"),
        gateway=ipaddress.ip_address("10.9.0.100"),
        dev="eth0",
        table=100,
        metric=7,
        src=ipaddress.ip_address("10.9.0.1"),
    )
    hole = RouteSpec(dst=ipaddress.ip_network("198.51.100.0/24"), type=RouteType.BLACKHOLE)
    six = RouteSpec(family=6, dst=ipaddress.ip_network("2001:db8::/48"), type=RouteType.UNREACHABLE)
    multi = RouteSpec(
        dst=ipaddress.ip_network("203.0.113.0/24"),
        nexthops=(
            Nexthop(gateway=ipaddress.ip_address("10.9.0.100"), dev="eth0", weight=2),
            Nexthop(gateway=ipaddress.ip_address("10.9.0.101"), dev="eth0"),
        ),
    )
    for spec in (via, hole, six, multi, via):
        await net.add_route(spec)
    try:
        assert (
            "192.0.2.0/24 via 10.9.0.100 dev eth0 proto keepalived src 10.9.0.1 metric 7"
            in lab.ip("route", "show", "table", "100", ns=r1)
        )
        assert "blackhole 198.51.100.0/24" in lab.ip("route", ns=r1)
        assert "unreachable 2001:db8::/48" in lab.ip("-6", "route", ns=r1)
        shown = " ".join(lab.ip("route", "show", "203.0.113.0/24", ns=r1).split())
        assert "nexthop via 10.9.0.100 dev eth0 weight 2" in shown
        assert "nexthop via 10.9.0.101 dev eth0 weight 1" in shown
    finally:
        for spec in (via, hole, six, multi, six):
            await net.remove_route(spec)
    assert lab.ip("route", "show", "table", "100", ns=r1).strip() == ""
    assert "198.51.100.0" not in lab.ip("route", ns=r1)
    assert "2001:db8::" not in lab.ip("-6", "route", ns=r1)
    assert "203.0.113.0" not in lab.ip("route", ns=r1)


async def test_rules_added_and_removed(lab: Lab, r1: Host, net: LinuxBackend) -> None:
    src = RuleSpec(src=ipaddress.ip_network("10.9.0.0/24"), table=100, priority=1000)
    mark = RuleSpec(fwmark=5, fwmask=0xFF, iif="eth0", table=101, priority=1001)
    deny = RuleSpec(
        family=6,
        dst=ipaddress.ip_network("2001:db8::/32"),
        action=RuleAction.PROHIBIT,
        priority=1002,
    )
    for spec in (src, mark, deny, src):
        await net.add_rule(spec)
    try:
        rules = lab.ip("rule", ns=r1)
        assert "1000:\tfrom 10.9.0.0/24 lookup 100" in rules
        assert "1001:\tfrom all fwmark 0x5/0xff iif eth0 lookup 101" in rules
        assert "1002:\tfrom all to 2001:db8::/32 prohibit" in lab.ip("-6", "rule", ns=r1)
    finally:
        for spec in (src, mark, deny, deny):
            await net.remove_rule(spec)
    assert "lookup 10" not in lab.ip("rule", ns=r1)
    assert "1002:" not in lab.ip("-6", "rule", ns=r1)


async def test_address_changes_survive_the_interface_being_recreated(lab: Lab, r1: Host) -> None:
    """The fast path caches interface indexes; a recreated interface is looked up again."""
    lab.ip("link", "add", "d0", "type", "veth", "peer", "name", "d0p", ns=r1)
    try:
        async with LinuxBackend(r1.ns, fast=True) as net:
            spec = vip("10.9.7.1/24", dev="d0")
            await net.add_address(spec)
            first = lab.ip("-o", "link", "show", "d0", ns=r1).split(":")[0]
            lab.ip("link", "del", "d0", ns=r1)
            await net.remove_address(spec)  # interface gone: success, nothing to do
            lab.ip("link", "add", "d0", "type", "veth", "peer", "name", "d0p", ns=r1)
            assert lab.ip("-o", "link", "show", "d0", ns=r1).split(":")[0] != first
            await net.add_address(spec)  # stale index -> ENODEV -> looked up again
            assert "10.9.7.1/24" in lab.ip("-4", "addr", "show", "dev", "d0", ns=r1)
            await net.remove_address(spec)
            assert "10.9.7.1" not in lab.ip("-4", "addr", "show", "dev", "d0", ns=r1)
    finally:
        subprocess.run(["ip", "-n", r1.ns, "link", "del", "d0"], capture_output=True)
