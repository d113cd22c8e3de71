"""``vrrp_track_process``: count matching processes; up while the count is in quorum.

Matching (as keepalived): by default the process name (``comm``, from
``/proc/PID/stat``; zombies excluded) must equal ``process``. With parameters,
``param_match`` or ``full_command`` the command line is used instead: argv[0] must equal
``process`` and, when parameters are matched, ``exact`` needs the same parameters,
``partial`` the configured ones as the first parameters, ``initial`` likewise but the
last configured one only a prefix of the actual one.

Up means ``quorum <= count <= quorum_max``. A change caused by processes appearing
waits ``fork_delay``, one caused by processes going away waits ``terminate_delay``; a
change reverting before its delay expires is dropped. keepalived learns about
processes from the kernel's proc connector; this tracker polls ``/proc`` (every second
by default), so short-lived processes between polls are not seen.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum

log = logging.getLogger(__name__)


class ParamMatch(Enum):
    """How configured parameters are compared with a process's."""

    NONE = "none"
    EXACT = "exact"
    PARTIAL = "partial"
    INITIAL = "initial"


@dataclass(frozen=True, slots=True)
class ProcessParams:
    """One ``vrrp_track_process`` block.

    ``param_match`` None means keepalived's default: EXACT if parameters are given,
    otherwise no parameter matching. ``quorum_max`` None is unlimited.
    """

    name: str
    process: str
    params: tuple[str, ...] = ()
    param_match: ParamMatch | None = None
    full_command: bool = False
    quorum: int = 1
    quorum_max: int | None = None
    fork_delay: float = 0.0
    terminate_delay: float = 0.0

    @property
    def match(self) -> ParamMatch:
        """The effective parameter match mode."""
        if self.param_match is not None:
            return self.param_match
        return ParamMatch.EXACT if self.params else ParamMatch.NONE

    @property
    def uses_cmdline(self) -> bool:
        """Whether the command line (not the process name) is matched."""
        return self.full_command or self.match is not ParamMatch.NONE

    def in_quorum(self, count: int) -> bool:
        """Whether ``count`` matching processes make the tracker up."""
        return self.quorum <= count and (self.quorum_max is None or count <= self.quorum_max)


def params_match(wanted: ProcessParams, actual: bytes) -> bool:
    """Compare the NUL-separated parameter bytes of a command line (keepalived rules)."""
    mode = wanted.match
    if mode is ParamMatch.NONE:
        return True
    configured = b"".join(os.fsencode(p) + b"\0" for p in wanted.params)
    if mode is ParamMatch.EXACT:
        return actual == configured
    if len(actual) < len(configured):
        return False
    if mode is ParamMatch.PARTIAL:
        return actual.startswith(configured)
    return actual.startswith(configured[:-1])


def process_matches(
    wanted: ProcessParams, comm: str | None, cmdline: bytes | None, zombie: bool = False
) -> bool:
    """Whether one process (its ``comm`` and raw ``/proc/PID/cmdline``) matches."""
    if wanted.uses_cmdline:
        if not cmdline:
            return False
        argv0, _, rest = cmdline.partition(b"\0")
        if argv0 != os.fsencode(wanted.process):
            return False
        return params_match(wanted, rest)
    return comm is not None and not zombie and comm == wanted.process


@dataclass(frozen=True, slots=True)
class QuorumState:
    """Pure quorum/delay state of one tracker; ``up`` None before the first scan."""

    up: bool | None = None
    count: int = 0
    pending: bool | None = None
    due: float = 0.0

    def observe(
        self, params: ProcessParams, count: int, now: float
    ) -> tuple[QuorumState, bool | None]:
        """Account a process count seen at ``now``; returns new state and status change."""
        target = params.in_quorum(count)
        if self.up is None:
            return QuorumState(target, count), target
        if target == self.up:
            return QuorumState(self.up, count), None
        if self.pending == target:
            state = replace(self, count=count)
            return state.tick(now)
        delay = params.fork_delay if count > self.count else params.terminate_delay
        if delay <= 0:
            return QuorumState(target, count), target
        return QuorumState(self.up, count, target, now + delay), None

    def tick(self, now: float) -> tuple[QuorumState, bool | None]:
        """Commit a pending change whose delay has expired."""
        if self.pending is None or now < self.due:
            return self, None
        return QuorumState(self.pending, self.count), self.pending


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def read_process(pid_dir: str, want_cmdline: bool) -> tuple[str | None, bool, bytes | None]:
    """``(comm, zombie, cmdline)`` of one ``/proc/PID`` directory (None where unreadable)."""
    stat = _read(os.path.join(pid_dir, "stat"))
    comm: str | None = None
    zombie = False
    if stat is not None:
        start, end = stat.find(b"("), stat.rfind(b")")
        if 0 <= start < end:
            comm = os.fsdecode(stat[start + 1 : end])
            zombie = stat[end + 2 : end + 3] == b"Z"
    cmdline = _read(os.path.join(pid_dir, "cmdline")) if want_cmdline else None
    return comm, zombie, cmdline


def count_processes(trackers: Iterable[ProcessParams], proc_root: str = "/proc") -> dict[str, int]:
    """Scan ``proc_root`` once and count the matching processes of every tracker."""
    wanted = list(trackers)
    counts = {t.name: 0 for t in wanted}
    want_cmdline = any(t.uses_cmdline for t in wanted)
    try:
        entries = os.listdir(proc_root)
    except OSError as exc:
        log.warning("cannot list %s: %s", proc_root, exc)
        return counts
    for entry in entries:
        if not entry.isdigit():
            continue
        comm, zombie, cmdline = read_process(os.path.join(proc_root, entry), want_cmdline)
        if comm is None and cmdline is None:
            continue
        for t in wanted:
            if process_matches(t, comm, cmdline, zombie):
                counts[t.name] += 1
    return counts


OnProcessChange = Callable[[str, bool], None]


class ProcessTracker:
    """Polls ``/proc`` for a set of ``vrrp_track_process`` blocks; one scan serves all.

    ``on_change(name, up)`` is called on each status change, including the first scan.
    """

    def __init__(
        self,
        trackers: Iterable[ProcessParams],
        on_change: OnProcessChange,
        *,
        poll_interval: float = 1.0,
        proc_root: str = "/proc",
    ) -> None:
        self.trackers = {t.name: t for t in trackers}
        self.states = {name: QuorumState() for name in self.trackers}
        self._on_change = on_change
        self._poll_interval = poll_interval
        self._proc_root = proc_root
        self._task: asyncio.Task[None] | None = None

    def status(self, name: str) -> bool | None:
        """Current up/down of tracker ``name`` (None before the first scan)."""
        return self.states[name].up

    def scan(self, now: float) -> dict[str, bool]:
        """One poll: count, update every state, call back; returns the changes."""
        counts = count_processes(self.trackers.values(), self._proc_root)
        changes: dict[str, bool] = {}
        for name, params in self.trackers.items():
            state, change = self.states[name].observe(params, counts[name], now)
            self.states[name] = state
            if change is not None:
                changes[name] = change
                log.info(
                    "track_process %s now %s (%d processes, quorum %d..%s)",
                    name,
                    "up" if change else "down",
                    counts[name],
                    params.quorum,
                    "inf" if params.quorum_max is None else params.quorum_max,
                )
                try:
                    self._on_change(name, change)
                except Exception:
                    log.exception("track_process %s: change callback failed", name)
        return changes

    def _next_wait(self, now: float) -> float:
        wait = self._poll_interval
        for state in self.states.values():
            if state.pending is not None:
                wait = min(wait, max(0.0, state.due - now))
        return wait

    async def run(self) -> None:
        """Poll forever; cancel the task to stop."""
        loop = asyncio.get_running_loop()
        while True:
            self.scan(loop.time())
            await asyncio.sleep(self._next_wait(loop.time()))

    def start(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="vrrp_track_process"
            )
        return self._task

    async def stop(self) -> None:
        """Cancel the polling task and wait for it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
