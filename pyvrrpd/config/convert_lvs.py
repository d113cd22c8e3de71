"""Argument converters of the LVS side (timers, ports, lvs_method, hex strings...)."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .convert import Conv, Invalid, IPAddress, decimal, integer, parse_address
from .errors import SourceLoc
from .model_checks import TrackWeight
from .model_lvs import (
    Forwarding,
    IpFamily,
    LvsMethod,
    SorryServer,
    TunnelCsum,
    TunnelType,
    VsgEntry,
    VsgFwmark,
    VsgRange,
)
from .schema import BlockSpec, Ctx, Kw, build_block
from .tree import Node

UINT32_MAX = 4294967295


T = TypeVar("T")


def hinted(conv: Conv[T], hint: str) -> Conv[T]:
    """``conv`` whose errors carry ``hint`` when they have none."""

    def parse(args: Sequence[str]) -> T:
        try:
            return conv.parse(args)
        except Invalid as exc:
            raise Invalid(exc.message, exc.hint or hint) from None

    return Conv(parse, conv.fmt, conv.what, conv.nargs)


def hint_all(kws: Sequence[Kw]) -> tuple[Kw, ...]:
    """Keywords whose value errors say what to write when the converter gives no hint."""
    return tuple(
        dataclasses.replace(k, conv=hinted(k.conv, f"write '{k.name} <{k.conv.what}>'"))
        if k.conv is not None
        else k
        for k in kws
    )


def timer(lo: float = 0.000001, hi: float = 18446744073709.0, what: str = "") -> Conv[float]:
    """A duration in seconds (decimals allowed, as keepalived's timers)."""
    desc = what or f"a time in seconds from {_fmt(lo)} to {_fmt(hi)}"
    return hinted(decimal(lo, hi, desc), f"give {desc}, e.g. 3 or 1.5")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def uint(lo: int = 0, hi: int = UINT32_MAX, what: str | None = None) -> Conv[int]:
    """An unsigned number in [lo, hi]."""
    conv = integer(lo, hi, what)
    return hinted(conv, f"give {conv.what}")


@functools.cache
def port() -> Conv[int]:
    """A TCP/UDP port (1-65535)."""
    return hinted(integer(1, 65535, "a port from 1 to 65535"), "give a port from 1 to 65535")


def parse_port(word: str, zero_is_none: bool = True) -> int | None:
    """A port word; "0" (any number of zeros) means no port, as keepalived."""
    if zero_is_none and word.strip("0") == "":
        return None
    return port().parse([word])


def _str_or_none(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def address_port_head(what: str) -> Conv[dict[str, Any]]:
    """Head ``IP [PORT]`` of real_server (fields address, port)."""

    def parse(args: Sequence[str]) -> dict[str, Any]:
        if not args or len(args) > 2:
            raise Invalid(f"expected {what} IP [PORT]", f"write '{what} 192.0.2.1 80'")
        addr = parse_address(args[0])
        return {"address": addr, "port": parse_port(args[1]) if len(args) > 1 else None}

    def fmt(v: dict[str, Any]) -> tuple[str, ...]:
        out = (str(v["address"]),)
        p = _str_or_none(v.get("port"))
        return out + ((p,) if p is not None else ())

    return Conv(parse, fmt, "IP [PORT]", nargs=None)


def vs_head() -> Conv[dict[str, Any]]:
    """Head of virtual_server: ``IP [PORT]``, ``fwmark N`` or ``group NAME``."""

    def parse(args: Sequence[str]) -> dict[str, Any]:
        if not args:
            raise Invalid(
                "missing service: expected IP [PORT], fwmark N or group NAME",
                "write 'virtual_server 192.0.2.1 80 {'",
            )
        if args[0] == "group":
            if len(args) != 2:
                raise Invalid("expected 'group NAME'", "name one virtual_server_group")
            return {"group": args[1]}
        if args[0] == "fwmark":
            if len(args) != 2:
                raise Invalid("expected 'fwmark N'", "give one firewall mark")
            return {"fwmark": uint(what="a fwmark from 0 to 4294967295").parse(args[1:])}
        if len(args) > 2:
            raise Invalid("expected IP [PORT]", f"remove '{' '.join(args[2:])}'")
        return {
            "address": parse_address(args[0]),
            "port": parse_port(args[1]) if len(args) > 1 else None,
        }

    def fmt(v: dict[str, Any]) -> tuple[str, ...]:
        if _str_or_none(v.get("group")) is not None:
            return ("group", str(v["group"]))
        if _str_or_none(v.get("fwmark")) is not None:
            return ("fwmark", str(v["fwmark"]))
        out = (str(v.get("address")),)
        p = _str_or_none(v.get("port"))
        return out + ((p,) if p is not None else ())

    return Conv(parse, fmt, "IP [PORT] | fwmark N | group NAME", nargs=None)


def forwarding() -> Conv[Forwarding]:
    """``NAT | DR | TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]``."""

    def parse(args: Sequence[str]) -> Forwarding:
        if not args:
            raise Invalid("missing value: expected NAT, DR or TUN")
        try:
            method = LvsMethod(args[0])
        except ValueError:
            raise Invalid(
                f"unknown [{args[0]}] routing method", "use NAT, DR or TUN (upper case)"
            ) from None
        ttype: TunnelType | None = None
        tport: int | None = None
        csum: TunnelCsum | None = None
        i = 1
        while i < len(args):
            word = args[i]
            if word in ("type", "port") and i + 1 >= len(args):
                raise Invalid(f"missing tunnel {word}", f"write '{word} VALUE'")
            if word == "type":
                try:
                    ttype = TunnelType(args[i + 1])
                except ValueError:
                    raise Invalid(
                        f"unknown tunnel type {args[i + 1]}", "use ipip, gue or gre"
                    ) from None
                i += 2
            elif word == "port":
                tport = integer(1, 65535, "a gue tunnel port from 1 to 65535").parse([args[i + 1]])
                i += 2
            elif word in ("nocsum", "csum", "remcsum"):
                csum = TunnelCsum(word)
                i += 1
            else:
                raise Invalid(
                    f"invalid tunnel option {word}", "see lvs_method in keepalived.conf(5)"
                )
        if method is not LvsMethod.TUN and len(args) > 1:
            raise Invalid(f"tunnel options given for {method.value}", "only TUN takes options")
        if (ttype is TunnelType.GUE) != (tport is not None):
            raise Invalid(
                "gue tunnels require port, otherwise cannot have port",
                "write 'TUN type gue port N'",
            )
        if (ttype in (None, TunnelType.IPIP)) and csum not in (None, TunnelCsum.NOCSUM):
            raise Invalid("ipip tunnels do not support checksum option", "remove the csum option")
        if ttype is TunnelType.GRE and csum is TunnelCsum.REMCSUM:
            raise Invalid("gre tunnels do not support remote checksum option", "use csum")
        return Forwarding(method, ttype, tport, csum)

    def fmt(v: Forwarding) -> tuple[str, ...]:
        out: tuple[str, ...] = (v.method.value,)
        if v.tunnel_type is not None:
            out += ("type", v.tunnel_type.value)
        if v.tunnel_port is not None:
            out += ("port", str(v.tunnel_port))
        if v.csum is not None:
            out += (v.csum.value,)
        return out

    return Conv(parse, fmt, "NAT, DR or TUN [options]", nargs=None)


def sorry_server() -> Conv[SorryServer]:
    """``sorry_server IP [PORT]``."""

    def parse(args: Sequence[str]) -> SorryServer:
        if not args or len(args) > 2:
            raise Invalid("expected IP [PORT]", "write 'sorry_server 192.0.2.9 80'")
        return SorryServer(parse_address(args[0]), parse_port(args[1]) if len(args) > 1 else None)

    def fmt(v: SorryServer) -> tuple[str, ...]:
        return (str(v.address),) + ((str(v.port),) if v.port is not None else ())

    return Conv(parse, fmt, "IP [PORT]", nargs=None)


def script() -> Conv[tuple[str, ...]]:
    """A script (a quoted string holds the command with its arguments) [user [group]]."""

    def parse(args: Sequence[str]) -> tuple[str, ...]:
        if not args:
            raise Invalid("missing value: expected a script path")
        return tuple(args)

    return Conv(parse, lambda v: tuple(v), "a script [user [group]]", nargs=None)


def hex_string(wildcards: bool = False) -> Conv[str]:
    """A free-form hex string over several words (``Ab12f 3 456``), kept as written."""
    allowed = set("0123456789abcdefABCDEF") | (set("xX") if wildcards else set())

    def parse(args: Sequence[str]) -> str:
        if not args:
            raise Invalid("missing value: expected a hex string")
        text = " ".join(args)
        if not all(c in allowed for w in args for c in w):
            raise Invalid(f"invalid hex string '{text}'", "use hex digits separated by spaces")
        return text

    return Conv(parse, lambda v: tuple(v.split()), "a hex string", nargs=None)


def track_weight() -> Conv[TrackWeight]:
    """FILE_CHECK ``weight N [reverse|noreverse]``."""
    num = integer(-2147483647, 2147483647)

    def parse(args: Sequence[str]) -> TrackWeight:
        if not args or len(args) > 2:
            raise Invalid("expected a weight and optionally 'reverse'")
        w = num.parse(args[:1])
        if len(args) == 2 and args[1] not in ("reverse", "noreverse"):
            raise Invalid(f"unknown track file weight option {args[1]}", "use reverse or noreverse")
        return TrackWeight(w, len(args) == 2 and args[1] == "reverse")

    def fmt(v: TrackWeight) -> tuple[str, ...]:
        return (str(v.weight), "reverse") if v.reverse else (str(v.weight),)

    return Conv(parse, fmt, "a weight [reverse]", nargs=None)


def vsg_entry() -> Conv[VsgEntry]:
    """A virtual_server_group line: ``IP|RANGE|IP/CIDR [PORT]`` or ``fwmark N [inet|inet6]``."""

    def parse(args: Sequence[str]) -> VsgEntry:
        if args and args[0] == "fwmark":
            if len(args) < 2 or len(args) > 3:
                raise Invalid("expected 'fwmark N [inet|inet6]'")
            mark = uint(what="a fwmark from 0 to 4294967295").parse(args[1:2])
            fam: IpFamily | None = None
            if len(args) == 3:
                try:
                    fam = IpFamily(args[2])
                except ValueError:
                    raise Invalid(
                        f"fwmark {mark} family {args[2]} unknown", "use inet or inet6"
                    ) from None
            return VsgFwmark(mark, fam)
        if not args or len(args) > 2:
            raise Invalid("expected an address, range or fwmark, then an optional port")
        first, last = parse_range(args[0])
        p = parse_port(args[1]) if len(args) > 1 else None
        return VsgRange(first, last, p, args[0])

    def fmt(v: VsgEntry) -> tuple[str, ...]:
        if isinstance(v, VsgFwmark):
            return ("fwmark", str(v.fwmark)) + ((v.family.value,) if v.family else ())
        text = v.text or (str(v.first) if v.first == v.last else f"{v.first}-{v.last}")
        return (text,) + ((str(v.port),) if v.port is not None else ())

    return Conv(parse, fmt, "IP[-END|/PREFIX] [PORT] or fwmark N", nargs=None)


def parse_range(word: str) -> tuple[IPAddress, IPAddress]:
    """First and last address of ``A``, ``A-N``, ``A-B`` or ``A/PREFIX`` (keepalived's rules)."""
    if "/" in word:
        addr_s, _, mask_s = word.partition("/")
        addr = parse_address(addr_s)
        bits = addr.max_prefixlen
        if not mask_s.isdigit() or not 0 < int(mask_s) <= bits:
            raise Invalid(f"invalid netmask - {word}", f"use a prefix from 1 to {bits}")
        try:
            net = ipaddress.ip_network(word, strict=True)
        except ValueError:
            raise Invalid(
                f"address mask bits not empty - {word}", "give the network's first address"
            ) from None
        return net[0], net[-1]
    if "-" in word:
        start_s, _, end_s = word.partition("-")
        start = parse_address(start_s)
        sep = "." if start.version == 4 else ":"
        if sep in end_s:
            end = parse_address(end_s)
            if end.version != start.version:
                raise Invalid(f"range address families do not match {word}")
            if int(end) < int(start):
                raise Invalid(f"address range end is less than address range start - {word}")
            return start, end
        try:
            last = int(end_s, 10 if start.version == 4 else 16)
        except ValueError:
            raise Invalid(f"invalid range end {word}") from None
        if start.version == 4:
            low, limit = int(start) & 0xFF, 255
        else:
            low, limit = int(start) & 0xFFFF, 0xFFFF
        if last > limit:
            raise Invalid(f"invalid range end {word}", f"the range end must be at most {limit}")
        if low >= last:
            raise Invalid(f"address range end is not greater than address range start - {word}")
        return start, ipaddress.ip_address(int(start) - low + last)
    addr = parse_address(word)
    return addr, addr


# ---------------------------------------------------------------------------------------
# Block helpers


def block_parser(spec: BlockSpec, once: Sequence[str] = ()) -> Callable[[Node, Ctx], Any]:
    """A ``parse_node`` building ``spec`` that, like keepalived, reports a keyword of
    ``once`` given twice in one block (keepalived keeps the first; here the last wins)."""

    def parse(node: Node, ctx: Ctx) -> Any:
        if node.children is None:
            raise Invalid("needs a block", f"write '{node.keyword} ... {{ ... }}'")
        head = None
        if spec.head is not None:
            try:  # a bad head is reported once, at this line, and the block is skipped
                head = spec.head.parse(node.arg_texts)
            except Invalid as exc:
                raise Invalid(
                    exc.message, exc.hint or f"write '{node.keyword} {spec.head.what} {{'"
                ) from None
        seen: dict[str, SourceLoc] = {}
        for child in node.children:
            if child.keyword in once:
                if child.keyword in seen:
                    ctx.error(
                        child.loc,
                        f"{spec.name} {child.keyword} already specified "
                        f"(line {seen[child.keyword].line})",
                        "keepalived ignores the second one; keep a single line",
                        "duplicate-keyword",
                    )
                seen.setdefault(child.keyword, child.loc)
        return build_block(spec, node, node.children, ctx, head=head)

    return parse
