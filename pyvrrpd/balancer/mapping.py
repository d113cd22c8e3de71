"""Config -> the IPVS services and destinations keepalived would program (pure).

One :class:`VirtualServerSpec` per ``virtual_server``: the kernel services it stands for
(one per address of its group's ranges and per fwmark, as keepalived's ipvswrapper does)
and its real servers and sorry server as :class:`RealServerSpec`, which turn into a
:class:`~pyvrrpd.ipvs.model.Dest` per service with :func:`dest_for` (a destination's port
follows keepalived: the real server's port for NAT, else the service's port, 0 for
fwmark services). Health checks are attached by :mod:`pyvrrpd.balancer.checker_map`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyvrrpd.config.convert import IPAddress
from pyvrrpd.config.lvs_effective import (
    effective_forwarding,
    effective_persistence_timeout,
    effective_port,
    effective_protocol,
    effective_real_server,
    effective_scheduler,
)
from pyvrrpd.config.model import Config
from pyvrrpd.config.model_lvs import (
    Forwarding,
    IpFamily,
    LvsMethod,
    LvsSched,
    RealServer,
    TunnelCsum,
    TunnelType,
    VirtualServer,
    VirtualServerGroup,
    VsgFwmark,
    VsgRange,
)
from pyvrrpd.config.model_lvs import Protocol as CfgProtocol
from pyvrrpd.ipvs.model import (
    Dest,
    Family,
    FwdMethod,
    LvsTimeouts,
    Protocol,
    Service,
    ServiceFlags,
    ServiceKey,
    SyncDaemon,
    SyncState,
    TunFlags,
    TunType,
)

#: The largest weight IPVS takes; keepalived clamps effective weights into [0, this].
WEIGHT_LIMIT = 0x7FFF_FFFF

_FWD = {LvsMethod.NAT: FwdMethod.NAT, LvsMethod.DR: FwdMethod.DR, LvsMethod.TUN: FwdMethod.TUN}
_TUN = {TunnelType.IPIP: TunType.IPIP, TunnelType.GUE: TunType.GUE, TunnelType.GRE: TunType.GRE}
_CSUM = {
    TunnelCsum.NOCSUM: TunFlags.NONE,
    TunnelCsum.CSUM: TunFlags.CSUM,
    TunnelCsum.REMCSUM: TunFlags.REMCSUM,
}
_PROTO = {
    CfgProtocol.TCP: Protocol.TCP,
    CfgProtocol.UDP: Protocol.UDP,
    CfgProtocol.SCTP: Protocol.SCTP,
}

Script = tuple[str, ...]
"""A configured script: the command string, then an optional user and group."""


def real_weight(weight: int) -> int:
    """An effective weight clamped to what IPVS takes (keepalived's ``real_weight``)."""
    return max(0, min(weight, WEIGHT_LIMIT))


@dataclass(frozen=True, slots=True)
class RealServerSpec:
    """A real (or sorry) server as programmed: everything but its live weight.

    ``nat_port`` is the port of the destination with NAT forwarding; other methods use the
    service's port. ``name`` is keepalived's ``[addr]:port`` spelling.
    """

    name: str
    address: IPAddress
    nat_port: int
    weight: int
    fwd: FwdMethod
    tun_type: TunType = TunType.IPIP
    tun_port: int = 0
    tun_flags: TunFlags = TunFlags.NONE
    u_threshold: int = 0
    l_threshold: int = 0
    inhibit: bool = False
    alpha: bool = False
    notify_up: Script | None = None
    notify_down: Script | None = None


def dest_for(service: ServiceKey, rs: RealServerSpec, weight: int) -> Dest:
    """The destination ``rs`` is in ``service`` with ``weight``."""
    port = rs.nat_port if rs.fwd is FwdMethod.NAT else service.port
    return Dest(
        address=rs.address,
        port=port,
        fwd=rs.fwd,
        weight=real_weight(weight),
        u_threshold=rs.u_threshold,
        l_threshold=rs.l_threshold,
        tun_type=rs.tun_type,
        tun_port=rs.tun_port,
        tun_flags=rs.tun_flags,
    )


@dataclass(frozen=True, slots=True)
class VirtualServerSpec:
    """One ``virtual_server``: its kernel services, servers and quorum settings."""

    name: str
    services: tuple[Service, ...]
    real_servers: tuple[RealServerSpec, ...]
    sorry_server: RealServerSpec | None = None
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    omega: bool = False
    ha_suspend: bool = False
    #: addresses whose presence on this host enables the checks (with ``ha_suspend``)
    addresses: tuple[tuple[IPAddress, IPAddress], ...] = ()
    #: position of the ``virtual_server`` block in the config
    index: int = 0

    def watches(self, address: IPAddress) -> bool:
        """True when ``address`` is one of this service's addresses (for ha_suspend)."""
        return any(
            lo.version == address.version and int(lo) <= int(address) <= int(hi)
            for lo, hi in self.addresses
        )


@dataclass(frozen=True, slots=True)
class LvsSyncDaemonSpec:
    """``lvs_sync_daemon IFNAME [VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]``.

    ``syncid`` None means "the VRRP instance's virtual router id".
    """

    interface: str
    instance: str | None = None
    syncid: int | None = None
    maxlen: int = 0
    port: int = 0
    ttl: int = 0
    group: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class BalancerSpec:
    """Everything the balancer programs, plus what could not be mapped."""

    virtual_servers: tuple[VirtualServerSpec, ...]
    timeouts: LvsTimeouts | None = None
    sync_daemon: LvsSyncDaemonSpec | None = None
    problems: tuple[str, ...] = field(default=())


# --- services ---------------------------------------------------------------------------


def _groups(config: Config) -> dict[str, VirtualServerGroup]:
    return {g.name: g for g in config.virtual_server_groups}


def _non_tunnel_family(vs: VirtualServer) -> Family | None:
    if vs.sorry_server is not None and effective_forwarding(vs).method is not LvsMethod.TUN:
        return Family.of(vs.sorry_server.address)
    for rs in vs.real_servers:
        if effective_forwarding(vs, rs).method is not LvsMethod.TUN:
            return Family.of(rs.address)
    return None


def vs_family(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> Family:
    """The address family keepalived gives a virtual server (fwmark services included)."""
    if vs.ip_family is not None:
        return Family.INET6 if vs.ip_family is IpFamily.INET6 else Family.INET
    if vs.address is not None:
        return Family.of(vs.address)
    g = groups.get(vs.group or "")
    if g is not None and g.ranges:
        return Family.of(g.ranges[0].first)
    fam = _non_tunnel_family(vs)
    if fam is not None:
        return fam
    families = {Family.of(rs.address) for rs in vs.real_servers}
    if vs.sorry_server is not None:
        families.add(Family.of(vs.sorry_server.address))
    return families.pop() if len(families) == 1 else Family.INET


def service_flags(vs: VirtualServer) -> ServiceFlags:
    """``ops``, ``flag-N`` and, for the sh/mh schedulers only, their port/fallback flags."""
    flags = ServiceFlags.NONE
    sched = effective_scheduler(vs)
    pairs = [
        (vs.ops, ServiceFlags.ONEPACKET),
        (vs.flag_1, ServiceFlags.SCHED1),
        (vs.flag_2, ServiceFlags.SCHED2),
        (vs.flag_3, ServiceFlags.SCHED3),
        (vs.sh_port and sched is LvsSched.SH, ServiceFlags.SH_PORT),
        (vs.sh_fallback and sched is LvsSched.SH, ServiceFlags.SH_FALLBACK),
        (vs.mh_port and sched is LvsSched.MH, ServiceFlags.MH_PORT),
        (vs.mh_fallback and sched is LvsSched.MH, ServiceFlags.MH_FALLBACK),
    ]
    for on, flag in pairs:
        if on:
            flags |= flag
    return flags


def granularity_prefix(text: str, family: Family) -> int:
    """``persistence_granularity`` (a netmask or a prefix length) as a prefix length."""
    if text.isdigit():
        bits = int(text)
    else:
        mask = ipaddress.IPv4Address(text)
        bits = bin(int(mask)).count("1")
        if int(mask) != (0xFFFF_FFFF << (32 - bits)) & 0xFFFF_FFFF:
            raise ValueError(f"netmask {text} is not contiguous")
    if not 0 < bits <= family.max_prefix:
        raise ValueError(f"persistence_granularity {text} invalid for {family.name}")
    return bits


def _service(vs: VirtualServer, groups: dict[str, VirtualServerGroup], key: ServiceKey) -> Service:
    flags = service_flags(vs)
    timeout = effective_persistence_timeout(vs, groups)
    if not timeout:
        return Service(key, effective_scheduler(vs).value, flags)
    netmask = None
    if vs.persistence_granularity is not None:
        netmask = granularity_prefix(vs.persistence_granularity, key.family)
    return Service(
        key,
        effective_scheduler(vs).value,
        flags | ServiceFlags.PERSISTENT,
        timeout,
        netmask,
        vs.persistence_engine,
    )


def _range_addresses(r: VsgRange) -> Iterator[IPAddress]:
    for n in range(int(r.first), int(r.last) + 1):
        yield ipaddress.ip_address(n)


def service_keys(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> list[ServiceKey]:
    """The kernel services of ``vs``: one per address of a group's ranges and per fwmark."""
    family = vs_family(vs, groups)
    proto = effective_protocol(vs, groups)
    if vs.group is None:
        if vs.fwmark is not None:
            return [ServiceKey.for_fwmark(vs.fwmark, family)]
        assert vs.address is not None and proto is not None
        return [ServiceKey.of(_PROTO[proto], vs.address, vs.port or 0)]
    g = groups.get(vs.group)
    if g is None:
        return []
    keys: list[ServiceKey] = []
    for entry in g.entries:
        if isinstance(entry, VsgFwmark):
            fam = family
            if entry.family is not None:
                fam = Family.INET6 if entry.family is IpFamily.INET6 else Family.INET
            keys.append(ServiceKey.for_fwmark(entry.fwmark, fam))
        else:
            assert proto is not None
            keys.extend(
                ServiceKey.of(_PROTO[proto], a, entry.port or 0) for a in _range_addresses(entry)
            )
    return keys


# --- servers ----------------------------------------------------------------------------


def _fwd_fields(fwd: Forwarding) -> dict[str, object]:
    out: dict[str, object] = {"fwd": _FWD[fwd.method]}
    if fwd.method is LvsMethod.TUN:
        out["tun_type"] = _TUN[fwd.tunnel_type or TunnelType.IPIP]
        out["tun_port"] = fwd.tunnel_port or 0
        out["tun_flags"] = _CSUM[fwd.csum or TunnelCsum.NOCSUM]
    return out


def rs_name(address: IPAddress, port: int) -> str:
    """keepalived's spelling of a real server: ``[addr]:port``."""
    return f"[{address}]:{port}"


def real_server_spec(vs: VirtualServer, rs: RealServer) -> RealServerSpec:
    """A real server with its virtual server's settings filled in."""
    ers = effective_real_server(vs, rs)
    port = effective_port(vs, rs) or 0
    return RealServerSpec(
        name=rs_name(rs.address, port),
        address=rs.address,
        nat_port=port,
        weight=ers.weight,
        u_threshold=rs.uthreshold or 0,
        l_threshold=rs.lthreshold or 0,
        inhibit=ers.inhibit_on_failure,
        alpha=ers.alpha,
        notify_up=rs.notify_up,
        notify_down=rs.notify_down,
        **_fwd_fields(ers.forwarding),  # type: ignore[arg-type]
    )


def sorry_server_spec(vs: VirtualServer) -> RealServerSpec | None:
    """The sorry server as a real server of weight 1 (None when there is none)."""
    s = vs.sorry_server
    if s is None:
        return None
    fwd = effective_forwarding(vs)
    port = s.port or 0
    return RealServerSpec(
        name=rs_name(s.address, port),
        address=s.address,
        nat_port=port,
        weight=1,
        inhibit=vs.sorry_server_inhibit,
        **_fwd_fields(fwd),  # type: ignore[arg-type]
    )


def _addresses(
    vs: VirtualServer, groups: dict[str, VirtualServerGroup]
) -> tuple[tuple[IPAddress, IPAddress], ...]:
    if vs.address is not None:
        return ((vs.address, vs.address),)
    g = groups.get(vs.group or "")
    return tuple((r.first, r.last) for r in g.ranges) if g is not None else ()


def virtual_server_spec(
    vs: VirtualServer, groups: dict[str, VirtualServerGroup], index: int = 0
) -> VirtualServerSpec:
    """The services and servers of one ``virtual_server``."""
    services = tuple(_service(vs, groups, k) for k in service_keys(vs, groups))
    return VirtualServerSpec(
        name=vs.describe(),
        services=services,
        real_servers=tuple(real_server_spec(vs, rs) for rs in vs.real_servers),
        sorry_server=sorry_server_spec(vs),
        quorum=vs.quorum,
        hysteresis=vs.hysteresis,
        quorum_up=vs.quorum_up,
        quorum_down=vs.quorum_down,
        omega=vs.omega,
        ha_suspend=vs.ha_suspend,
        addresses=_addresses(vs, groups),
        index=index,
    )


# --- global_defs ------------------------------------------------------------------------


def parse_lvs_timeouts(words: tuple[str, ...] | None) -> LvsTimeouts | None:
    """``lvs_timeouts tcp N tcpfin N udp N`` (any subset, any order)."""
    if not words:
        return None
    values = {"tcp": 0, "tcpfin": 0, "udp": 0}
    it = iter(words)
    for word in it:
        if word not in values:
            raise ValueError(f"unknown lvs_timeouts option {word}")
        values[word] = int(next(it))
    return LvsTimeouts(values["tcp"], values["tcpfin"], values["udp"])


def parse_lvs_sync_daemon(words: tuple[str, ...] | None) -> LvsSyncDaemonSpec | None:
    """``lvs_sync_daemon`` words, with keepalived's old positional form too."""
    if not words:
        return None
    opts: dict[str, object] = {}
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("inst", "id", "maxlen", "port", "ttl", "group") and i + 1 < len(words):
            value = words[i + 1]
            if word == "inst":
                opts["instance"] = value
            elif word == "group":
                opts["group"] = ipaddress.ip_address(value)
            else:
                opts["syncid" if word == "id" else word] = int(value)
            i += 2
            continue
        if i == 1:
            opts["instance"] = word
        elif i == 2:
            opts["syncid"] = int(word)
        else:
            raise ValueError(f"unknown lvs_sync_daemon option {word}")
        i += 1
    return LvsSyncDaemonSpec(words[0], **opts)  # type: ignore[arg-type]


def sync_daemon(spec: LvsSyncDaemonSpec, state: SyncState, vrid: int) -> SyncDaemon:
    """The kernel sync daemon for ``spec`` in ``state`` (``vrid`` is the default syncid)."""
    return SyncDaemon(
        state=state,
        mcast_ifname=spec.interface,
        syncid=spec.syncid if spec.syncid is not None else vrid,
        sync_maxlen=spec.maxlen,
        mcast_group=spec.group,
        mcast_port=spec.port,
        mcast_ttl=spec.ttl,
    )


def map_config(config: Config) -> BalancerSpec:
    """Every virtual server of ``config``; services claimed twice are kept once."""
    groups = _groups(config)
    problems: list[str] = []
    seen: set[ServiceKey] = set()
    specs: list[VirtualServerSpec] = []
    for index, vs in enumerate(config.virtual_servers):
        try:
            spec = virtual_server_spec(vs, groups, index)
        except ValueError as exc:
            problems.append(f"virtual server {vs.describe()}: {exc} - skipped")
            continue
        dup = [s.key for s in spec.services if s.key in seen]
        if dup:
            problems.append(
                f"virtual server {vs.describe()}: service {dup[0]} already configured - skipped"
            )
            continue
        if not spec.services:
            problems.append(f"virtual server {vs.describe()}: no service to program - skipped")
            continue
        seen.update(s.key for s in spec.services)
        specs.append(spec)
    g = config.global_defs
    timeouts = sync = None
    try:
        timeouts = parse_lvs_timeouts(g.lvs_timeouts)
    except (ValueError, StopIteration) as exc:
        problems.append(f"lvs_timeouts: {exc or 'missing value'} - ignored")
    try:
        sync = parse_lvs_sync_daemon(g.lvs_sync_daemon)
    except ValueError as exc:
        problems.append(f"lvs_sync_daemon: {exc} - ignored")
    return BalancerSpec(tuple(specs), timeouts, sync, tuple(problems))
