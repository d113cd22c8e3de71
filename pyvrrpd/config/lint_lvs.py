"""Pitfall warnings of the LVS side: configurations keepalived accepts that rarely do
what was meant. Every diagnostic here is a warning with code ``pitfall``.

global_defs is read defensively (``getattr``) since its model is another module's.
"""

from __future__ import annotations

from .env import Environment
from .errors import SourceLoc
from .lvs_effective import effective_checker, effective_protocol
from .model import Config
from .model_checks import (
    Checker,
    ConnChecker,
    DnsCheck,
    HttpGet,
    MiscCheck,
    PingCheck,
    SmtpCheck,
    TcpCheck,
    UdpCheck,
)
from .model_lvs import Protocol, RealServer, VirtualServer, VirtualServerGroup
from .schema import Ctx

CODE = "pitfall"


def lint(config: Config, env: Environment, ctx: Ctx) -> None:
    """Add pitfall warnings for the LVS side of ``config``."""
    del env  # nothing host-specific yet
    groups: dict[str, VirtualServerGroup] = {}
    for g in config.virtual_server_groups:
        if g.name in groups:
            ctx.warn(
                g.loc,
                f"virtual_server_group {g.name} is defined twice; keepalived uses the first",
                "rename or merge the groups",
                CODE,
            )
            continue
        groups[g.name] = g
    used = {vs.group for vs in config.virtual_servers}
    for g in groups.values():
        if g.name not in used:
            ctx.warn(g.loc, f"virtual_server_group {g.name} is not used", "remove it", CODE)
    _scripts(config, ctx)
    services: dict[object, SourceLoc | None] = {}
    for vs in config.virtual_servers:
        key = (vs.address, vs.port, vs.fwmark, vs.group, vs.protocol)
        if key in services:
            first = services[key]
            ctx.warn(
                vs.loc,
                f"virtual server {vs.describe()} is defined twice"
                + (f" (first at line {first.line})" if first else ""),
                "merge the two virtual_server blocks",
                CODE,
            )
        services.setdefault(key, vs.loc)
        _vs(config, vs, groups, ctx)


def _scripts(config: Config, ctx: Ctx) -> None:
    gd = config.global_defs
    if getattr(gd, "enable_script_security", False):
        return
    for vs in config.virtual_servers:
        found: list[tuple[SourceLoc | None, str]] = []
        for field in ("quorum_up", "quorum_down"):
            if getattr(vs, field) is not None:
                found.append((vs.locs.get(field, vs.loc), field))
        for rs in vs.real_servers:
            for field in ("notify_up", "notify_down"):
                if getattr(rs, field) is not None:
                    found.append((rs.locs.get(field, rs.loc), field))
            for chk in rs.checkers:
                if isinstance(chk, MiscCheck) and chk.misc_path:
                    found.append((chk.locs.get("misc_path", chk.loc), "MISC_CHECK misc_path"))
        for loc, what in found:
            ctx.warn(
                loc,
                f"{what} runs a script but script_security is not enabled; keepalived "
                "reports a SECURITY VIOLATION when the script exists",
                "add 'enable_script_security' (and 'script_user') to global_defs",
                CODE,
            )


_TCP_CHECKERS = (HttpGet, SmtpCheck, TcpCheck)


def _vs(config: Config, vs: VirtualServer, groups: dict[str, VirtualServerGroup], ctx: Ctx) -> None:
    if vs.fwmark == 0:
        ctx.warn(
            vs.loc,
            "virtual server fwmark 0: packets without a mark are not load balanced by fwmark 0",
            "use a non-zero firewall mark",
            CODE,
        )
    smtp_server = getattr(config.global_defs, "smtp_server", None)
    if vs.smtp_alert and not smtp_server:
        ctx.warn(
            vs.locs.get("smtp_alert", vs.loc),
            "smtp_alert is on but global_defs has no smtp_server: no mail will be sent",
            "set smtp_server in global_defs",
            CODE,
        )
    proto = effective_protocol(vs, groups)
    for rs in vs.real_servers:
        _rs(vs, rs, proto, ctx)


def _rs(vs: VirtualServer, rs: RealServer, proto: Protocol | None, ctx: Ctx) -> None:
    if rs.uthreshold is not None and rs.lthreshold is not None and rs.uthreshold < rs.lthreshold:
        ctx.warn(
            rs.locs.get("uthreshold", rs.loc),
            f"real server {rs.address}: uthreshold {rs.uthreshold} is below lthreshold "
            f"{rs.lthreshold}",
            "uthreshold is the upper connection limit; make it the larger one",
            CODE,
        )
    for chk in rs.checkers:
        _checker(vs, rs, chk, proto, ctx)


def _where(chk: Checker, rs: RealServer) -> str:
    # Built only for a warning: formatting addresses for every checker is slow.
    return f"{chk.keyword} of real server {rs.address}"


def _checker(
    vs: VirtualServer, rs: RealServer, chk: Checker, proto: Protocol | None, ctx: Ctx
) -> None:
    if proto is Protocol.UDP and isinstance(chk, _TCP_CHECKERS) and vs.protocol is not None:
        ctx.warn(
            chk.loc,
            f"{_where(chk, rs)} checks over TCP but the virtual server is UDP",
            "use UDP_CHECK, DNS_CHECK or MISC_CHECK for UDP services",
            CODE,
        )
    if proto is Protocol.TCP and isinstance(chk, UdpCheck):
        ctx.warn(
            chk.loc,
            f"{_where(chk, rs)} checks over UDP but the virtual server is TCP",
            "use TCP_CHECK or HTTP_GET for TCP services",
            CODE,
        )
    if isinstance(chk, ConnChecker) and not isinstance(chk, PingCheck | DnsCheck):
        eff = effective_checker(vs, rs, chk)
        if eff.connect_port is None:
            ctx.warn(
                chk.loc,
                f"{_where(chk, rs)} has no port to connect to (the real server has none)",
                "add 'connect_port N' to the checker or a port to the real_server",
                CODE,
            )
        if eff.connect_timeout is not None and eff.connect_timeout > eff.delay_loop:
            ctx.warn(
                chk.locs.get("connect_timeout", chk.loc),
                f"{_where(chk, rs)}: connect_timeout {eff.connect_timeout:g}s exceeds delay_loop "
                f"{eff.delay_loop:g}s",
                "make connect_timeout shorter than delay_loop",
                CODE,
            )
    if isinstance(chk, HttpGet):
        for url in chk.urls:
            extra = (
                url.regex_no_match
                or url.regex_options
                or url.regex_min_offset is not None
                or url.regex_max_offset is not None
                or url.regex_stack is not None
            )
            if url.regex is None and extra:
                ctx.warn(
                    url.loc,
                    "regex parameters specified without regex: keepalived ignores them",
                    "add 'regex PATTERN' or remove the regex_* lines",
                    CODE,
                )
            lo, hi = url.regex_min_offset, url.regex_max_offset
            if lo is not None and hi is not None and lo > hi:
                ctx.warn(
                    url.locs.get("regex_min_offset", url.loc),
                    f"regex_min_offset {lo} > regex_max_offset {hi}: keepalived ignores both",
                    "make regex_min_offset at most regex_max_offset",
                    CODE,
                )
