"""Notify scripts and FIFOs: keepalived's arguments, line format, script security."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from pyvrrpd.notify import (
    FifoLine,
    GroupNotifyParams,
    InstanceNotifyParams,
    Notifier,
    NotifyScript,
    NotifyState,
    RunScript,
    fifo_line,
    group_actions,
    instance_actions,
    priority_change_actions,
    rx_lower_pri_actions,
)
from pyvrrpd.notify_fifo import FifoParams, NotifyFifo
from pyvrrpd.scripts import ScriptUser
from tests.script_helpers import kill_quietly, pid_alive, public_dir, wait_file, write_script

# --- pure planning --------------------------------------------------------------------

M = NotifyScript(("/m", "x y"))
G = NotifyScript(("/g", "--flag"))


def test_instance_specific_script_gets_no_extra_args_generic_gets_four() -> None:
    params = InstanceNotifyParams("VI_1", master=M, notify=G)
    assert instance_actions(params, NotifyState.MASTER, 100) == [
        RunScript(M, (), None),
        RunScript(G, ("INSTANCE", "VI_1", "MASTER", "100"), None),
        FifoLine('INSTANCE "VI_1" MASTER 100\n'),
    ]
    # No backup script: only the generic one and the FIFO line.
    actions = instance_actions(params, NotifyState.BACKUP, 90)
    assert [a.argv for a in actions if isinstance(a, RunScript)] == [
        ("/g", "--flag", "INSTANCE", "VI_1", "BACKUP", "90")
    ]


def test_stop_scripts_have_a_one_second_timeout() -> None:
    params = InstanceNotifyParams("VI_1", stop=M, notify=G)
    runs = [a for a in instance_actions(params, NotifyState.STOP, 0) if isinstance(a, RunScript)]
    assert [r.timeout for r in runs] == [1.0, 1.0]


def test_deleted_reports_fault_unless_notify_deleted() -> None:
    params = InstanceNotifyParams("VI_1", fault=M, deleted=G)
    actions = instance_actions(params, NotifyState.DELETED, 50)
    assert actions == [RunScript(M), FifoLine('INSTANCE "VI_1" FAULT 50\n')]
    params = InstanceNotifyParams("VI_1", fault=M, deleted=G, notify_deleted=True)
    actions = instance_actions(params, NotifyState.DELETED, 50)
    assert actions == [RunScript(G), FifoLine('INSTANCE "VI_1" DELETED 50\n')]


def test_group_priority_is_zero() -> None:
    params = GroupNotifyParams("G1", fault=M, notify=G)
    assert group_actions(params, NotifyState.FAULT) == [
        RunScript(M),
        RunScript(G, ("GROUP", "G1", "FAULT", "0")),
        FifoLine('GROUP "G1" FAULT 0\n'),
    ]
    with pytest.raises(ValueError):
        group_actions(params, NotifyState.DELETED)


def test_rx_lower_pri_and_priority_changes() -> None:
    params = InstanceNotifyParams("VI_1", master_rx_lower_pri=M)
    assert rx_lower_pri_actions(params, 200) == [
        RunScript(M),
        FifoLine('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 200\n'),
    ]
    assert priority_change_actions(params, True, 80) == []
    params = InstanceNotifyParams("VI_1", priority_changes=True)
    assert priority_change_actions(params, True, 80) == [
        FifoLine('INSTANCE "VI_1" MASTER_PRIORITY 80\n')
    ]
    assert priority_change_actions(params, False, 70) == [
        FifoLine('INSTANCE "VI_1" BACKUP_PRIORITY 70\n')
    ]


def test_fifo_line_format() -> None:
    assert fifo_line(False, "VI_1", NotifyState.MASTER, 100) == 'INSTANCE "VI_1" MASTER 100\n'


def test_notify_script_parse_splits_like_keepalived() -> None:
    assert NotifyScript.parse("/bin/n 'a b' c").argv == ("/bin/n", "a b", "c")


# --- running scripts ------------------------------------------------------------------


async def test_scripts_receive_keepalived_argv(tmp_path: Path) -> None:
    def recorder(name: str) -> NotifyScript:
        script = write_script(tmp_path / name, f'printf "%s\\n" "$@" > {tmp_path}/{name}.out\n')
        return NotifyScript.parse(f"{script} 'first arg'")

    inst = InstanceNotifyParams("VI_1", master=recorder("master"), notify=recorder("generic"))
    grp = GroupNotifyParams("G1", backup=recorder("gbackup"), notify=recorder("ggeneric"))
    notifier = Notifier()
    notifier.instance_state(inst, NotifyState.MASTER, 150)
    notifier.group_state(grp, NotifyState.BACKUP)
    assert await notifier.drain(5)
    out = {p.stem: p.read_text().splitlines() for p in tmp_path.glob("*.out")}
    assert out == {
        "master": ["first arg"],
        "generic": ["first arg", "INSTANCE", "VI_1", "MASTER", "150"],
        "gbackup": ["first arg"],
        "ggeneric": ["first arg", "GROUP", "G1", "BACKUP", "0"],
    }


async def test_notify_does_not_block_the_loop(tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow", "sleep 0.5\n")
    notifier = Notifier()
    started = time.monotonic()
    notifier.instance_state(
        InstanceNotifyParams("VI_1", master=NotifyScript((str(script),))), NotifyState.MASTER, 100
    )
    assert time.monotonic() - started < 0.1
    assert notifier.running == 1
    assert await notifier.drain(3)
    assert notifier.running == 0


async def test_stop_script_killed_after_one_second(tmp_path: Path) -> None:
    script = write_script(tmp_path / "stop", f"echo $$ > {tmp_path}/pid\nexec sleep 30\n")
    notifier = Notifier()
    started = time.monotonic()
    notifier.instance_state(
        InstanceNotifyParams("VI_1", stop=NotifyScript((str(script),))), NotifyState.STOP, 0
    )
    assert await notifier.drain(3)
    pid = int(wait_file(tmp_path / "pid"))
    try:
        assert 0.9 < time.monotonic() - started < 2.0
        assert not pid_alive(pid)
    finally:
        kill_quietly(pid)


async def test_sync_group_follow_up_is_not_renotified(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    script = NotifyScript((str(write_script(tmp_path / "n", f'echo "$3" >> {out}\n')),))
    params = InstanceNotifyParams("VI_1", notify=script)
    notifier = Notifier()
    notifier.instance_state(params, NotifyState.BACKUP, 100)
    await notifier.drain(3)
    notifier.instance_state(params, NotifyState.MASTER, 100, sync_group_state=NotifyState.MASTER)
    await notifier.drain(3)
    notifier.instance_state(params, NotifyState.FAULT, 100, sync_group_state=NotifyState.MASTER)
    await notifier.drain(3)
    assert out.read_text().split() == ["BACKUP", "FAULT"]


# --- FIFOs ----------------------------------------------------------------------------


def _read_lines(fd: int, count: int, timeout: float = 2.0) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        try:
            data += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.01)
    return data.decode().splitlines()


async def test_fifo_lines_read_back(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    fifo = NotifyFifo(FifoParams(str(path)))
    assert fifo.open()
    assert stat.S_ISFIFO(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    notifier = Notifier([fifo])
    try:
        inst = InstanceNotifyParams("VI_1", priority_changes=True)
        notifier.instance_state(inst, NotifyState.MASTER, 100)
        notifier.group_state(GroupNotifyParams("G1"), NotifyState.MASTER)
        notifier.master_rx_lower_pri(inst, 100)
        notifier.priority_changed(inst, True, 90)
        assert _read_lines(reader, 4) == [
            'INSTANCE "VI_1" MASTER 100',
            'GROUP "G1" MASTER 0',
            'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100',
            'INSTANCE "VI_1" MASTER_PRIORITY 90',
        ]
    finally:
        os.close(reader)
        await notifier.close()
    assert not path.exists()  # we created it, so we remove it


async def test_fifo_refuses_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "planted"
    path.write_text("")
    fifo = NotifyFifo(FifoParams(str(path)))
    assert not fifo.open()
    assert not fifo.write("x\n")
    await fifo.close()
    assert path.exists()  # not ours to remove


async def test_fifo_script_gets_fifo_name_and_is_terminated(tmp_path: Path) -> None:
    path = tmp_path / "vrrp.fifo"
    out = tmp_path / "seen"
    script = write_script(
        tmp_path / "reader",
        f'echo "$1" > {tmp_path}/arg\nwhile read -r line; do echo "$line" >> {out}; done < "$1"\n',
    )
    fifo = NotifyFifo(FifoParams(str(path), script=(str(script),)), kind="vrrp_")
    assert fifo.open()
    notifier = Notifier([fifo])
    try:
        notifier.instance_state(InstanceNotifyParams("VI_1"), NotifyState.BACKUP, 100)
        assert await asyncio.to_thread(wait_file, out) == 'INSTANCE "VI_1" BACKUP 100\n'
        assert (tmp_path / "arg").read_text() == f"{path}\n"
        pid = fifo.script_pid
        assert pid is not None and pid_alive(pid)
    finally:
        await notifier.close()
    assert not pid_alive(pid)


# --- script security ------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")
def test_notify_script_in_world_writable_dir_is_refused(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    script = NotifyScript.parse(str(write_script(unsafe / "master.sh", "exit 0\n")))
    check = script.check(script_security=True)
    assert not check.ok
    assert check.problems == (
        f"unsafe permissions for script '{unsafe}/master.sh': "
        f"{unsafe}: directory writable by non-root (mode drwxrwxrwx)",
    )
    unsafe.chmod(0o755)
    assert script.check(script_security=True).ok
    # nobody cannot even reach it (pytest's directories are 0700)...
    as_nobody = NotifyScript(script.argv, ScriptUser(65534, 65534))
    check = as_nobody.check(script_security=True)
    assert not check.ok and "not searchable" in check.problems[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")
def test_unprivileged_notify_script_is_not_security_checked() -> None:
    with public_dir() as d:
        unsafe = d / "unsafe"
        unsafe.mkdir()
        unsafe.chmod(0o777)
        argv = (str(write_script(unsafe / "master.sh", "exit 0\n")),)
        assert not NotifyScript(argv).check(script_security=True).ok
        assert NotifyScript(argv, ScriptUser(65534, 65534)).check(script_security=True).ok
