"""The one interface for privileged network changes, and the plain types it speaks.

Two implementations: :class:`pyvrrpd.net.linux.LinuxBackend` (rtnetlink, AF_PACKET,
/proc/sys) and :class:`pyvrrpd.net.fake.FakeNetBackend` (records calls, for tests).
The config model's line items are mapped onto these types by the VRRP shell; they only
hold what the kernel needs. Changes are idempotent: adding what exists and removing
what is absent both succeed. Other failures raise :class:`NetError`.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

INFINITY_LIFETIME = 0xFFFFFFFF


class NetError(Exception):
    """A network change the kernel refused; `errno` is the kernel's error number."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class Scope(enum.IntEnum):
    """rtnetlink scopes (``/etc/iproute2/rt_scopes``)."""

    GLOBAL = 0
    SITE = 200
    LINK = 253
    HOST = 254
    NOWHERE = 255


class RouteType(enum.IntEnum):
    """rtnetlink route types that keepalived configurations use."""

    UNICAST = 1
    LOCAL = 2
    BROADCAST = 3
    ANYCAST = 4
    MULTICAST = 5
    BLACKHOLE = 6
    UNREACHABLE = 7
    PROHIBIT = 8
    THROW = 9


class RuleAction(enum.IntEnum):
    """FIB rule actions (``ip rule ... table|goto|nop|blackhole|unreachable|prohibit``)."""

    TABLE = 1
    GOTO = 2
    NOP = 3
    BLACKHOLE = 6
    UNREACHABLE = 7
    PROHIBIT = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressSpec:
    """An address to put on an interface, as a ``virtual_ipaddress`` line says.

    ``broadcast`` is an address, ``"+"`` (host bits set) or ``"-"`` (host bits clear);
    IPv4 only. ``preferred_lft`` None means keepalived's default for IPv6 (0, i.e.
    deprecated, for a /128; forever otherwise); ``nodad`` False only when the line
    says ``-nodad`` (keepalived's flag *disables* the default NODAD).
    """

    address: IPInterface
    dev: str
    label: str | None = None
    scope: Scope = Scope.GLOBAL
    broadcast: ipaddress.IPv4Address | Literal["+", "-"] | None = None
    peer: IPAddress | None = None
    preferred_lft: int | None = None
    nodad: bool = True
    home: bool = False
    noprefixroute: bool = False
    mngtmpaddr: bool = False
    autojoin: bool = False

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.address.version

    def broadcast_address(self) -> ipaddress.IPv4Address | None:
        """The broadcast address to set, with ``+``/``-`` resolved; None for none."""
        if self.broadcast is None or self.address.version != 4:
            return None
        if self.broadcast == "+":
            return ipaddress.IPv4Address(self.address.network.broadcast_address)
        if self.broadcast == "-":
            return ipaddress.IPv4Address(self.address.network.network_address)
        return self.broadcast

    def effective_preferred_lft(self) -> int:
        """Preferred lifetime in seconds (INFINITY_LIFETIME for forever)."""
        if self.preferred_lft is not None:
            return self.preferred_lft
        if self.address.version == 6 and self.address.network.prefixlen == 128:
            return 0
        return INFINITY_LIFETIME


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """An address found on an interface."""

    address: IPInterface
    ifindex: int
    label: str | None
    scope: int
    flags: int

    @property
    def tentative(self) -> bool:
        """IFA_F_TENTATIVE: still in duplicate address detection."""
        return bool(self.flags & 0x40)

    @property
    def deprecated(self) -> bool:
        """IFA_F_DEPRECATED: preferred lifetime 0."""
        return bool(self.flags & 0x20)


@dataclass(frozen=True, slots=True, kw_only=True)
class Nexthop:
    """One path of a multipath route."""

    gateway: IPAddress | None = None
    dev: str | None = None
    weight: int = 1
    onlink: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    """A route, as a ``virtual_routes``/``static_routes`` line says (``dst`` None: default).

    ``table`` is a number (names are resolved by the caller); None is ``main``.
    ``protocol`` None means ``boot`` as ``ip route`` does.
    """

    family: int = 4
    dst: IPNetwork | None = None
    gateway: IPAddress | None = None
    dev: str | None = None
    src: IPAddress | None = None
    table: int | None = None
    metric: int | None = None
    scope: Scope | None = None
    protocol: int | None = None
    type: RouteType = RouteType.UNICAST
    onlink: bool = False
    tos: int = 0
    mtu: int | None = None
    nexthops: tuple[Nexthop, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """A policy rule, as a ``virtual_rules``/``static_rules`` line says."""

    family: int = 4
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    table: int | None = None
    priority: int | None = None
    action: RuleAction = RuleAction.TABLE
    goto: int | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    tos: int = 0


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What the VRRP shell needs to know about an interface."""

    index: int
    name: str
    mac: bytes
    flags: int
    mtu: int
    kind: str | None = None
    parent: int | None = None

    @property
    def up(self) -> bool:
        """Administratively up and running (IFF_UP and IFF_RUNNING), as keepalived tracks."""
        return (self.flags & 0x41) == 0x41


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A change of an interface's up/running state; ``up`` False also when deleted."""

    ifname: str
    index: int
    up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VmacSpec:
    """A macvlan for ``use_vmac``: name (``vrrp.VRID`` by default), parent, VRID, family."""

    parent: str
    vrid: int
    version: int = 4
    name: str | None = None
    mac: bytes | None = None

    @property
    def ifname(self) -> str:
        """The interface name to create."""
        return self.name if self.name is not None else f"vrrp.{self.vrid}"


class LinkWatch(Protocol):
    """An async iterator of LinkEvent; await start() to be sure the subscription is live."""

    async def start(self) -> None:
        """Subscribe now (iterating also does); changes after this are not missed."""
        ...

    def __aiter__(self) -> LinkWatch:
        """Itself."""
        ...

    async def __anext__(self) -> LinkEvent:
        """The next change."""
        ...

    async def aclose(self) -> None:
        """Unsubscribe."""
        ...


class NetBackend(Protocol):
    """All privileged network changes and lookups the VRRP side makes."""

    async def add_address(self, spec: AddressSpec) -> None:
        """Add an address; already present is success."""
        ...

    async def remove_address(self, spec: AddressSpec) -> None:
        """Remove an address; already absent is success."""
        ...

    async def list_addresses(self, ifname: str, version: int | None = None) -> list[AddressInfo]:
        """Addresses of an interface, optionally of one IP version."""
        ...

    def warm(self, specs: Sequence[AddressSpec]) -> None:
        """Get ready to add and announce `specs` soon, changing nothing (may do nothing)."""
        ...

    async def add_route(self, spec: RouteSpec) -> None:
        """Add a route; already present is success."""
        ...

    async def remove_route(self, spec: RouteSpec) -> None:
        """Remove a route; already absent is success."""
        ...

    async def add_rule(self, spec: RuleSpec) -> None:
        """Add a policy rule; already present is success."""
        ...

    async def remove_rule(self, spec: RuleSpec) -> None:
        """Remove a policy rule; already absent is success."""
        ...

    async def send_garp(
        self, ifname: str, address: ipaddress.IPv4Address, mac: bytes | None = None
    ) -> None:
        """Broadcast a gratuitous ARP for `address` on `ifname` (its MAC unless `mac`)."""
        ...

    async def send_na(
        self,
        ifname: str,
        address: ipaddress.IPv6Address,
        mac: bytes | None = None,
        router: bool | None = None,
    ) -> None:
        """Send an unsolicited NA for `address` to ff02::1 (router flag: None = forwarding)."""
        ...

    async def create_vmac(self, spec: VmacSpec) -> LinkInfo:
        """Create (or reuse) the macvlan of `spec`, set its sysctls, bring it up."""
        ...

    async def delete_vmac(self, ifname: str) -> None:
        """Delete a macvlan made by create_vmac and restore the parent's sysctls."""
        ...

    async def get_link(self, ifname: str) -> LinkInfo:
        """Look an interface up by name; NetError if absent."""
        ...

    async def primary_address(self, ifname: str, version: int) -> IPAddress | None:
        """The VRRP source: first IPv4 primary address, or the IPv6 link-local."""
        ...

    def watch_links(self) -> LinkWatch:
        """Changes of interfaces' up/running state, from rtnetlink events."""
        ...
