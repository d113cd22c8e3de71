"""Argument converters: parse keyword arguments into typed values and format them back."""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class Invalid(Exception):
    """An argument does not convert; ``message`` says why, ``hint`` what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Conv(Generic[T]):
    """A converter between argument words and a typed value.

    ``nargs`` is the number of words taken (None: any number); YAML scalars are split
    on white space only when it is not 1.
    """

    parse: Callable[[Sequence[str]], T]
    fmt: Callable[[T], tuple[str, ...]]
    what: str
    nargs: int | None = 1


def _one(args: Sequence[str], what: str) -> str:
    if len(args) != 1:
        if not args:
            raise Invalid(f"missing value: expected {what}")
        raise Invalid(f"expected {what}, got {len(args)} words", "give exactly one value")
    return args[0]


def integer(lo: int | None = None, hi: int | None = None, what: str | None = None) -> Conv[int]:
    """A whole number within [lo, hi]."""
    desc = what or _range_desc("an integer", lo, hi)

    def parse(args: Sequence[str]) -> int:
        word = _one(args, desc)
        try:
            value = int(word, 0) if word.lower().startswith("0x") else int(word, 10)
        except ValueError:
            raise Invalid(f"'{word}' is not a number: expected {desc}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Invalid(f"{value} is out of range: expected {desc}")
        return value

    return Conv(parse, lambda v: (str(v),), desc)


def decimal(
    lo: float | None = None, hi: float | None = None, what: str | None = None
) -> Conv[float]:
    """A decimal number within [lo, hi]."""
    desc = what or _range_desc("a number", lo, hi)

    def parse(args: Sequence[str]) -> float:
        word = _one(args, desc)
        try:
            value = float(word)
        except ValueError:
            raise Invalid(f"'{word}' is not a number: expected {desc}") from None
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Invalid(f"{word} is out of range: expected {desc}")
        return value

    return Conv(parse, lambda v: (_fmt_float(v),), desc)


def _fmt_float(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def _range_desc(noun: str, lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{noun} from {_fmt_float(lo)} to {_fmt_float(hi)}"
    if lo is not None:
        return f"{noun} >= {_fmt_float(lo)}"
    if hi is not None:
        return f"{noun} <= {_fmt_float(hi)}"
    return noun


def text(what: str = "a word") -> Conv[str]:
    """One word or quoted string, taken as is."""
    return Conv(lambda a: _one(a, what), lambda v: (v,), what)


def words(what: str = "one or more words", min_words: int = 1) -> Conv[tuple[str, ...]]:
    """Several words kept as a tuple."""

    def parse(args: Sequence[str]) -> tuple[str, ...]:
        if len(args) < min_words:
            raise Invalid(f"missing value: expected {what}")
        return tuple(args)

    return Conv(parse, lambda v: tuple(v), what, nargs=None)


_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


def boolean(default_when_bare: bool = True) -> Conv[bool]:
    """An optional on/off word; the bare keyword means ``default_when_bare``."""

    def parse(args: Sequence[str]) -> bool:
        if not args:
            return default_when_bare
        word = _one(args, "on or off").lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Invalid(f"'{args[0]}' is not on/off/true/false/yes/no")

    def fmt(v: bool) -> tuple[str, ...]:
        return () if v == default_when_bare else (("true",) if v else ("false",))

    return Conv(parse, fmt, "on or off", nargs=None)


def address(family: int | None = None) -> Conv[IPAddress]:
    """An IPv4 or IPv6 address (``family`` 4 or 6 to restrict)."""
    what = {None: "an IP address", 4: "an IPv4 address", 6: "an IPv6 address"}[family]

    def parse(args: Sequence[str]) -> IPAddress:
        return parse_address(_one(args, what), family)

    return Conv(parse, lambda v: (str(v),), what)


_OCTET = r"(0|[1-9][0-9]{0,2})"
_DOTTED_QUAD = re.compile(r"\.".join([_OCTET] * 4))


def _fast_ipv4(word: str) -> ipaddress.IPv4Address | None:
    """Dotted-quad IPv4 without ipaddress's slow string parser (None: not that form)."""
    m = _DOTTED_QUAD.fullmatch(word)
    if m is None:
        return None
    a, b, c, d = map(int, m.groups())
    if a > 255 or b > 255 or c > 255 or d > 255:
        return None
    return ipaddress.IPv4Address((a << 24) | (b << 16) | (c << 8) | d)


def parse_address(word: str, family: int | None = None) -> IPAddress:
    """Parse one IP address word, raising Invalid with a clear message."""
    try:
        addr = _fast_ipv4(word) or ipaddress.ip_address(word.split("%", 1)[0])
    except ValueError:
        raise Invalid(f"'{word}' is not a valid IP address") from None
    if family is not None and addr.version != family:
        raise Invalid(f"'{word}' is not an IPv{family} address")
    return addr


def parse_interface(word: str) -> IPNetwork:
    """Parse ``ADDR[/PREFIX]`` into an interface address (prefix defaults to host length)."""
    try:
        return ipaddress.ip_interface(word)
    except ValueError:
        raise Invalid(f"'{word}' is not a valid IP address or ADDRESS/PREFIX") from None


def choice(enum_cls: type[E], what: str | None = None) -> Conv[E]:
    """One word out of an enum's values (case-insensitive)."""
    values = {str(m.value).lower(): m for m in enum_cls}
    desc = what or "one of " + ", ".join(str(m.value) for m in enum_cls)

    def parse(args: Sequence[str]) -> E:
        word = _one(args, desc)
        try:
            return values[word.lower()]
        except KeyError:
            raise Invalid(f"'{word}' is not valid: expected {desc}") from None

    return Conv(parse, lambda v: (str(v.value),), desc)


def nothing() -> Conv[bool]:
    """A bare keyword with no arguments; its value is True."""

    def parse(args: Sequence[str]) -> bool:
        if args:
            raise Invalid("takes no value", f"remove '{' '.join(args)}'")
        return True

    return Conv(parse, lambda v: (), "no value", nargs=0)


def anything() -> Conv[tuple[str, ...]]:
    """Any arguments at all (for recognised keywords that pyvrrpd does not act on)."""
    return Conv(lambda a: tuple(a), lambda v: tuple(v), "anything", nargs=None)
