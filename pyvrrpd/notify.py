"""Notify scripts and FIFO lines for VRRP instances and sync groups (keepalived's rules).

On a state change keepalived runs, in this order and without waiting for them:

* the state's own script (``notify_master``/``_backup``/``_fault``/``_stop``/
  ``_deleted``) with only its configured arguments;
* the generic ``notify`` script with four more: ``INSTANCE|GROUP``, the name, the
  state and the priority (always 0 for a group);
* a line ``INSTANCE "VI_1" MASTER 100`` on every notify FIFO.

``notify_master_rx_lower_pri`` runs with no extra argument and writes
``MASTER_RX_LOWER_PRI``; with ``notify_priority_changes`` a priority change writes
``MASTER_PRIORITY``/``BACKUP_PRIORITY`` lines (FIFO only). STOP scripts of an instance
(and the generic script for STOP) are killed after 1 s, as keepalived does at shutdown;
others run until they finish. An instance deleted at reload reports FAULT unless
``notify_deleted`` is set. The planning functions here are pure; :class:`Notifier`
carries the actions out.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .notify_fifo import NotifyFifo
from .script_exec import run_script
from .scripts import ScriptCheck, ScriptUser, check_script, split_script

log = logging.getLogger(__name__)

STOP_SCRIPT_TIMEOUT = 1.0


class NotifyState(enum.Enum):
    """What a notification reports (the text keepalived writes)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"
    DELETED = "DELETED"
    MASTER_RX_LOWER_PRI = "MASTER_RX_LOWER_PRI"
    MASTER_PRIORITY = "MASTER_PRIORITY"
    BACKUP_PRIORITY = "BACKUP_PRIORITY"


@dataclass(frozen=True, slots=True)
class NotifyScript:
    """A configured script: argv (split the keepalived way) and the user to run it as."""

    argv: tuple[str, ...]
    user: ScriptUser | None = None

    @classmethod
    def parse(cls, text: str, user: ScriptUser | None = None) -> NotifyScript:
        """From the configured string (ValueError if it cannot be split)."""
        return cls(tuple(split_script(text)), user)

    def check(self, script_security: bool) -> ScriptCheck:
        """Vet it like keepalived at load time (see :func:`pyvrrpd.scripts.check_script`)."""
        user = self.user if self.user is not None else ScriptUser.current()
        return check_script(self.argv, user, script_security)


@dataclass(frozen=True, slots=True)
class InstanceNotifyParams:
    """Notification settings of one ``vrrp_instance``."""

    name: str
    master: NotifyScript | None = None
    backup: NotifyScript | None = None
    fault: NotifyScript | None = None
    stop: NotifyScript | None = None
    deleted: NotifyScript | None = None
    notify: NotifyScript | None = None
    master_rx_lower_pri: NotifyScript | None = None
    notify_deleted: bool = False
    priority_changes: bool = False


@dataclass(frozen=True, slots=True)
class GroupNotifyParams:
    """Notification settings of one ``vrrp_sync_group``."""

    name: str
    master: NotifyScript | None = None
    backup: NotifyScript | None = None
    fault: NotifyScript | None = None
    stop: NotifyScript | None = None
    notify: NotifyScript | None = None


@dataclass(frozen=True, slots=True)
class RunScript:
    """Action: run ``script`` with ``args`` appended; ``timeout`` None waits forever."""

    script: NotifyScript
    args: tuple[str, ...] = ()
    timeout: float | None = None

    @property
    def argv(self) -> tuple[str, ...]:
        """The full command line."""
        return self.script.argv + self.args


@dataclass(frozen=True, slots=True)
class FifoLine:
    """Action: write ``line`` (newline included) to every notify FIFO."""

    line: str


Action = RunScript | FifoLine


def generic_args(group: bool, name: str, state: NotifyState, priority: int) -> tuple[str, ...]:
    """The four arguments appended to a generic ``notify`` script."""
    return ("GROUP" if group else "INSTANCE", name, state.value, str(priority))


def fifo_line(group: bool, name: str, state: NotifyState, priority: int) -> str:
    """A notify FIFO line, e.g. ``INSTANCE "VI_1" MASTER 100\\n``."""
    return f'{"GROUP" if group else "INSTANCE"} "{name}" {state.value} {priority}\n'


_STATE_FIELD = {
    NotifyState.MASTER: "master",
    NotifyState.BACKUP: "backup",
    NotifyState.FAULT: "fault",
    NotifyState.STOP: "stop",
    NotifyState.DELETED: "deleted",
}


def _script_for(params: InstanceNotifyParams | GroupNotifyParams, state: NotifyState) -> object:
    field = _STATE_FIELD.get(state)
    return getattr(params, field, None) if field is not None else None


def instance_actions(
    params: InstanceNotifyParams, state: NotifyState, priority: int
) -> list[Action]:
    """What to do when an instance enters ``state`` with effective ``priority``."""
    if state not in _STATE_FIELD:
        raise ValueError(f"{state.value} is not an instance state")
    if state is NotifyState.DELETED and not params.notify_deleted:
        state = NotifyState.FAULT
    timeout = STOP_SCRIPT_TIMEOUT if state is NotifyState.STOP else None
    actions: list[Action] = []
    script = _script_for(params, state)
    if isinstance(script, NotifyScript):
        actions.append(RunScript(script, (), timeout))
    if params.notify is not None:
        args = generic_args(False, params.name, state, priority)
        actions.append(RunScript(params.notify, args, timeout))
    actions.append(FifoLine(fifo_line(False, params.name, state, priority)))
    return actions


def group_actions(params: GroupNotifyParams, state: NotifyState) -> list[Action]:
    """What to do when a sync group enters ``state`` (priority is reported as 0)."""
    if state not in _STATE_FIELD or state is NotifyState.DELETED:
        raise ValueError(f"{state.value} is not a sync group state")
    actions: list[Action] = []
    script = _script_for(params, state)
    if isinstance(script, NotifyScript):
        actions.append(RunScript(script))
    if params.notify is not None:
        timeout = STOP_SCRIPT_TIMEOUT if state is NotifyState.STOP else None
        actions.append(RunScript(params.notify, generic_args(True, params.name, state, 0), timeout))
    actions.append(FifoLine(fifo_line(True, params.name, state, 0)))
    return actions


def rx_lower_pri_actions(params: InstanceNotifyParams, priority: int) -> list[Action]:
    """A master received an advert with a lower priority."""
    actions: list[Action] = []
    if params.master_rx_lower_pri is not None:
        actions.append(RunScript(params.master_rx_lower_pri))
    line = fifo_line(False, params.name, NotifyState.MASTER_RX_LOWER_PRI, priority)
    actions.append(FifoLine(line))
    return actions


def priority_change_actions(
    params: InstanceNotifyParams, is_master: bool, priority: int
) -> list[Action]:
    """The effective priority changed (FIFO only, and only with notify_priority_changes)."""
    if not params.priority_changes:
        return []
    state = NotifyState.MASTER_PRIORITY if is_master else NotifyState.BACKUP_PRIORITY
    return [FifoLine(fifo_line(False, params.name, state, priority))]


class Notifier:
    """Carries out notify actions: scripts in the background, lines to the FIFOs.

    Scripts never block the caller; :meth:`drain` waits for the running ones (e.g. the
    STOP scripts at shutdown).
    """

    def __init__(self, fifos: Sequence[NotifyFifo] = ()) -> None:
        self.fifos = list(fifos)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent: set[str] = set()

    def instance_state(
        self,
        params: InstanceNotifyParams,
        state: NotifyState,
        priority: int,
        sync_group_state: NotifyState | None = None,
    ) -> None:
        """Notify an instance state change.

        Once an instance has notified, a change that merely follows its sync group
        (``sync_group_state == state``) is not notified again, as keepalived does.
        """
        if params.name in self._sent and sync_group_state is state:
            return
        self._sent.add(params.name)
        self.execute(instance_actions(params, state, priority))

    def group_state(self, params: GroupNotifyParams, state: NotifyState) -> None:
        """Notify a sync group state change."""
        self.execute(group_actions(params, state))

    def master_rx_lower_pri(self, params: InstanceNotifyParams, priority: int) -> None:
        """Notify that a master received a lower-priority advert."""
        self.execute(rx_lower_pri_actions(params, priority))

    def priority_changed(
        self, params: InstanceNotifyParams, is_master: bool, priority: int
    ) -> None:
        """Notify an effective priority change (if configured)."""
        self.execute(priority_change_actions(params, is_master, priority))

    def execute(self, actions: Iterable[Action]) -> None:
        """Start the scripts and write the FIFO lines."""
        for action in actions:
            if isinstance(action, FifoLine):
                for fifo in self.fifos:
                    fifo.write(action.line)
            else:
                task = asyncio.get_running_loop().create_task(self._run(action))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(action: RunScript) -> None:
        outcome = await run_script(
            action.argv,
            user=action.script.user,
            timeout=action.timeout,
            kill_grace=0.0 if action.timeout is not None else 2.0,
        )
        if outcome.error is not None and not outcome.timed_out:
            log.warning("notify script %s: %s", action.argv[0], outcome.describe())
        elif not outcome.ok:
            log.info("notify script %s %s", action.argv[0], outcome.describe())

    @property
    def running(self) -> int:
        """How many scripts are still running."""
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for running scripts; True if all finished within ``timeout``."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    async def close(self) -> None:
        """Kill scripts still running (their process groups) and close the FIFOs."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for fifo in self.fifos:
            await fifo.close()
