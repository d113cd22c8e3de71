"""Typed, frozen model of the kernel's IPVS table, keyed the way the kernel keys it.

A virtual service is identified by (family, protocol, address, port) or by
(family, fwmark); a real server (destination) inside a service by (address, port).
Every other attribute is editable in place (see plan.py). Values are the kernel's own
numbers (enums are IntEnum/IntFlag), so nothing is lost between a dump and an apply.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import NamedTuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Family(IntEnum):
    """Address family of a service or destination (the kernel's AF_* numbers)."""

    INET = 2
    INET6 = 10

    @classmethod
    def of(cls, address: IPAddress) -> Family:
        """The family of an address."""
        return cls.INET if address.version == 4 else cls.INET6

    @property
    def max_prefix(self) -> int:
        """32 or 128."""
        return 32 if self is Family.INET else 128


class Protocol(IntEnum):
    """Service protocol (IPPROTO_*)."""

    TCP = 6
    UDP = 17
    SCTP = 132


class FwdMethod(IntEnum):
    """Packet forwarding method of a destination (IP_VS_CONN_F_* & FWD_MASK)."""

    NAT = 0  # masquerading
    LOCAL = 1
    TUN = 2  # IP-in-IP / GUE / GRE tunnelling
    DR = 3  # direct routing ("gatewaying")
    BYPASS = 4


class TunType(IntEnum):
    """Tunnel encapsulation of a TUN destination."""

    IPIP = 0
    GUE = 1
    GRE = 2


class TunFlags(IntFlag):
    """Tunnel encapsulation flags (GUE/GRE); none means no checksum."""

    NONE = 0
    CSUM = 1
    REMCSUM = 2


class ServiceFlags(IntFlag):
    """Service flags (IP_VS_SVC_F_*); the kernel-internal HASHED bit is never kept."""

    NONE = 0
    PERSISTENT = 0x0001
    ONEPACKET = 0x0004  # "ops": one-packet scheduling (UDP)
    SCHED1 = 0x0008
    SCHED2 = 0x0010
    SCHED3 = 0x0020
    # scheduler-specific meanings of the SCHED bits
    SH_FALLBACK = SCHED1
    SH_PORT = SCHED2
    MH_FALLBACK = SCHED1
    MH_PORT = SCHED2


HASHED_FLAG = 0x0002
"""IP_VS_SVC_F_HASHED: set by the kernel on every live service; masked out on dump."""

SERVICE_FLAGS_MASK = 0xFFFF_FFFF & ~HASHED_FLAG
"""The flag bits we model; anything else read from the kernel is dropped."""


def _check_port(port: int, what: str) -> None:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"{what} port {port} out of range 0..65535")


@dataclass(frozen=True, slots=True, order=False)
class ServiceKey:
    """The kernel's identity of a virtual service.

    Either an address service (protocol, address, port; fwmark 0) or a firewall-mark
    service (fwmark > 0; no protocol, address or port). Build with `ServiceKey.of()`
    or `ServiceKey.for_fwmark()`.
    """

    family: Family
    protocol: Protocol | None = None
    address: IPAddress | None = None
    port: int = 0
    fwmark: int = 0

    def __post_init__(self) -> None:
        if self.fwmark:
            if not 0 < self.fwmark <= 0xFFFF_FFFF:
                raise ValueError(f"fwmark {self.fwmark} out of range 1..2^32-1")
            if self.protocol is not None or self.address is not None or self.port:
                raise ValueError("a fwmark service has no protocol, address or port")
            return
        if self.protocol is None or self.address is None:
            raise ValueError("an address service needs a protocol and an address")
        if Family.of(self.address) is not self.family:
            raise ValueError(f"address {self.address} is not of family {self.family.name}")
        _check_port(self.port, "service")

    @classmethod
    def of(cls, protocol: Protocol, address: str | IPAddress, port: int) -> ServiceKey:
        """An address service key; the family follows the address."""
        addr = ipaddress.ip_address(address)
        return cls(Family.of(addr), protocol, addr, port)

    @classmethod
    def for_fwmark(cls, fwmark: int, family: Family = Family.INET) -> ServiceKey:
        """A firewall-mark service key."""
        return cls(family, fwmark=fwmark)

    @property
    def is_fwmark(self) -> bool:
        """True for a firewall-mark service."""
        return self.fwmark != 0

    def sort_key(self) -> tuple[int, int, int, bytes, int]:
        """A total order (fwmark services after address services)."""
        addr = self.address.packed if self.address is not None else b""
        proto = int(self.protocol) if self.protocol is not None else 0
        return (self.fwmark, int(self.family), proto, addr, self.port)

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark} {self.family.name}"
        assert self.protocol is not None
        host = f"[{self.address}]" if self.family is Family.INET6 else str(self.address)
        return f"{self.protocol.name} {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service and all of its editable attributes.

    `timeout` is the persistence timeout in seconds (meaningful with PERSISTENT);
    `netmask` the persistence granularity as a prefix length (None: the full length of
    the family, as the kernel's default); `pe_name` a persistence engine ("sip").
    """

    key: ServiceKey
    scheduler: str = "wlc"
    flags: ServiceFlags = ServiceFlags.NONE
    timeout: int = 0
    netmask: int | None = None
    pe_name: str | None = None

    def __post_init__(self) -> None:
        maxlen = self.key.family.max_prefix
        if self.netmask is None:
            object.__setattr__(self, "netmask", maxlen)
        elif not (0 if self.key.family is Family.INET else 1) <= self.netmask <= maxlen:
            raise ValueError(f"netmask /{self.netmask} invalid for {self.key.family.name}")
        if not self.scheduler or len(self.scheduler) >= 16:
            raise ValueError(f"scheduler name {self.scheduler!r} must be 1..15 characters")
        if self.pe_name == "":
            object.__setattr__(self, "pe_name", None)
        if not 0 <= self.timeout <= 0xFFFF_FFFF:
            raise ValueError(f"timeout {self.timeout} out of range")
        object.__setattr__(self, "flags", ServiceFlags(int(self.flags) & SERVICE_FLAGS_MASK))

    @property
    def prefixlen(self) -> int:
        """The persistence granularity as a prefix length (never None)."""
        assert self.netmask is not None
        return self.netmask

    @property
    def persistent(self) -> bool:
        """True when persistence is on."""
        return bool(self.flags & ServiceFlags.PERSISTENT)


class DestKey(NamedTuple):
    """The kernel's identity of a destination within its service."""

    address: IPAddress
    port: int

    def sort_key(self) -> tuple[int, bytes, int]:
        """A total order."""
        return (self.address.version, self.address.packed, self.port)

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Dest:
    """A real server (destination) of a service, with all its editable attributes."""

    address: IPAddress
    port: int
    fwd: FwdMethod
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: TunType = TunType.IPIP
    tun_port: int = 0
    tun_flags: TunFlags = TunFlags.NONE

    def __post_init__(self) -> None:
        if isinstance(self.address, str):
            object.__setattr__(self, "address", ipaddress.ip_address(self.address))
        _check_port(self.port, "destination")
        _check_port(self.tun_port, "tunnel")
        if not 0 <= self.weight <= 0x7FFF_FFFF:
            raise ValueError(f"weight {self.weight} out of range 0..2^31-1")
        for name in ("u_threshold", "l_threshold"):
            if not 0 <= getattr(self, name) <= 0xFFFF_FFFF:
                raise ValueError(f"{name} out of range")

    @property
    def key(self) -> DestKey:
        """The destination's identity within its service."""
        return DestKey(self.address, self.port)

    @property
    def family(self) -> Family:
        """The destination's address family (may differ from the service's for TUN)."""
        return Family.of(self.address)


class ServiceEntry(NamedTuple):
    """A service and its destinations, keyed by DestKey."""

    service: Service
    dests: Mapping[DestKey, Dest]


IpvsState = Mapping[ServiceKey, ServiceEntry]
"""A whole IPVS table: ServiceKey -> (Service, {DestKey: Dest})."""
DesiredState = IpvsState
ObservedState = IpvsState


def make_state(*entries: tuple[Service, Iterable[Dest]]) -> dict[ServiceKey, ServiceEntry]:
    """Build a table from (service, dests) pairs; duplicate keys raise ValueError."""
    state: dict[ServiceKey, ServiceEntry] = {}
    for service, dests in entries:
        if service.key in state:
            raise ValueError(f"duplicate service {service.key}")
        by_key: dict[DestKey, Dest] = {}
        for dest in dests:
            if dest.key in by_key:
                raise ValueError(f"duplicate destination {dest.key} in {service.key}")
            by_key[dest.key] = dest
        state[service.key] = ServiceEntry(service, by_key)
    return state


@dataclass(frozen=True, slots=True)
class LvsTimeouts:
    """Global IPVS connection timeouts in seconds (ipvsadm --set); 0 leaves one unchanged."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0


class SyncState(IntEnum):
    """Connection-sync daemon role (IP_VS_STATE_*)."""

    MASTER = 1
    BACKUP = 2


@dataclass(frozen=True, slots=True)
class SyncDaemon:
    """Configuration of one kernel connection-synchronisation daemon.

    Zero/None optional fields let the kernel choose (port 8848, TTL 1, group
    224.0.0.81, maxlen from the interface MTU).
    """

    state: SyncState
    mcast_ifname: str
    syncid: int = 0
    sync_maxlen: int = 0
    mcast_group: IPAddress | None = None
    mcast_port: int = 0
    mcast_ttl: int = 0

    def __post_init__(self) -> None:
        if not self.mcast_ifname or len(self.mcast_ifname) >= 16:
            raise ValueError(f"interface name {self.mcast_ifname!r} must be 1..15 characters")
        if not 0 <= self.syncid <= 255:
            raise ValueError(f"syncid {self.syncid} out of range 0..255")
