"""``static_ipaddress``/``static_routes``/``static_rules``: put in place at start (pure).

keepalived configures these once, whatever the VRRP state, and they stay on the machine
while it runs; they are removed at stop (unless ``-V``) and a reload changes only the
difference. This module turns the configuration into the network backend's specs; the
engine applies them with :func:`pyvrrpd.vrrp.netchange.change`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config.model import Config
from ..net.backend import AddressSpec, RouteSpec, RuleSpec
from .routes import route_specs, rule_specs
from .settings import address_spec


@dataclass(frozen=True, slots=True)
class Statics:
    """The static addresses, routes and rules of a configuration, in file order."""

    addresses: tuple[AddressSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.routes or self.rules)


def static_specs(config: Config) -> Statics:
    """The specs of ``config``'s static blocks; lines that cannot be expressed are
    reported in ``problems`` (with their location) and left out."""
    default_dev = config.global_defs.default_interface or ""
    problems: list[str] = []
    addresses: list[AddressSpec] = []
    for a in config.static_ipaddress:
        spec = address_spec(a, default_dev)
        if not spec.dev:
            problems.append(f"static_ipaddress line {a.loc}: {a.address} has no dev - skipped")
            continue
        addresses.append(spec)
    routes, route_problems = route_specs(config.static_routes, default_dev, "static_routes")
    rules, rule_problems = rule_specs(config.static_rules, "static_rules")
    problems += [f"{why} - skipped" for why in route_problems + rule_problems]
    return Statics(tuple(addresses), tuple(routes), tuple(rules), tuple(problems))
