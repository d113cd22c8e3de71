"""Parsers and formatters of VRRP list lines: addresses, routes, rules, peers, trackers.

Each parser takes the words of one line and a ``report(message, hint)`` callback for
problems keepalived reports but survives (the item is kept or dropped as keepalived
does: a ``None`` result means the line is dropped).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from .convert import Conv, Invalid, IPAddress, IPNetwork
from .model_vrrp_items import (
    TrackedObject,
    UnicastPeer,
    VirtualAddress,
)
from .schema import Ctx
from .tree import Node

Report = Callable[[str, str | None], None]
T = TypeVar("T")
Parser = Callable[[Sequence[str], Report], Any]

ADDRESS_FLAGS = ("home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin")
IFNAMSIZ = 16


def parse_ip(word: str) -> IPAddress | None:
    """An address in keepalived's way (``:`` means IPv6), or None."""
    try:
        return ipaddress.ip_address(word.split("%", 1)[0])
    except ValueError:
        return None


def parse_prefix(word: str, report: Report) -> IPNetwork | None:
    """``ADDR[/LEN]``: a bad length is reported and replaced by the host length."""
    addr_text, _, plen = word.partition("/")
    addr = parse_ip(addr_text)
    if addr is None:
        report(f"invalid IP address '{word}'", "write a dotted IPv4 or an IPv6 address")
        return None
    host: int = addr.max_prefixlen
    if plen:
        if not plen.isdigit() or int(plen) > host:
            report(
                f"invalid address prefix length '{plen}' for {word}, using {host}",
                f"use a prefix length from 0 to {host}",
            )
        else:
            host = int(plen)
    return ipaddress.ip_interface(f"{addr}/{host}")


def fmt_prefix(net: IPNetwork) -> str:
    return f"{net.ip}/{net.network.prefixlen}"


# ---------------------------------------------------------------------------------------
# Addresses


def parse_vip(words: Sequence[str], report: Report, static: bool = False) -> VirtualAddress | None:
    """One ``virtual_ipaddress`` (or, with ``static``, ``static_ipaddress``) line."""
    net = parse_prefix(words[0], report)
    if net is None:
        return None
    v: dict[str, Any] = {"address": net}
    flags: list[str] = []
    i = 1
    brd = None
    while i < len(words):
        w = words[i]
        needs_value = w in ("dev", "scope", "broadcast", "brd", "label", "peer", "preferred_lft")
        needs_value = needs_value or (static and w == "track_group")
        if needs_value and i + 1 >= len(words):
            report(f"no {w} parameter specified for {words[0]}", f"write '{w} VALUE'")
            return None
        val = words[i + 1] if needs_value else ""
        if w == "dev":
            if "dev" in v:
                report(f"cannot specify the device more than once for {words[0]}", None)
                return None
            v["dev"] = val
        elif w == "scope":
            v["scope"] = val
        elif w in ("broadcast", "brd"):
            if net.version == 6:
                report(f"broadcast {val} given for IPv6 address {words[0]}: skipping it", None)
                return None
            if (val not in ("+", "-") and parse_ip(val) is None) or ":" in val:
                report(f"invalid broadcast address {val}: skipping {words[0]}", None)
                return None
            brd = val
        elif w == "label":
            if len(val) >= IFNAMSIZ:
                report(f"address label {val} is longer than {IFNAMSIZ - 1}: removing address", None)
                return None
            v["label"] = val
        elif w == "peer":
            peer = parse_ip(val)
            if peer is None:
                report(f"invalid peer address {val}", None)
            elif peer.version != net.version:
                report(f"peer address {val} does not match the address family", None)
            else:
                v["peer"] = peer
        elif w in ADDRESS_FLAGS:
            flags.append(w)
        elif w == "no_track":
            v["no_track"] = True
        elif w == "preferred_lft":
            if val != "forever" and not (val.isdigit() and int(val) < 2**32):
                report(f"preferred_lft {val} is invalid", "give seconds or 'forever'")
            else:
                v["preferred_lft"] = val
        elif static and w == "track_group":
            v["track_group"] = val
        elif not static and w == "use_vmac":
            v["use_vmac"] = True
        else:
            report(
                f"unknown configuration entry '{w}' for ip address - ignoring",
                "options are dev, brd, scope, label, peer, no_track, preferred_lft...",
            )
        i += 2 if needs_value else 1
    if brd is not None:
        if "peer" in v:
            report("cannot specify broadcast and peer addresses - ignoring broadcast", None)
        elif brd in ("+", "-") and net.network.prefixlen > 30:
            report(f"address prefix length {net.network.prefixlen} too long for broadcast", None)
        else:
            v["brd"] = brd
    if net.version == 6:
        if v.pop("scope", None) is not None:
            report(f"cannot specify scope for IPv6 addresses ({words[0]}) - ignoring scope", None)
        if v.pop("label", None) is not None:
            report(f"cannot specify label for IPv6 addresses ({words[0]}) - ignoring label", None)
    return VirtualAddress(**v, flags=tuple(flags))


def fmt_vip(a: VirtualAddress) -> tuple[str, ...]:
    """Words of an address line."""
    out = [fmt_prefix(a.address)]
    for key in ("dev", "brd", "scope", "label", "peer", "preferred_lft", "track_group"):
        val = getattr(a, key)
        if val is not None:
            out += [key, str(val)]
    out += list(a.flags)
    if a.no_track:
        out.append("no_track")
    if a.use_vmac:
        out.append("use_vmac")
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Peers and trackers


def parse_peer(words: Sequence[str], report: Report) -> UnicastPeer | None:
    """One ``unicast_peer`` line: ``ADDRESS [min_ttl N] [max_ttl N]``."""
    addr = parse_ip(words[0])
    if addr is None or "/" in words[0]:
        report(f"malformed unicast peer address {words[0]}", "write one IP address per line")
        return None
    kw: dict[str, Any] = {}
    i = 1
    while i < len(words):
        if i + 1 >= len(words):
            report(f"{words[i]} is missing a value", None)
            break
        name, val = words[i], words[i + 1]
        if val.isdigit() and int(val) <= 255:
            if name not in ("min_ttl", "max_ttl"):
                report(f"unknown unicast_peer option {name}", "use min_ttl or max_ttl")
                break
            kw[name] = int(val)
        i += 2
    lo, hi = kw.get("min_ttl", 0), kw.get("max_ttl", 255)
    if lo > hi:
        report(f"min_ttl {lo} > max_ttl {hi} - all packets will be discarded", None)
    return UnicastPeer(address=addr, **kw)


def fmt_peer(p: UnicastPeer) -> tuple[str, ...]:
    out = [str(p.address)]
    if p.min_ttl is not None:
        out += ["min_ttl", str(p.min_ttl)]
    if p.max_ttl is not None:
        out += ["max_ttl", str(p.max_ttl)]
    return tuple(out)


def tracker_parser(what: str, allow_noreverse: bool = False) -> Parser:
    """Parser of ``NAME [weight N [reverse]]`` lines of ``track_<what>``."""

    def parse(words: Sequence[str], report: Report) -> TrackedObject | None:
        name = words[0]
        if len(words) == 1:
            return TrackedObject(name=name)
        if words[1] != "weight":
            report(f"unknown track_{what} {name} option {words[1]} - ignoring", "write 'weight N'")
            return None
        if len(words) == 2:
            report(f"weight without value specified for track_{what} {name} - ignoring", None)
            return None
        try:
            weight = int(words[2])
        except ValueError:
            weight = 9999
        if not -254 <= weight <= 254:
            report(
                f"weight {words[2]} for track_{what} {name} must be between [-253..253]",
                "use a weight from -253 to 253",
            )
            return TrackedObject(name=name) if what == "script" else None
        if abs(weight) == 254:
            report(f"weight for {name} cannot be +/-254, setting to +/-253", "use +/-253")
            weight = 253 if weight > 0 else -253
        reverse: bool | None = None
        if len(words) >= 4:
            if words[3] == "reverse":
                reverse = True
            elif allow_noreverse and words[3] == "noreverse":
                reverse = False
            else:
                report(f"unknown track_{what} {name} weight option {words[3]} - ignoring", None)
        return TrackedObject(name=name, weight=weight, reverse=reverse)

    return parse


def fmt_tracker(t: TrackedObject) -> tuple[str, ...]:
    out = [t.name]
    if t.weight is not None:
        out += ["weight", str(t.weight)]
        if t.reverse is not None:
            out.append("reverse" if t.reverse else "noreverse")
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Glue to the schema engine


def strict(parser: Parser) -> Callable[[Sequence[str]], Any]:
    """The parser as a Conv.parse: the first problem raises Invalid."""

    def parse(words: Sequence[str]) -> Any:
        def report(msg: str, hint: str | None) -> None:
            raise Invalid(msg, hint)

        if not words:
            raise Invalid("empty line")
        value = parser(words, report)
        if value is None:
            raise Invalid(f"invalid entry '{' '.join(words)}'")
        return value

    return parse


def line_conv(parser: Parser, fmt: Callable[[Any], tuple[str, ...]], what: str) -> Conv[Any]:
    """A Conv of one list line (its words include the first one)."""
    return Conv(strict(parser), fmt, what, nargs=None)


def lines_node(parser: Parser) -> Callable[[Node, Ctx], tuple[Any, ...]]:
    """A ``parse_node`` for list blocks: each line parsed, located, problems reported."""

    def parse_node(node: Node, ctx: Ctx) -> tuple[Any, ...]:
        if node.children is None:
            if not node.args:
                raise Invalid("needs a block of entries", f"write '{node.keyword} {{ ... }}'")
            items: Sequence[Node] = [Node(node.args[0].text, node.args[1:], None, node.loc)]
        else:
            items = node.children
        out = []
        for item in items:
            if item.children is not None:
                ctx.error(item.loc, f"{node.keyword}: unexpected block in list", None, "bad-value")
                continue

            def report(msg: str, hint: str | None, loc: Any = item.loc) -> None:
                code = "deprecated" if "deprecated" in msg else "bad-value"
                ctx.error(loc, f"{node.keyword}: {msg}", hint, code)

            value = parser(item.words(), report)
            if value is not None:
                out.append(replace(value, loc=item.loc))
        return tuple(out)

    return parse_node


def words_node(node: Node, ctx: Ctx) -> tuple[str, ...]:
    """A block of names spread over lines (``group { A B }``, ``interfaces { ... }``)."""
    if node.children is None:
        return node.arg_texts
    out: list[str] = []
    for item in node.children:
        if item.children is not None:
            ctx.error(item.loc, f"{node.keyword}: unexpected block in list", None, "bad-value")
            continue
        out.extend(item.words())
    return tuple(out)
