"""KernelIpvs against a real IPVS kernel. Runs inside the VM (scripts/vm-run; test_in_vm.py).

Each test starts and ends with an empty table (IPVS_CMD_FLUSH) in the VM's own kernel.
`ipvsadm` (an independent C writer/reader of the same netlink API) is the oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import ipaddress
import os
import platform
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyvrrpd.ipvs.backend import reconcile
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.kernel import IpvsError, KernelIpvs
from pyvrrpd.ipvs.model import (
    Dest,
    DestKey,
    Family,
    FwdMethod,
    IpvsState,
    LvsTimeouts,
    Protocol,
    Service,
    ServiceFlags,
    ServiceKey,
    SyncDaemon,
    SyncState,
    TunFlags,
    TunType,
    make_state,
)
from pyvrrpd.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    EditDest,
    EditService,
    Op,
    plan,
)

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not Path("/proc/net/ip_vs").exists() or os.geteuid() != 0,
        reason="needs root and a kernel with IPVS loaded: run inside the VM "
        "(scripts/vm-run python -m pytest -m ipvs tests/ipvs, or tests/ipvs/test_in_vm.py)",
    ),
]

MODDIR = Path(f"/lib/modules/{platform.release()}/kernel/net/netfilter/ipvs")


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def ipvsadm(*args: str) -> str:
    return subprocess.run(["ipvsadm", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
async def ipvs() -> AsyncIterator[KernelIpvs]:
    async with KernelIpvs() as k:
        await k.flush()
        k.writes = 0
        yield k
        await k.flush()


# A table with one of everything the model holds.
TCP4 = Service(ServiceKey.of(Protocol.TCP, "10.0.0.1", 80), "rr")
UDP6 = Service(
    ServiceKey.of(Protocol.UDP, "2001:db8::1", 53),
    "sh",
    ServiceFlags.PERSISTENT | ServiceFlags.ONEPACKET | ServiceFlags.SH_PORT,
    300,
    netmask=64,
)
SCTP4 = Service(
    ServiceKey.of(Protocol.SCTP, "10.0.0.2", 5060), "lc", ServiceFlags.PERSISTENT, 30, pe_name="sip"
)
FWM4 = Service(ServiceKey.for_fwmark(7), "wlc", ServiceFlags.PERSISTENT, 60, netmask=24)
FWM6 = Service(ServiceKey.for_fwmark(8, Family.INET6), "mh", ServiceFlags.MH_FALLBACK)
EVERYTHING = make_state(
    (
        TCP4,
        [
            Dest(ip("10.1.0.1"), 8080, FwdMethod.NAT, 3, u_threshold=100, l_threshold=10),
            Dest(ip("10.1.0.2"), 80, FwdMethod.DR, 0),
        ],
    ),
    (UDP6, [Dest(ip("2001:db8::5"), 53, FwdMethod.TUN, 5, tun_type=TunType.GUE, tun_port=5555)]),
    (SCTP4, [Dest(ip("10.1.0.4"), 5060, FwdMethod.NAT)]),
    (FWM4, [Dest(ip("10.1.0.3"), 0, FwdMethod.DR)]),
    (
        FWM6,
        [
            Dest(
                ip("2001:db8::7"), 0, FwdMethod.TUN, tun_type=TunType.GRE, tun_flags=TunFlags.CSUM
            ),
            Dest(ip("2001:db8::8"), 0, FwdMethod.TUN),
        ],
    ),
)
# IPv4 destination behind an IPv6 service: the kernel accepts it for TUN only.
MIXED = make_state((UDP6, [Dest(ip("10.1.0.9"), 53, FwdMethod.TUN, 2, tun_type=TunType.GRE)]))

_SCHED_FLAG_NAMES = {
    "sh": {ServiceFlags.SH_FALLBACK: "sh-fallback", ServiceFlags.SH_PORT: "sh-port"},
    "mh": {ServiceFlags.MH_FALLBACK: "mh-fallback", ServiceFlags.MH_PORT: "mh-port"},
}


def _hostport(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def ipvsadm_save_lines(state: IpvsState) -> set[str]:
    """What `ipvsadm -Sn` prints for `state` (its format, rendered from our model)."""
    lines = set()
    for key, (svc, dests) in state.items():
        if key.fwmark:
            ident = f"-f {key.fwmark}" + (" -6" if key.family is Family.INET6 else "")
        else:
            assert key.address is not None and key.protocol is not None
            opt = {Protocol.TCP: "-t", Protocol.UDP: "-u", Protocol.SCTP: "--sctp-service"}
            ident = f"{opt[key.protocol]} {_hostport(key.address, key.port)}"
        line = f"-A {ident} -s {svc.scheduler}"
        if svc.persistent:
            line += f" -p {svc.timeout}"
            if svc.prefixlen != key.family.max_prefix:
                if key.family is Family.INET:
                    line += f" -M {ipaddress.ip_network(f'0.0.0.0/{svc.prefixlen}').netmask}"
                else:
                    line += f" -M {svc.prefixlen}"
        if svc.flags & ServiceFlags.ONEPACKET:
            line += " -o"
        names = _SCHED_FLAG_NAMES.get(svc.scheduler, {})
        bits = [n for f, n in names.items() if svc.flags & f]
        if bits:
            line += " -b " + ",".join(bits)
        if svc.pe_name:
            line += f" --pe {svc.pe_name}"
        lines.add(line)
        for d in dests.values():
            fwd = {FwdMethod.NAT: "-m", FwdMethod.DR: "-g", FwdMethod.TUN: "-i"}[d.fwd]
            dline = f"-a {ident} -r {_hostport(d.address, d.port)} {fwd} -w {d.weight}"
            if d.fwd is FwdMethod.TUN:
                dline += f" --tun-type {d.tun_type.name.lower()}"
                if d.tun_type is TunType.GUE:
                    dline += f" --tun-port {d.tun_port}"
                if d.tun_type is not TunType.IPIP:
                    csum = {
                        TunFlags.NONE: "--tun-nocsum",
                        TunFlags.CSUM: "--tun-csum",
                        TunFlags.REMCSUM: "--tun-remcsum",
                    }
                    dline += f" {csum[d.tun_flags]}"
            lines.add(dline)
    return lines


def ipvsadm_thresholds() -> dict[str, tuple[int, int]]:
    """{"addr:port": (upper, lower)} from `ipvsadm -Ln --thresholds`."""
    out = {}
    for line in ipvsadm("-Ln", "--thresholds").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "->" and parts[1] != "RemoteAddress:Port":
            out[parts[1]] = (int(parts[2]), int(parts[3]))
    return out


async def test_every_kind_of_service_and_dest_round_trips(ipvs: KernelIpvs) -> None:
    results = await ipvs.apply(plan(EVERYTHING, await ipvs.dump()))
    assert [str(r) for r in results if not r.ok] == []
    assert len(results) == len(EVERYTHING) + sum(len(e.dests) for e in EVERYTHING.values())
    dumped = await ipvs.dump()
    assert dumped == EVERYTHING
    assert plan(EVERYTHING, dumped, flush_unowned=True) == []
    assert set(ipvsadm("-Sn").splitlines()) == ipvsadm_save_lines(EVERYTHING)
    thresholds = ipvsadm_thresholds()
    assert thresholds["10.1.0.1:8080"] == (100, 10)
    assert thresholds["10.1.0.2:80"] == (0, 0)
    some = sorted(EVERYTHING, key=ServiceKey.sort_key)[:2]
    assert await ipvs.dump(some) == {k: EVERYTHING[k] for k in some}  # a partial dump


async def test_mixed_family_tunnel_dest_round_trips(ipvs: KernelIpvs) -> None:
    assert all(r.ok for r in await ipvs.apply(plan(MIXED, {})))
    assert await ipvs.dump() == MIXED


async def test_dump_reads_what_ipvsadm_wrote(ipvs: KernelIpvs) -> None:
    for cmd in [
        "-A -t 10.0.0.1:80 -s wrr",
        "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 3 -x 100 -y 10",
        "-a -t 10.0.0.1:80 -r 10.1.0.2:80 -g -w 0",
        "-A -u [2001:db8::1]:53 -s sh -b sh-port,sh-fallback -p 300 -M 64 -o",
        "-a -u [2001:db8::1]:53 -r [2001:db8::5]:53 -i --tun-type gue --tun-port 5555 -w 5",
        "-A -f 7 -s dh -p 60 -M 255.255.255.0",
        "-a -f 7 -r 10.1.0.3:0 -i",
    ]:
        ipvsadm(*cmd.split())
    tcp = ServiceKey.of(Protocol.TCP, "10.0.0.1", 80)
    udp = ServiceKey.of(Protocol.UDP, "2001:db8::1", 53)
    flags6 = ServiceFlags.PERSISTENT | ServiceFlags.ONEPACKET | ServiceFlags.SH_PORT
    expected = make_state(
        (
            Service(tcp, "wrr"),
            [
                Dest(ip("10.1.0.1"), 8080, FwdMethod.NAT, 3, 100, 10),
                Dest(ip("10.1.0.2"), 80, FwdMethod.DR, 0),
            ],
        ),
        (
            Service(udp, "sh", flags6 | ServiceFlags.SH_FALLBACK, 300, 64),
            [Dest(ip("2001:db8::5"), 53, FwdMethod.TUN, 5, tun_type=TunType.GUE, tun_port=5555)],
        ),
        (
            Service(ServiceKey.for_fwmark(7), "dh", ServiceFlags.PERSISTENT, 60, 24),
            [Dest(ip("10.1.0.3"), 0, FwdMethod.TUN)],
        ),
    )
    assert await ipvs.dump() == expected


SCHEDULERS = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf"]
SCHEDULERS.append("twos")  # since 6.7


@pytest.mark.parametrize("scheduler", SCHEDULERS)
async def test_scheduler_add_and_edit(ipvs: KernelIpvs, scheduler: str) -> None:
    if not (MODDIR / f"ip_vs_{scheduler}.ko").exists():
        pytest.skip(f"this kernel has no ip_vs_{scheduler} module")
    svc = Service(ServiceKey.of(Protocol.TCP, "10.0.0.9", 443), scheduler)
    dest = Dest(ip("10.1.0.9"), 443, FwdMethod.NAT, 2)
    assert all(r.ok for r in await ipvs.apply([AddService(svc), AddDest(svc.key, dest)]))
    other = "wrr" if scheduler != "wrr" else "rr"
    edited = dataclasses.replace(svc, scheduler=other)
    assert (await ipvs.dump())[svc.key].service == svc
    assert all(r.ok for r in await ipvs.apply([EditService(edited, svc)]))
    assert await ipvs.dump() == make_state((edited, [dest]))
    assert f"-A -t 10.0.0.9:443 -s {other}" in ipvsadm("-Sn")


SERVICE_EDITS: list[tuple[str, dict[str, Any]]] = [
    ("scheduler", {"scheduler": "wrr"}),
    ("persistence on", {"flags": ServiceFlags.PERSISTENT, "timeout": 120}),
    ("granularity", {"flags": ServiceFlags.PERSISTENT, "timeout": 30, "netmask": 16}),
    ("pe sip", {"flags": ServiceFlags.PERSISTENT, "timeout": 30, "pe_name": "sip"}),
    ("ops", {"flags": ServiceFlags.ONEPACKET}),
]
DEST_EDITS: list[tuple[str, dict[str, Any]]] = [
    ("fwd NAT to DR", {"fwd": FwdMethod.DR}),
    ("fwd NAT to TUN gue", {"fwd": FwdMethod.TUN, "tun_type": TunType.GUE, "tun_port": 6080}),
    ("weight 0", {"weight": 0}),
    ("thresholds", {"u_threshold": 50, "l_threshold": 5}),
]


async def test_edits_change_only_their_attribute_in_place(ipvs: KernelIpvs) -> None:
    svc = Service(ServiceKey.of(Protocol.UDP, "10.0.0.5", 53), "rr")
    d1 = Dest(ip("10.1.0.1"), 53, FwdMethod.NAT, 4)
    d2 = Dest(ip("10.1.0.2"), 53, FwdMethod.NAT, 7)
    base = make_state((svc, [d1, d2]))
    assert all(r.ok for r in await ipvs.apply(plan(base, {})))
    for name, change in SERVICE_EDITS:
        before = await ipvs.dump()
        want = make_state((dataclasses.replace(before[svc.key].service, **change), [d1, d2]))
        ops = plan(want, before)
        assert [type(op) for op in ops] == [EditService], name
        assert all(r.ok for r in await ipvs.apply(ops)), name
        assert await ipvs.dump() == want, name
    current = await ipvs.dump()
    for name, change in DEST_EDITS:
        want = make_state((current[svc.key].service, [dataclasses.replace(d1, **change), d2]))
        ops = plan(want, await ipvs.dump())
        assert [type(op) for op in ops] == [EditDest], name
        assert all(r.ok for r in await ipvs.apply(ops)), name
        assert await ipvs.dump() == want, name


async def test_pyroute2_update_deletes_and_our_edit_does_not(ipvs: KernelIpvs) -> None:
    """The trap our Edit* ops avoid: pyroute2's "update" command sends IPVS_CMD_DEL_*."""
    from pyroute2 import AsyncIPVS, IPVSService

    svc = Service(ServiceKey.of(Protocol.TCP, "10.0.0.7", 80), "rr")
    assert all(r.ok for r in await ipvs.apply([AddService(svc)]))
    edited = dataclasses.replace(svc, scheduler="wlc")
    assert all(r.ok for r in await ipvs.apply([EditService(edited)]))
    assert (await ipvs.dump())[svc.key].service == edited
    p2 = AsyncIPVS()
    try:
        await p2.setup_endpoint()
        pysvc = IPVSService(addr="10.0.0.7", port=80, protocol=6, sched_name="rr")
        await p2.service("update", service=pysvc)
    finally:
        p2.close()
    assert svc.key not in await ipvs.dump()


async def test_second_instance_adopts_without_writes(ipvs: KernelIpvs) -> None:
    assert all(r.ok for r in await ipvs.apply(plan(EVERYTHING, {})))
    saved = ipvsadm("-Sn")
    async with KernelIpvs() as second:
        assert await reconcile(second, EVERYTHING, owned=set(EVERYTHING)) == []
        assert await reconcile(second, EVERYTHING, flush_unowned=True) == []
        assert second.writes == 0
    assert ipvsadm("-Sn") == saved


async def test_reconcile_deletes_only_what_is_ours(ipvs: KernelIpvs) -> None:
    ipvsadm("-A", "-t", "10.9.9.9:25", "-s", "rr")  # someone else's service
    foreign = ServiceKey.of(Protocol.TCP, "10.9.9.9", 25)
    assert all(r.ok for r in await reconcile(ipvs, EVERYTHING))
    smaller = {k: e for k, e in EVERYTHING.items() if k != TCP4.key}
    results = await reconcile(ipvs, smaller, owned=set(EVERYTHING))
    assert [type(r.op) for r in results] == [DelService] and all(r.ok for r in results)
    dumped = await ipvs.dump()
    assert foreign in dumped and TCP4.key not in dumped
    assert all(r.ok for r in await reconcile(ipvs, smaller, flush_unowned=True))
    assert await ipvs.dump() == smaller


async def test_errors_are_reported_per_op_like_the_fake(ipvs: KernelIpvs) -> None:
    k1, k2, k3 = TCP4.key, UDP6.key, ServiceKey.of(Protocol.TCP, "10.0.0.3", 80)
    da = Dest(ip("10.1.0.1"), 80, FwdMethod.NAT)
    ops: list[Op] = [
        AddService(TCP4),
        AddService(TCP4),  # EEXIST
        AddDest(k1, da),
        AddDest(k1, da),  # EEXIST
        DelDest(k1, DestKey(ip("10.1.0.99"), 80)),  # ENOENT
        DelService(k3),  # ESRCH
        AddDest(k3, da),  # ESRCH
        AddService(Service(k3, "nosuch")),  # ENOENT: no scheduler module
        AddService(UDP6),
        AddDest(k2, Dest(ip("10.1.0.9"), 53, FwdMethod.NAT)),  # EINVAL: mixed family, not TUN
        AddDest(k1, Dest(ip("10.1.0.5"), 80, FwdMethod.NAT, l_threshold=5)),  # ERANGE
        AddDest(k1, Dest(ip("10.1.0.6"), 80, FwdMethod.TUN, tun_type=TunType.GUE)),  # EINVAL
        EditDest(k1, Dest(ip("10.1.0.7"), 80, FwdMethod.NAT)),  # ENOENT
        AddDest(k1, Dest(ip("10.1.0.8"), 80, FwdMethod.DR)),  # still works after errors
    ]
    got = [(r.errno, r.ok) for r in await ipvs.apply(ops)]
    fake = [(r.errno, r.ok) for r in await FakeIpvs().apply(ops)]
    assert got == fake
    E = errno
    assert [e for e, _ in got] == [
        0, E.EEXIST, 0, E.EEXIST, E.ENOENT, E.ESRCH, E.ESRCH, E.ENOENT, 0, E.EINVAL,
        E.ERANGE, E.EINVAL, E.ENOENT, 0,
    ]  # fmt: skip
    results = await ipvs.apply([DelService(k3)])
    assert "ESRCH" in results[0].message and "10.0.0.3:80" in str(results[0])


async def test_timeouts_set_and_read_back(ipvs: KernelIpvs) -> None:
    original = await ipvs.get_timeouts()
    try:
        await ipvs.set_timeouts(LvsTimeouts(tcp=1000, tcp_fin=100, udp=200))
        assert await ipvs.get_timeouts() == LvsTimeouts(1000, 100, 200)
        assert "Timeout (tcp tcpfin udp): 1000 100 200" in ipvsadm("-L", "--timeout")
        await ipvs.set_timeouts(LvsTimeouts(udp=250))  # zero leaves the others alone
        assert await ipvs.get_timeouts() == LvsTimeouts(1000, 100, 250)
    finally:
        await ipvs.set_timeouts(original)
    assert await ipvs.get_timeouts() == original


@pytest.fixture
def veth() -> Iterator[str]:
    subprocess.run(["ip", "link", "del", "ipvst0"], capture_output=True)
    subprocess.run(
        ["ip", "link", "add", "ipvst0", "type", "veth", "peer", "name", "ipvst1"], check=True
    )
    subprocess.run(["ip", "link", "set", "ipvst0", "up"], check=True)
    yield "ipvst0"
    subprocess.run(["ip", "link", "del", "ipvst0"], check=True)


async def test_sync_daemon_start_list_stop(ipvs: KernelIpvs, veth: str) -> None:
    master = SyncDaemon(SyncState.MASTER, veth, syncid=42)
    backup = SyncDaemon(SyncState.BACKUP, veth, syncid=43, mcast_port=8850, mcast_ttl=2)
    try:
        await ipvs.start_daemon(master)
        await ipvs.start_daemon(backup)
        running = {d.state: d for d in await ipvs.daemons()}
        assert set(running) == {SyncState.MASTER, SyncState.BACKUP}
        assert (running[SyncState.MASTER].mcast_ifname, running[SyncState.MASTER].syncid) == (
            veth,
            42,
        )
        assert running[SyncState.BACKUP].mcast_port == 8850
        assert running[SyncState.BACKUP].mcast_ttl == 2
        listing = ipvsadm("-L", "--daemon")
        assert f"master sync daemon (mcast={veth}, syncid=42" in listing
        assert f"backup sync daemon (mcast={veth}, syncid=43" in listing
        with pytest.raises(IpvsError) as exc:
            await ipvs.start_daemon(master)
        assert exc.value.errno == errno.EEXIST
    finally:
        for state in SyncState:
            with contextlib.suppress(IpvsError):
                await ipvs.stop_daemon(state)
    assert await ipvs.daemons() == []
    assert ipvsadm("-L", "--daemon").strip() == ""


async def test_sync_daemon_refused_with_mixed_family_dests(ipvs: KernelIpvs, veth: str) -> None:
    assert all(r.ok for r in await ipvs.apply(plan(MIXED, {})))
    with pytest.raises(IpvsError) as exc:
        await ipvs.start_daemon(SyncDaemon(SyncState.MASTER, veth, syncid=1))
    assert exc.value.errno == errno.EINVAL
    assert await ipvs.daemons() == []


async def test_bulk_1000_services_x_10_dests(ipvs: KernelIpvs) -> None:
    """11,000 objects: batched apply, raw dump, adoption; timings printed (not asserted)."""
    import time

    entries = []
    for i in range(1000):
        svc = Service(ServiceKey.of(Protocol.TCP, ipaddress.IPv4Address(0x0A00_0000 + i), 80))
        base = 0x0B00_0000 + 16 * i
        dests = [Dest(ipaddress.IPv4Address(base + j), 80, FwdMethod.NAT) for j in range(10)]
        entries.append((svc, dests))
    desired = make_state(*entries)
    t0 = time.monotonic()
    results = await ipvs.apply(plan(desired, await ipvs.dump()))
    t1 = time.monotonic()
    assert len(results) == 11_000 and all(r.ok for r in results)
    dumped = await ipvs.dump()
    t2 = time.monotonic()
    assert dumped == desired
    assert plan(desired, dumped, flush_unowned=True) == []
    assert len(ipvsadm("-Sn").splitlines()) == 11_000
    print(f"\napply 11000 objects: {t1 - t0:.2f}s; dump: {t2 - t1:.2f}s")


async def test_lvs_sync_daemon_follows_the_instance(ipvs: KernelIpvs, veth: str) -> None:
    """The follower on the real kernel: backup, master on takeover, no churn when the
    kernel reports its own defaults, nothing left at stop."""
    from pyvrrpd.balancer.mapping import LvsSyncDaemonSpec
    from pyvrrpd.balancer.sync_follow import SyncDaemonFollower
    from tests.balancer.test_sync_follow import FakeEngine, FakeInstance

    async def roles(want: set[SyncState]) -> None:
        for _ in range(200):
            if {d.state for d in await ipvs.daemons()} == want:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(ipvsadm("-L", "--daemon"))

    inst = FakeInstance("BACKUP", vrid=77)
    follower = SyncDaemonFollower(ipvs, LvsSyncDaemonSpec(veth, instance="VI_1"))
    try:
        assert follower.attach(FakeEngine({"VI_1": inst}))
        await roles({SyncState.BACKUP})
        assert f"backup sync daemon (mcast={veth}, syncid=77" in ipvsadm("-L", "--daemon")
        inst.act("BecomeMaster")
        await roles({SyncState.MASTER})
        assert f"master sync daemon (mcast={veth}, syncid=77" in ipvsadm("-L", "--daemon")
        writes = ipvs.writes
        follower.attach(FakeEngine({"VI_1": inst}))  # as after a reload
        await asyncio.sleep(0.3)
        assert ipvs.writes == writes  # the dumped defaults match: no restart
    finally:
        await follower.stop()
    assert await ipvs.daemons() == []
