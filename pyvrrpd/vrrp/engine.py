"""All VRRP instances of a configuration: sockets, demultiplexing, trackers, stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass

from ..config.model import Config
from ..net.backend import LinkWatch, NetBackend, VmacSpec
from ..net.frames import parse_mac
from .hooks import VrrpHooks
from .instance import Group, VrrpInstance
from .packet import IPAddress
from .priority import TrackerKind
from .rx_filter import Accepted, RxPolicy, inspect
from .settings import InstanceSettings, instance_settings
from .tracking import TrackerTable, follows_of
from .transport import Datagram, SocketOptions, VrrpTransport

log = logging.getLogger("pyvrrpd.vrrp")

SocketKey = tuple[str, int]  # (interface, 4 or 6)


@dataclass
class _RateLimit:
    interval: float = 10.0
    last: float = 0.0
    suppressed: int = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            return True
        self.suppressed += 1
        return False


class VrrpEngine:
    """Runs every ``vrrp_instance`` of a configuration."""

    def __init__(self, config: Config, net: NetBackend) -> None:
        self.config = config
        self.net = net
        self.settings = [instance_settings(config, i) for i in config.vrrp_instances]
        self.instances: dict[str, VrrpInstance] = {}
        self.transports: dict[SocketKey, VrrpTransport] = {}
        self.policies: dict[tuple[SocketKey, int], RxPolicy] = {}
        self.by_vrid: dict[tuple[SocketKey, int], VrrpInstance] = {}
        self.drops: Counter[str] = Counter()  # drops not attributable to an instance
        self.groups: list[Group] = []
        self.tracker_table: TrackerTable | None = None
        self.hooks: VrrpHooks | None = None
        self.vmacs: list[str] = []
        self.send_only: list[VrrpTransport] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._log_limit: dict[str, _RateLimit] = {}

    async def start(self) -> None:
        """Open the sockets and start every instance (BACKUP, or MASTER for owners)."""
        loop = asyncio.get_running_loop()
        by_key: dict[SocketKey, list[InstanceSettings]] = {}
        for s in self.settings:
            by_key.setdefault((s.ifname, s.family), []).append(s)
        for key, group in by_key.items():
            ifname, family = key
            link = await self.net.get_link(ifname)
            mcast = next((s.mcast_group for s in group if not s.unicast), None)
            opts = SocketOptions(
                socket.AF_INET if family == 4 else socket.AF_INET6, ifname, link.index, mcast
            )
            self.transports[key] = VrrpTransport(
                opts, functools.partial(self._on_datagram, key), loop
            )
        own: dict[SocketKey, set[IPAddress]] = {}
        for s in self.settings:
            for problem in s.problems:
                log.error("(%s) %s: not applied", s.name, problem)
            key = (s.ifname, s.family)
            addr = s.src_ip or await self.net.primary_address(s.ifname, s.family)
            if addr is None:
                log.error(
                    "(%s) interface %s has no IPv%d address to send adverts from; "
                    "instance not started",
                    s.name,
                    s.ifname,
                    s.family,
                )
                continue
            sender = self.transports[key]
            if s.vmac is not None:
                sender = await self._open_vmac(s, loop) or sender
            inst = VrrpInstance(s, self.net, sender, addr, loop)
            self.instances[s.name] = inst
            self.by_vrid[(key, s.vrid)] = inst
            own.setdefault(key, set()).add(inst.address)
        for s in self.settings:
            key = (s.ifname, s.family)
            if s.name in self.instances:
                self.policies[(key, s.vrid)] = s.rx_policy(frozenset(own[key]))
        for g in self.config.vrrp_sync_groups:
            members = [self.instances[n] for n in g.group if n in self.instances]
            if members:
                self.groups.append(Group(g.name, members))
        await self._start_tracking()
        for inst in self.instances.values():
            inst.start()

    async def _open_vmac(
        self, s: InstanceSettings, loop: asyncio.AbstractEventLoop
    ) -> VrrpTransport | None:
        """Create the instance's macvlan; adverts leave from it unless vmac_xmit_base."""
        assert s.vmac is not None
        try:
            mac = parse_mac(s.vmac_mac) if s.vmac_mac else None
            link = await self.net.create_vmac(
                VmacSpec(parent=s.ifname, vrid=s.vrid, version=s.family, name=s.vmac, mac=mac)
            )
        except Exception as exc:
            log.error("(%s) cannot create VMAC %s on %s: %s", s.name, s.vmac, s.ifname, exc)
            return None
        self.vmacs.append(s.vmac)
        if s.vmac_xmit_base:
            return None
        af = socket.AF_INET if s.family == 4 else socket.AF_INET6
        tx = VrrpTransport(
            SocketOptions(af, s.vmac, link.index, None), lambda d: None, loop, receive=False
        )
        self.send_only.append(tx)
        return tx

    async def _start_tracking(self) -> None:
        base = {n: i.settings.priority for n, i in self.instances.items()}
        trackers = {
            i.name: follows_of(self.config, i)
            for i in self.config.vrrp_instances
            if i.name in self.instances
        }
        table = self.tracker_table = TrackerTable(base, trackers)
        self.hooks = VrrpHooks(self.config, self._tracker_update)
        await self.hooks.start(self.instances)
        ifnames = table.names(TrackerKind.INTERFACE)
        if ifnames:
            watch = self.net.watch_links()
            await watch.start()
            for ifname in ifnames:
                try:
                    up = (await self.net.get_link(ifname)).up
                except Exception:
                    up = False
                table.update(TrackerKind.INTERFACE, ifname, up)
            self._tasks.append(asyncio.create_task(self._watch_links(watch, ifnames)))
        for name, result in table.results.items():
            if result.priority != base[name] or result.blocks_up:
                self.instances[name].set_priority(result.priority, result.blocks_up)

    async def _watch_links(self, watch: LinkWatch, ifnames: set[str]) -> None:
        async for ev in watch:
            if ev.ifname in ifnames:
                log.info("Netlink reports %s %s", ev.ifname, "UP" if ev.up else "DOWN")
                self._tracker_update(TrackerKind.INTERFACE, ev.ifname, ev.up)

    def _tracker_update(
        self, kind: TrackerKind, name: str, up: bool | None = None, value: int | None = None
    ) -> None:
        """A tracked object changed: feed new effective priorities to instances."""
        if self.tracker_table is None:
            return
        for inst_name, result in self.tracker_table.update(kind, name, up, value):
            inst = self.instances.get(inst_name)
            if inst is not None:
                inst.set_priority(result.priority, result.blocks_up)

    def _on_datagram(self, key: SocketKey, dgram: Datagram) -> None:
        result = inspect(
            dgram.data,
            dgram.family,
            dgram.src,
            dgram.dst,
            dgram.hop_limit,
            lambda vrid: self.policies.get((key, vrid)),
        )
        if isinstance(result, Accepted):
            self.by_vrid[(key, result.vrid)].on_advert(result)
            return
        inst = self.by_vrid.get((key, result.vrid)) if result.vrid is not None else None
        counter = inst.drops if inst is not None else self.drops
        counter[result.reason.value] += 1
        who = inst.name if inst is not None else key[0]
        limit = self._log_limit.setdefault(f"{who}/{result.reason.value}", _RateLimit())
        if limit.allow():
            log.warning(
                "(%s) dropped advert from %s: %s (%s)",
                who,
                result.src,
                result.reason.value,
                result.detail,
            )

    async def stop(self) -> None:
        """Every instance leaves (priority 0 from masters, VIPs removed); sockets closed."""
        await asyncio.gather(*(i.stop() for i in self.instances.values()), return_exceptions=True)
        for g in self.groups:
            g.close()
        for i in self.instances.values():
            i.unit.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for t in (*self.transports.values(), *self.send_only):
            t.close()
        for name in self.vmacs:
            try:
                await self.net.delete_vmac(name)
            except Exception as exc:
                log.warning("cannot delete VMAC %s: %s", name, exc)
        if self.hooks is not None:
            await self.hooks.stop()
