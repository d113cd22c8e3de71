"""keepalived's defaults and inheritance for virtual servers, real servers and checkers.

The model keeps what the user wrote (None = unset). These pure helpers give the values
keepalived actually uses:

* a real server takes ``weight``, ``lvs_method``, ``alpha``, ``inhibit_on_failure``,
  ``retry``, ``connect_timeout``, ``delay_loop``, ``warmup`` and ``delay_before_retry``
  from its virtual server when unset; the forwarding method defaults to NAT;
* a checker takes them from its real server; then ``retry`` falls back to the checker's
  own default (1; 3 for DNS_CHECK; 0 for MISC_CHECK), ``warmup`` to its ``delay_loop`` and
  ``delay_before_retry`` to its default (1 s; 3 s for HTTP/SSL_GET; ``delay_loop`` for
  DNS_CHECK);
* a checker connects to ``connect_ip``/``connect_port``, else the real server's address
  and the port written on the real server (None: no port to connect to);
* ``smtp_alert``: real servers default to global ``smtp_alert_checker``, then global
  ``smtp_alert``, then on; virtual servers the same but finally off.
"""

from __future__ import annotations

from dataclasses import dataclass

from .convert import IPAddress
from .model_checks import Checker, ConnChecker, PolledChecker
from .model_lvs import (
    DEFAULT_PERSISTENCE_TIMEOUT,
    DEFAULT_SCHEDULER,
    Forwarding,
    LvsMethod,
    LvsSched,
    Protocol,
    RealServer,
    VirtualServer,
    VirtualServerGroup,
)

NAT = Forwarding(LvsMethod.NAT)


def effective_forwarding(vs: VirtualServer, rs: RealServer | None = None) -> Forwarding:
    """The forwarding method of ``rs`` (or of the sorry server when ``rs`` is None)."""
    own = vs.sorry_server_lvs_method if rs is None else rs.lvs_method
    return own or vs.lvs_method or NAT


def effective_scheduler(vs: VirtualServer) -> LvsSched:
    """The scheduler (keepalived uses wlc, with a config error, when none is set)."""
    return vs.lvs_sched or LvsSched(DEFAULT_SCHEDULER)


def is_address_service(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> bool:
    """True when the service has addresses (not only fwmarks)."""
    if vs.group is not None:
        g = groups.get(vs.group)
        return g is not None and bool(g.ranges)
    return vs.fwmark is None


def is_fwmark_only(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> bool:
    """True when the service is selected by firewall marks only."""
    if vs.group is not None:
        g = groups.get(vs.group)
        return g is not None and not g.ranges and bool(g.fwmarks)
    return vs.fwmark is not None


def effective_protocol(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> Protocol | None:
    """The L4 protocol: ignored (None) for fwmark services, UDP when unset on addresses."""
    if is_fwmark_only(vs, groups):
        return None
    return vs.protocol or Protocol.UDP


def effective_persistence_timeout(
    vs: VirtualServer, groups: dict[str, VirtualServerGroup] | None = None
) -> int | None:
    """Persistence timeout; persistence_granularity or a port-less service imply 360 s."""
    if vs.persistence_timeout is not None:
        return vs.persistence_timeout
    if vs.persistence_granularity is not None:
        return DEFAULT_PERSISTENCE_TIMEOUT
    if vs.group is None and vs.fwmark is None and vs.port is None:
        return DEFAULT_PERSISTENCE_TIMEOUT
    g = (groups or {}).get(vs.group or "")
    if g is not None and any(r.port is None for r in g.ranges):
        return DEFAULT_PERSISTENCE_TIMEOUT
    return None


def smtp_alert_default(global_defs: object, real_server: bool) -> bool:
    """The smtp_alert of a server that does not set it, from global_defs."""
    for name in ("smtp_alert_checker", "smtp_alert"):
        value = getattr(global_defs, name, None)
        if isinstance(value, bool):
            return value
    return real_server


@dataclass(frozen=True, slots=True)
class EffectiveRealServer:
    """A real server's settings after inheritance from its virtual server."""

    address: IPAddress
    port: int | None
    weight: int
    forwarding: Forwarding
    alpha: bool
    inhibit_on_failure: bool
    retry: int | None  # None: each checker's default
    connect_timeout: float
    delay_loop: float
    warmup: float | None  # None: each checker's delay_loop
    delay_before_retry: float | None  # None: each checker's default
    virtualhost: str | None


def effective_port(vs: VirtualServer, rs: RealServer) -> int | None:
    """The real server port keepalived programs (it corrects mismatches, with errors)."""
    fwd = effective_forwarding(vs, rs)
    if vs.group is not None:
        return rs.port
    if fwd.method is LvsMethod.NAT:
        return rs.port if rs.port is not None or vs.fwmark is not None else vs.port
    return None if vs.fwmark is not None else vs.port


def effective_real_server(vs: VirtualServer, rs: RealServer) -> EffectiveRealServer:
    """``rs`` with the virtual server's settings filled in."""
    return EffectiveRealServer(
        address=rs.address,
        port=effective_port(vs, rs),
        weight=rs.weight if rs.weight is not None else vs.weight,
        forwarding=effective_forwarding(vs, rs),
        alpha=rs.alpha if rs.alpha is not None else vs.alpha,
        inhibit_on_failure=(
            rs.inhibit_on_failure if rs.inhibit_on_failure is not None else vs.inhibit_on_failure
        ),
        retry=rs.retry if rs.retry is not None else vs.retry,
        connect_timeout=rs.connect_timeout
        if rs.connect_timeout is not None
        else vs.connect_timeout,
        delay_loop=rs.delay_loop if rs.delay_loop is not None else vs.delay_loop,
        warmup=rs.warmup if rs.warmup is not None else vs.warmup,
        delay_before_retry=(
            rs.delay_before_retry if rs.delay_before_retry is not None else vs.delay_before_retry
        ),
        virtualhost=rs.virtualhost if rs.virtualhost is not None else vs.virtualhost,
    )


@dataclass(frozen=True, slots=True)
class EffectiveChecker:
    """A checker's timing and target after inheritance (None where not applicable)."""

    alpha: bool
    retry: int
    delay_loop: float
    warmup: float
    delay_before_retry: float
    connect_timeout: float | None
    connect_ip: IPAddress | None
    connect_port: int | None


def effective_checker(vs: VirtualServer, rs: RealServer, chk: Checker) -> EffectiveChecker:
    """``chk`` with its real and virtual server's settings filled in."""
    ers = effective_real_server(vs, rs)
    alpha = getattr(chk, "alpha", None)
    if not isinstance(chk, PolledChecker):
        return EffectiveChecker(
            alpha=alpha if alpha is not None else ers.alpha,
            retry=0,
            delay_loop=ers.delay_loop,
            warmup=0.0,
            delay_before_retry=0.0,
            connect_timeout=None,
            connect_ip=None,
            connect_port=None,
        )
    retry = chk.retry if chk.retry is not None else ers.retry
    delay_loop = chk.delay_loop if chk.delay_loop is not None else ers.delay_loop
    warmup = chk.warmup if chk.warmup is not None else ers.warmup
    dbr = chk.delay_before_retry if chk.delay_before_retry is not None else ers.delay_before_retry
    if dbr is None:
        dbr = chk.default_delay_before_retry
    conn = chk if isinstance(chk, ConnChecker) else None
    return EffectiveChecker(
        alpha=chk.alpha if chk.alpha is not None else ers.alpha,
        retry=retry if retry is not None else chk.default_retry,
        delay_loop=delay_loop,
        warmup=warmup if warmup is not None else delay_loop,
        delay_before_retry=dbr if dbr is not None else delay_loop,
        connect_timeout=None
        if conn is None
        else (conn.connect_timeout if conn.connect_timeout is not None else ers.connect_timeout),
        connect_ip=None if conn is None else (conn.connect_ip or rs.address),
        connect_port=None
        if conn is None
        else (conn.connect_port if conn.connect_port is not None else rs.port),
    )
