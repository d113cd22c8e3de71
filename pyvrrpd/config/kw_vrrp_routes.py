"""Parsers and formatters of route and rule lines (``virtual_routes``, ``static_rules``...).

They follow keepalived's ``ip route``/``ip rule`` subset; problems go to ``report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .convert import Invalid
from .kw_vrrp_lines import Report, fmt_prefix, parse_ip, parse_prefix
from .model_vrrp_items import Nexthop, VirtualRoute, VirtualRule

# ---------------------------------------------------------------------------------------
# Routes

ROUTE_TYPES = (
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
)
_LOCKABLE = ("mtu", "advmss", "rtt", "rttvar", "reordering", "cwnd", "ssthresh", "rto_min")
_ONE_VALUE = (
    "expires",
    "hoplimit",
    "window",
    "initcwnd",
    "initrwnd",
    "features",
    "quickack",
    "pref",
    "ttl-propagate",
    "fastopen_no_cookie",
    "realms",
    "vrf",
)
_ROUTE_FLAGS = ("add", "prepend", "append")


def _family_conflict(route_family: int | None, addr_family: int) -> bool:
    return route_family is not None and route_family != addr_family


def parse_route(words: Sequence[str], report: Report, static: bool = False) -> VirtualRoute | None:
    """One ``virtual_routes``/``static_routes`` line."""
    r: dict[str, Any] = {}
    family: int | None = None
    options: list[tuple[str, ...]] = []
    i = 0
    n = len(words)

    def arg(k: int) -> str:
        if k >= n:
            raise Invalid(f"missing value after '{words[k - 1]}'")
        return words[k]

    try:
        while i < n:
            w = words[i]
            if w in ("inet", "inet6"):
                fam = 4 if w == "inet" else 6
                if family is not None and family != fam:
                    raise Invalid(f"{w} specified for an IPv{family} route")
                family = fam
                r["family"] = fam
            elif w == "src":
                a = parse_ip(arg(i + 1))
                if a is None:
                    raise Invalid(f"invalid route src address {words[i + 1]}")
                if _family_conflict(family, a.version):
                    raise Invalid("cannot mix IPv4 and IPv6 addresses for route")
                family, r["src"] = a.version, a
                i += 1
            elif w in ("via", "gw"):
                if w == "gw":
                    r["gw_keyword"] = True
                    report("'gw' for routes is deprecated", "use 'via'")
                i += 1
                if arg(i) in ("inet", "inet6"):
                    i += 1
                a = parse_ip(arg(i))
                if a is None:
                    raise Invalid(f"invalid route via address {words[i]}")
                if _family_conflict(family, a.version):
                    raise Invalid("cannot mix IPv4 and IPv6 addresses for route")
                family, r["via"] = a.version, a
            elif w == "from":
                p = parse_prefix(arg(i + 1), report)
                if p is None:
                    raise Invalid(f"invalid route from address {words[i + 1]}")
                if p.version != 6:
                    raise Invalid(f"route from address only supported with IPv6 ({words[i + 1]})")
                family, r["from_prefix"] = 6, p
                i += 1
            elif w in ("tos", "dsfield"):
                r["tos"] = arg(i + 1)
                i += 1
            elif w in ("table", "protocol", "scope"):
                r[w] = arg(i + 1)
                i += 1
            elif w in ("metric", "priority", "preference"):
                val = arg(i + 1)
                if not val.isdigit() or int(val) >= 2**32:
                    raise Invalid(f"invalid metric {val} specified for route")
                r["metric"] = int(val)
                i += 1
            elif w in ("dev", "oif"):
                r["dev"] = arg(i + 1)
                i += 1
            elif w == "onlink":
                r["onlink"] = True
            elif w == "no_track":
                r["no_track"] = True
            elif static and w == "track_group":
                r["track_group"] = arg(i + 1)
                i += 1
            elif w in _LOCKABLE or w == "congctl":
                if arg(i + 1) == "lock":
                    options.append((w, "lock", arg(i + 2)))
                    i += 2
                else:
                    options.append((w, words[i + 1]))
                    i += 1
            elif w in _ONE_VALUE:
                options.append((w, arg(i + 1)))
                i += 1
            elif w in _ROUTE_FLAGS:
                options.append((w,))
            elif w == "encap":
                options.append(tuple(words[i:]))
                i = n
                break
            elif w == "as":
                raise Invalid("'as [to]' (nat) not supported")
            elif w == "or":
                report("'or' for routes is deprecated", "use 'nexthop'")
                a = parse_ip(arg(i + 1))
                if a is None:
                    raise Invalid(f"invalid 'or' address {words[i + 1]}")
                r["or_via"] = a
                i += 1
            elif w == "nexthop":
                r["nexthops"] = _parse_nexthops(words, i, family)
                i = n
                break
            else:
                if w == "to":
                    i += 1
                    w = arg(i)
                if w in ROUTE_TYPES:
                    r["type"] = w
                    i += 1
                    w = arg(i)
                if w in ("default", "any", "all", "default6"):
                    if w == "default6":
                        report("'default6' is deprecated", "write 'inet6 default'")
                        family = r["family"] = 6
                    r["dst"] = None
                    r["has_dst"] = True
                else:
                    if parse_ip(w.partition("/")[0]) is None:
                        raise Invalid(f"unknown route keyword {w}")
                    p = parse_prefix(w, report)
                    if p is None:
                        raise Invalid(f"unknown route keyword {w}")
                    if _family_conflict(family, p.version):
                        raise Invalid(f"cannot mix IPv4 and IPv6 addresses for route ({w})")
                    family, r["dst"] = p.version, p
                    r["has_dst"] = True
            i += 1
    except Invalid as exc:
        report(exc.message, exc.hint)
        return None
    if not r.pop("has_dst", False):
        report("route must have a destination", "write the destination prefix or 'default'")
        return None
    return VirtualRoute(**r, options=tuple(options))


def _parse_nexthops(words: Sequence[str], i: int, family: int | None) -> tuple[Nexthop, ...]:
    hops: list[Nexthop] = []
    n = len(words)
    while i < n and words[i] == "nexthop":
        i += 1
        h: dict[str, Any] = {}
        opts: list[tuple[str, ...]] = []
        while i < n and words[i] != "nexthop":
            w = words[i]
            if i + 1 >= n and w != "onlink":
                raise Invalid(f"missing value after nexthop '{w}'")
            if w == "via":
                i += 1
                if words[i] in ("inet", "inet6"):
                    i += 1
                a = parse_ip(words[i]) if i < n else None
                if a is None:
                    raise Invalid(f"invalid nexthop address {words[i] if i < n else ''}")
                if _family_conflict(family, a.version):
                    raise Invalid("address family mismatch for next hop")
                family, h["via"] = a.version, a
            elif w == "dev":
                h["dev"] = words[i + 1]
                i += 1
            elif w == "weight":
                val = words[i + 1]
                if not val.isdigit() or not 1 <= int(val) <= 256:
                    raise Invalid(f"invalid weight {val} specified for route nexthop")
                h["weight"] = int(val)
                i += 1
            elif w == "onlink":
                h["onlink"] = True
            elif w == "realms":
                opts.append((w, words[i + 1]))
                i += 1
            else:
                raise Invalid(f"route has trailing nonsense after nexthops - {w}")
            i += 1
        hops.append(Nexthop(**h, options=tuple(opts)))
    return tuple(hops)


def fmt_route(r: VirtualRoute) -> tuple[str, ...]:
    """Words of a route line."""
    out: list[str] = []
    if r.family is not None:
        out.append("inet" if r.family == 4 else "inet6")
    if r.type is not None:
        out.append(r.type)
    out.append("default" if r.dst is None else fmt_prefix(r.dst))
    if r.via is not None:
        out += ["gw" if r.gw_keyword else "via", str(r.via)]
    if r.src is not None:
        out += ["src", str(r.src)]
    if r.from_prefix is not None:
        out += ["from", fmt_prefix(r.from_prefix)]
    for key in ("dev", "table", "metric", "scope", "protocol", "tos", "track_group"):
        val = getattr(r, key)
        if val is not None:
            out += [key, str(val)]
    if r.onlink:
        out.append("onlink")
    if r.or_via is not None:
        out += ["or", str(r.or_via)]
    if r.no_track:
        out.append("no_track")
    for opt in r.options:
        if opt[0] != "encap":
            out += opt
    for opt in r.options:
        if opt[0] == "encap":
            out += opt
    for h in r.nexthops:
        out.append("nexthop")
        if h.via is not None:
            out += ["via", str(h.via)]
        if h.dev is not None:
            out += ["dev", h.dev]
        if h.weight is not None:
            out += ["weight", str(h.weight)]
        if h.onlink:
            out.append("onlink")
        for opt in h.options:
            out += opt
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Rules

_RULE_ACTIONS = ("nop", "blackhole", "prohibit", "unreachable")
_RULE_ONE_VALUE = (
    "realms",
    "suppress_prefixlength",
    "sup_pl",
    "suppress_ifgroup",
    "sup_group",
    "tunnel-id",
    "uidrange",
    "protocol",
    "ipproto",
    "sport",
    "dport",
)


def parse_rule(words: Sequence[str], report: Report, static: bool = False) -> VirtualRule | None:
    """One ``virtual_rules``/``static_rules`` line."""
    r: dict[str, Any] = {}
    options: list[tuple[str, ...]] = []
    family: int | None = None
    n = len(words)
    i = 0

    def action(name: str) -> None:
        if "action" in r:
            raise Invalid(
                "cannot specify more than one of table/nop/goto/blackhole/prohibit/"
                "unreachable/l3mdev for a rule"
            )
        r["action"] = name

    try:
        while i < n:
            w = words[i]
            needs = w not in ("inet", "inet6", "no_track", "l3mdev", *_RULE_ACTIONS)
            if needs and i + 1 >= n:
                raise Invalid(f"missing value after rule '{w}'")
            val = words[i + 1] if needs else ""
            if w in ("inet", "inet6"):
                fam = 4 if w == "inet" else 6
                if family is not None and family != fam:
                    raise Invalid(f"{w} specified for an IPv{family} rule")
                family = r["family"] = fam
            elif w in ("from", "to"):
                if val == "all":
                    pass
                else:
                    p = parse_prefix(val, report) if parse_ip(val.partition("/")[0]) else None
                    if p is None:
                        raise Invalid(f"invalid rule {w} address {val}")
                    if family is not None and family != p.version:
                        raise Invalid("rule specification has mixed IPv4 and IPv6")
                    family = p.version
                    r["from_prefix" if w == "from" else "to_prefix"] = p
            elif w in ("table", "lookup"):
                if val == "0":
                    raise Invalid("table 0 is not valid")
                action("table")
                r["table"] = val
            elif w in ("preference", "order", "priority"):
                if not val.isdigit() or int(val) >= 2**32:
                    raise Invalid(f"invalid rule preference {val} specified")
                r["priority"] = int(val)
            elif w in ("tos", "dsfield"):
                r["tos"] = val
            elif w == "fwmark":
                mark, _, mask = val.partition("/")
                try:
                    r["fwmark"] = int(mark, 0)
                    if mask:
                        r["fwmask"] = int(mask, 0)
                except ValueError:
                    raise Invalid(f"invalid rule fwmark {val} specified") from None
            elif w in ("dev", "iif"):
                r["iif"] = val
            elif w == "oif":
                r["oif"] = val
            elif w == "goto":
                if not val.isdigit():
                    raise Invalid(f"invalid target {val} specified")
                action("goto")
                r["goto"] = int(val)
            elif w == "type":
                if val not in _RULE_ACTIONS:
                    raise Invalid(f"invalid rule action {val}")
                action(val)
            elif w in _RULE_ACTIONS or w == "l3mdev":
                action(w)
            elif w == "no_track":
                r["no_track"] = True
            elif static and w == "track_group":
                r["track_group"] = val
            elif w in _RULE_ONE_VALUE:
                options.append((w, val))
            else:
                raise Invalid(f"unknown rule option {w}")
            i += 2 if needs else 1
    except Invalid as exc:
        report(exc.message, exc.hint)
        return None
    if "action" not in r:
        report("no action specified for rule - ignoring", "add 'table N' (or goto/nop/...)")
        return None
    if r.get("goto") is not None:
        if r.get("priority") is None:
            report("goto target specified without preference", "add 'preference N'")
        elif r["priority"] >= r["goto"]:
            report(f"preference {r['priority']} >= goto target {r['goto']}", None)
    return VirtualRule(**r, options=tuple(options))


def fmt_rule(r: VirtualRule) -> tuple[str, ...]:
    """Words of a rule line."""
    out: list[str] = []
    if r.family is not None:
        out.append("inet" if r.family == 4 else "inet6")
    if r.from_prefix is not None:
        out += ["from", fmt_prefix(r.from_prefix)]
    if r.to_prefix is not None:
        out += ["to", fmt_prefix(r.to_prefix)]
    if r.priority is not None:
        out += ["priority", str(r.priority)]
    if r.tos is not None:
        out += ["tos", r.tos]
    if r.fwmark is not None:
        out += ["fwmark", f"{r.fwmark}" + (f"/{r.fwmask}" if r.fwmask is not None else "")]
    if r.iif is not None:
        out += ["iif", r.iif]
    if r.oif is not None:
        out += ["oif", r.oif]
    if r.action == "table" and r.table is not None:
        out += ["table", r.table]
    elif r.action == "goto" and r.goto is not None:
        out += ["goto", str(r.goto)]
    elif r.action is not None:
        out.append(r.action)
    if r.track_group is not None:
        out += ["track_group", r.track_group]
    if r.no_track:
        out.append("no_track")
    for opt in r.options:
        out += opt
    return tuple(out)
