"""The asyncio shell of one VRRP instance: state machine <-> socket, addresses, timers.

The state machine is synchronous and pure; this shell feeds it events with the loop's
clock, keeps one ``call_at`` handle armed at its next deadline, sends adverts at once
(on the hot path) and hands every other action (addresses, gratuitous ARP/NA, notify) to
one worker task per instance so they run in the order the machine returned them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..net.backend import AddressSpec, NetBackend
from .alarm import Alarm, make_alarm
from .fsm import VrrpFsm
from .fsm_types import (
    Action,
    AddVips,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    Event,
    IllegalEvent,
    PriorityChanged,
    RemoveVips,
    SendAdvert,
    SendGratuitous,
    Shutdown,
    Start,
    State,
    Stopped,
    Timer,
)
from .netchange import change, minus
from .packet import Advert, IPAddress, encode_advert
from .rx_filter import Accepted
from .settings import InstanceSettings
from .sync import GroupStateChanged, SyncGroup, Tagged

log = logging.getLogger("pyvrrpd.vrrp")

StateListener = Callable[["VrrpInstance", Action], None]
GroupListener = Callable[[GroupStateChanged], None]


@dataclass(frozen=True, slots=True)
class _NewSettings:
    """Worker item: switch to reloaded settings (addresses changed in place)."""

    settings: InstanceSettings


class Sender(Protocol):
    """What the instance needs from a transport."""

    def send(self, payload: bytes, dst: IPAddress, src: IPAddress | None = None) -> bool: ...


class VrrpInstance:
    """One running VRRP instance."""

    def __init__(
        self,
        settings: InstanceSettings,
        net: NetBackend,
        sender: Sender,
        address: IPAddress,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.settings = settings
        self.net = net
        self.sender = sender
        self.address = settings.src_ip or address  # source of our adverts
        self.loop = loop or asyncio.get_running_loop()
        self.fsm = VrrpFsm(settings.fsm_config(self.address))
        self.drops: Counter[str] = Counter()
        self.listeners: list[StateListener] = []
        self.unit: Unit = Solo(self)
        self._queue: asyncio.Queue[Action | _NewSettings | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._vips_installed = False
        self._stopping = False
        self.release_on_stop = True  # False: -V, the addresses stay when the daemon stops
        self._macs: dict[str, bytes] = {}
        self.tx_failures = 0

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def state(self) -> State:
        return self.fsm.state

    # ------------------------------------------------------------------ inputs

    def start(self) -> None:
        """Start: BACKUP (or MASTER at once for the address owner).

        Addresses a previous run left behind (kill -9) are removed first, as keepalived
        does, so a restarted backup does not answer for the VIP.
        """
        self._worker = self.loop.create_task(self._work(), name=f"vrrp-{self.name}")
        if self.settings.priority != 255:
            self._queue.put_nowait(RemoveVips())
        self.feed(Start())

    def feed(self, event: Event) -> None:
        """Hand one event to the state machine (through its sync group, if any)."""
        self.unit.feed(self.name, event)

    def on_advert(self, accepted: Accepted) -> None:
        """An advert for our VRID passed the receive filters."""
        self.feed(accepted.event)

    def set_priority(self, priority: int, fault: bool) -> None:
        """New effective priority (and tracker fault) from the trackers."""
        self.feed(PriorityChanged(priority, fault))

    async def update_addresses(self, settings: InstanceSettings) -> None:
        """Reload: new VIPs/routes/rules; a master changes only the difference, in place."""
        await self._queue.put(_NewSettings(settings))

    async def stop(self) -> None:
        """Leave: priority 0 advert when master, addresses removed (kept with -V), worker
        drained."""
        self._stopping = True
        self.feed(Shutdown())
        await self._queue.put(None)
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # ----------------------------------------------------------------- actions

    def execute(self, action: Action) -> None:
        """Carry out one action: adverts at once, everything else in order on the worker."""
        if isinstance(action, SendAdvert):
            if self._stopping and not self.release_on_stop and action.priority == 0:
                return  # -V: the addresses stay, so this node does not resign either
            self._send_advert(action)
        else:
            self._queue.put_nowait(action)

    def _send_advert(self, action: SendAdvert) -> None:
        s = self.settings
        interval_cs = round(action.interval * 100)
        advert = Advert(
            version=s.version,
            vrid=s.vrid,
            priority=action.priority,
            max_adver_int=interval_cs,
            addresses=s.advert_addresses,
            family=s.family,
            auth_type=s.auth_type,
            auth_data=s.auth_data.ljust(8, b"\0") if s.version == 2 else b"",
        )
        targets = list(s.peers) if s.unicast else [s.mcast_group]
        for dst in targets:
            payload = encode_advert(
                advert,
                src=self.address,
                dst=dst,
                checksum_form=s.checksum,
                mcast_group=s.mcast_group,
            )
            if not self.sender.send(payload, dst, self.address):
                self.tx_failures += 1

    async def _work(self) -> None:
        while True:
            action = await self._queue.get()
            if action is None:
                return
            if isinstance(action, _NewSettings):
                await self._swap_settings(action.settings)
                continue
            try:
                await self._do(action)
            except Exception:
                log.exception("(%s) %s failed", self.name, type(action).__name__)
            for listener in self.listeners:
                try:
                    listener(self, action)
                except Exception:
                    log.exception("(%s) state listener failed", self.name)

    async def _do(self, action: Action) -> None:
        if isinstance(action, AddVips):
            await self._set_vips(True)
        elif isinstance(action, RemoveVips):
            if self._stopping and not self.release_on_stop:
                if self._vips_installed:
                    log.info("(%s) keeping the virtual addresses (-V)", self.name)
                return
            await self._set_vips(False)
        elif isinstance(action, SendGratuitous):
            await self._announce(action.repeat)
        elif isinstance(action, BecomeMaster):
            log.info("(%s) Entering MASTER STATE (%s)", self.name, action.reason.value)
        elif isinstance(action, BecomeBackup):
            log.info("(%s) Entering BACKUP STATE (%s)", self.name, action.reason.value)
        elif isinstance(action, BecomeFault):
            log.info("(%s) Entering FAULT STATE (%s)", self.name, action.reason.value)
        elif isinstance(action, Stopped):
            log.info("(%s) Stopped", self.name)

    async def _set_vips(self, add: bool) -> None:
        """Install or remove the instance's addresses, routes and rules."""
        s = self.settings
        await change(self.net, self.name, add, (*s.vips, *s.excluded_vips), s.routes, s.rules)
        self._vips_installed = add

    async def _swap_settings(self, new: InstanceSettings) -> None:
        """Reload: a master removes what is gone and adds (and announces) what is new."""
        old, self.settings = self.settings, new
        if not self._vips_installed:
            return
        old_addr = (*old.vips, *old.excluded_vips)
        new_addr = (*new.vips, *new.excluded_vips)
        await change(
            self.net,
            self.name,
            False,
            minus(old_addr, new_addr),
            minus(old.routes, new.routes),
            minus(old.rules, new.rules),
        )
        added = minus(new_addr, old_addr)
        await change(
            self.net,
            self.name,
            True,
            added,
            minus(new.routes, old.routes),
            minus(new.rules, old.rules),
        )
        for spec in added:
            await self._announce_one(spec)

    async def _announce(self, repeat: int) -> None:
        s = self.settings
        for i in range(repeat):
            if i:
                await asyncio.sleep(max(s.garp_interval, s.gna_interval, 0.0))
            for spec in (*s.vips, *s.excluded_vips):
                await self._announce_one(spec)

    async def _announce_one(self, spec: AddressSpec) -> None:
        ip = spec.address.ip
        try:
            mac = self._macs.get(spec.dev)
            if mac is None:  # looked up once: a netlink round trip less on every takeover
                mac = self._macs[spec.dev] = (await self.net.get_link(spec.dev)).mac
            if isinstance(ip, ipaddress.IPv4Address):
                await self.net.send_garp(spec.dev, ip, mac)
            else:
                await self.net.send_na(spec.dev, ip, mac)
        except Exception as exc:
            log.warning(
                "(%s) gratuitous announce of %s on %s failed: %s", self.name, ip, spec.dev, exc
            )


class Unit:
    """What drives state machines and owns their timer: one instance, or a sync group."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.members: dict[str, VrrpInstance] = {}
        self.group_listeners: list[GroupListener] = []
        self._alarm: Alarm = make_alarm(loop, self._on_timer)

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        raise NotImplementedError

    def handle_timers(self, now: float) -> list[Tagged]:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        raise NotImplementedError

    def feed(self, member: str, event: Event) -> None:
        """One event for ``member``; actions go to the instances they are tagged with."""
        try:
            tagged = self.handle(member, event, self.loop.time())
        except IllegalEvent as exc:
            log.debug("(%s) ignored %s: %s", member, type(event).__name__, exc)
            tagged = []
        self._dispatch(tagged)

    def _on_timer(self) -> None:
        self._dispatch(self.handle_timers(self.loop.time()))

    def _dispatch(self, tagged: list[Tagged]) -> None:
        for name, action in tagged:
            if isinstance(action, GroupStateChanged):
                log.info(
                    "VRRP_Group(%s) Syncing instances to %s state", action.group, action.state.value
                )
                for listener in self.group_listeners:
                    listener(action)
            else:
                self.members[name].execute(action)
        self._arm()

    def _arm(self) -> None:
        """Keep one alarm at or before the next deadline.

        A deadline that moved later (a backup hearing the master's advert) keeps the
        earlier alarm: it fires early, the machine does nothing, and it is re-armed then.
        That spares a system call per received advert.
        """
        deadline = self.next_deadline()
        armed = self._alarm.when
        if armed is not None:
            if deadline is not None and armed <= deadline:
                return
            self._alarm.disarm()
        if deadline is not None:
            self._alarm.arm(deadline)

    def rearm(self) -> None:
        """Arm the alarm for the machines' next deadline (a unit taking over running ones)."""
        self._arm()

    def close(self) -> None:
        """Cancel the alarm and release it."""
        self._alarm.close()


class Solo(Unit):
    """A single instance outside any sync group."""

    def __init__(self, instance: VrrpInstance) -> None:
        super().__init__(instance.loop)
        self.fsm = instance.fsm
        self.name = instance.name
        self.members[instance.name] = instance

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        return [(member, a) for a in self.fsm.handle(event, now)]

    def handle_timers(self, now: float) -> list[Tagged]:
        return self.handle(self.name, Timer(), now)

    def next_deadline(self) -> float | None:
        return self.fsm.next_deadline()


class Group(Unit):
    """Instances of a ``vrrp_sync_group``, moving together."""

    def __init__(self, name: str, instances: list[VrrpInstance]) -> None:
        super().__init__(instances[0].loop)
        self.sync = SyncGroup(name, [i.fsm for i in instances])
        for inst in instances:
            self.members[inst.name] = inst
            inst.unit = self

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        return self.sync.handle(member, event, now)

    def handle_timers(self, now: float) -> list[Tagged]:
        return self.sync.handle_timers(now)

    def next_deadline(self) -> float | None:
        return self.sync.next_deadline()
