"""The interface both IPVS backends (kernel.KernelIpvs, fake.FakeIpvs) provide, and reconcile()."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from pyvrrpd.ipvs.model import (
    IpvsState,
    LvsTimeouts,
    ServiceEntry,
    ServiceKey,
    SyncDaemon,
    SyncState,
)
from pyvrrpd.ipvs.plan import Op, OpResult, plan


class IpvsBackend(Protocol):
    """What the balancer needs from IPVS. Errors of apply() are returned, not raised."""

    @property
    def writes(self) -> int:
        """Number of write requests sent so far."""
        ...

    async def dump(
        self, keys: Collection[ServiceKey] | None = None
    ) -> Mapping[ServiceKey, ServiceEntry]:
        """The whole table, or only the services ``keys`` names (those that exist)."""
        ...

    async def apply(self, ops: Sequence[Op]) -> list[OpResult]:
        """Apply ops in order, one result per op."""
        ...

    async def flush(self) -> None:
        """Delete every service."""
        ...

    async def set_timeouts(self, timeouts: LvsTimeouts) -> None:
        """Set global connection timeouts."""
        ...

    async def get_timeouts(self) -> LvsTimeouts:
        """Global connection timeouts."""
        ...

    async def start_daemon(self, daemon: SyncDaemon) -> None:
        """Start a connection-sync daemon."""
        ...

    async def stop_daemon(self, state: SyncState) -> None:
        """Stop a connection-sync daemon."""
        ...

    async def daemons(self) -> list[SyncDaemon]:
        """Running connection-sync daemons."""
        ...


async def reconcile(
    backend: IpvsBackend,
    desired: IpvsState,
    *,
    owned: Collection[ServiceKey] | None = None,
    flush_unowned: bool = False,
) -> list[OpResult]:
    """Dump, plan and apply: make the kernel's table match `desired` (see plan.plan)."""
    observed = await backend.dump()
    ops = plan(desired, observed, owned=owned, flush_unowned=flush_unowned)
    return await backend.apply(ops) if ops else []
