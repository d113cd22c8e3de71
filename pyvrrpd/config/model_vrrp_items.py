"""Line items of the VRRP side: addresses, routes, rules, unicast peers and trackers.

Each class is one line of a list block such as ``virtual_ipaddress { ... }``; the
parsers and formatters live in :mod:`pyvrrpd.config.kw_vrrp_lines`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from .convert import IPAddress, IPNetwork
from .schema import Located


class State(enum.Enum):
    """Initial state of a VRRP instance (``state``)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"


class AuthType(enum.Enum):
    """``auth_type`` of a VRRPv2 instance."""

    PASS = "PASS"
    AH = "AH"


class ParamMatch(enum.Enum):
    """``param_match`` of a ``vrrp_track_process``."""

    EXACT = "exact"
    INITIAL = "initial"
    PARTIAL = "partial"


class Weight(NamedTuple):
    """A tracker weight with keepalived's optional ``reverse``."""

    value: int
    reverse: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualAddress(Located):
    """One line of ``virtual_ipaddress``/``virtual_ipaddress_excluded``/``static_ipaddress``.

    ``address`` keeps the prefix written (``/32`` or ``/128`` when none); ``brd`` is an
    address or ``+``/``-``; ``flags`` holds ``home``, ``-nodad``, ``mngtmpaddr``,
    ``noprefixroute`` and ``autojoin`` in the order written.
    """

    address: IPNetwork
    dev: str | None = None
    brd: str | None = None
    scope: str | None = None
    label: str | None = None
    peer: IPAddress | None = None
    flags: tuple[str, ...] = ()
    no_track: bool = False
    preferred_lft: str | None = None
    track_group: str | None = None
    use_vmac: bool = False

    @property
    def family(self) -> int:
        return self.address.version


@dataclass(frozen=True, slots=True, kw_only=True)
class Nexthop(Located):
    """One ``nexthop`` of a multipath route."""

    via: IPAddress | None = None
    dev: str | None = None
    weight: int | None = None
    onlink: bool = False
    options: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualRoute(Located):
    """One line of ``virtual_routes``/``static_routes``, in ``ip route`` terms.

    ``dst`` None means ``default``; ``family`` is set only when ``inet``/``inet6`` was
    written (see :attr:`effective_family`); ``type`` is a route type such as
    ``blackhole`` or ``unreachable``; ``options`` keeps the remaining ``ip route``
    attributes (``mtu lock 1400``...) as written.
    """

    family: int | None = None
    type: str | None = None
    dst: IPNetwork | None = None
    via: IPAddress | None = None
    src: IPAddress | None = None
    from_prefix: IPNetwork | None = None
    dev: str | None = None
    table: str | None = None
    metric: int | None = None
    scope: str | None = None
    protocol: str | None = None
    tos: str | None = None
    onlink: bool = False
    no_track: bool = False
    track_group: str | None = None
    or_via: IPAddress | None = None
    options: tuple[tuple[str, ...], ...] = ()
    nexthops: tuple[Nexthop, ...] = ()
    gw_keyword: bool = False  # written with the deprecated ``gw``

    @property
    def effective_family(self) -> int:
        """4 or 6: from ``inet6``, the destination or the gateway (IPv4 otherwise)."""
        if self.family is not None:
            return self.family
        for a in (self.dst, self.via, self.src, self.from_prefix):
            if a is not None:
                return a.version
        for nh in self.nexthops:
            if nh.via is not None:
                return nh.via.version
        return 4


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualRule(Located):
    """One line of ``virtual_rules``/``static_rules``, in ``ip rule`` terms.

    ``action`` is ``table`` (with ``table``), ``goto`` (with ``goto``), ``nop``,
    ``blackhole``, ``unreachable``, ``prohibit`` or ``l3mdev``; ``options`` keeps the
    remaining selectors (``sport``, ``uidrange``...) as written.
    """

    family: int | None = None
    from_prefix: IPNetwork | None = None
    to_prefix: IPNetwork | None = None
    priority: int | None = None
    table: str | None = None
    action: str | None = None
    goto: int | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    tos: str | None = None
    no_track: bool = False
    track_group: str | None = None
    options: tuple[tuple[str, ...], ...] = ()

    @property
    def effective_family(self) -> int:
        """4 or 6, from ``inet6`` or the addresses (IPv4 otherwise)."""
        if self.family is not None:
            return self.family
        for a in (self.from_prefix, self.to_prefix):
            if a is not None:
                return a.version
        return 4


@dataclass(frozen=True, slots=True, kw_only=True)
class UnicastPeer(Located):
    """One line of ``unicast_peer``: the address and accepted TTL range."""

    address: IPAddress
    min_ttl: int | None = None
    max_ttl: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedObject(Located):
    """One line of ``track_interface``/``track_script``/``track_file``/``track_process``.

    ``weight`` None means the tracked object's own weight (0 for interfaces: any
    failure puts the instance in FAULT); ``reverse`` None means not written.
    """

    name: str
    weight: int | None = None
    reverse: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Vmac(Located):
    """``use_vmac [NAME] [MAC]``."""

    name: str | None = None
    mac: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Authentication(Located):
    """The ``authentication { auth_type auth_pass }`` block (VRRPv2 only)."""

    auth_type: AuthType | None = None
    auth_pass: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InitFile(Located):
    """``init_file [VALUE] [overwrite]`` of a track file."""

    value: int = 0
    overwrite: bool = False
