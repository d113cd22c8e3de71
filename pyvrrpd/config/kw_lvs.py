"""Keyword tables of the LVS side: virtual_server, real_server, virtual_server_group, SSL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .convert import Conv, Invalid, boolean, text
from .convert_lvs import (
    UINT32_MAX,
    address_port_head,
    block_parser,
    forwarding,
    hint_all,
    hinted,
    script,
    sorry_server,
    timer,
    uint,
    vs_head,
    vsg_entry,
)
from .kw_checks import CHECKER_KWS
from .model_lvs import (
    DEFAULT_PERSISTENCE_TIMEOUT,
    MAX_PERSISTENCE_TIMEOUT,
    WEIGHT_LIMIT,
    IpFamily,
    LvsSched,
    RealServer,
    SslConfig,
    VirtualServer,
    VirtualServerGroup,
    VsgEntry,
    VsgFwmark,
    VsgRange,
)
from .schema import BlockSpec, Ctx, Kw, Mode, RNode
from .tree import Node

# ---------------------------------------------------------------------------------------
# Converters particular to virtual servers


def _exact(values: Sequence[str], what: str, message: str) -> Conv[str]:
    def parse(args: Sequence[str]) -> str:
        word = text(what).parse(args)
        if word not in values:
            raise Invalid(message.format(word), "use one of " + ", ".join(values))
        return word

    return Conv(parse, lambda v: (v,), what)


def _sched() -> Conv[LvsSched]:
    names = [s.value for s in LvsSched]
    inner = _exact(names, "an IPVS scheduler", "invalid lvs_scheduler '{}'")
    return Conv(lambda a: LvsSched(inner.parse(a)), lambda v: (v.value,), inner.what)


def _family() -> Conv[IpFamily]:
    inner = _exact(["inet", "inet6"], "inet or inet6", "unknown address family {}")
    return Conv(lambda a: IpFamily(inner.parse(a)), lambda v: (v.value,), inner.what)


def _protocol() -> Conv[Any]:
    from .convert import choice
    from .model_lvs import Protocol

    inner = choice(Protocol, "TCP, UDP or SCTP")

    def parse(args: Sequence[str]) -> Protocol:
        try:
            return inner.parse(args)
        except Invalid:
            raise Invalid(f"unknown protocol {' '.join(args)}", "use TCP, UDP or SCTP") from None

    return Conv(parse, inner.fmt, inner.what)


def _persistence_timeout() -> Conv[int]:
    num = uint(1, MAX_PERSISTENCE_TIMEOUT, f"seconds from 1 to {MAX_PERSISTENCE_TIMEOUT}")

    def parse(args: Sequence[str]) -> int:
        return num.parse(args) if args else DEFAULT_PERSISTENCE_TIMEOUT

    return Conv(parse, lambda v: (str(v),), num.what, nargs=None)


def _flag_ignoring_args(node: Node, ctx: Ctx) -> bool:
    """virtual_server flags: keepalived ignores any argument (``alpha no`` still sets alpha)."""
    if node.args:
        ctx.warn(
            node.loc,
            f"virtual_server {node.keyword}: keepalived ignores '{' '.join(node.arg_texts)}' "
            "and turns the option on",
            f"write plain '{node.keyword}', or remove the line to leave it off",
            "pitfall",
        )
    return True


def _vs_flag(name: str, field: str) -> Kw:
    return Kw(name, field, mode=Mode.FLAG, parse_node=_flag_ignoring_args)


def _name_head(what: str) -> Conv[dict[str, Any]]:
    def parse(args: Sequence[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise Invalid(f"expected one {what} name", f"write '{what} NAME {{'")
        return {"name": args[0]}

    return Conv(parse, lambda v: (str(v["name"]),), "a name", nargs=None)


_TIMER_KWS = (
    ("retry", uint(1, UINT32_MAX)),
    ("delay_before_retry", timer(0)),
    ("warmup", timer(0)),
    ("connect_timeout", timer(0.000001, 4294.967295)),
    ("delay_loop", timer()),
)


# ---------------------------------------------------------------------------------------
# real_server

RS_KWS: tuple[Kw, ...] = (
    Kw("weight", "weight", uint(0, WEIGHT_LIMIT)),
    Kw("lvs_method", "lvs_method", forwarding()),
    Kw("notify_up", "notify_up", script()),
    Kw("notify_down", "notify_down", script()),
    Kw("uthreshold", "uthreshold", uint()),
    Kw("lthreshold", "lthreshold", uint()),
    Kw("inhibit_on_failure", "inhibit_on_failure", boolean()),
    Kw("alpha", "alpha", boolean()),
    *(Kw(name, name, conv) for name, conv in _TIMER_KWS),
    Kw("smtp_alert", "smtp_alert", boolean()),
    Kw("virtualhost", "virtualhost", text("a host name")),
    Kw("snmp_name", "snmp_name", text("a name")),
    *CHECKER_KWS,
)

RS_SPEC = BlockSpec(
    "real_server",
    RealServer,
    hint_all(RS_KWS),
    head=address_port_head("real_server"),
    head_fields=("address", "port"),
    doc="a real server of a virtual server",
)

# ---------------------------------------------------------------------------------------
# virtual_server

_SCHED_FLAGS = (
    ("ops", "ops"),
    ("flag-1", "flag_1"),
    ("flag-2", "flag_2"),
    ("flag-3", "flag_3"),
    ("sh-port", "sh_port"),
    ("sh-fallback", "sh_fallback"),
    ("mh-port", "mh_port"),
    ("mh-fallback", "mh_fallback"),
    ("hashed", "hashed"),
)

VS_KWS: tuple[Kw, ...] = (
    Kw("ip_family", "ip_family", _family()),
    *(Kw(name, name, conv) for name, conv in _TIMER_KWS if name != "delay_loop"),
    Kw("delay_loop", "delay_loop", timer()),
    _vs_flag("inhibit_on_failure", "inhibit_on_failure"),
    Kw("lvs_sched", "lvs_sched", _sched(), aliases=("lb_algo",)),
    *(_vs_flag(name, field) for name, field in _SCHED_FLAGS),
    Kw("lvs_method", "lvs_method", forwarding(), aliases=("lb_kind",)),
    Kw("persistence_engine", "persistence_engine", text("a persistence engine (sip)")),
    Kw("persistence_timeout", "persistence_timeout", _persistence_timeout()),
    Kw("persistence_granularity", "persistence_granularity", text("a netmask or prefix")),
    Kw("protocol", "protocol", _protocol()),
    _vs_flag("ha_suspend", "ha_suspend"),
    Kw("smtp_alert", "smtp_alert", boolean()),
    Kw("virtualhost", "virtualhost", text("a host name")),
    Kw("snmp_name", "snmp_name", text("a name")),
    _vs_flag("alpha", "alpha"),
    _vs_flag("omega", "omega"),
    Kw("quorum_up", "quorum_up", script()),
    Kw("quorum_down", "quorum_down", script()),
    Kw("quorum", "quorum", uint(1, UINT32_MAX)),
    Kw("hysteresis", "hysteresis", uint()),
    Kw("weight", "weight", uint(1, WEIGHT_LIMIT)),
    Kw("sorry_server", "sorry_server", sorry_server()),
    _vs_flag("sorry_server_inhibit", "sorry_server_inhibit"),
    Kw("sorry_server_lvs_method", "sorry_server_lvs_method", forwarding()),
    Kw(
        "real_server",
        "real_servers",
        mode=Mode.BLOCK,
        spec=RS_SPEC,
        repeat=True,
        parse_node=block_parser(RS_SPEC, once=("notify_up", "notify_down")),
    ),
)

VS_SPEC = BlockSpec(
    "virtual_server",
    VirtualServer,
    hint_all(VS_KWS),
    head=vs_head(),
    head_fields=("address", "port", "fwmark", "group"),
    doc="an IPVS virtual service and its real servers",
)

# ---------------------------------------------------------------------------------------
# virtual_server_group: a named block whose every line is an entry (no keywords)

VSG_ENTRY = hinted(vsg_entry(), "write an address, FIRST-LAST range or ADDR/PREFIX, then a port")
VSG_SPEC = BlockSpec(
    "virtual_server_group",
    VirtualServerGroup,
    (),
    head=_name_head("virtual_server_group"),
    head_fields=("name",),
    doc="addresses, ranges and fwmarks sharing one real server topology",
)


def parse_vsg(node: Node, ctx: Ctx) -> VirtualServerGroup:
    """Build a virtual_server_group from its entry lines."""
    if node.children is None:
        raise Invalid("needs a block of entries", "write 'virtual_server_group NAME { ... }'")
    name = VSG_SPEC.head.parse(node.arg_texts)["name"] if VSG_SPEC.head else ""
    entries: list[VsgEntry] = []
    for child in node.children:
        if child.children is not None:
            ctx.error(
                child.loc, f"virtual_server_group {name}: unexpected block", None, "bad-value"
            )
            continue
        try:
            entries.append(VSG_ENTRY.parse(child.words()))
        except Invalid as exc:
            ctx.error(
                child.loc,
                f"virtual_server_group {name}: {exc.message} - skipping",
                exc.hint,
                "bad-value",
            )
    if not entries:
        ctx.error(
            node.loc,
            f"virtual server group {name} has no entries",
            "add addresses, ranges or 'fwmark N' lines (keepalived drops the group)",
            "missing",
        )
    else:
        v4 = any(
            (isinstance(e, VsgRange) and e.first.version == 4)
            or (isinstance(e, VsgFwmark) and e.family is IpFamily.INET)
            for e in entries
        )
        v6 = any(
            (isinstance(e, VsgRange) and e.first.version == 6)
            or (isinstance(e, VsgFwmark) and e.family is IpFamily.INET6)
            for e in entries
        )
        bare_mark = any(isinstance(e, VsgFwmark) and e.family is None for e in entries)
        if v4 and v6 and bare_mark:
            ctx.error(
                node.loc,
                f"virtual server group {name} cannot have IPv4, IPv6 and fwmark without family",
                "add inet or inet6 after each fwmark (keepalived drops the group)",
                "bad-value",
            )
    return VirtualServerGroup(
        name=name, entries=tuple(entries), loc=node.loc, locs={"name": node.loc}
    )


def render_vsgs(value: Sequence[VirtualServerGroup]) -> list[RNode]:
    """virtual_server_group blocks."""
    return [
        RNode(("virtual_server_group", g.name), tuple(RNode(VSG_ENTRY.fmt(e)) for e in g.entries))
        for g in value
    ]


# ---------------------------------------------------------------------------------------
# SSL and the top level

SSL_SPEC = BlockSpec(
    "SSL",
    SslConfig,
    hint_all(
        (
            Kw("password", "password", text("a password")),
            Kw("ca", "ca", text("a CA file")),
            Kw("certificate", "certificate", text("a certificate file")),
            Kw("key", "key", text("a key file")),
        )
    ),
    doc="the TLS context of SSL_GET checkers",
)

#: Config field for the SSL block.
SSL_FIELD = "ssl"

#: Top-level keywords of the LVS side (virtual_server, virtual_server_group, SSL).
ROOT_KWS: Sequence[Kw] = (
    Kw(
        "virtual_server",
        "virtual_servers",
        mode=Mode.BLOCK,
        spec=VS_SPEC,
        repeat=True,
        parse_node=block_parser(VS_SPEC, once=("quorum_up", "quorum_down")),
    ),
    Kw(
        "virtual_server_group",
        "virtual_server_groups",
        conv=VSG_ENTRY,
        mode=Mode.BLOCK,
        spec=VSG_SPEC,
        repeat=True,
        parse_node=parse_vsg,
        render_value=render_vsgs,
    ),
    Kw("SSL", SSL_FIELD, mode=Mode.BLOCK, spec=SSL_SPEC),
)
