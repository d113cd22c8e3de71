"""Run one external script with asyncio: own process group, dropped credentials, timeout.

On timeout the whole process group gets SIGTERM, then SIGKILL after a grace period (and
SIGKILL again once the leader is gone, for children that ignored SIGTERM), as keepalived
does for ``vrrp_script``. Cancelling the awaiting task SIGKILLs the group and re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .scripts import ScriptUser, SpawnOptions, kill_process_group, needs_shell, shell_command

log = logging.getLogger(__name__)

SHELL = "/bin/sh"


@dataclass(frozen=True, slots=True)
class ScriptOutcome:
    """How a script run ended.

    ``returncode`` is the exit status, or minus the signal that killed it; None if it
    never ran (``error`` says why).
    """

    argv: tuple[str, ...]
    returncode: int | None
    pid: int | None = None
    timed_out: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Exited with status 0 in time."""
        return self.returncode == 0 and not self.timed_out and self.error is None

    def describe(self) -> str:
        """Human-readable cause, e.g. ``exited with status 1`` or ``timed out after 2s``."""
        if self.error is not None:
            return self.error
        if self.timed_out:
            return "timed out"
        if self.returncode is None:
            return "did not finish"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"killed by signal {name}"
        return f"exited with status {self.returncode}"


async def _spawn(cmd: Sequence[str], options: SpawnOptions) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*cmd, **options.kwargs())


async def _stop_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the group, SIGKILL it after ``grace`` s, and reap the leader."""
    kill_process_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        log.warning("script pid %d ignored SIGTERM for %.1fs; sending SIGKILL", proc.pid, grace)
        kill_process_group(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Children that survived SIGTERM (or were started in the meantime) go too.
    kill_process_group(proc.pid, signal.SIGKILL)


async def run_script(
    argv: Sequence[str],
    *,
    user: ScriptUser | None = None,
    timeout: float | None = None,
    kill_grace: float = 2.0,
    die_with_parent: bool = True,
    on_spawn: Callable[[int], None] | None = None,
) -> ScriptOutcome:
    """Run ``argv`` (no shell unless keepalived would use one) and wait for it.

    Never raises for a failing script: spawn errors and timeouts are in the outcome.
    ``on_spawn(pid)`` is called once the process exists (its pid is also its group).
    """
    words = tuple(argv)
    if not words:
        return ScriptOutcome(words, None, error="empty command")
    options = SpawnOptions(user, die_with_parent)
    cmd: tuple[str, ...] = (SHELL, "-c", shell_command(words)) if needs_shell(words) else words
    try:
        try:
            proc = await _spawn(cmd, options)
        except OSError as exc:
            if exc.errno != errno.ENOEXEC or cmd[0] == SHELL:
                raise
            # No #! line: keepalived falls back to system(), i.e. the shell.
            proc = await _spawn((SHELL, "-c", shell_command(words)), options)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ScriptOutcome(words, None, error=f"cannot execute {words[0]!r}: {reason}")
    try:
        if on_spawn is not None:
            on_spawn(proc.pid)
        if timeout is None:
            code = await proc.wait()
        else:
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                await _stop_group(proc, kill_grace)
                return ScriptOutcome(
                    words,
                    proc.returncode,
                    proc.pid,
                    timed_out=True,
                    error=f"timed out after {timeout:g}s",
                )
    except BaseException:
        # Cancelled (or worse): do not leave the script running. The event loop's child
        # watcher reaps the leader once it dies.
        with contextlib.suppress(ProcessLookupError):
            kill_process_group(proc.pid, signal.SIGKILL)
        raise
    return ScriptOutcome(words, code, proc.pid)
