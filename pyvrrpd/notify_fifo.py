"""Notify FIFOs (``notify_fifo``/``vrrp_notify_fifo``) and their reader scripts.

As keepalived: the FIFO is created (mode 0644, chowned to the configured user) unless it
exists; the optional ``*_notify_fifo_script`` is started with the FIFO's name appended
as its last argument and left running; then we open the FIFO read-write and
non-blocking, so writing never blocks and a missing reader loses nothing until the pipe
buffer is full (then lines are dropped). A pre-existing path that is not a FIFO owned
by us (or the configured user) is refused. Closing unlinks a FIFO we created and sends
SIGTERM to the script's process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import stat
from dataclasses import dataclass

from .script_exec import run_script
from .scripts import ScriptUser, kill_process_group

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FifoParams:
    """One notify FIFO: its path, optional owner and optional reader script argv."""

    path: str
    owner: ScriptUser | None = None
    script: tuple[str, ...] | None = None
    script_user: ScriptUser | None = None


class NotifyFifo:
    """An open notify FIFO we write lines to."""

    def __init__(self, params: FifoParams, kind: str = "") -> None:
        self.params = params
        self.kind = kind  # "vrrp_", "lvs_" or "" for log messages
        self.fd = -1
        self.created = False
        self._script_pid: int | None = None
        self._script_task: asyncio.Task[None] | None = None

    def open(self) -> bool:
        """Create/open the FIFO and start its script; False (logged) on failure.

        Needs a running event loop when a script is configured.
        """
        path = self.params.path
        try:
            os.mkfifo(path, 0o644)
            self.created = True
            self._chown()
        except FileExistsError:
            pass
        except OSError as exc:
            log.warning("unable to create %snotify fifo %s: %s", self.kind, path, exc.strerror)
            return False
        if self.params.script is not None:
            self._start_script()
        try:
            flags = os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(path, flags)
        except OSError as exc:
            log.warning("unable to open %snotify fifo %s: %s", self.kind, path, exc.strerror)
            self._unlink()
            return False
        st = os.fstat(self.fd)
        owners = {os.geteuid()}
        if self.params.owner is not None:
            owners.add(self.params.owner.uid)
        if not stat.S_ISFIFO(st.st_mode) or st.st_uid not in owners:
            log.warning("%snotify fifo %s is not a fifo we own - not using", self.kind, path)
            os.close(self.fd)
            self.fd = -1
            return False
        return True

    def _chown(self) -> None:
        owner = self.params.owner
        if owner is None:
            return
        uid = owner.uid if owner.uid != os.geteuid() else -1
        gid = owner.gid if owner.gid != os.getegid() else -1
        if uid != -1 or gid != -1:
            try:
                os.chown(self.params.path, uid, gid)
            except OSError as exc:
                log.warning("failed to set owner of fifo %s: %s", self.params.path, exc.strerror)

    def _start_script(self) -> None:
        assert self.params.script is not None
        argv = (*self.params.script, self.params.path)

        def spawned(pid: int) -> None:
            self._script_pid = pid

        async def run() -> None:
            outcome = await run_script(argv, user=self.params.script_user, on_spawn=spawned)
            self._script_pid = None
            log.info("%snotify fifo script terminated (%s)", self.kind, outcome.describe())

        self._script_task = asyncio.get_running_loop().create_task(
            run(), name=f"{self.kind}notify_fifo_script"
        )

    @property
    def script_pid(self) -> int | None:
        """PID (and process group) of the running FIFO script."""
        return self._script_pid

    def write(self, line: str) -> bool:
        """Write one line; False if it was dropped (full pipe, or not open)."""
        if self.fd < 0:
            return False
        try:
            os.write(self.fd, line.encode())
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                log.info("%snotify fifo write error: %s", self.kind, exc.strerror)
            return False
        return True

    def _unlink(self) -> None:
        if self.created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.params.path)
            self.created = False

    async def close(self, grace: float = 1.0) -> None:
        """Unlink (if created) and close the FIFO; SIGTERM the script, SIGKILL if it lingers."""
        self._unlink()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        task, self._script_task = self._script_task, None
        if task is None:
            return
        if self._script_pid is not None:
            kill_process_group(self._script_pid, signal.SIGTERM)
        _done, pending = await asyncio.wait({task}, timeout=grace)
        if pending:
            task.cancel()  # run_script SIGKILLs the group on cancellation
            await asyncio.gather(task, return_exceptions=True)
