"""Pure tests of the retry hysteresis and scheduling of one check."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrpd.checks.base import (
    CheckResult,
    CheckState,
    Schedule,
    Transition,
    advance,
    failed,
    first_run_at,
    passed,
)

OK = passed("ok")
BAD = failed("bad")

schedules = st.builds(
    Schedule,
    delay_loop=st.floats(0.5, 100),
    retry=st.integers(0, 5),
    delay_before_retry=st.floats(0, 10),
    alpha=st.booleans(),
    warmup=st.floats(0, 30),
)


def test_starts_up_unless_alpha() -> None:
    assert CheckState.initial(Schedule()).up is True
    assert CheckState.initial(Schedule(alpha=True)).up is False


def test_retry_one_goes_down_on_second_failure_with_retry_delay_between() -> None:
    sched = Schedule(delay_loop=10, retry=1, delay_before_retry=3)
    s = CheckState.initial(sched)
    step = advance(s, sched, BAD, now=100.0)
    assert (step.transition, step.state.up, step.next_at, step.retrying) == (
        None,
        True,
        103.0,
        True,
    )
    step = advance(step.state, sched, BAD, now=103.0)
    assert (step.transition, step.state.up, step.next_at) == (Transition.DOWN, False, 113.0)
    # Further failures while down: no transition, plain delay_loop.
    step = advance(step.state, sched, BAD, now=113.0)
    assert (step.transition, step.state.up, step.next_at) == (None, False, 123.0)
    step = advance(step.state, sched, OK, now=123.0)
    assert (step.transition, step.state.up, step.next_at) == (Transition.UP, True, 133.0)


def test_success_between_failures_resets_the_count() -> None:
    sched = Schedule(delay_loop=10, retry=2, delay_before_retry=1)
    s = CheckState.initial(sched)
    for r in (BAD, BAD, OK, BAD, BAD):
        step = advance(s, sched, r, now=0.0)
        assert step.transition is None
        s = step.state
    assert s.up and s.failures == 2
    assert advance(s, sched, BAD, now=0.0).transition is Transition.DOWN


def test_alpha_comes_up_on_first_success_and_first_failure_changes_nothing() -> None:
    sched = Schedule(alpha=True, retry=3)
    s = CheckState.initial(sched)
    step = advance(s, sched, BAD, now=0.0)
    assert step.transition is None and not step.state.up and step.next_at == sched.delay_loop
    step = advance(step.state, sched, OK, now=0.0)
    assert step.transition is Transition.UP


def test_weight_follows_successful_results() -> None:
    sched = Schedule(retry=0)
    s = CheckState.initial(sched)
    step = advance(s, sched, passed("x", 5), now=0.0)
    assert step.weight_changed and step.state.weight == 5 and step.transition is None
    step = advance(step.state, sched, passed("x", 5), now=1.0)
    assert not step.weight_changed
    step = advance(step.state, sched, passed("x", None), now=2.0)
    assert step.weight_changed and step.state.weight is None
    step = advance(step.state, sched, passed("x", 3, delta=True), now=3.0)
    assert step.weight_changed and step.state.weight_delta


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Schedule(delay_loop=0)
    with pytest.raises(ValueError):
        Schedule(retry=-1)


@given(schedules, st.floats(0, 1e6), st.floats(0, 1))
def test_first_run_is_within_warmup(sched: Schedule, now: float, draw: float) -> None:
    at = first_run_at(sched, now, draw)
    assert now <= at <= now + sched.warmup + 1e-6 * max(1.0, now)
    assert first_run_at(sched, now, 0.0) == now


def test_first_run_rejects_bad_draw() -> None:
    with pytest.raises(ValueError):
        first_run_at(Schedule(), 0.0, 1.5)


@given(schedules, st.lists(st.booleans(), max_size=60), st.floats(0, 0.4))
def test_hysteresis_matches_reference_model(
    sched: Schedule, outcomes: list[bool], latency: float
) -> None:
    """Down exactly after retry+1 consecutive failures while up; up after one success."""
    state = CheckState.initial(sched)
    model_up = not sched.alpha
    consecutive = 0
    now = 0.0
    history: list[tuple[float, bool]] = []
    for ok in outcomes:
        now += latency
        step = advance(state, sched, CheckResult(ok, "", latency), now)
        history.append((now, ok))
        if ok:
            expect = Transition.UP if not model_up else None
            model_up, consecutive, delay = True, 0, sched.delay_loop
        elif model_up:
            consecutive += 1
            if consecutive > sched.retry:
                expect, model_up, consecutive, delay = Transition.DOWN, False, 0, sched.delay_loop
            else:
                expect, delay = None, sched.delay_before_retry
        else:
            expect, delay = None, sched.delay_loop
        assert step.transition is expect
        assert step.state.up is model_up
        assert step.next_at == pytest.approx(now + delay)
        if step.transition is Transition.DOWN:
            # The last retry+1 results all failed, spaced by delay_before_retry.
            tail = history[-(sched.retry + 1) :]
            assert len(tail) == sched.retry + 1 and not any(o for _, o in tail)
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(tail)]
            assert all(g == pytest.approx(sched.delay_before_retry + latency) for g in gaps)
        state = step.state
        now = step.next_at
    assert state.has_run is bool(outcomes)


def test_base_is_pure() -> None:
    """base.py imports no asyncio, socket, time, subprocess or pyroute2."""
    src = Path(__file__).resolve().parents[2] / "pyvrrpd" / "checks" / "base.py"
    banned = {"asyncio", "socket", "time", "subprocess", "pyroute2", "os", "random"}
    names: set[str] = set()
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    assert names, "parsed no imports at all"
    assert not names & banned
