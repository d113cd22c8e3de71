"""The asyncio shell of one VRRP instance: state machine <-> socket, addresses, timers.

The state machine is synchronous and pure; this shell feeds it events with the loop's
clock, keeps one alarm (on the loop's shared timerfd clock) armed at its next deadline,
sends adverts at once (on the hot path) and hands every other action (addresses,
gratuitous ARP/NA, notify) to one worker task per instance so they run in the order the
machine returned them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ..net.backend import AddressSpec, NetBackend
from .eager import start_eagerly
from .fsm import VrrpFsm
from .fsm_types import (
    Action,
    AddVips,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    Event,
    PriorityChanged,
    RemoveVips,
    SendAdvert,
    SendGratuitous,
    Shutdown,
    Start,
    State,
    Stopped,
)
from .netchange import change, minus
from .packet import Advert, IPAddress, encode_advert
from .rx_filter import Accepted
from .settings import InstanceSettings
from .unit import Solo, Unit

log = logging.getLogger("pyvrrpd.vrrp")

StateListener = Callable[["VrrpInstance", Action], None]


@dataclass(frozen=True, slots=True)
class _NewSettings:
    """Worker item: switch to reloaded settings (addresses changed in place)."""

    settings: InstanceSettings


@dataclass(frozen=True, slots=True)
class _Join:
    """Worker item: wait for an action started eagerly that had to suspend."""

    task: asyncio.Task[None]


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
        self._queue: asyncio.Queue[Action | _NewSettings | _Join | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._parked = False  # the worker waits on an empty queue: actions may run at once
        self._held: list[Action] | None = None  # actions arriving while one runs at once
        self._untold: list[Action] = []  # done, listeners not told yet (see _handle)
        self._vips_installed = False
        self._stopping = False
        self.release_on_stop = True  # False: -V, the addresses stay when the daemon stops
        self._macs: dict[str, bytes] = {}
        self.tx_failures = 0
        self._payloads: dict[tuple[int, int, IPAddress], bytes] = {}
        self._payload_for: tuple[InstanceSettings, IPAddress] | None = None

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

    def feed(self, event: Event, at: float | None = None) -> None:
        """Hand one event to the state machine (through its sync group, if any); ``at``:
        when it happened, if earlier than now (a packet's arrival)."""
        self.unit.feed(self.name, event, at)

    def on_advert(self, accepted: Accepted, at: float | None = None) -> None:
        """An advert for our VRID passed the receive filters; ``at``: its arrival time."""
        self.feed(accepted.event, at)

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
        """Carry out one action: adverts at once, everything else in order.

        When the worker is idle the action starts at once, in the caller's callback, and
        usually completes there (a takeover's addresses and first gratuitous ARP leave
        right behind the advert); if it has to wait, a task finishes it and the worker
        waits for that task before the next action. Otherwise it queues for the worker.
        """
        if isinstance(action, SendAdvert):
            if self._stopping and not self.release_on_stop and action.priority == 0:
                return  # -V: the addresses stay, so this node does not resign either
            self._send_advert(action)
        elif self._held is not None:  # an action is running at once: this one waits
            self._held.append(action)
        elif self._parked and self._queue.empty():
            self._parked, self._held = False, []
            try:
                task = start_eagerly(self.loop, self._handle(action), name=f"vrrp-{self.name}")
            finally:
                held, self._held = self._held, None
            if task is not None:
                self._queue.put_nowait(_Join(task))
            for later in held:
                self._queue.put_nowait(later)
            self._parked = task is None and not held  # the worker is still idle
        else:
            self._queue.put_nowait(action)

    def _send_advert(self, action: SendAdvert) -> None:
        interval_cs = round(action.interval * 100)
        for dst in self._targets():
            payload = self._payload(action.priority, interval_cs, dst)
            if not self.sender.send(payload, dst, self.address):
                self.tx_failures += 1

    def _targets(self) -> Iterable[IPAddress]:
        """Where adverts go: the unicast peers, or the multicast group."""
        s = self.settings
        return s.peers if s.unicast else (s.mcast_group,)

    def _payload(self, priority: int, interval_cs: int, dst: IPAddress) -> bytes:
        """The encoded advert, built once per (priority, interval, destination) for the
        current settings and source: a master sends the same bytes every interval."""
        s = self.settings
        if self._payload_for != (s, self.address):
            self._payloads.clear()
            self._payload_for = (s, self.address)
        key = (priority, interval_cs, dst)
        payload = self._payloads.get(key)
        if payload is None:
            advert = Advert(
                version=s.version,
                vrid=s.vrid,
                priority=priority,
                max_adver_int=interval_cs,
                addresses=s.advert_addresses,
                family=s.family,
                auth_type=s.auth_type,
                auth_data=s.auth_data.ljust(8, b"\0") if s.version == 2 else b"",
            )
            payload = encode_advert(
                advert,
                src=self.address,
                dst=dst,
                checksum_form=s.checksum,
                mcast_group=s.mcast_group,
            )
            self._payloads[key] = payload
        return payload

    def warm_up(self) -> None:
        """Prepare a takeover without doing anything: the advert bytes, and the backend's
        address requests and announcements (side-effect free)."""
        s = self.settings
        interval_cs = round(s.advert_int * 100)
        for dst in self._targets():
            self._payload(self.fsm.priority, interval_cs, dst)
        self.net.warm((*s.vips, *s.excluded_vips))

    async def _work(self) -> None:
        while True:
            self._parked = self._queue.empty()
            try:
                item = await self._queue.get()
            finally:
                self._parked = False
            if item is None:
                return
            if isinstance(item, _Join):
                await asyncio.wait([item.task])  # its failures are logged by _handle
            elif isinstance(item, _NewSettings):
                await self._swap_settings(item.settings)
            else:
                await self._handle(item)

    async def _handle(self, action: Action) -> None:
        """Carry out one action, then tell the listeners; failures are logged."""
        try:
            await self._do(action)
        except Exception:
            log.exception("(%s) %s failed", self.name, type(action).__name__)
        if isinstance(action, AddVips):  # told once the first announcement is out
            self._untold.append(action)
            self.loop.call_soon(self._tell_untold)
        else:
            self._tell(action)

    def _tell(self, action: Action) -> None:
        """Tell the listeners of ``action`` (after any that are still untold)."""
        if self._untold:
            self._tell_untold()
        for listener in self.listeners:
            try:
                listener(self, action)
            except Exception:
                log.exception("(%s) state listener failed", self.name)

    def _tell_untold(self) -> None:
        untold, self._untold = self._untold, []
        for action in untold:
            self._tell(action)

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
