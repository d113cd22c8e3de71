"""``lvs_sync_daemon``: the kernel's connection-sync daemon follows a VRRP instance.

While the named instance is MASTER the kernel runs the *master* sync daemon (it sends the
connection table); otherwise the *backup* one (it receives), so that the node taking over
already knows the established connections. :func:`sync_changes` is the pure decision (what
to stop, what to start, given what the kernel runs); :class:`SyncDaemonFollower` is the
asyncio shell listening to the instance.

keepalived does the same from its VRRP process: the backup daemon at start, master on
becoming MASTER, backup again on leaving it, both stopped at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyvrrpd.ipvs.backend import IpvsBackend
from pyvrrpd.ipvs.model import SyncDaemon, SyncState

from .mapping import LvsSyncDaemonSpec, sync_daemon

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncChanges:
    """Sync daemons to stop (by role), then the one to start (None: it already runs)."""

    stop: tuple[SyncState, ...]
    start: SyncDaemon | None


def matches(wanted: SyncDaemon, running: SyncDaemon) -> bool:
    """Whether ``running`` is ``wanted``: fields left to the kernel (0/None) match anything."""
    if (wanted.state, wanted.mcast_ifname, wanted.syncid) != (
        running.state,
        running.mcast_ifname,
        running.syncid,
    ):
        return False
    pairs = [
        (wanted.sync_maxlen, running.sync_maxlen),
        (wanted.mcast_group, running.mcast_group),
        (wanted.mcast_port, running.mcast_port),
        (wanted.mcast_ttl, running.mcast_ttl),
    ]
    return all(w in (0, None) or w == r for w, r in pairs)


def sync_changes(wanted: SyncDaemon | None, running: Sequence[SyncDaemon]) -> SyncChanges:
    """What makes the kernel run exactly ``wanted`` (None: no sync daemon at all)."""
    stop = [
        d.state
        for d in running
        if wanted is None or d.state is not wanted.state or not matches(wanted, d)
    ]
    keep = wanted is not None and any(
        d.state is wanted.state and matches(wanted, d) for d in running
    )
    return SyncChanges(tuple(stop), None if keep else wanted)


class SyncDaemonFollower:
    """Keeps the kernel's sync daemon in the role of one VRRP instance.

    ``attach(engine)`` listens to the instance ``spec.instance`` of a running
    :class:`~pyvrrpd.vrrp.engine.VrrpEngine` (call it again after a reload); changes are
    applied one at a time by a background task, the latest state winning.
    """

    def __init__(self, ipvs: IpvsBackend, spec: LvsSyncDaemonSpec) -> None:
        self.ipvs = ipvs
        self.spec = spec
        self.vrid = 0
        self._master: bool | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._instance: Any = None
        self.errors = 0

    def attach(self, engine: Any) -> bool:
        """Follow the named instance of ``engine``; False (and a warning) if it has none."""
        inst = None if engine is None else engine.instances.get(self.spec.instance or "")
        if inst is None:
            log.warning(
                "lvs_sync_daemon: no VRRP instance %r here; the sync daemon is not started",
                self.spec.instance,
            )
            return False
        if inst is not self._instance:
            self._instance = inst
            inst.listeners.append(self._on_action)
        self.vrid = inst.settings.vrid
        self._want(inst.fsm.state.value == "MASTER")
        return True

    def _on_action(self, inst: Any, action: object) -> None:
        if inst is not self._instance:
            return
        kind = type(action).__name__
        if kind == "BecomeMaster":
            self._want(True)
        elif kind in ("BecomeBackup", "BecomeFault"):
            self._want(False)

    def _want(self, master: bool) -> None:
        self._master = master
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="lvs-sync")
        self._wake.set()

    def wanted(self) -> SyncDaemon | None:
        """The daemon the instance's state calls for now."""
        if self._master is None:
            return None
        role = SyncState.MASTER if self._master else SyncState.BACKUP
        return sync_daemon(self.spec, role, self.vrid)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.apply(self.wanted())
            except Exception as exc:  # logged; the next state change tries again
                self.errors += 1
                log.error("lvs_sync_daemon: %s", exc)

    async def apply(self, wanted: SyncDaemon | None) -> None:
        """Make the kernel run ``wanted`` (stopping the other role first)."""
        changes = sync_changes(wanted, await self.ipvs.daemons())
        for role in changes.stop:
            await self.ipvs.stop_daemon(role)
            log.info("lvs_sync_daemon: %s sync daemon stopped", role.name.lower())
        if changes.start is not None:
            await self.ipvs.start_daemon(changes.start)
            log.info(
                "lvs_sync_daemon: %s sync daemon started on %s (syncid %d)",
                changes.start.state.name.lower(),
                changes.start.mcast_ifname,
                changes.start.syncid,
            )

    async def stop(self) -> None:
        """Stop following and stop the kernel's sync daemons (as keepalived at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._instance is not None and self._on_action in self._instance.listeners:
            self._instance.listeners.remove(self._on_action)
        self._instance = None
        try:
            await self.apply(None)
        except Exception as exc:
            log.error("lvs_sync_daemon: cannot stop the sync daemon: %s", exc)
