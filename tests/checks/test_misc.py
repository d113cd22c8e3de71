"""MISC_CHECK: scripts in tmp_path, exit statuses, timeouts, users, cancellation."""

from __future__ import annotations

import asyncio
import os
import pwd
import tempfile
import time
from pathlib import Path

import pytest

from pyvrrpd.checks.misc import MiscCheck, argv_from_misc_path, interpret_exit
from pyvrrpd.checks.runner import run_once


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


@pytest.mark.parametrize(
    ("code", "dynamic", "ok", "weight"),
    [
        (0, False, True, None),
        (1, False, False, None),
        (7, False, False, None),
        (0, True, True, None),
        (1, True, False, None),
        (7, True, True, 5),
        (2, True, True, 0),
    ],
)
async def test_exit_codes(
    tmp_path: Path, code: int, dynamic: bool, ok: bool, weight: int | None
) -> None:
    prog = script(tmp_path, "s.sh", f"exit {code}\n")
    res = await run_once(MiscCheck((prog,), timeout=5, dynamic=dynamic))
    assert (res.ok, res.weight) == (ok, weight), res.cause
    assert f"exit status {code}" in res.cause


async def test_arguments_reach_the_program_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "args"
    prog = script(tmp_path, "a.sh", f'printf "%s\\n" "$@" > {out}\n')
    argv = argv_from_misc_path(f"{prog} 'two words' '$HOME;' \"x y\"")
    res = await run_once(MiscCheck(argv, timeout=5))
    assert res.ok, res.cause
    assert out.read_text().splitlines() == ["two words", "$HOME;", "x y"]


async def test_missing_program_is_down(tmp_path: Path) -> None:
    res = await run_once(MiscCheck((str(tmp_path / "nope"),), timeout=5))
    assert not res.ok and "FileNotFoundError" in res.cause


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = script(
        tmp_path,
        "slow.sh",
        f"sleep 30 &\necho $$ $! > {pids}\nwait\n",
    )
    started = time.monotonic()
    res = await run_once(MiscCheck((prog,), timeout=0.5, kill_grace=0.5))
    assert not res.ok and "timed out after 0.5s" in res.cause
    assert time.monotonic() - started < 3
    leader, child = (int(p) for p in pids.read_text().split())
    assert wait_gone(leader) and wait_gone(child)


async def test_sigterm_ignoring_group_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = script(
        tmp_path,
        "stubborn.sh",
        f"trap '' TERM\n(trap '' TERM; sleep 30) &\necho $$ $! > {pids}\n"
        "while :; do sleep 1; done\n",
    )
    res = await run_once(MiscCheck((prog,), timeout=0.4, kill_grace=0.3))
    assert not res.ok
    leader, child = (int(p) for p in pids.read_text().split())
    assert wait_gone(leader) and wait_gone(child)


async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = script(tmp_path, "c.sh", f"sleep 30 &\necho $$ $! > {pids}\nwait\n")
    task = asyncio.create_task(run_once(MiscCheck((prog,), timeout=30)))
    for _ in range(200):
        if pids.exists() and pids.read_text().strip():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    leader, child = (int(p) for p in pids.read_text().split())
    assert wait_gone(leader) and wait_gone(child)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
async def test_runs_as_user() -> None:
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path sits below a 0700 directory: use one "nobody" can reach.
    with tempfile.TemporaryDirectory(prefix="pyvrrpd-misc-") as d:
        where = Path(d)
        where.chmod(0o777)
        out = where / "ids"
        prog = script(where, "id.sh", f"echo $(id -u) $(id -g) $(id -G) > {out}\n")
        res = await run_once(MiscCheck((prog,), timeout=5, user="nobody"))
        assert res.ok, res.cause
        uid, gid, *groups = out.read_text().split()
    assert (uid, gid) == (str(nobody.pw_uid), str(nobody.pw_gid))
    assert "0" not in groups  # root's supplementary groups were dropped


def test_interpret_and_split() -> None:
    assert interpret_exit(-9, True).cause == "killed by signal 9"
    assert interpret_exit(255, True).weight == 253
    with pytest.raises(ValueError):
        argv_from_misc_path("   ")
    with pytest.raises(ValueError):
        MiscCheck((), timeout=1)
