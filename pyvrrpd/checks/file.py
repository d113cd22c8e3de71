"""FILE_CHECK: a number read from a file adjusts the real server's weight (track_file).

The file's value is read like ``strtol(text, 0)`` (a missing or empty file reads 0). With
weight 0 the check is down when the value is non-zero (``reverse``: when it is zero).
Otherwise the weight changes by ``value * weight`` (negated with ``reverse``); a product at
or below -2**31 puts the server down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from .base import CheckFailed, CheckResult, failed, passed

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
READ_LIMIT = 127
_NUMBER = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_number(text: str) -> int:
    """The leading integer of ``text`` like C ``strtol(text, NULL, 0)``; 0 if there is none."""
    m = _NUMBER.match(text)
    if m is None:
        return 0
    sign, digits = m.groups()
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    return -value if sign == "-" else value


def read_value(path: str) -> int:
    """The value of a tracked file (0 when it is missing, unreadable or empty)."""
    try:
        with open(path, "rb") as f:
            text = f.read(READ_LIMIT).decode("latin-1")
    except OSError:
        return 0
    value = parse_number(text)
    if not INT_MIN <= value <= INT_MAX + 1:
        raise CheckFailed(f"number {value} read from {path} is out of range")
    return value


def interpret_value(value: int, weight: int, reverse: bool) -> CheckResult:
    """The result for a file ``value`` under ``weight`` (see the module docstring)."""
    if weight == 0:
        if (value != 0) != reverse:
            return failed(f"file value {value} means fault")
        return passed(f"file value {value}")
    product = value * weight * (-1 if reverse else 1)
    if product <= INT_MIN:
        return failed(f"file value {value} x weight {weight} means fault")
    return passed(f"file value {value}", min(product, INT_MAX), delta=True)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """FILE_CHECK parameters; equal instances are one shared check.

    keepalived watches the file with inotify; here it is polled on the schedule (use a short
    ``delay_loop`` and ``retry`` 0).
    """

    kind: ClassVar[str] = "FILE_CHECK"

    path: str
    weight: int = 0
    reverse: bool = False

    async def check(self) -> CheckResult:
        """Read the file and interpret its value."""
        return interpret_value(read_value(self.path), self.weight, self.reverse)
