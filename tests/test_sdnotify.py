"""sd_notify: messages as systemd receives them, on a datagram socket the test binds."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvrrpd.sdnotify import SdNotifier, socket_address, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_messages(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = SdNotifier(path)
    assert n.ready("2 instances\nrunning")
    assert received(sock) == ["READY=1", "STATUS=2 instances running"]
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    msg = received(sock)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert msg[0] == "RELOADING=1"
    m = re.fullmatch(r"MONOTONIC_USEC=(\d+)", msg[1])
    assert m is not None and before <= int(m.group(1)) <= after
    assert n.stopping()
    assert received(sock)[0] == "STOPPING=1"
    assert n.status("hello")
    assert received(sock) == ["STATUS=hello"]
    assert n.sent == 4


def test_abstract_socket() -> None:
    name = f"pyvrrpd-test-{secrets.token_hex(4)}"
    assert socket_address("@" + name) == b"\0" + name.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        assert SdNotifier("@" + name).watchdog()
        assert received(sock) == ["WATCHDOG=1"]


def test_disabled_and_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SdNotifier()
    assert not n.enabled and not n.ready() and n.failures == 0
    gone = SdNotifier(str(tmp_path / "missing.sock"))
    assert not gone.ready() and gone.failures == 1


def test_watchdog_interval() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "3000000"}) == 1.5
    pid = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(pid)}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(pid + 1)}) is None


async def test_watchdog_from_the_loop(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    sock.setblocking(False)
    n = SdNotifier(path)
    assert n.start_watchdog(0.05)
    assert not n.start_watchdog(0.05)  # only one keep-alive task
    await asyncio.sleep(0.28)
    await n.stop_watchdog()
    msgs = []
    while True:
        try:
            msgs.append(sock.recv(100).decode())
        except BlockingIOError:
            break
    assert set(msgs) == {"WATCHDOG=1"}
    assert 4 <= len(msgs) <= 7, msgs
    await asyncio.sleep(0.1)
    with pytest.raises(BlockingIOError):
        sock.recv(100)  # stopped: nothing more


UNIT = Path(__file__).resolve().parents[1] / "systemd" / "pyvrrpd.service"


def test_unit_file_verifies(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text()
    for name in ("pyvrrpctl", "pyvrrpd"):  # the tool checks that the commands exist
        exe = shutil.which(name)
        if exe is None:
            pytest.skip(f"{name} is not on PATH (pip install -e .)")
        text = text.replace(f"/usr/local/bin/{name}", exe)
    unit = tmp_path / "pyvrrpd.service"
    unit.write_text(text)
    res = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert not re.search(r"unknown|invalid|failed|ignoring", res.stderr, re.I), res.stderr
    keys = dict(
        ln.split("=", 1) for ln in UNIT.read_text().splitlines() if "=" in ln and ln[0] != "#"
    )
    assert keys["Type"] == "notify" and keys["WatchdogSec"]
    assert keys["ExecStopPost"].endswith("pyvrrpctl release")
    assert set(keys["CapabilityBoundingSet"].split()) == {
        "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_KILL",
    }  # fmt: skip


def test_unit_file_mistakes_are_caught(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "bad.service"
    unit.write_text("[Service]\nType=notify\nExecStart=/bin/true\nWatchdogSecs=5\n")
    res = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert re.search(r"unknown", res.stderr, re.I), res.stderr
