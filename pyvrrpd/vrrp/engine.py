"""All VRRP instances of a configuration: sockets, demultiplexing, trackers, reload, stop."""

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
from .instance import VrrpInstance
from .netchange import change, minus
from .packet import IPAddress
from .priority import TrackerKind
from .reload import InstanceView, VrrpReloadPlan, plan_reload
from .rx_filter import Accepted, AcceptedCache, RxPolicy, inspect
from .settings import InstanceSettings, instance_settings
from .statics import Statics, static_specs
from .tracking import TrackerTable, follows_of
from .transport import Datagram, SocketOptions, VrrpTransport
from .unit import Group, Solo

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


@dataclass
class _Extras:
    """Per-instance resources beside the instance itself."""

    vmac: str | None = None


def views(config: Config) -> dict[str, InstanceView]:
    """Every instance's reload view: settings, trackers and sync group members."""
    groups = {n: frozenset(g.group) for g in config.vrrp_sync_groups for n in g.group}
    out = {}
    for inst in config.vrrp_instances:
        out[inst.name] = InstanceView(
            instance_settings(config, inst),
            tuple(follows_of(config, inst)),
            groups.get(inst.name, frozenset()),
        )
    return out


class VrrpEngine:
    """Runs every ``vrrp_instance`` of a configuration."""

    def __init__(self, config: Config, net: NetBackend, *, release_on_stop: bool = True) -> None:
        self.config = config
        self.net = net
        self.release_on_stop = release_on_stop  # False: -V, addresses stay at stop
        self.statics = Statics()
        self.views = views(config)
        self.instances: dict[str, VrrpInstance] = {}
        self.extras: dict[str, _Extras] = {}
        self.rx_if: dict[str, str] = {}  # instance -> interface its socket is on
        self.transports: dict[SocketKey, VrrpTransport] = {}
        self.policies: dict[tuple[SocketKey, int], RxPolicy] = {}
        self._accepted = AcceptedCache()
        self.by_vrid: dict[tuple[SocketKey, int], VrrpInstance] = {}
        self.drops: Counter[str] = Counter()  # drops not attributable to an instance
        self.groups: dict[str, Group] = {}
        self.tracker_table = TrackerTable({}, {})
        self.hooks: VrrpHooks | None = None
        self._watch: LinkWatch | None = None
        self._watched: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._log_limit: dict[str, _RateLimit] = {}

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Put the static addresses, routes and rules in place; open the sockets and start
        every instance (BACKUP, or MASTER for owners)."""
        await self._set_statics(static_specs(self.config))
        created = [await self._create(v.settings) for v in self.views.values()]
        self._index()
        self._build_groups(self.config)
        await self._retrack(self.config, rebuild_hooks=True)
        for inst in created:
            if inst is not None:
                inst.start()
        self._prepare_routes()

    def _prepare_routes(self) -> None:
        """Open the backend's route/rule channel now, in the background, when an instance
        will need it on becoming master (the Linux backend loads pyroute2 for that lazily:
        this keeps the load off the first takeover and after the first advert)."""
        warm = getattr(self.net, "iproute", None)
        if warm is None or not any(
            v.settings.routes or v.settings.rules for v in self.views.values()
        ):
            return

        async def prepare() -> None:
            try:
                await warm()
            except Exception as exc:  # the takeover will try again and log it there
                log.debug("route channel not ready: %s", exc)

        self._tasks.append(asyncio.get_running_loop().create_task(prepare(), name="prepare"))

    async def _transport(self, s: InstanceSettings, ifname: str) -> VrrpTransport:
        """The shared socket of (interface, family), joined to the group when needed."""
        key = (ifname, s.family)
        if key in self.transports:
            t = self.transports[key]
            if s.unicast or t.opts.group is not None:
                return t
            t.close()  # a multicast instance joins an interface that had unicast only
        link = await self.net.get_link(ifname)
        group = None if s.unicast else s.mcast_group
        if group is None:  # another instance on the interface may need the group
            group = next(
                (
                    i.settings.mcast_group
                    for i in self.instances.values()
                    if self.rx_if.get(i.name) == ifname
                    and i.settings.family == s.family
                    and not i.settings.unicast
                ),
                None,
            )
        af = socket.AF_INET if s.family == 4 else socket.AF_INET6
        t = VrrpTransport(
            SocketOptions(af, ifname, link.index, group), functools.partial(self._on_datagram, key)
        )
        self.transports[key] = t
        return t

    async def _create(self, s: InstanceSettings) -> VrrpInstance | None:
        for problem in s.problems:
            log.error("(%s) %s: not applied", s.name, problem)
        extras = _Extras()
        rx_if = s.ifname
        if s.vmac is not None and await self._open_vmac(s):
            extras.vmac = s.vmac
            if not s.vmac_xmit_base:
                # A private-mode macvlan receives the frames sent from the same virtual
                # MAC (the master's adverts); the base interface does not see them.
                rx_if = s.vmac
        try:
            transport = await self._transport(s, rx_if)
            addr = s.src_ip or await self.net.primary_address(s.ifname, s.family)
        except Exception as exc:
            log.error("(%s) cannot use interface %s: %s; instance not started", s.name, rx_if, exc)
            return None
        if addr is None:
            log.error(
                "(%s) interface %s has no IPv%d address to send adverts from; instance not started",
                s.name,
                s.ifname,
                s.family,
            )
            return None
        inst = VrrpInstance(s, self.net, transport, addr)
        inst.release_on_stop = self.release_on_stop
        self.instances[s.name] = inst
        self.extras[s.name] = extras
        self.rx_if[s.name] = rx_if
        return inst

    async def _open_vmac(self, s: InstanceSettings) -> bool:
        """Create the instance's macvlan (00:00:5e:00:01:VRID, private mode)."""
        assert s.vmac is not None
        try:
            mac = parse_mac(s.vmac_mac) if s.vmac_mac else None
            await self.net.create_vmac(
                VmacSpec(parent=s.ifname, vrid=s.vrid, version=s.family, name=s.vmac, mac=mac)
            )
        except Exception as exc:
            log.error("(%s) cannot create VMAC %s on %s: %s", s.name, s.vmac, s.ifname, exc)
            return False
        return True

    def _index(self) -> None:
        """Receive policies and the VRID demultiplexing table from the running instances."""
        own: dict[SocketKey, set[IPAddress]] = {}
        for inst in self.instances.values():
            own.setdefault((self.rx_if[inst.name], inst.settings.family), set()).add(inst.address)
        self.policies = {}
        self.by_vrid = {}
        for inst in self.instances.values():
            s = inst.settings
            key = (self.rx_if[inst.name], s.family)
            self.policies[(key, s.vrid)] = s.rx_policy(frozenset(own[key]))
            self.by_vrid[(key, s.vrid)] = inst

    def _build_groups(self, config: Config) -> None:
        for g in config.vrrp_sync_groups:
            if g.name in self.groups:
                continue
            members = [self.instances[n] for n in g.group if n in self.instances]
            if members and all(m.fsm.state.value == "INIT" for m in members):
                self.groups[g.name] = Group(g.name, members)

    # --------------------------------------------------------------- tracking

    async def _retrack(self, config: Config, rebuild_hooks: bool) -> None:
        """(Re)build the tracker table, carrying known states over; start watchers."""
        old = self.tracker_table
        base = {n: i.settings.priority for n, i in self.instances.items()}
        trackers = {n: list(self.views[n].trackers) for n in self.instances}
        table = TrackerTable(base, trackers)
        for ts in old.trackers.values():
            for t in ts:
                if t.up is not None or t.value is not None:
                    table.update(t.kind, t.name, t.up, t.value)
        self.tracker_table = table
        if rebuild_hooks:
            if self.hooks is not None:
                await self.hooks.stop()
            self.hooks = VrrpHooks(config, self._tracker_update)
            await self.hooks.start(self.instances)
        elif self.hooks is not None:
            self.hooks.config = config
            self.hooks.attach(self.instances)
        ifnames = table.names(TrackerKind.INTERFACE)
        if ifnames - self._watched:
            if self._watch is None:
                self._watch = self.net.watch_links()
                await self._watch.start()
                self._tasks.append(asyncio.create_task(self._watch_links(self._watch)))
            for ifname in ifnames - self._watched:
                try:
                    up = (await self.net.get_link(ifname)).up
                except Exception:
                    up = False
                table.update(TrackerKind.INTERFACE, ifname, up)
        self._watched = ifnames
        for name, result in table.results.items():
            inst = self.instances[name]
            if result.priority != inst.fsm.priority or result.blocks_up != inst.fsm.tracker_fault:
                inst.set_priority(result.priority, result.blocks_up)

    async def _watch_links(self, watch: LinkWatch) -> None:
        async for ev in watch:
            if ev.ifname in self._watched:
                log.info("Netlink reports %s %s", ev.ifname, "UP" if ev.up else "DOWN")
                self._tracker_update(TrackerKind.INTERFACE, ev.ifname, ev.up)

    def _tracker_update(
        self, kind: TrackerKind, name: str, up: bool | None = None, value: int | None = None
    ) -> None:
        """A tracked object changed: feed new effective priorities to instances."""
        for inst_name, result in self.tracker_table.update(kind, name, up, value):
            inst = self.instances.get(inst_name)
            if inst is not None:
                inst.set_priority(result.priority, result.blocks_up)

    # ---------------------------------------------------------------- receive

    def _on_datagram(self, key: SocketKey, dgram: Datagram) -> None:
        seen = self._accepted.key(key, dgram.family, dgram.data, self.policies)
        if seen is not None:
            again = self._accepted.get(seen)
            if again is not None:  # the master's advert, as last time: not decoded again
                self.by_vrid[(key, again.vrid)].on_advert(again, dgram.rx_time)
                return
        result = inspect(
            dgram.data,
            dgram.family,
            dgram.src,
            dgram.dst,
            dgram.hop_limit,
            lambda vrid: self.policies.get((key, vrid)),
        )
        if isinstance(result, Accepted):
            if seen is not None:
                self._accepted.remember(seen, result)
            self.by_vrid[(key, result.vrid)].on_advert(result, dgram.rx_time)
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

    # ----------------------------------------------------------------- reload

    async def _set_statics(self, new: Statics) -> None:
        """Make the static blocks ``new``: remove what is gone, add what is new."""
        for problem in new.problems:
            log.warning("%s", problem)
        old, self.statics = self.statics, new
        await change(
            self.net,
            "static",
            False,
            minus(old.addresses, new.addresses),
            minus(old.routes, new.routes),
            minus(old.rules, new.rules),
        )
        await change(
            self.net,
            "static",
            True,
            minus(new.addresses, old.addresses),
            minus(new.routes, old.routes),
            minus(new.rules, old.rules),
        )

    async def reload(self, config: Config) -> VrrpReloadPlan:
        """Apply a new configuration as a diff (see :mod:`pyvrrpd.vrrp.reload`)."""
        await self._set_statics(static_specs(config))
        new_views = views(config)
        plan = plan_reload(self.views, new_views)
        for name in (*plan.removed, *plan.restart):
            await self._remove(name)
        for name in plan.addresses:
            await self.instances[name].update_addresses(new_views[name].settings)
        for name in plan.priority:
            self.instances[name].settings = new_views[name].settings
        for name in plan.unchanged:
            if name in self.instances:
                self.instances[name].settings = new_views[name].settings
        self.views = new_views
        created = [await self._create(new_views[n].settings) for n in (*plan.restart, *plan.added)]
        self._index()
        self._build_groups(config)
        hooks_changed = _hooks_config(self.config) != _hooks_config(config)
        self.config = config
        await self._retrack(config, rebuild_hooks=hooks_changed)
        for inst in created:
            if inst is not None:
                inst.start()
        self._close_unused_transports()
        return plan

    async def _remove(self, name: str) -> None:
        inst = self.instances.pop(name, None)
        extras = self.extras.pop(name, _Extras())
        if inst is None:
            return
        await inst.stop()
        inst.unit.close()
        for gname, group in list(self.groups.items()):
            if name in group.members:
                group.close()
                del self.groups[gname]
                for other in group.members.values():
                    if other.name in self.instances:
                        other.unit = Solo(other)  # the group is being rebuilt
                        other.unit.rearm()  # its timers go on (a master keeps advertising)
        self.rx_if.pop(name, None)
        if extras.vmac is not None:
            with contextlib.suppress(Exception):
                await self.net.delete_vmac(extras.vmac)

    def _close_unused_transports(self) -> None:
        used = {(self.rx_if[i.name], i.settings.family) for i in self.instances.values()}
        for key in list(self.transports):
            if key not in used:
                self.transports.pop(key).close()

    # ------------------------------------------------------------------- stop

    async def stop(self) -> None:
        """Every instance leaves (priority 0 from masters, VIPs removed); sockets closed."""
        await asyncio.gather(*(i.stop() for i in self.instances.values()), return_exceptions=True)
        for i in self.instances.values():
            i.unit.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._watch is not None:
            with contextlib.suppress(Exception):
                await self._watch.aclose()
        for t in self.transports.values():
            t.close()
        for extras in self.extras.values():
            if extras.vmac is not None:
                try:
                    await self.net.delete_vmac(extras.vmac)
                except Exception as exc:
                    log.warning("cannot delete VMAC %s: %s", extras.vmac, exc)
        if self.hooks is not None:
            await self.hooks.stop()
        await self._set_statics(Statics())  # removed even with -V, as keepalived does


def _hooks_config(config: Config) -> tuple[object, ...]:
    """The parts of a configuration that the trackers and notify scripts are built from."""
    g = config.global_defs
    return (
        config.vrrp_scripts,
        config.track_files,
        config.track_processes,
        tuple(
            (
                i.name,
                i.notify,
                i.notify_master,
                i.notify_backup,
                i.notify_fault,
                i.notify_stop,
                i.notify_deleted,
                i.notify_master_rx_lower_pri,
            )
            for i in config.vrrp_instances
        ),
        tuple(
            (s.name, s.notify, s.notify_master, s.notify_backup, s.notify_fault, s.notify_stop)
            for s in config.vrrp_sync_groups
        ),
        g.enable_script_security,
        g.script_user,
        g.notify_fifo,
        g.notify_fifo_script,
        g.vrrp_notify_fifo,
        g.vrrp_notify_fifo_script,
    )
