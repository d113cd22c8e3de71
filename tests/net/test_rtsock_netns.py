"""The fast rtnetlink path (rtsock + rtnl) against the real kernel, in a namespace lab.

The backend under test is ``LinuxBackend(ns, fast=True)``: the daemon's path (it runs with
no named namespace, where ``fast`` is the default). ``ip -o addr`` in the namespace is the
witness, and the pyroute2 path (``fast=False``) is the reference for every address variant
and error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pyvrrpd.net.backend import AddressSpec, LinkEvent, NetError, Scope
from pyvrrpd.net.linux import LinuxBackend
from pyvrrpd.net.rtsock import OVERRUN
from tests.integration.vrrplab import global_conf, has_address, instance_conf, start_daemon
from tests.integration.vrrplab import wait_for as wait_until
from tests.netlab import Host, Lab, have_root_netns

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2"),
]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab() as lab:
        lab.add_host("r1", ["10.8.0.1/24", "fd00:8::1/64"])
        yield lab


@pytest.fixture
def r1(lab: Lab) -> Host:
    return lab.hosts["r1"]


@pytest.fixture
async def fast(r1: Host) -> AsyncIterator[LinuxBackend]:
    async with LinuxBackend(r1.ns, fast=True) as backend:
        yield backend


@pytest.fixture
async def slow(r1: Host) -> AsyncIterator[LinuxBackend]:
    async with LinuxBackend(r1.ns) as backend:
        assert not backend.fast
        yield backend


def vip(text: str, dev: str = "eth0", **kw: Any) -> AddressSpec:
    return AddressSpec(address=ipaddress.ip_interface(text), dev=dev, **kw)


#: (spec, what `ip -o addr` must show for it)
VARIANTS = [
    (
        vip("10.8.0.50/24", label="eth0:vip", broadcast="+"),
        "brd 10.8.0.255 scope global secondary eth0:vip",
    ),
    (vip("10.8.1.50/24", broadcast="-", scope=Scope.LINK), "brd 10.8.1.0 scope link eth0"),
    (vip("10.8.0.51/32", scope=Scope.HOST), "inet 10.8.0.51/32 scope host eth0"),
    (vip("10.8.0.52/32", peer=ipaddress.ip_address("10.8.9.9")), "inet 10.8.0.52 peer 10.8.9.9/32"),
    (vip("10.8.2.50/24", noprefixroute=True), "noprefixroute"),
    (vip("239.8.0.1/32", autojoin=True), "autojoin"),
    (vip("fd00:8::50/64"), "inet6 fd00:8::50/64 scope global nodad"),
    (vip("fd00:8::51/128"), "nodad"),
    (vip("fd00:8::52/64", home=True, mngtmpaddr=True, noprefixroute=True), "home"),
    (vip("fd00:8::53/64", preferred_lft=30), "preferred_lft 30sec"),
    (vip("fd00:8::54/128", peer=ipaddress.ip_address("fd00:8::99")), "peer fd00:8::99/128"),
]


def shown(lab: Lab, r1: Host, spec: AddressSpec) -> str:
    """The `ip -o addr` line of `spec`'s address, lifetimes counted down normalised."""
    ip = str(spec.address.ip)
    lines = [
        ln
        for ln in lab.ip("-o", "addr", "show", "dev", "eth0", ns=r1).splitlines()
        if re.search(rf"inet6? {re.escape(ip)}[/ ]", ln)
    ]
    assert len(lines) <= 1, lines
    return re.sub(r"(\d+)sec", lambda m: "Nsec" if 0 < int(m[1]) < 30 else m[0], " ".join(lines))


@pytest.mark.parametrize(("spec", "expect"), VARIANTS, ids=[str(v[0].address) for v in VARIANTS])
async def test_every_variant_as_pyroute2_made_it(
    lab: Lab, r1: Host, fast: LinuxBackend, slow: LinuxBackend, spec: AddressSpec, expect: str
) -> None:
    await slow.add_address(spec)
    reference = shown(lab, r1, spec)
    await slow.remove_address(spec)
    assert shown(lab, r1, spec) == ""
    await fast.add_address(spec)
    await fast.add_address(spec)  # EEXIST is success
    try:
        ours = shown(lab, r1, spec)
        assert expect in ours
        assert ours == reference
        if spec.version == 6:
            lft = spec.effective_preferred_lft()
            assert ("preferred_lft forever" in ours) == (lft == 0xFFFFFFFF)
            assert ("deprecated" in ours) == (lft == 0)
        listed = {a.address: a for a in await fast.list_addresses("eth0", spec.version)}
        assert listed[spec.address].label == (spec.label or "eth0" if spec.version == 4 else None)
        assert listed[spec.address].scope == int(spec.scope)
        assert listed == {a.address: a for a in await slow.list_addresses("eth0", spec.version)}
    finally:
        await fast.remove_address(spec)
    assert shown(lab, r1, spec) == ""
    await fast.remove_address(spec)  # absent is success


async def test_errors_as_pyroute2_reported_them(fast: LinuxBackend, slow: LinuxBackend) -> None:
    missing = vip("10.8.0.60/24", dev="nosuch0")
    for net in (fast, slow):
        with pytest.raises(NetError) as exc:
            await net.add_address(missing)
        assert exc.value.errno == errno.ENODEV
        assert str(exc.value) == "interface nosuch0: No such device"
        await net.remove_address(missing)  # absent interface is success
        with pytest.raises(NetError) as exc:
            await net.get_link("nosuch0")
        assert (exc.value.errno, str(exc.value)) == (
            errno.ENODEV,
            "interface nosuch0: No such device",
        )
    # a refusal: autojoin needs a multicast address
    bad = vip("10.8.0.61/24", autojoin=True)
    messages = []
    for net in (fast, slow):
        with pytest.raises(NetError) as exc:
            await net.add_address(bad)
        assert exc.value.errno == errno.EINVAL
        messages.append(str(exc.value))
    assert messages == ["add 10.8.0.61/24 dev eth0: Invalid argument"] * 2


async def test_links_and_primary_address(fast: LinuxBackend, slow: LinuxBackend) -> None:
    assert await fast.get_link("eth0") == await slow.get_link("eth0")
    eth0 = await fast.get_link("eth0")
    assert eth0.name == "eth0" and len(eth0.mac) == 6 and eth0.mtu == 1500 and eth0.up
    assert eth0.kind == "veth" and eth0.parent is not None
    assert sorted(await fast.links(), key=lambda i: i.index) == sorted(
        await slow.links(), key=lambda i: i.index
    )
    assert {i.name for i in await fast.links()} == {"lo", "eth0"}
    assert await fast.primary_address("eth0", 4) == ipaddress.ip_address("10.8.0.1")
    ll = await fast.primary_address("eth0", 6)
    assert ll is not None and ll.is_link_local
    assert ll == await slow.primary_address("eth0", 6)


async def test_concurrent_requests_on_one_socket(lab: Lab, r1: Host, fast: LinuxBackend) -> None:
    specs = [vip(f"10.8.3.{i}/24") for i in range(1, 41)]
    lookups = [fast.get_link("eth0") for _ in range(10)]
    adding = asyncio.gather(*(fast.add_address(s) for s in specs))
    found, links, _ = await asyncio.gather(asyncio.gather(*lookups), fast.links(), adding)
    try:
        assert [i.name for i in found] == ["eth0"] * 10 and len(links) == 2
        listed = {a.address for a in await fast.list_addresses("eth0", 4)}
        assert {s.address for s in specs} <= listed
    finally:
        await asyncio.gather(*(fast.remove_address(s) for s in specs))
    assert "10.8.3." not in lab.ip("-o", "addr", ns=r1)


async def next_events(watcher: Any, n: int) -> list[LinkEvent]:
    return [await asyncio.wait_for(anext(watcher), 5.0) for _ in range(n)]


async def test_link_watcher_down_up_and_delete(lab: Lab, r1: Host, fast: LinuxBackend) -> None:
    index = (await fast.get_link("eth0")).index
    watcher = fast.watch_links()
    await watcher.start()
    try:
        for side in ("host", "bridge"):  # bridge: carrier lost, running goes and up stays
            lab.link_down(r1, side=side)
            assert await next_events(watcher, 1) == [LinkEvent("eth0", index, False)], side
            lab.link_up(r1, side=side)
            assert await next_events(watcher, 1) == [LinkEvent("eth0", index, True)], side
        lab.ip("link", "add", "tw0", "type", "veth", "peer", "name", "tw1", ns=r1)
        lab.ip("link", "set", "tw0", "up", ns=r1)
        lab.ip("link", "set", "tw1", "up", ns=r1)
        ups = await next_events(watcher, 2)  # new links are reported; up once both ends are
        while not {("tw0", True), ("tw1", True)} <= {(e.ifname, e.up) for e in ups}:
            ups += await next_events(watcher, 1)
        lab.ip("link", "del", "tw0", ns=r1)
        gone = await next_events(watcher, 2)
        assert {(e.ifname, e.up) for e in gone} == {("tw0", False), ("tw1", False)}
        # lost notifications: the watcher dumps again and reports what changed meanwhile
        assert watcher._rt is not None
        stale = watcher._known[index]
        watcher._known[index] = dataclasses.replace(stale, flags=0)
        watcher._known[9999] = dataclasses.replace(stale, index=9999, name="ghost")
        watcher._rt._events.append(OVERRUN)
        watcher._rt._wake_events()
        resync = await next_events(watcher, 2)
        assert set(resync) == {LinkEvent("eth0", index, True), LinkEvent("ghost", 9999, False)}
    finally:
        await watcher.aclose()
        lab.link_up(r1, side="host")
        lab.link_up(r1, side="bridge")
        lab.ip("link", "del", "tw0", ns=r1, check=False)


# -- pyroute2 stays unloaded on a VRRP-only start ----------------------------------------


def test_start_path_modules_do_not_import_pyroute2() -> None:
    code = (
        "import sys, pyvrrpd.daemon, pyvrrpd.runtime, pyvrrpd.net.linux, pyvrrpd.vrrp.engine;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _daemon_imports(lab: Lab, host: Host, conf: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Start pyvrrpd with import profiling, wait for its VIP, stop it; its log."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    d = start_daemon(lab, host, "pyvrrpd", conf)
    monkeypatch.delenv("PYTHONPROFILEIMPORTTIME")
    try:
        held = wait_until(lambda: has_address(lab, host, "10.8.0.100"), 30)
        assert held is not None, d.log_text()[-3000:]
    finally:
        lab.stop(d.proc)
    assert wait_until(lambda: not has_address(lab, host, "10.8.0.100"), 5) is not None
    return d.log_text()


def test_vrrp_only_daemon_never_imports_pyroute2(
    lab: Lab, r1: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = instance_conf(
        priority=255, state="MASTER", vip="10.8.0.100/24", advert_int=0.1, version=3
    )
    log = _daemon_imports(lab, r1, global_conf("r1") + inst, monkeypatch)
    assert "| pyvrrpd.net.linux" in log  # profiling worked
    assert "Entering MASTER STATE" in log
    assert "| pyroute2" not in log
    # a virtual route needs pyroute2: loaded then, and the route is installed
    routed = inst.replace(
        "    virtual_ipaddress {",
        "    virtual_routes {\n        192.0.2.0/24 via 10.8.0.200 dev eth0\n    }\n"
        "    virtual_ipaddress {",
    )
    log = _daemon_imports(lab, r1, global_conf("r1") + routed, monkeypatch)
    assert "| pyroute2" in log
    assert "cannot add route" not in log
    assert os.environ.get("PYTHONPROFILEIMPORTTIME") is None


async def test_warm_changes_nothing_and_leaves_the_socket_usable(
    lab: Lab, r1: Host, fast: LinuxBackend
) -> None:
    """warm(): a GETLINK whose replies are dropped, the index cached, frames built."""
    before = lab.ip("-o", "addr", ns=r1)
    specs = [
        AddressSpec(address=ipaddress.ip_interface("10.8.0.77/24"), dev="eth0"),
        AddressSpec(address=ipaddress.ip_interface("fd00:8::77/64"), dev="eth0"),
        AddressSpec(address=ipaddress.ip_interface("10.8.9.9/24"), dev="nosuch0"),
    ]
    fast.warm(specs)
    assert lab.ip("-o", "addr", ns=r1) == before  # nothing added
    assert fast.rt._pending == {}  # the dropped replies left nothing waiting
    await fast.add_address(specs[0])  # the next real request gets its own reply
    try:
        assert "10.8.0.77/24" in lab.ip("-o", "addr", ns=r1)
    finally:
        await fast.remove_address(specs[0])
