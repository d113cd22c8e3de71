"""FILE_CHECK: values read from a tracked file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrpd.checks.file import FileCheck, interpret_value, parse_number
from pyvrrpd.checks.runner import run_once


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42\n", 42),
        ("  -7 trailing", -7),
        ("0x1f", 31),
        ("010", 8),
        ("08", 0),
        ("", 0),
        ("abc", 0),
        ("+3", 3),
        ("0x", 0),
    ],
)
def test_parse_number_like_strtol(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "ok", "result_weight"),
    [
        (0, 0, False, True, None),
        (3, 0, False, False, None),
        (0, 0, True, False, None),
        (3, 0, True, True, None),
        (2, 10, False, True, 20),
        (2, 10, True, True, -20),
        (-5, 3, False, True, -15),
        (-(2**31), 1, False, False, None),
        (2**31, 2**31 - 1, False, True, 2**31 - 1),
    ],
)
def test_interpret_value(
    value: int, weight: int, reverse: bool, ok: bool, result_weight: int | None
) -> None:
    res = interpret_value(value, weight, reverse)
    assert (res.ok, res.weight) == (ok, result_weight)
    assert res.weight_delta is (result_weight is not None)


async def test_file_values_drive_the_result(tmp_path: Path) -> None:
    f = tmp_path / "state"
    check = FileCheck(str(f), weight=0)
    assert (await run_once(check)).ok  # missing file reads 0
    f.write_text("1\n")
    down = await run_once(check)
    assert not down.ok and "fault" in down.cause
    f.write_text("5")
    weighted = await run_once(FileCheck(str(f), weight=-2))
    assert weighted.ok and weighted.weight == -10 and weighted.weight_delta
    f.write_text("99999999999")
    bad = await run_once(check)
    assert not bad.ok and "out of range" in bad.cause
