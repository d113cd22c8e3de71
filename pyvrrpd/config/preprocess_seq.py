"""``~SEQ``/``~SEQx``/``~LST`` line repetition blocks of keepalived.conf.

A line ``~SEQ(var, start, step, end) text`` repeats ``text`` with ``$var`` set to each
number in turn; ``~LST(var, a, b) text`` and ``~LST({v1, v2}, {a1, a2}, ...) text`` do the
same with listed values. Parsing follows keepalived's ``add_seq``/``add_lst``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pyvrrpd.config.preprocess_text import BLANK, is_name, strtol

#: Most repetitions a single ~SEQ/~LST may ask for.
MAX_REPEAT = 1_000_000


class SeqError(Exception):
    """A malformed ~SEQ/~LST line; the message says why."""


@dataclass(frozen=True, slots=True)
class SeqSpec:
    """A parsed repetition: variables, rows of values (one per repetition), the text."""

    names: tuple[str, ...]
    rows: Iterator[tuple[str, ...]]
    count: int
    text: str


def is_seq_line(text: str) -> bool:
    """True for lines that keepalived treats as ~SEQ/~LST blocks."""
    return text.startswith(("~SEQ", "~LST"))


def parse_seq_line(text: str, expand: Callable[[str], str]) -> SeqSpec:
    """Parse a ``~SEQ``/``~SEQx``/``~LST`` line; ``expand`` replaces definitions in numbers."""
    if text.startswith("~SEQ"):
        return _parse_seq(text, expand)
    return _parse_lst(text)


def _skip(text: str, p: int) -> int:
    while p < len(text) and text[p] in BLANK:
        p += 1
    return p


def _scan(text: str, p: int, stops: str) -> int:
    while p < len(text) and text[p] not in stops:
        p += 1
    return p


def _at(text: str, p: int) -> str:
    return text[p] if p < len(text) else ""


def _parse_seq(text: str, expand: Callable[[str], str]) -> SeqSpec:
    p = 4
    hexa = _at(text, p) == "x"
    if hexa:
        p += 1
    p = _skip(text, p)
    if _at(text, p) != "(":
        raise SeqError("expected '(' after ~SEQ")
    p = _skip(text, p + 1)
    var_start = p
    p = _scan(text, p, " \t,)")
    var = text[var_start:p]
    p = _skip(text, p)
    if not is_name(var):
        raise SeqError(f"invalid ~SEQ variable name {var!r}")
    if _at(text, p) != ",":
        raise SeqError("expected ',' after the ~SEQ variable")
    close = text.find(")", p)
    if close < 0:
        raise SeqError("~SEQ missing terminating ')'")
    args = expand(text[p + 1 : close + 1])
    start, step, end = _seq_numbers(args)
    if hexa and (start < 0 or end < 0):
        raise SeqError("~SEQx is only valid for positive numbers")
    count = (end - start) // step + 1
    if count > MAX_REPEAT:
        raise SeqError(f"~SEQ would repeat {count} times (limit {MAX_REPEAT})")
    fmt = "{:x}" if hexa else "{:d}"
    rows = ((fmt.format(start + i * step),) for i in range(count))
    return SeqSpec((var,), rows, count, text[_skip(text, close + 1) :])


def _seq_numbers(args: str) -> tuple[int, int, int]:
    """Parse ``end)``, ``start, end)`` or ``start, step, end)`` as keepalived does."""
    numbers: list[int] = []
    p = 0
    while True:
        value, p = strtol(args, p)
        numbers.append(value)
        p = _skip(args, p)
        c = _at(args, p)
        if c == ")":
            break
        if c != "," or len(numbers) == 3:
            raise SeqError(f"invalid ~SEQ parameters {args.rstrip(')')!r}")
        p += 1
    if len(numbers) == 1:
        end = numbers[0]
        return (-1 if end < 0 else 1), (-1 if end < 1 else 1), end
    if len(numbers) == 2:
        start, end = numbers
        return start, (1 if start <= end else -1), end
    start, step, end = numbers
    if step == 0 or (start < end and step < 0) or (start > end and step > 0):
        raise SeqError(f"invalid ~SEQ values start {start}, step {step}, end {end}")
    return start, step, end


def _parse_lst(text: str) -> SeqSpec:
    p = _skip(text, 4)
    if _at(text, p) != "(":
        raise SeqError("expected '(' after ~LST")
    p = _skip(text, p + 1)
    end_char = ","
    if _at(text, p) == "{":
        end_char = "}"
        p = _skip(text, p + 1)
    names: list[str] = []
    while True:
        start = p
        p = _scan(text, p, " \t,})")
        names.append(text[start:p])
        p = _skip(text, p)
        c = _at(text, p)
        if c == end_char:
            break
        if c != ",":
            raise SeqError("malformed ~LST variable list")
        p = _skip(text, p + 1)
    for name in names:
        if not is_name(name):
            raise SeqError(f"invalid ~LST variable name {name!r}")
    if _at(text, p) == "}":
        p = _skip(text, p + 1)
    if _at(text, p) != ",":
        raise SeqError("~LST needs at least one value")
    p = _skip(text, p + 1)
    rows: list[tuple[str, ...]] = []
    while True:
        braced = _at(text, p) == "{"
        if braced:
            p = _skip(text, p + 1)
        values: list[str] = []
        while True:
            start = p
            p = _scan(text, p, " \t,})")
            values.append(text[start:p])
            p = _skip(text, p)
            c = _at(text, p)
            if (braced and c == "}") or (not braced and c in ",)"):
                break
            if c != ",":
                raise SeqError("malformed ~LST values")
            p = _skip(text, p + 1)
            if len(values) >= len(names):
                raise SeqError("~LST specification has too many values")
        values.extend([""] * (len(names) - len(values)))
        rows.append(tuple(values))
        if len(rows) > MAX_REPEAT:
            raise SeqError(f"~LST has more than {MAX_REPEAT} values")
        if braced:
            p = _skip(text, p + 1)
        c = _at(text, p)
        if c == ")":
            break
        if c != ",":
            raise SeqError("malformed ~LST values")
        p = _skip(text, p + 1)
    return SeqSpec(tuple(names), iter(rows), len(rows), text[_skip(text, p + 1) :])
