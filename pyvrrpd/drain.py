"""Draining a real server: weight 0 at once, removal once the kernel shows no active
connection left.

The balancer owns the IPVS table and would put the configured weight back on its next
apply, so it is given a :class:`DrainingIpvs`: a pass-through backend that rewrites what
it writes for drained destinations (weight 0; not added back once removed). A drain
lasts until ``undrain`` (reloads keep it). ``undrain`` may ramp the weight up instead of
restoring it at once (slow start): the same backend scales the weight by the ramp's
fraction, which a task raises step by step. Active connections are read from
``/proc/net/ip_vs`` (the generic-netlink dump in :mod:`pyvrrpd.ipvs.kernel` does not
keep the counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # the IPVS modules load with the first drain, not on a VRRP-only start
    from .ipvs.backend import IpvsBackend
    from .ipvs.model import (
        DestKey,
        IPAddress,
        LvsTimeouts,
        ServiceEntry,
        ServiceKey,
        SyncDaemon,
        SyncState,
    )
    from .ipvs.plan import Op, OpResult

log = logging.getLogger("pyvrrpd")

PROC_IP_VS = "/proc/net/ip_vs"
Pair: TypeAlias = "tuple[ServiceKey, DestKey]"
ConnCounter: TypeAlias = "Callable[[], Mapping[Pair, int]]"
Refresh = Callable[[], Awaitable[None]]

#: A slow-start ramp raises the weight in this many equal steps.
RAMP_STEPS = 10


def ramped_weight(weight: int, fraction: float) -> int:
    """The weight sent while ramping: a share of ``weight``, at least 1 (0 stays 0)."""
    if weight <= 0 or fraction >= 1.0:
        return weight
    return max(1, round(weight * fraction))


def _hex_addr(text: str) -> tuple[IPAddress, int]:
    """``0A000001:0050`` or ``[2001:0db8:...]:0050`` of /proc/net/ip_vs."""
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return ipaddress.IPv6Address(host[1:-1]), int(port, 16)
    return ipaddress.IPv4Address(int(host, 16)), int(port, 16)


def parse_proc_ip_vs(text: str) -> dict[Pair, int]:
    """Active connections per (service, destination) from /proc/net/ip_vs."""
    from .ipvs.model import DestKey, Family, Protocol, ServiceKey

    out: dict[Pair, int] = {}
    svc: ServiceKey | None = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("TCP", "UDP", "SCTP") and len(words) >= 2:
            addr, port = _hex_addr(words[1])
            svc = ServiceKey.of(Protocol[words[0]], addr, port)
        elif words[0] == "FWM" and len(words) >= 2:
            fam = 10 if len(words) > 2 and words[2] == "IPv6" else 2
            svc = ServiceKey.for_fwmark(int(words[1], 16), Family(fam))
        elif words[0] == "->" and svc is not None and len(words) >= 5 and ":" in words[1]:
            try:
                addr, port = _hex_addr(words[1])
                out[(svc, DestKey(addr, port))] = int(words[4])
            except ValueError:
                continue
    return out


def proc_counter(path: str = PROC_IP_VS) -> ConnCounter:
    """Active connection counts read from the kernel's /proc file."""

    def read() -> Mapping[Pair, int]:
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                return parse_proc_ip_vs(fh.read())
        except OSError:
            return {}

    return read


@dataclass
class Drain:
    """One real server of one virtual server being drained."""

    vs: str
    rs: str
    pairs: tuple[Pair, ...]
    removed: bool = False
    active: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"vs": self.vs, "rs": self.rs, "removed": self.removed, "active": self.active}


@dataclass
class Drains:
    """Drains in progress or done, by (virtual server, real server) name."""

    items: dict[tuple[str, str], Drain] = field(default_factory=dict)
    ramps: dict[Pair, float] = field(default_factory=dict)  # slow start: weight fraction

    def weight_zero(self) -> set[Pair]:
        return {p for d in self.items.values() for p in d.pairs}

    def removed(self) -> set[Pair]:
        return {p for d in self.items.values() if d.removed for p in d.pairs}


class DrainingIpvs:
    """An :class:`IpvsBackend` that keeps drained destinations at weight 0 (or absent)."""

    def __init__(self, inner: IpvsBackend, drains: Drains) -> None:
        self.inner = inner
        self.drains = drains
        self.recording: list[Op] | None = None  # ops sent while a list is set here

    @property
    def writes(self) -> int:
        return self.inner.writes

    def rewrite(self, ops: Sequence[Op]) -> list[Op]:
        """The ops as they go to the kernel."""
        from .ipvs.plan import AddDest, EditDest

        zero, gone = self.drains.weight_zero(), self.drains.removed()
        ramps = self.drains.ramps
        out: list[Op] = []
        for op in ops:
            if isinstance(op, AddDest | EditDest):
                pair = (op.service, op.dest.key)
                if pair in gone:
                    continue
                if pair in zero:
                    weight = 0
                elif pair in ramps:
                    weight = ramped_weight(op.dest.weight, ramps[pair])
                else:
                    weight = op.dest.weight
                if weight != op.dest.weight:
                    dest = dataclasses.replace(op.dest, weight=weight)
                    if isinstance(op, EditDest):
                        if dest == op.old:
                            continue
                        op = EditDest(op.service, dest, op.old)
                    else:
                        op = AddDest(op.service, dest)
            out.append(op)
        return out

    async def dump(
        self, keys: Collection[ServiceKey] | None = None
    ) -> Mapping[ServiceKey, ServiceEntry]:
        return await self.inner.dump(keys)

    async def apply(self, ops: Sequence[Op]) -> list[OpResult]:
        sent = self.rewrite(ops)
        if self.recording is not None:
            self.recording.extend(sent)
        return await self.inner.apply(sent)

    async def flush(self) -> None:
        await self.inner.flush()

    async def set_timeouts(self, timeouts: LvsTimeouts) -> None:
        await self.inner.set_timeouts(timeouts)

    async def get_timeouts(self) -> LvsTimeouts:
        return await self.inner.get_timeouts()

    async def start_daemon(self, daemon: SyncDaemon) -> None:
        await self.inner.start_daemon(daemon)

    async def stop_daemon(self, state: SyncState) -> None:
        await self.inner.stop_daemon(state)

    async def daemons(self) -> list[SyncDaemon]:
        return await self.inner.daemons()


def _addr_port(text: str) -> tuple[str, str] | None:
    """``1.2.3.4:80``, ``[fd00::1]:80``, ``1.2.3.4 80`` -> (address, port)."""
    text = text.strip()
    if " " in text:
        a, _, p = text.rpartition(" ")
        return a.strip("[] "), p.strip()
    if text.startswith("["):
        a, _, p = text[1:].partition("]")
        return a, p.lstrip(":").split(":")[-1]
    if text.count(":") == 1:
        a, _, p = text.partition(":")
        return a, p
    return None


def _matches(name: str, query: str, addr: IPAddress | None, ports: set[int]) -> bool:
    if query in (name, name.replace("[", "").replace("]", "")):
        return True
    ap = _addr_port(query)
    if ap is None or addr is None:
        return False
    try:
        return ipaddress.ip_address(ap[0]) == addr and int(ap[1]) in ports
    except ValueError:
        return False


def resolve(balancer: Any, vs_query: str, rs_query: str) -> tuple[str, str, tuple[Pair, ...]]:
    """The (VS name, RS name, kernel pairs) a drain request names (LookupError if none)."""
    from .balancer.mapping import dest_for

    for vspec in balancer.spec.virtual_servers:
        keys = [s.key for s in vspec.services]
        vs_ports = {k.port for k in keys}
        vs_addr = keys[0].address if len(keys) == 1 else None
        fw = {f"fwm {k.fwmark}" for k in keys if k.is_fwmark}
        if not (_matches(vspec.name, vs_query, vs_addr, vs_ports) or vs_query.lower() in fw):
            continue
        for rs in vspec.real_servers:
            pairs = tuple((k, dest_for(k, rs, 0).key) for k in keys)
            ports = {p[1].port for p in pairs}
            if _matches(rs.name, rs_query, rs.address, ports):
                return vspec.name, rs.name, pairs
        raise LookupError(f"virtual server {vspec.name} has no real server {rs_query}")
    raise LookupError(f"no virtual server {vs_query}")


class Drainer:
    """Runs drains for the daemon: weight 0 now, removal when connections are gone."""

    def __init__(
        self, drains: Drains, counter: ConnCounter | None = None, poll: float = 1.0
    ) -> None:
        self.drains = drains
        self.counter = counter or proc_counter()
        self.poll = poll
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def drain(self, balancer: Any, ipvs: IpvsBackend, vs: str, rs: str) -> Drain:
        """Start draining; the weight is 0 in the kernel when this returns."""
        vs_name, rs_name, pairs = resolve(balancer, vs, rs)
        key = (vs_name, rs_name)
        item = self.drains.items.get(key)
        if item is None:
            item = self.drains.items[key] = Drain(vs_name, rs_name, pairs)
        await self._zero(ipvs, item)
        if key not in self._tasks or self._tasks[key].done():
            self._tasks[key] = asyncio.get_running_loop().create_task(self._watch(ipvs, item))
        log.info("drain: %s of %s at weight 0", rs_name, vs_name)
        return item

    async def undrain(
        self, balancer: Any, vs: str, rs: str, refresh: Refresh, ramp: float = 0.0
    ) -> Drain:
        """Stop draining and give the server back through ``refresh`` (which reapplies the
        balancer's table); with ``ramp`` seconds its weight climbs to the full weight in
        :data:`RAMP_STEPS` steps instead of at once."""
        vs_name, rs_name, _ = resolve(balancer, vs, rs)
        key = (vs_name, rs_name)
        item = self.drains.items.get(key)
        if item is None:
            raise LookupError(f"{rs_name} of {vs_name} is not being drained")
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        if ramp > 0:
            for pair in item.pairs:
                self.drains.ramps[pair] = 1.0 / RAMP_STEPS
        del self.drains.items[key]
        await refresh()
        if ramp > 0:
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._ramp(item, refresh, ramp)
            )
            log.info("undrain: %s of %s ramping up over %g s", rs_name, vs_name, ramp)
        return item

    async def _ramp(self, item: Drain, refresh: Refresh, seconds: float) -> None:
        try:
            for step in range(2, RAMP_STEPS + 1):
                await asyncio.sleep(seconds / RAMP_STEPS)
                for pair in item.pairs:
                    if pair in self.drains.ramps:
                        self.drains.ramps[pair] = step / RAMP_STEPS
                await refresh()
        finally:
            for pair in item.pairs:
                self.drains.ramps.pop(pair, None)
        await refresh()
        log.info("undrain: %s of %s at full weight", item.rs, item.vs)

    async def _zero(self, ipvs: IpvsBackend, item: Drain) -> None:
        from .ipvs.plan import EditDest

        table = await ipvs.dump()
        ops: list[Op] = []
        for svc, dk in item.pairs:
            entry = table.get(svc)
            dest = entry.dests.get(dk) if entry is not None else None
            if dest is not None and dest.weight != 0:
                ops.append(EditDest(svc, dataclasses.replace(dest, weight=0), dest))
        for res in await ipvs.apply(ops) if ops else []:
            if not res.ok:
                raise OSError(res.errno, str(res))

    async def _watch(self, ipvs: IpvsBackend, item: Drain) -> None:
        from .ipvs.plan import DelDest

        while not item.removed:
            counts = self.counter()
            item.active = sum(counts.get(p, 0) for p in item.pairs)
            if item.active == 0:
                table = await ipvs.dump()
                ops: list[Op] = [
                    DelDest(s, d) for s, d in item.pairs if s in table and d in table[s].dests
                ]
                results = await ipvs.apply(ops) if ops else []
                if all(r.ok for r in results):
                    item.removed = True
                    log.info("drain: %s of %s removed (no active connection)", item.rs, item.vs)
                    return
            await asyncio.sleep(self.poll)

    async def close(self) -> None:
        """Stop watching (drains stay recorded)."""
        for task in self._tasks.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
