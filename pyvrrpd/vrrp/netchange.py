"""Adding and removing addresses, routes and rules as one ordered change (asyncio shell).

Used by the instances for their virtual addresses and by the engine for the
``static_ipaddress``/``static_routes``/``static_rules`` blocks. Each failure is logged with
its object and the rest still happens.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..net.backend import AddressSpec, NetBackend, RouteSpec, RuleSpec

log = logging.getLogger("pyvrrpd.vrrp")

_T = TypeVar("_T")


def minus(items: Sequence[_T], other: Sequence[_T]) -> tuple[_T, ...]:
    """Items of ``items`` that are not in ``other``, in order."""
    return tuple(x for x in items if x not in other)


async def change(
    net: NetBackend,
    who: str,
    add: bool,
    addresses: Sequence[AddressSpec],
    routes: Sequence[RouteSpec] = (),
    rules: Sequence[RuleSpec] = (),
) -> int:
    """Add addresses, then routes, then rules; or remove them in the reverse order.

    Returns how many steps failed (each logged as ``(who) cannot add/remove ...``).
    """
    steps: list[tuple[str, object, Callable[[], Awaitable[None]]]] = []
    for spec in addresses:
        op = net.add_address if add else net.remove_address
        steps.append(("address", spec.address, functools.partial(op, spec)))
    for route in routes:
        rop = net.add_route if add else net.remove_route
        steps.append(("route", route.dst or "default", functools.partial(rop, route)))
    for rule in rules:
        uop = net.add_rule if add else net.remove_rule
        steps.append(("rule", rule, functools.partial(uop, rule)))
    failed = 0
    for what, obj, call in steps if add else reversed(steps):
        try:
            await call()
        except Exception as exc:
            failed += 1
            verb = "add" if add else "remove"
            log.error("(%s) cannot %s %s %s: %s", who, verb, what, obj, exc)
    return failed
