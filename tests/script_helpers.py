"""Helpers for tests running real scripts: writing them, directories others can use, PIDs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def write_script(path: Path, body: str, mode: int = 0o755) -> Path:
    """Write an executable ``/bin/sh`` script."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] != b"Z"


def wait_dead(pid: int, timeout: float = 2.0) -> bool:
    """Poll until ``pid`` is gone (or a zombie); True if it went in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def wait_file(path: Path, timeout: float = 3.0) -> str:
    """Poll until ``path`` exists with a complete last line; returns its text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if text.endswith("\n"):
                return text
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {timeout}s")


@contextmanager
def public_dir() -> Iterator[Path]:
    """A fresh directory under /tmp that any user can read and enter (mode 0755)."""
    path = Path(tempfile.mkdtemp(prefix="pyvrrpd-scripts-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def kill_quietly(pid: int) -> None:
    """SIGKILL ``pid`` if it still exists."""
    with suppress(ProcessLookupError):
        os.kill(pid, 9)
