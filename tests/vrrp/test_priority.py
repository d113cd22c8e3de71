"""Effective priority from tracker states (keepalived weight rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrpd.vrrp.priority import (
    TrackerKind,
    TrackerStatus,
    contribution,
    effective_priority,
)

K = TrackerKind
UPDOWN_KINDS = [K.INTERFACE, K.SCRIPT, K.PROCESS, K.BFD]


def t(
    up: bool | None,
    weight: int = 0,
    reverse: bool = False,
    kind: TrackerKind = K.SCRIPT,
    name: str = "t",
) -> TrackerStatus:
    return TrackerStatus(name, kind, up=up, weight=weight, reverse=reverse)


def f(value: int | None, weight: int = 0, reverse: bool = False) -> TrackerStatus:
    return TrackerStatus("file", K.FILE, value=value, weight=weight, reverse=reverse)


@pytest.mark.parametrize("kind", UPDOWN_KINDS)
@pytest.mark.parametrize(
    ("up", "weight", "reverse", "expected"),
    [
        (True, 10, False, 10),  # positive weight: added while up
        (False, 10, False, 0),
        (True, -10, False, 0),  # negative weight: added while down
        (False, -10, False, -10),
        (True, 10, True, -10),  # reverse flips the direction of the adjustment
        (False, 10, True, 0),
        (True, -10, True, 0),
        (False, -10, True, 10),
        (None, 10, False, 0),  # unknown state adds nothing
        (None, -10, False, 0),
        (True, 0, False, 0),  # weight 0: ok while up ...
        (False, 0, False, None),  # ... FAULT while down
        (True, 0, True, None),  # reversed weight 0: FAULT while up
        (False, 0, True, 0),
    ],
)
def test_updown_contribution(
    kind: TrackerKind, up: bool | None, weight: int, reverse: bool, expected: int | None
) -> None:
    assert contribution(t(up, weight, reverse, kind)) == expected


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "expected"),
    [
        (3, 10, False, 30),  # value times weight
        (-2, 10, False, -20),
        (3, 10, True, -30),
        (0, 10, False, 0),
        (None, 10, False, 0),
        (100, 10, False, 253),  # clamped to 253
        (-30, 10, False, None),  # <= -254 is FAULT
        (-254, 1, False, None),
        (-253, 1, False, -253),
        (0, 0, False, 0),  # weight 0: zero is OK ...
        (5, 0, False, None),  # ... non-zero is FAULT
        (0, 0, True, None),  # reversed: zero is FAULT
        (5, 0, True, 0),
    ],
)
def test_file_contribution(
    value: int | None, weight: int, reverse: bool, expected: int | None
) -> None:
    assert contribution(f(value, weight, reverse)) == expected


def test_sum_and_clamp() -> None:
    trackers = [t(True, 30, name="a"), t(False, -20, name="b"), f(2, 5)]
    assert effective_priority(100, trackers).priority == 120
    assert effective_priority(240, [t(True, 50)]).priority == 254
    assert effective_priority(10, [t(False, -50)]).priority == 1


def test_owner_priority_never_changed_but_faults_apply() -> None:
    assert effective_priority(255, [t(False, -100)]).priority == 255
    assert effective_priority(255, [t(True, 100)]).priority == 255
    res = effective_priority(255, [t(False, 0, name="chk")])
    assert res.priority == 255 and res.fault and res.faulted_by == ("chk",)


def test_fault_and_pending_reporting() -> None:
    res = effective_priority(
        100, [t(False, 0, name="a"), t(None, 0, name="b"), t(True, 0, name="c"), f(9)]
    )
    assert res.faulted_by == ("a", "file")
    assert res.pending == ("b",)
    assert res.fault and res.blocks_up
    only_pending = effective_priority(100, [t(None, 0, name="b")])
    assert not only_pending.fault and only_pending.blocks_up
    healthy = effective_priority(100, [t(True, 0), t(None, 10)])
    assert not healthy.blocks_up and healthy.priority == 100


def test_weighted_file_fault_does_not_change_priority() -> None:
    res = effective_priority(100, [f(-300, 1), t(True, 20)])
    assert res.fault and res.priority == 120


@pytest.mark.parametrize("base", [0, 256, -1])
def test_bad_base(base: int) -> None:
    with pytest.raises(ValueError):
        effective_priority(base, [])


trackers = st.builds(
    TrackerStatus,
    name=st.text(min_size=1, max_size=3),
    kind=st.sampled_from(list(K)),
    up=st.none() | st.booleans(),
    weight=st.integers(-253, 253),
    reverse=st.booleans(),
    value=st.none() | st.integers(-1000, 1000),
)


@given(st.integers(1, 255), st.lists(trackers, max_size=6))
def test_priority_always_in_range(base: int, ts: list[TrackerStatus]) -> None:
    res = effective_priority(base, ts)
    if base == 255:
        assert res.priority == 255
    else:
        assert 1 <= res.priority <= 254
    assert set(res.faulted_by) <= {x.name for x in ts}
    assert res.fault == any(contribution(x) is None for x in ts)


@given(st.integers(1, 254), trackers)
def test_reverse_negates_weighted_contribution(base: int, tr: TrackerStatus) -> None:
    flipped = TrackerStatus(tr.name, tr.kind, tr.up, tr.weight, not tr.reverse, tr.value)
    a, b = contribution(tr), contribution(flipped)
    if tr.weight != 0 and a is not None and b is not None:
        assert a == -b
