"""MISC_CHECK: run a program (no shell); its exit status decides, and may set the weight.

Exit 0 is up. Without ``misc_dynamic`` anything else is down; with it, 1 is down and
2..255 is up with weight ``status - 2``. The program runs in its own session; on timeout
its whole process group gets SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shlex
import signal
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import CheckFailed, CheckResult, failed, passed


def argv_from_misc_path(text: str) -> tuple[str, ...]:
    """Split a ``misc_path`` string into argv with shell-like quoting (no shell runs)."""
    argv = tuple(shlex.split(text))
    if not argv:
        raise ValueError("misc_path is empty")
    return argv


def interpret_exit(status: int, dynamic: bool) -> CheckResult:
    """The result for an exit status (a negative status is a killing signal)."""
    if status < 0:
        return failed(f"killed by signal {-status}")
    if status == 0:
        return passed("exit status 0")
    if dynamic and status >= 2:
        return passed(f"exit status {status}", status - 2)
    return failed(f"exit status {status}")


def _ids(user: str | None, group: str | None) -> dict[str, Any]:
    """subprocess keyword arguments that drop to ``user`` (and ``group``)."""
    if user is None:
        if group is None:
            return {}
        return {"group": grp.getgrnam(group).gr_gid}
    entry = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group is not None else entry.pw_gid
    return {
        "user": entry.pw_uid,
        "group": gid,
        "extra_groups": os.getgrouplist(user, gid),
    }


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@dataclass(frozen=True, slots=True)
class MiscCheck:
    """MISC_CHECK parameters; equal instances are one shared check.

    ``timeout`` is ``misc_timeout`` (the caller defaults it to the delay_loop).
    """

    kind: ClassVar[str] = "MISC_CHECK"

    argv: tuple[str, ...]
    timeout: float
    dynamic: bool = False
    user: str | None = None
    group: str | None = None
    kill_grace: float = 2.0

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("MISC_CHECK needs a program")
        if self.timeout <= 0:
            raise ValueError("misc_timeout must be positive")

    async def check(self) -> CheckResult:
        """Run the program to completion or timeout."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            **_ids(self.user, self.group),
        )
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    status = await proc.wait()
            except TimeoutError:
                await self._terminate(proc)
                raise CheckFailed(f"timed out after {self.timeout:g}s") from None
        finally:
            if proc.returncode is None:  # cancelled: leave nothing behind
                _killpg(proc.pid, signal.SIGKILL)
        return interpret_exit(status, self.dynamic)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the process group, then SIGKILL it (the leader and any children)."""
        _killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.kill_grace):
                await proc.wait()
        except TimeoutError:
            pass
        _killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
