"""Trackers and notifications of the VRRP side: scripts, files, processes, notify.

Builds the runners from the configuration (vetting scripts as keepalived does), feeds
their changes to the engine's tracker table, and runs notify scripts and FIFO lines on
every state change of instances and sync groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config.model import Config, GlobalDefs
from ..notify import (
    GroupNotifyParams,
    InstanceNotifyParams,
    Notifier,
    NotifyScript,
    NotifyState,
)
from ..notify_fifo import FifoParams, NotifyFifo
from ..scripts import ScriptUser, default_script_user, resolve_script_user
from .fsm_types import Action, BecomeBackup, BecomeFault, BecomeMaster, State, Stopped
from .instance import VrrpInstance
from .priority import TrackerKind
from .sync import GroupStateChanged

if TYPE_CHECKING:  # trackers load when the configuration has some (in start())
    from ..track.file import FileTracker
    from ..track.process import ProcessTracker
    from ..track.script import ScriptTracker

log = logging.getLogger("pyvrrpd.vrrp")

Update = Callable[..., None]

_STATES = {
    State.MASTER: NotifyState.MASTER,
    State.BACKUP: NotifyState.BACKUP,
    State.FAULT: NotifyState.FAULT,
    State.STOPPED: NotifyState.STOP,
}


def _user(words: tuple[str, ...] | None, fallback: ScriptUser) -> ScriptUser:
    if not words:
        return fallback
    return resolve_script_user(words[0], words[1] if len(words) > 1 else None)


class VrrpHooks:
    """Owns the tracker runners and the notifier of one running configuration."""

    def __init__(self, config: Config, update: Update) -> None:
        self.config = config
        self.update = update  # engine._tracker_update(kind, name, up=..., value=...)
        glob: GlobalDefs = config.global_defs
        self.security = glob.enable_script_security
        su = glob.script_user
        try:
            self.default_user = default_script_user(
                (su[0], su[1] if len(su) > 1 else None) if su else None, self.security
            )
        except ValueError as exc:
            log.error("script_user: %s; scripts run as the daemon's user", exc)
            self.default_user = ScriptUser.current()
        self.scripts: list[ScriptTracker] = []
        self.files: list[FileTracker] = []
        self.processes: ProcessTracker | None = None
        self.notifier = Notifier(self._fifos())
        self.instance_params: dict[str, InstanceNotifyParams] = {}
        self.group_params: dict[str, GroupNotifyParams] = {}

    # ----------------------------------------------------------------- scripts

    def _script(self, text: str | None, user: ScriptUser | None = None) -> NotifyScript | None:
        if not text:
            return None
        try:
            script = NotifyScript.parse(text, user or self.default_user)
        except ValueError as exc:
            log.error("script '%s' cannot be parsed: %s", text, exc)
            return None
        check = script.check(self.security)
        for w in check.warnings:
            log.warning("script %s: %s", script.argv[0], w)
        if not check.ok:
            log.error("script %s disabled: %s", script.argv[0], "; ".join(check.problems))
            return None
        return NotifyScript(check.argv, script.user)

    def _fifos(self) -> list[NotifyFifo]:
        glob = self.config.global_defs
        out = []
        for kind, words, script in (
            ("", glob.notify_fifo, glob.notify_fifo_script),
            ("vrrp", glob.vrrp_notify_fifo, glob.vrrp_notify_fifo_script),
        ):
            if not words:
                continue
            owner = None
            if len(words) > 1:
                try:
                    owner = resolve_script_user(words[1], words[2] if len(words) > 2 else None)
                except ValueError as exc:
                    log.error("notify fifo %s owner: %s", words[0], exc)
            reader = self._script(script)
            out.append(
                NotifyFifo(
                    FifoParams(
                        words[0],
                        owner,
                        reader.argv if reader else None,
                        reader.user if reader else None,
                    ),
                    kind,
                )
            )
        return out

    # ------------------------------------------------------------------- start

    async def start(self, instances: dict[str, VrrpInstance]) -> None:
        """Start trackers (initial states fed before the instances start) and notify."""
        if self.config.vrrp_scripts:
            from ..track.script import ScriptParams, ScriptTracker
        if self.config.track_files:
            from ..track.file import FileParams, FileTracker, init_track_file
        if self.config.track_processes:
            from ..track.process import ProcessParams, ProcessTracker
        for fifo in self.notifier.fifos:
            fifo.open()
        self._notify_params(instances)
        used_scripts = {t.name for i in self.config.vrrp_instances for t in i.track_scripts}
        used_scripts |= {t.name for g in self.config.vrrp_sync_groups for t in g.track_scripts}
        for s in self.config.vrrp_scripts:
            if s.name not in used_scripts:
                continue
            script = self._script(s.script, _user(s.user, self.default_user))
            if script is None:
                self.update(TrackerKind.SCRIPT, s.name, up=False)
                continue
            params = ScriptParams(
                s.name,
                " ".join(script.argv),
                float(s.interval),
                float(s.timeout) if s.timeout else None,
                s.rise,
                s.fall,
                s.init_fail,
                script.user,
            )
            tracker = ScriptTracker(params, self._script_changed)
            tracker.start()
            self.scripts.append(tracker)
        for f in self.config.track_files:
            if not f.file:
                continue
            fp = FileParams(
                f.name,
                f.file,
                f.init_file.value if f.init_file else None,
                f.init_file.overwrite if f.init_file else False,
            )
            if f.init_file is not None:
                err = init_track_file(fp)
                if err:
                    log.warning("track_file %s: %s", f.name, err)
            ft = FileTracker(fp, self._file_changed)
            ft.start()
            self.files.append(ft)
            self.update(TrackerKind.FILE, f.name, value=ft.value)
        procs = [
            ProcessParams(
                p.name,
                p.process[0],
                tuple(p.process[1:]),
                None,
                p.full_command,
                p.quorum,
                p.quorum_max,
                p.fork_delay or 0.0,
                p.terminate_delay or 0.0,
            )
            for p in self.config.track_processes
            if p.process
        ]
        if procs:
            self.processes = ProcessTracker(procs, self._process_changed)
            self.processes.start()
        self.attach(instances)

    def attach(self, instances: dict[str, VrrpInstance]) -> None:
        """Listen to instances' and sync groups' state changes (each once)."""
        self._notify_params(instances)
        for inst in instances.values():
            if self._on_instance_action not in inst.listeners:
                inst.listeners.append(self._on_instance_action)
            if self._on_group_change not in inst.unit.group_listeners:
                inst.unit.group_listeners.append(self._on_group_change)

    def _notify_params(self, instances: dict[str, VrrpInstance]) -> None:
        for i in self.config.vrrp_instances:
            if i.name not in instances:
                continue
            self.instance_params[i.name] = InstanceNotifyParams(
                i.name,
                master=self._script(i.notify_master),
                backup=self._script(i.notify_backup),
                fault=self._script(i.notify_fault),
                stop=self._script(i.notify_stop),
                deleted=self._script(i.notify_deleted),
                notify=self._script(i.notify),
                master_rx_lower_pri=self._script(i.notify_master_rx_lower_pri),
                notify_deleted=i.notify_deleted is not None,
                priority_changes=bool(i.notify_priority_changes),
            )
        for g in self.config.vrrp_sync_groups:
            self.group_params[g.name] = GroupNotifyParams(
                g.name,
                master=self._script(g.notify_master),
                backup=self._script(g.notify_backup),
                fault=self._script(g.notify_fault),
                stop=self._script(g.notify_stop),
                notify=self._script(g.notify),
            )

    # ----------------------------------------------------------------- changes

    def _script_changed(self, name: str, up: bool) -> None:
        log.info("Script `%s` now returning %s", name, "success" if up else "failure")
        self.update(TrackerKind.SCRIPT, name, up=up)

    def _file_changed(self, name: str, value: int) -> None:
        log.info("track_file %s is now %d", name, value)
        self.update(TrackerKind.FILE, name, value=value)

    def _process_changed(self, name: str, up: bool) -> None:
        log.info("Track process %s now %s", name, "running" if up else "not running")
        self.update(TrackerKind.PROCESS, name, up=up)

    def _on_instance_action(self, inst: VrrpInstance, action: Action) -> None:
        if isinstance(action, BecomeMaster | BecomeBackup | BecomeFault | Stopped):
            params = self.instance_params.get(inst.name)
            state = _STATES.get(inst.fsm.state)
            if params is not None and state is not None:
                self.notifier.instance_state(params, state, inst.fsm.priority)

    def _on_group_change(self, change: GroupStateChanged) -> None:
        params = self.group_params.get(change.group)
        state = _STATES.get(change.state)
        if params is not None and state is not None:
            self.notifier.group_state(params, state)

    async def stop(self) -> None:
        """Stop trackers; let STOP notify scripts finish (briefly), close FIFOs."""
        for t in self.scripts:
            await t.stop()
        for f in self.files:
            await f.stop()
        if self.processes is not None:
            await self.processes.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await self.notifier.drain(1.5)
        await self.notifier.close()
