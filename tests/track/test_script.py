"""vrrp_script: rise/fall hysteresis (pure) and the asyncio runner with real scripts."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrpd.script_exec import ScriptOutcome
from pyvrrpd.scripts import resolve_script_user
from pyvrrpd.track.script import ScriptParams, ScriptState, ScriptTracker
from tests.script_helpers import kill_quietly, pid_alive, public_dir, wait_file, write_script

# --- pure hysteresis ------------------------------------------------------------------


def _reference(rise: int, fall: int, init_fail: bool, results: list[bool]) -> list[bool | None]:
    """Status after each result, from counting consecutive successes/failures."""
    status: bool | None = False if init_fail else None
    ok_run = ko_run = 0
    out: list[bool | None] = []
    for ok in results:
        ok_run, ko_run = (ok_run + 1, 0) if ok else (0, ko_run + 1)
        if status is None:
            status = ok
        elif not status and ok_run >= rise:
            status = True
        elif status and ko_run >= fall:
            status = False
        out.append(status)
    return out


@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.booleans(),
    st.lists(st.booleans(), max_size=60),
)
def test_hysteresis_matches_consecutive_counting(
    rise: int, fall: int, init_fail: bool, results: list[bool]
) -> None:
    state = ScriptState.initial(rise, fall, init_fail)
    expected = _reference(rise, fall, init_fail, results)
    previous = state.up
    for ok, want in zip(results, expected, strict=True):
        state, change = state.record(ok)
        assert state.up is want
        assert 0 <= state.count <= rise + fall - 1
        # A change is reported exactly when the status moves.
        assert change == (state.up if state.up is not previous else None)
        previous = state.up


def test_hysteresis_examples() -> None:
    s = ScriptState.initial(rise=3, fall=2)
    assert s.up is None
    s, change = s.record(True)  # the first result decides at once
    assert (s.up, change) == (True, True)
    s, change = s.record(False)
    assert (s.up, change) == (True, None)
    s, change = s.record(True)  # a success resets the failure run
    s, change = s.record(False)
    assert change is None
    s, change = s.record(False)
    assert (s.up, change) == (False, False)
    for _ in range(2):
        s, change = s.record(True)
        assert (s.up, change) == (False, None)
    s, change = s.record(True)
    assert (s.up, change) == (True, True)


def test_init_fail_starts_down_and_needs_rise_successes() -> None:
    s = ScriptState.initial(rise=2, fall=1, init_fail=True)
    assert s.up is False
    s, change = s.record(False)
    assert change is None  # already down: nothing to report
    s, change = s.record(True)
    assert change is None
    s, change = s.record(True)
    assert change is True


def test_state_validation() -> None:
    with pytest.raises(ValueError):
        ScriptState(rise=0)
    with pytest.raises(ValueError):
        ScriptState(rise=1, fall=1, count=2)


# --- the runner -----------------------------------------------------------------------


async def _wait_for(events: list[tuple[str, bool]], n: int, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while len(events) < n:
            await asyncio.sleep(0.01)


async def test_tracker_with_real_script(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.write_text("0")
    script = write_script(tmp_path / "chk", f"exit $(cat {code})\n")
    events: list[tuple[str, bool]] = []
    params = ScriptParams("chk", str(script), interval=0.05, rise=2, fall=2)
    tracker = ScriptTracker(params, lambda name, up: events.append((name, up)))
    tracker.start()
    try:
        await _wait_for(events, 1)
        assert events == [("chk", True)]
        code.write_text("1")
        await _wait_for(events, 2)
        assert events[1] == ("chk", False)
        assert tracker.up is False
        assert tracker.last_outcome is not None
        assert tracker.last_outcome.describe() == "exited with status 1"
        code.write_text("0")
        await _wait_for(events, 3)
        assert events[2] == ("chk", True)
    finally:
        await tracker.stop()


async def test_tracker_timeout_is_failure_and_kills_group(tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow", f"sleep 30 &\necho $! >> {tmp_path}/children\nwait\n")
    events: list[tuple[str, bool]] = []
    params = ScriptParams("slow", str(script), interval=5, timeout=0.3)
    tracker = ScriptTracker(params, lambda name, up: events.append((name, up)))
    tracker.start()
    try:
        await _wait_for(events, 1)
        assert events == [("slow", False)]
        assert tracker.last_outcome is not None and tracker.last_outcome.timed_out
        child = int(wait_file(tmp_path / "children").split()[0])
        assert not pid_alive(child)
    finally:
        await tracker.stop()
        for pid in (tmp_path / "children").read_text().split():
            kill_quietly(int(pid))


async def test_stop_kills_running_script(tmp_path: Path) -> None:
    script = write_script(tmp_path / "long", f"echo $$ > {tmp_path}/pid\nexec sleep 30\n")
    tracker = ScriptTracker(ScriptParams("long", str(script), interval=60), lambda n, u: None)
    tracker.start()
    pid = int(await asyncio.to_thread(wait_file, tmp_path / "pid"))
    try:
        assert pid_alive(pid)
        await tracker.stop()
        async with asyncio.timeout(2):
            while pid_alive(pid):
                await asyncio.sleep(0.02)
    finally:
        kill_quietly(pid)


async def test_runner_exception_is_failure_with_cause(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(params: ScriptParams) -> ScriptOutcome:
        raise RuntimeError("boom")

    events: list[tuple[str, bool]] = []
    tracker = ScriptTracker(ScriptParams("b", "/x"), lambda n, u: events.append((n, u)), broken)
    with caplog.at_level(logging.INFO, logger="pyvrrpd.track.script"):
        assert await tracker.run_once() is False
    assert events == [("b", False)]
    assert "boom" in caplog.text


async def test_unsplittable_script_is_failure() -> None:
    tracker = ScriptTracker(ScriptParams("q", "/bin/true 'unterminated"), lambda n, u: None)
    assert await tracker.run_once() is False
    assert tracker.last_outcome is not None and "terminating" in tracker.last_outcome.describe()


async def test_cancellation_is_not_swallowed() -> None:
    started = asyncio.Event()

    async def hang(params: ScriptParams) -> ScriptOutcome:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    tracker = ScriptTracker(ScriptParams("h", "/x"), lambda n, u: None, hang)
    task = asyncio.create_task(tracker.run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tracker.up is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch user")
async def test_tracker_runs_script_as_user() -> None:
    nobody = resolve_script_user("nobody")
    with public_dir() as d:
        out = d / "uid"
        out.write_text("")
        out.chmod(0o666)
        script = write_script(d / "id.sh", f'[ "$(id -u)" = {nobody.uid} ] && id -u > {out}\n')
        tracker = ScriptTracker(ScriptParams("u", str(script), user=nobody), lambda n, u: None)
        assert await tracker.run_once() is True
        assert out.read_text() == f"{nobody.uid}\n"
