"""virtual_routes / virtual_rules lines as the network backend's route and rule specs (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..config.model_vrrp_items import VirtualRoute, VirtualRule
from ..net.backend import Nexthop, RouteSpec, RouteType, RuleAction, RuleSpec, Scope

TABLES = {"main": 254, "local": 255, "default": 253, "unspec": 0}
PROTOCOLS = {"kernel": 2, "boot": 3, "static": 4, "keepalived": 18}
SCOPES = {
    "global": Scope.GLOBAL,
    "universe": Scope.GLOBAL,
    "site": Scope.SITE,
    "link": Scope.LINK,
    "host": Scope.HOST,
    "nowhere": Scope.NOWHERE,
}


class RouteError(ValueError):
    """A route or rule pyvrrpd cannot express (named table unknown, ...)."""


def _number(word: str | None, names: dict[str, int], what: str) -> int | None:
    if word is None:
        return None
    if word.isdigit():
        return int(word)
    if word in names:
        return names[word]
    raise RouteError(f"unknown {what} '{word}' (use a number)")


def _net(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if value is None:
        return None
    return ipaddress.ip_interface(str(value)).network


def route_spec(r: VirtualRoute, default_dev: str) -> RouteSpec:
    """One virtual_routes line as a RouteSpec."""
    rtype = RouteType[r.type.upper()] if r.type else RouteType.UNICAST
    dev = r.dev if (r.dev or rtype is not RouteType.UNICAST) else default_dev
    return RouteSpec(
        family=r.effective_family,
        dst=_net(r.dst),
        gateway=r.via,
        dev=dev,
        src=r.src,
        table=_number(r.table, TABLES, "routing table"),
        metric=r.metric,
        scope=SCOPES.get(r.scope) if r.scope else None,
        protocol=_number(r.protocol, PROTOCOLS, "route protocol"),
        type=rtype,
        onlink=r.onlink,
        nexthops=tuple(
            Nexthop(gateway=n.via, dev=n.dev, weight=n.weight or 1, onlink=n.onlink)
            for n in r.nexthops
        ),
    )


def rule_spec(r: VirtualRule) -> RuleSpec:
    """One virtual_rules line as a RuleSpec."""
    action = RuleAction[r.action.upper()] if r.action else RuleAction.TABLE
    return RuleSpec(
        family=r.effective_family,
        src=_net(r.from_prefix),
        dst=_net(r.to_prefix),
        table=_number(r.table, TABLES, "routing table"),
        priority=r.priority,
        action=action,
        goto=r.goto,
        iif=r.iif,
        oif=r.oif,
        fwmark=r.fwmark,
        fwmask=r.fwmask,
    )


def route_specs(
    lines: Iterable[VirtualRoute], default_dev: str, block: str
) -> tuple[list[RouteSpec], list[str]]:
    """The lines of a routes block as RouteSpecs, and a problem (``BLOCK line LOC: why``)
    for each line that cannot be expressed (left out)."""
    specs: list[RouteSpec] = []
    problems: list[str] = []
    for r in lines:
        try:
            specs.append(route_spec(r, default_dev))
        except (RouteError, KeyError) as exc:
            problems.append(f"{block} line {r.loc}: {exc}")
    return specs, problems


def rule_specs(lines: Iterable[VirtualRule], block: str) -> tuple[list[RuleSpec], list[str]]:
    """The lines of a rules block as RuleSpecs, and a problem for each line left out."""
    specs: list[RuleSpec] = []
    problems: list[str] = []
    for rule in lines:
        try:
            specs.append(rule_spec(rule))
        except (RouteError, KeyError) as exc:
            problems.append(f"{block} line {rule.loc}: {exc}")
    return specs, problems
