"""LVS-side model blocks: virtual servers, their real servers, groups and the SSL block.

Defaults are keepalived's. ``None`` marks a setting left unset where keepalived tells
"unset" apart from any value (it is inherited or defaulted later, with a config error in
some cases: see :mod:`pyvrrpd.config.validate_lvs` and :mod:`pyvrrpd.config.lvs_effective`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .convert import IPAddress
from .model_checks import Checker
from .schema import Located

#: keepalived's scheduler when none is configured (with a config error).
DEFAULT_SCHEDULER = "wlc"
#: persistence_timeout given without a value, or implied by persistence_granularity.
DEFAULT_PERSISTENCE_TIMEOUT = 360
#: The largest IPVS weight and persistence timeout keepalived accepts.
WEIGHT_LIMIT = 2147483647
MAX_PERSISTENCE_TIMEOUT = 86400 * 31


class LvsSched(enum.Enum):
    """IPVS schedulers keepalived accepts for ``lvs_sched``/``lb_algo``."""

    RR = "rr"
    WRR = "wrr"
    LC = "lc"
    WLC = "wlc"
    LBLC = "lblc"
    SH = "sh"
    MH = "mh"
    DH = "dh"
    FO = "fo"
    OVF = "ovf"
    LBLCR = "lblcr"
    SED = "sed"
    NQ = "nq"
    TWOS = "twos"


class LvsMethod(enum.Enum):
    """Forwarding methods (``lvs_method``/``lb_kind``)."""

    NAT = "NAT"
    DR = "DR"
    TUN = "TUN"


class TunnelType(enum.Enum):
    """Encapsulation of TUN forwarding."""

    IPIP = "ipip"
    GUE = "gue"
    GRE = "gre"


class TunnelCsum(enum.Enum):
    """Checksum option of GUE/GRE tunnels."""

    NOCSUM = "nocsum"
    CSUM = "csum"
    REMCSUM = "remcsum"


class Protocol(enum.Enum):
    """L4 protocol of an address virtual server."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class IpFamily(enum.Enum):
    """``ip_family`` values (and the family suffix of a group's ``fwmark``)."""

    INET = "inet"
    INET6 = "inet6"


@dataclass(frozen=True, slots=True)
class Forwarding:
    """An ``lvs_method`` value: NAT, DR, or TUN with its tunnel options.

    ``tunnel_type`` None means ipip; ``tunnel_port`` is required for (only) gue.
    """

    method: LvsMethod
    tunnel_type: TunnelType | None = None
    tunnel_port: int | None = None
    csum: TunnelCsum | None = None


@dataclass(frozen=True, slots=True)
class SorryServer:
    """The ``sorry_server`` address and optional port."""

    address: IPAddress
    port: int | None = None


@dataclass(frozen=True, slots=True)
class VsgRange:
    """A ``virtual_server_group`` address line: one address or an inclusive range."""

    first: IPAddress
    last: IPAddress
    port: int | None = None
    text: str = ""  # the address as written (range syntax kept for messages and rendering)


@dataclass(frozen=True, slots=True)
class VsgFwmark:
    """A ``virtual_server_group`` line ``fwmark N [inet|inet6]``."""

    fwmark: int
    family: IpFamily | None = None


VsgEntry = VsgRange | VsgFwmark


@dataclass(frozen=True, slots=True, kw_only=True)
class RealServer(Located):
    """A ``real_server IP [PORT]`` block; None fields inherit from the virtual server."""

    address: IPAddress
    port: int | None = None
    weight: int | None = None
    lvs_method: Forwarding | None = None
    notify_up: tuple[str, ...] | None = None
    notify_down: tuple[str, ...] | None = None
    uthreshold: int | None = None
    lthreshold: int | None = None
    inhibit_on_failure: bool | None = None
    alpha: bool | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    connect_timeout: float | None = None
    delay_loop: float | None = None
    smtp_alert: bool | None = None
    virtualhost: str | None = None
    snmp_name: str | None = None
    checkers: tuple[Checker, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualServer(Located):
    """A ``virtual_server`` block: exactly one of address, fwmark or group is set."""

    address: IPAddress | None = None
    port: int | None = None
    fwmark: int | None = None
    group: str | None = None
    delay_loop: float = 60.0
    lvs_sched: LvsSched | None = None
    ops: bool = False
    flag_1: bool = False
    flag_2: bool = False
    flag_3: bool = False
    sh_port: bool = False
    sh_fallback: bool = False
    mh_port: bool = False
    mh_fallback: bool = False
    hashed: bool = False
    lvs_method: Forwarding | None = None
    persistence_engine: str | None = None
    persistence_timeout: int | None = None
    persistence_granularity: str | None = None
    protocol: Protocol | None = None
    ha_suspend: bool = False
    smtp_alert: bool | None = None
    virtualhost: str | None = None
    snmp_name: str | None = None
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: tuple[str, ...] | None = None
    quorum_down: tuple[str, ...] | None = None
    ip_family: IpFamily | None = None
    weight: int = 1
    sorry_server: SorryServer | None = None
    sorry_server_inhibit: bool = False
    sorry_server_lvs_method: Forwarding | None = None
    connect_timeout: float = 5.0
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    inhibit_on_failure: bool = False
    real_servers: tuple[RealServer, ...] = ()

    def describe(self) -> str:
        """The service the way keepalived's messages name it."""
        if self.group is not None:
            return f"group {self.group}"
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        proto = self.protocol.value.lower() if self.protocol else "none"
        addr = f"[{self.address}]" if self.address is not None else "[?]"
        return f"{addr}:{proto}:{self.port or 0}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualServerGroup(Located):
    """A ``virtual_server_group NAME`` block: address ranges and fwmarks."""

    name: str = ""
    entries: tuple[VsgEntry, ...] = ()

    @property
    def ranges(self) -> tuple[VsgRange, ...]:
        return tuple(e for e in self.entries if isinstance(e, VsgRange))

    @property
    def fwmarks(self) -> tuple[VsgFwmark, ...]:
        return tuple(e for e in self.entries if isinstance(e, VsgFwmark))


@dataclass(frozen=True, slots=True, kw_only=True)
class SslConfig(Located):
    """The top-level ``SSL`` block used by SSL_GET (all unset: auto-generated context)."""

    password: str | None = None
    ca: str | None = None
    certificate: str | None = None
    key: str | None = None
