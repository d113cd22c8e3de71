"""vrrp_track_process: matching rules, quorum with delays, and polling real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvrrpd.track.process import (
    ParamMatch,
    ProcessParams,
    ProcessTracker,
    QuorumState,
    count_processes,
    process_matches,
)
from tests.script_helpers import kill_quietly

# --- matching -------------------------------------------------------------------------


def _cmd(*argv: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in argv)


def test_comm_match_is_exact_and_skips_zombies() -> None:
    p = ProcessParams("t", "haproxy")
    assert process_matches(p, "haproxy", None)
    assert not process_matches(p, "haproxy2", None)
    assert not process_matches(p, "hapr", None)
    assert not process_matches(p, "haproxy", None, zombie=True)


@pytest.mark.parametrize(
    ("match", "configured", "argv", "expected"),
    [
        (None, ("-f", "a.cfg"), ("/usr/sbin/x", "-f", "a.cfg"), True),  # default: exact
        (None, ("-f", "a.cfg"), ("/usr/sbin/x", "-f", "a.cfg", "-d"), False),
        (None, ("-f", "a.cfg"), ("/usr/sbin/x", "-f", "a.cf"), False),
        (ParamMatch.EXACT, (), ("/usr/sbin/x",), True),  # param_match with none: no params
        (ParamMatch.EXACT, (), ("/usr/sbin/x", "-d"), False),
        (ParamMatch.PARTIAL, ("-f",), ("/usr/sbin/x", "-f", "a.cfg"), True),
        (ParamMatch.PARTIAL, ("-f", "a"), ("/usr/sbin/x", "-f", "a.cfg"), False),
        (ParamMatch.INITIAL, ("-f", "a"), ("/usr/sbin/x", "-f", "a.cfg"), True),
        (ParamMatch.INITIAL, ("-f", "b"), ("/usr/sbin/x", "-f", "a.cfg"), False),
        (ParamMatch.PARTIAL, (), ("/usr/sbin/x", "anything"), True),
    ],
)
def test_param_match(
    match: ParamMatch | None, configured: tuple[str, ...], argv: tuple[str, ...], expected: bool
) -> None:
    p = ProcessParams("t", "/usr/sbin/x", configured, match)
    assert p.uses_cmdline
    assert process_matches(p, "x", _cmd(*argv)) is expected


def test_full_command_matches_argv0_only() -> None:
    p = ProcessParams("t", "/usr/sbin/x", full_command=True)
    assert process_matches(p, "x", _cmd("/usr/sbin/x", "whatever"))
    assert not process_matches(p, "x", _cmd("x"))
    assert not process_matches(p, "x", b"")  # zombies have an empty cmdline


# --- quorum ---------------------------------------------------------------------------


def test_quorum_range() -> None:
    p = ProcessParams("t", "x", quorum=2, quorum_max=3)
    assert [p.in_quorum(n) for n in range(5)] == [False, False, True, True, False]
    assert ProcessParams("t", "x", quorum=0, quorum_max=0).in_quorum(0)
    assert ProcessParams("t", "x").in_quorum(1000)


def test_quorum_first_scan_reports_immediately() -> None:
    p = ProcessParams("t", "x", fork_delay=5)
    state, change = QuorumState().observe(p, 1, now=0.0)
    assert (state.up, change) == (True, True)


def test_fork_and_terminate_delays() -> None:
    p = ProcessParams("t", "x", fork_delay=2, terminate_delay=1)
    s, change = QuorumState().observe(p, 0, 0.0)
    assert change is False
    s, change = s.observe(p, 1, 10.0)  # appeared: wait fork_delay
    assert change is None and s.pending is True and s.due == 12.0
    s, change = s.observe(p, 1, 11.0)
    assert change is None
    s, change = s.tick(12.0)
    assert (s.up, change, s.pending) == (True, True, None)
    s, change = s.observe(p, 0, 20.0)  # vanished: wait terminate_delay
    assert change is None and s.due == 21.0
    s, change = s.observe(p, 1, 20.5)  # came back in time: the change is dropped
    assert change is None and s.pending is None and s.up is True
    s, change = s.tick(30.0)
    assert change is None


def test_no_delay_changes_at_once() -> None:
    p = ProcessParams("t", "x", quorum_max=1)
    s, _ = QuorumState().observe(p, 1, 0.0)
    s, change = s.observe(p, 2, 1.0)  # above quorum_max
    assert (s.up, change) == (False, False)


# --- /proc scanning -------------------------------------------------------------------


def test_count_processes_on_fake_proc(tmp_path: Path) -> None:
    def proc(pid: int, comm: str, state: str, *argv: str) -> None:
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(f"{pid} ({comm}) {state} 1 1 1 0 -1\n")
        (d / "cmdline").write_bytes(_cmd(*argv))

    proc(10, "nginx", "S", "nginx", "-g", "daemon off;")
    proc(11, "nginx", "S", "nginx")
    proc(12, "nginx", "Z")
    proc(13, "odd) name", "R", "/opt/odd")
    (tmp_path / "self").mkdir()
    counts = count_processes(
        [
            ProcessParams("by_comm", "nginx"),
            ProcessParams("by_params", "nginx", ("-g", "daemon off;")),
            ProcessParams("paren", "odd) name"),
        ],
        str(tmp_path),
    )
    assert counts == {"by_comm": 2, "by_params": 1, "paren": 1}


@pytest.fixture
def unique_sleep(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A copy of sleep with a unique process name; processes started are killed at the end."""
    name = "pv" + uuid.uuid4().hex[:12]  # comm holds at most 15 characters
    binary = tmp_path / name
    sleep = shutil.which("sleep")
    assert sleep is not None
    shutil.copy(sleep, binary)
    binary.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []
    yield str(binary), started
    for p in started:
        kill_quietly(p.pid)
        p.wait()


async def _wait_status(tracker: ProcessTracker, name: str, want: bool) -> None:
    async with asyncio.timeout(3):
        while tracker.status(name) is not want:
            await asyncio.sleep(0.02)


async def test_tracks_real_processes(
    unique_sleep: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    binary, started = unique_sleep
    comm = os.path.basename(binary)
    events: list[tuple[str, bool]] = []
    tracker = ProcessTracker(
        [
            ProcessParams("one", comm),
            ProcessParams("two", comm, quorum=2),
            ProcessParams("atmost1", comm, quorum=0, quorum_max=1),
            ProcessParams("cmd", binary, ("30",)),
        ],
        lambda name, up: events.append((name, up)),
        poll_interval=0.05,
    )
    tracker.start()
    try:
        await _wait_status(tracker, "one", False)
        assert tracker.status("atmost1") is True and tracker.status("cmd") is False
        started.append(subprocess.Popen([binary, "30"]))
        await _wait_status(tracker, "one", True)
        await _wait_status(tracker, "cmd", True)
        assert tracker.status("two") is False
        started.append(subprocess.Popen([binary, "31"]))
        await _wait_status(tracker, "two", True)
        await _wait_status(tracker, "atmost1", False)
        for p in started:
            kill_quietly(p.pid)
            p.wait()
        await _wait_status(tracker, "one", False)
        await _wait_status(tracker, "cmd", False)
        await _wait_status(tracker, "atmost1", True)
        assert ("one", True) in events and events.count(("one", False)) == 2
    finally:
        await tracker.stop()


async def test_terminate_delay_with_real_process(
    unique_sleep: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    binary, started = unique_sleep
    started.append(subprocess.Popen([binary, "30"]))
    comm = os.path.basename(binary)
    events: list[tuple[str, bool]] = []
    tracker = ProcessTracker(
        [ProcessParams("d", comm, terminate_delay=0.4)],
        lambda name, up: events.append((name, up)),
        poll_interval=0.05,
    )
    tracker.start()
    try:
        await _wait_status(tracker, "d", True)
        kill_quietly(started[0].pid)
        started[0].wait()
        await asyncio.sleep(0.2)
        assert tracker.status("d") is True  # still within terminate_delay
        await _wait_status(tracker, "d", False)
        assert events == [("d", True), ("d", False)]
    finally:
        await tracker.stop()
