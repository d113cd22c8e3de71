"""``vrrp_script``: run a check script periodically; rise/fall hysteresis decides up/down.

:class:`ScriptState` is the pure counter (keepalived's ``result``): it lives in
``0 .. rise+fall-1`` and the script is up while it is ``>= rise``. From down, ``rise``
consecutive successes bring it up; from up, ``fall`` consecutive failures bring it down.
Before the first result the status is unknown and the first result decides either way
(``init_fail`` instead starts known-down). :class:`ScriptTracker` is the asyncio shell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from ..script_exec import ScriptOutcome, run_script
from ..scripts import ScriptUser, split_script

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScriptState:
    """Hysteresis state of one script; ``up`` is None until the first result."""

    rise: int = 1
    fall: int = 1
    count: int = 0
    up: bool | None = None

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError("rise and fall must be at least 1")
        if not 0 <= self.count <= self.rise + self.fall - 1:
            raise ValueError("count out of range")

    @classmethod
    def initial(cls, rise: int = 1, fall: int = 1, init_fail: bool = False) -> ScriptState:
        """Start state: unknown, one result away from either status; or down (init_fail)."""
        if init_fail:
            return cls(rise, fall, 0, False)
        return cls(rise, fall, rise - 1, None)

    def record(self, ok: bool) -> tuple[ScriptState, bool | None]:
        """Account one result; returns the new state and the new status if it changed."""
        top = self.rise + self.fall - 1
        if ok:
            if self.count < self.rise - 1:
                return replace(self, count=self.count + 1), None
            new = replace(self, count=top, up=True)
            return new, (True if self.up is not True else None)
        if self.count > self.rise:
            return replace(self, count=self.count - 1), None
        new = replace(self, count=0, up=False)
        return new, (False if self.up is not False else None)


@dataclass(frozen=True, slots=True)
class ScriptParams:
    """One ``vrrp_script`` block. ``timeout`` None means ``interval`` (keepalived default)."""

    name: str
    script: str
    interval: float = 1.0
    timeout: float | None = None
    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    user: ScriptUser | None = None
    kill_grace: float = 2.0

    @property
    def argv(self) -> list[str]:
        """The command split as keepalived splits it."""
        return split_script(self.script)

    @property
    def effective_timeout(self) -> float:
        """Seconds before the run counts as failed and its process group is killed."""
        return self.timeout if self.timeout else self.interval


OnScriptChange = Callable[[str, bool], None]
Runner = Callable[[ScriptParams], Awaitable[ScriptOutcome]]


async def _default_runner(params: ScriptParams) -> ScriptOutcome:
    return await run_script(
        params.argv,
        user=params.user,
        timeout=params.effective_timeout,
        kill_grace=params.kill_grace,
    )


class ScriptTracker:
    """Runs one ``vrrp_script`` every ``interval`` s and reports up/down changes.

    ``on_change(name, up)`` is called on every status change, including the first
    result. The first run starts immediately. A run still going when the next is due
    (only possible while a timed-out script is being killed) makes that run skipped.
    """

    def __init__(
        self, params: ScriptParams, on_change: OnScriptChange, runner: Runner | None = None
    ) -> None:
        self.params = params
        self.state = ScriptState.initial(params.rise, params.fall, params.init_fail)
        self.last_outcome: ScriptOutcome | None = None
        self._on_change = on_change
        self._runner = runner or _default_runner
        self._task: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool | None:
        """Current status (None while unknown)."""
        return self.state.up

    async def run_once(self) -> bool | None:
        """Run the script once, account the result; returns the status change, if any."""
        try:
            outcome = await self._runner(self.params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("VRRP_Script(%s) failed to run: %r", self.params.name, exc)
            outcome = ScriptOutcome(tuple(self.params.script.split()), None, error=repr(exc))
        previous = self.last_outcome
        self.last_outcome = outcome
        if not outcome.ok and (previous is None or previous.describe() != outcome.describe()):
            log.info("VRRP_Script(%s) %s", self.params.name, outcome.describe())
        self.state, change = self.state.record(outcome.ok)
        if change is not None:
            log.info("VRRP_Script(%s) %s", self.params.name, "succeeded" if change else "failed")
            try:
                self._on_change(self.params.name, change)
            except Exception:
                log.exception("VRRP_Script(%s) change callback failed", self.params.name)
        return change

    async def run(self) -> None:
        """Run forever at ``interval``; cancel the task to stop."""
        loop = asyncio.get_running_loop()
        interval = self.params.interval
        due = loop.time()
        while True:
            await self.run_once()
            due += interval
            now = loop.time()
            if due < now:
                skipped = int((now - due) // interval) + 1
                log.info(
                    "VRRP_Script(%s) still running when due, skipping %d run(s)",
                    self.params.name,
                    skipped,
                )
                due += skipped * interval
            await asyncio.sleep(due - now)

    def start(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"vrrp_script {self.params.name}"
            )
        return self._task

    async def stop(self) -> None:
        """Cancel the task (killing a running script's process group) and wait for it."""
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
