"""Semantic checks of the LVS side, in keepalived's terms.

Everything keepalived 2.2.7 reports as a configuration problem (``keepalived -t`` exits
5) is an error here, even when keepalived words it "Warning" and carries on with a
correction (no protocol, no scheduler, ports reset...). What keepalived only logs is a
warning. Pitfalls keepalived does not report at all are in :mod:`.lint_lvs`.
"""

from __future__ import annotations

import ipaddress

from .env import Environment
from .errors import SourceLoc
from .lint_lvs import lint
from .lvs_effective import (
    effective_forwarding,
    is_address_service,
    is_fwmark_only,
)
from .model import Config
from .model_checks import ConnChecker, FileCheck, SmtpCheck
from .model_lvs import IpFamily, LvsMethod, LvsSched, VirtualServer, VirtualServerGroup
from .schema import Ctx

_ERR = "lvs"


def check(config: Config, env: Environment, ctx: Ctx) -> None:
    """Add the LVS side's diagnostics for ``config`` to ``ctx``."""
    groups: dict[str, VirtualServerGroup] = {}
    for g in config.virtual_server_groups:
        groups.setdefault(g.name, g)
    track_files = {getattr(t, "name", None) for t in config.track_files}
    for vs in config.virtual_servers:
        _check_vs(vs, groups, ctx)
        _check_checkers(vs, track_files, ctx)
    lint(config, env, ctx)


def _at(vs: VirtualServer, field: str) -> SourceLoc | None:
    return vs.locs.get(field, vs.loc)


def _vs_family(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> int | None:
    """The address family keepalived settles on for ``vs`` (None: not determined)."""
    if vs.address is not None:
        return vs.address.version
    if vs.ip_family is not None:
        return 6 if vs.ip_family is IpFamily.INET6 else 4
    g = groups.get(vs.group or "")
    if g is not None:
        fams = {r.first.version for r in g.ranges} | {
            6 if m.family is IpFamily.INET6 else 4 for m in g.fwmarks if m.family is not None
        }
        if len(fams) == 1:
            return fams.pop()
    for rs in vs.real_servers:
        if effective_forwarding(vs, rs).method is not LvsMethod.TUN:
            return rs.address.version
    return None


def _check_vs(vs: VirtualServer, groups: dict[str, VirtualServerGroup], ctx: Ctx) -> None:
    name = vs.describe()
    group = groups.get(vs.group) if vs.group is not None else None
    if vs.group is not None and group is None:
        ctx.warn(
            _at(vs, "group"),
            f"virtual server group {vs.group} specified but not configured - "
            f"keepalived ignores virtual server {name}",
            "define 'virtual_server_group " + vs.group + " { ... }' or fix the name",
            "missing-group",
        )
    if not vs.real_servers:
        ctx.error(
            vs.loc,
            f"virtual server {name} has no real servers - ignoring",
            "add a 'real_server IP PORT { ... }' block",
            _ERR,
        )
    _check_family(vs, groups, ctx)
    fwmarks = vs.fwmark is not None or (group is not None and bool(group.fwmarks))
    if vs.ha_suspend and fwmarks:
        ctx.error(
            _at(vs, "ha_suspend"),
            f"virtual server {name}: cannot use ha_suspend with fwmarks - clearing ha_suspend",
            "remove ha_suspend",
            _ERR,
        )
    if is_address_service(vs, groups):
        if vs.protocol is None:
            ctx.error(
                vs.loc,
                f"virtual server {name}: no protocol set - defaulting to UDP",
                "add 'protocol TCP' (or UDP or SCTP)",
                _ERR,
            )
        elif vs.ops and vs.protocol.value != "UDP":
            ctx.error(
                _at(vs, "ops"),
                f"virtual server {name}: one packet scheduling requires UDP - resetting",
                "remove ops or use protocol UDP",
                _ERR,
            )
        zero = vs.group is None and vs.port is None
        zero = zero or (group is not None and any(r.port is None for r in group.ranges))
        if zero and not (vs.persistence_timeout or vs.persistence_granularity):
            ctx.error(
                vs.loc,
                f"virtual server {name}: zero port only valid for persistent services - setting",
                "give a port or set persistence_timeout",
                _ERR,
            )
    if vs.protocol is not None and is_fwmark_only(vs, groups):
        ctx.error(
            _at(vs, "protocol"),
            f"virtual server {name}: protocol specified for fwmark - protocol will be ignored",
            "remove 'protocol' from fwmark services",
            _ERR,
        )
    if vs.lvs_sched is None:
        ctx.error(
            vs.loc,
            f"virtual server {name}: no scheduler set, setting default 'wlc'",
            "add 'lvs_sched wlc' (or another scheduler)",
            _ERR,
        )
    _check_sched_flags(vs, ctx)
    _check_persistence(vs, groups, ctx)
    _check_real_servers(vs, ctx)
    _check_ports(vs, group, ctx)


def _check_family(vs: VirtualServer, groups: dict[str, VirtualServerGroup], ctx: Ctx) -> None:
    if vs.ip_family is not None and vs.address is not None:
        fam = 6 if vs.ip_family is IpFamily.INET6 else 4
        if fam != vs.address.version:
            ctx.error(
                _at(vs, "ip_family"),
                f"virtual server specified family {vs.ip_family.value} "
                "conflicts with server family",
                "remove ip_family (the address sets the family)",
                _ERR,
            )
    af = _vs_family(vs, groups)
    if af is None:
        return
    for rs in vs.real_servers:
        if effective_forwarding(vs, rs).method is LvsMethod.TUN:
            continue
        if rs.address.version != af:
            ctx.error(
                rs.loc,
                f"address family of virtual server and real server {rs.address} don't match "
                "- skipping real server",
                "only TUN real servers may differ in family; use lvs_method TUN or fix the address",
                _ERR,
            )
    ss = vs.sorry_server
    tun = effective_forwarding(vs).method is LvsMethod.TUN
    if ss is not None and not tun and ss.address.version != af:
        ctx.error(
            _at(vs, "sorry_server"),
            f"address family of virtual server and sorry server {ss.address} don't match "
            "- skipping sorry server",
            "use a sorry server of the virtual server's family",
            _ERR,
        )


def _check_sched_flags(vs: VirtualServer, ctx: Ctx) -> None:
    sched = vs.lvs_sched
    for field, kw in (
        ("sh_port", "sh-port"),
        ("sh_fallback", "sh-fallback"),
        ("mh_port", "mh-port"),
        ("mh_fallback", "mh-fallback"),
        ("hashed", "hashed"),
    ):
        if getattr(vs, field) and sched not in (LvsSched.SH, LvsSched.MH):
            ctx.error(
                _at(vs, field),
                f"{kw} only applies to sh scheduler - ignoring",
                f"remove {kw} or use lvs_sched {'mh' if kw.startswith('mh') else 'sh'}",
                _ERR,
            )
    if vs.sorry_server_inhibit or vs.sorry_server_lvs_method is not None:
        ss_loc = vs.locs.get("sorry_server")
        for field, kw in (
            ("sorry_server_inhibit", "sorry_server_inhibit"),
            ("sorry_server_lvs_method", "sorry_server_lvs_method"),
        ):
            loc = vs.locs.get(field)
            if loc is None:
                continue
            if ss_loc is None or (loc.file == ss_loc.file and loc.line < ss_loc.line):
                ctx.error(
                    loc,
                    f"{kw} used before or without sorry_server - ignoring",
                    "put it after a 'sorry_server IP PORT' line",
                    _ERR,
                )


def _check_persistence(vs: VirtualServer, groups: dict[str, VirtualServerGroup], ctx: Ctx) -> None:
    gran = vs.persistence_granularity
    if gran is None:
        return
    af = _vs_family(vs, groups) or (4 if "." in gran else 6)
    ok = True
    if af == 6:
        ok = gran.isdigit() and 1 <= int(gran) <= 128
    elif not gran.isdigit():
        try:
            ipaddress.IPv4Address(gran)
        except ValueError:
            ok = False
    if not ok:
        ctx.error(
            _at(vs, "persistence_granularity"),
            f"invalid IPv{af} persistence_granularity specified - {gran}",
            "use a netmask such as 255.255.255.0" if af == 4 else "use a prefix length 1-128",
            _ERR,
        )


def _check_real_servers(vs: VirtualServer, ctx: Ctx) -> None:
    name = vs.describe()
    seen: set[tuple[object, object]] = set()
    weight_sum = 0
    unset = False
    for rs in vs.real_servers:
        key = (rs.address, rs.port)
        if key in seen:
            ctx.error(
                rs.loc,
                f"VS {name}: real server {rs.address} port {rs.port or 0} is duplicated "
                "- removing second rs",
                "remove one of the two real_server blocks",
                _ERR,
            )
            continue
        seen.add(key)
        unset = unset or rs.lvs_method is None
        weight_sum += rs.weight if rs.weight is not None else vs.weight
        ss = vs.sorry_server
        if ss is not None and (ss.address, ss.port) == key:
            inhibit = rs.inhibit_on_failure
            inhibit = vs.inhibit_on_failure if inhibit is None else inhibit
            if inhibit != vs.sorry_server_inhibit:
                ctx.error(
                    _at(vs, "sorry_server"),
                    f"virtual server {name}: real server {rs.address} matches sorry server, "
                    "but inhibit setting differs",
                    "make sorry_server_inhibit match the real server's inhibit_on_failure",
                    _ERR,
                )
    if vs.sorry_server is not None and vs.sorry_server_lvs_method is None:
        unset = True
    if unset and vs.lvs_method is None:
        ctx.error(
            vs.loc,
            f"virtual server {name}: no forwarding method set, setting default NAT",
            "add 'lvs_method NAT' (or DR or TUN)",
            _ERR,
        )
    if vs.real_servers and vs.quorum > weight_sum:
        ctx.error(
            _at(vs, "quorum"),
            f"quorum {vs.quorum} for {name} exceeds total weight of real servers {weight_sum}, "
            f"reducing quorum to {weight_sum}",
            "lower quorum or raise the real servers' weights",
            _ERR,
        )
    quorum = min(vs.quorum, weight_sum) if vs.real_servers else vs.quorum
    if vs.real_servers and vs.hysteresis >= quorum:
        ctx.error(
            _at(vs, "hysteresis"),
            f"virtual server {name}: hysteresis {vs.hysteresis} >= quorum {quorum}",
            "hysteresis must be below quorum",
            _ERR,
        )


def _check_ports(vs: VirtualServer, group: VirtualServerGroup | None, ctx: Ctx) -> None:
    """Without NAT the real server port must be the service's (none for fwmarks)."""
    name = vs.describe()
    ss = vs.sorry_server
    for rs in vs.real_servers:
        if effective_forwarding(vs, rs).method is LvsMethod.NAT or rs.port is None:
            continue
        if vs.fwmark is not None or (group is not None and group.fwmarks):
            ctx.error(
                rs.loc,
                f"fwmark virtual server {name}, real server {rs.address} has port specified "
                "- port will be ignored",
                "drop the port: DR/TUN cannot translate ports",
                _ERR,
            )
        mismatched = [r for r in group.ranges if r.port != rs.port] if group else []
        if group is None and vs.fwmark is None and rs.port != vs.port:
            ctx.error(
                rs.loc,
                f"virtual server {name} and real server {rs.address} port {rs.port} don't match "
                "- resetting",
                "DR and TUN cannot translate ports: use the virtual server's port or NAT",
                _ERR,
            )
        for r in mismatched:
            ctx.error(
                rs.loc,
                f"virtual server {name}:[{r.text} {r.port or 0}] and real server {rs.address} "
                f"port {rs.port} ports don't match",
                "DR and TUN cannot translate ports: use the group's port or NAT",
                _ERR,
            )
    if ss is None or ss.port is None:
        return
    if effective_forwarding(vs).method is LvsMethod.NAT:
        return
    if (
        vs.fwmark is not None
        or (group is not None and group.fwmarks)
        or (group is None and ss.port != vs.port)
        or (group is not None and any(r.port != ss.port for r in group.ranges))
    ):
        ctx.error(
            _at(vs, "sorry_server"),
            f"virtual server {name}, sorry server has port specified - port will be ignored",
            "drop the sorry server's port (or use NAT)",
            _ERR,
        )


def _check_checkers(vs: VirtualServer, track_files: set[str | None], ctx: Ctx) -> None:
    for rs in vs.real_servers:
        for chk in rs.checkers:
            if isinstance(chk, FileCheck):
                if chk.track_file is not None and chk.track_file not in track_files:
                    ctx.error(
                        chk.locs.get("track_file", chk.loc),
                        f"track_file {chk.track_file} not found",
                        "define it with a top-level 'track_file NAME { file PATH }' block",
                        _ERR,
                    )
                continue
            targets: list[tuple[object, str | None, SourceLoc | None]] = []
            if isinstance(chk, ConnChecker):
                targets.append((chk.connect_ip or rs.address, chk.bind_if, chk.loc))
            if isinstance(chk, SmtpCheck):
                targets.extend((h.connect_ip or rs.address, h.bind_if, h.loc) for h in chk.hosts)
            for dst, bind_if, loc in targets:
                if isinstance(dst, ipaddress.IPv6Address) and dst.is_link_local and not bind_if:
                    ctx.error(
                        loc,
                        f"checker link local address {dst} requires a bind_if",
                        "add 'bind_if IFNAME' to the checker",
                        _ERR,
                    )
