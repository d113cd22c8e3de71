"""In-memory VRRP network for scenario tests: routers exchanging adverts on a float clock.

A :class:`RouterNet` holds routers (each one or more :class:`VrrpFsm` keyed by
VRID, optionally in a :class:`SyncGroup`).  ``run_until(t)`` advances a
simulated clock: it fires every fsm timer exactly at its deadline and delivers
adverts ``latency`` seconds after they were sent to every other router on the
same segment that has the VRID, unless dropped (random ``loss`` or a ``drop``
predicate).  At equal times packets are delivered before timers fire.

Every action is logged and checked mechanically, so every scenario also checks:
``next_deadline()`` is never in the past after ``handle``; VIPs are only added
when absent and removed when present; a router holds its VIPs exactly while
MASTER; every state-change action's ``previous`` is the state we last saw.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from pyvrrpd.vrrp.fsm import (
    Action,
    AddVips,
    AdvertReceived,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    Event,
    FsmConfig,
    RemoveVips,
    SendAdvert,
    Shutdown,
    Start,
    State,
    Stopped,
    Timer,
    VrrpFsm,
)
from pyvrrpd.vrrp.sync import GroupAction, GroupStateChanged, SyncGroup

Address = IPv4Address | IPv6Address
DropFn = Callable[[float, str, str, int, SendAdvert], bool]

_STATE_OF = {
    BecomeMaster: State.MASTER,
    BecomeBackup: State.BACKUP,
    BecomeFault: State.FAULT,
    Stopped: State.STOPPED,
}


@dataclass(frozen=True)
class Record:
    """One logged action: at ``time`` router ``node`` instance ``vrid`` did ``action``."""

    time: float
    node: str
    vrid: int  # 0 for group-level actions
    action: GroupAction


@dataclass(frozen=True)
class Delivery:
    """An advert handed to a router's fsm."""

    time: float
    src: str
    dst: str
    vrid: int
    priority: int


def cfg(name: str, address: str, **kw: object) -> FsmConfig:
    """Shorthand FsmConfig with a string address."""
    return FsmConfig(name=name, address=ip_address(address), **kw)  # type: ignore[arg-type]


@dataclass
class Router:
    """A router: instances by VRID, its segment, and the VIPs it currently holds."""

    name: str
    address: Address
    fsms: dict[int, VrrpFsm]
    group: SyncGroup | None = None
    segment: int = 0
    alive: bool = True
    vips: set[int] = field(default_factory=set)
    seen: dict[int, State] = field(default_factory=dict)

    def vrid_of(self, instance: str) -> int:
        """VRID of an instance name."""
        for vrid, fsm in self.fsms.items():
            if fsm.name == instance:
                return vrid
        raise KeyError(instance)

    def state(self, vrid: int = 1) -> State:
        """State of instance ``vrid``."""
        return self.fsms[vrid].state

    def next_deadline(self) -> float | None:
        """Earliest timer of all instances."""
        if not self.alive:
            return None
        times = [t for f in self.fsms.values() if (t := f.next_deadline()) is not None]
        return min(times) if times else None


class RouterNet:
    """The simulated network; see the module docstring."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        loss: float = 0.0,
        seed: int = 0,
        drop: DropFn | None = None,
    ) -> None:
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.drop = drop
        self.rng = random.Random(seed)
        self.routers: dict[str, Router] = {}
        self.log: list[Record] = []
        self.deliveries: list[Delivery] = []
        self._queue: list[tuple[float, int, str, str, int, AdvertReceived]] = []
        self._seq = 0

    # ------------------------------------------------------------------ building

    def add(self, name: str, address: str, *, vrid: int = 1, **kw: object) -> Router:
        """Add a router with one instance (``FsmConfig`` keywords in ``kw``)."""
        return self.add_multi(name, address, {vrid: kw})

    def add_multi(
        self,
        name: str,
        address: str,
        instances: Mapping[int, Mapping[str, object]],
        *,
        sync: bool = False,
    ) -> Router:
        """Add a router with several instances, optionally all in one sync group."""
        addr = ip_address(address)
        fsms = {
            vrid: VrrpFsm(cfg(f"{name}/VI_{vrid}", address, **dict(kw)))
            for vrid, kw in instances.items()
        }
        group = SyncGroup(f"{name}/G", list(fsms.values())) if sync else None
        router = Router(name, addr, fsms, group)
        router.seen = {vrid: State.INIT for vrid in fsms}
        self.routers[name] = router
        return router

    def __getitem__(self, name: str) -> Router:
        return self.routers[name]

    # ------------------------------------------------------------------ driving

    def inject(self, name: str, event: Event, vrid: int = 1) -> list[GroupAction]:
        """Hand ``event`` to one instance at the current time; return its router's actions."""
        router = self.routers[name]
        before = len(self.log)
        self._handle(router, vrid, event)
        return [r.action for r in self.log[before:]]

    def start(self, *names: str) -> None:
        """Start all instances of the given routers (all routers if none given)."""
        for name in names or tuple(self.routers):
            router = self.routers[name]
            router.alive = True
            for vrid in router.fsms:
                self._handle(router, vrid, Start())

    def shutdown(self, name: str) -> None:
        """Graceful stop (priority 0 adverts from masters)."""
        router = self.routers[name]
        for vrid in router.fsms:
            self._handle(router, vrid, Shutdown())

    def crash(self, name: str) -> None:
        """The router vanishes silently: no timers, no packets in or out."""
        self.routers[name].alive = False

    def revive(self, name: str, **overrides: object) -> None:
        """Replace a crashed router's instances with fresh ones (optionally reconfigured)."""
        router = self.routers[name]
        new = {}
        for vrid, fsm in router.fsms.items():
            c = fsm.config
            fields = {k: getattr(c, k) for k in c.__dataclass_fields__}
            fields.update(overrides)
            new[vrid] = VrrpFsm(FsmConfig(**fields))
        router.fsms = new
        router.group = SyncGroup(router.group.name, list(new.values())) if router.group else None
        router.vips.clear()
        router.seen = {vrid: State.INIT for vrid in new}
        router.alive = True
        self.start(name)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the routers into segments; unnamed routers stay on segment 0."""
        for i, names in enumerate(groups, start=1):
            for n in names:
                self.routers[n].segment = i

    def heal(self) -> None:
        """Put every router back on one segment."""
        for r in self.routers.values():
            r.segment = 0

    def run_until(self, t_end: float) -> None:
        """Advance the clock to ``t_end`` processing packets and timers in time order."""
        while True:
            t_pkt = self._queue[0][0] if self._queue else None
            t_tim, router = self._earliest_timer()
            if t_pkt is not None and t_pkt <= t_end and (t_tim is None or t_pkt <= t_tim):
                self.now, _, src, dst, vrid, ev = heapq.heappop(self._queue)
                self._deliver(src, dst, vrid, ev)
            elif t_tim is not None and router is not None and t_tim <= t_end:
                self.now = t_tim
                self._fire(router)
            else:
                break
        self.now = t_end

    def run_for(self, dt: float) -> None:
        """Advance the clock by ``dt``."""
        self.run_until(self.now + dt)

    # ------------------------------------------------------------------ queries

    def masters(self, vrid: int = 1) -> list[str]:
        """Routers whose instance ``vrid`` is MASTER (alive ones)."""
        return [
            r.name
            for r in self.routers.values()
            if r.alive and vrid in r.fsms and r.fsms[vrid].state is State.MASTER
        ]

    def transitions(
        self, node: str | None = None, vrid: int | None = None
    ) -> list[tuple[float, str, int, GroupAction]]:
        """Logged state-change actions as (time, node, vrid, action)."""
        return [
            (r.time, r.node, r.vrid, r.action)
            for r in self.log
            if isinstance(r.action, (BecomeMaster, BecomeBackup, BecomeFault, Stopped))
            and (node is None or r.node == node)
            and (vrid is None or r.vrid == vrid)
        ]

    def became_master(self, node: str, vrid: int = 1) -> list[float]:
        """Times at which ``node`` entered MASTER for ``vrid``."""
        return [t for t, _, _, a in self.transitions(node, vrid) if isinstance(a, BecomeMaster)]

    def adverts(self, node: str, vrid: int = 1) -> list[tuple[float, int]]:
        """(time, priority) of every advert ``node`` sent for ``vrid``."""
        return [
            (r.time, r.action.priority)
            for r in self.log
            if r.node == node and r.vrid == vrid and isinstance(r.action, SendAdvert)
        ]

    def actions(self, node: str, vrid: int = 1) -> list[tuple[float, GroupAction]]:
        """All logged actions of one instance."""
        return [(r.time, r.action) for r in self.log if r.node == node and r.vrid == vrid]

    # ------------------------------------------------------------------ internals

    def _earliest_timer(self) -> tuple[float | None, Router | None]:
        best: tuple[float | None, Router | None] = (None, None)
        for r in self.routers.values():
            t = r.next_deadline()
            if t is not None and (best[0] is None or t < best[0]):
                best = (t, r)
        return best

    def _fire(self, router: Router) -> None:
        if router.group is not None:
            self._record(router, router.group.handle_timers(self.now))
            return
        for vrid, fsm in router.fsms.items():
            deadline = fsm.next_deadline()
            if deadline is not None and deadline <= self.now:
                self._handle(router, vrid, Timer())

    def _handle(self, router: Router, vrid: int, event: Event) -> None:
        fsm = router.fsms[vrid]
        if router.group is not None:
            self._record(router, router.group.handle(fsm.name, event, self.now))
        else:
            self._record(router, [(fsm.name, a) for a in fsm.handle(event, self.now)])

    def _record(self, router: Router, tagged: list[tuple[str, GroupAction]]) -> None:
        for inst, action in tagged:
            vrid = 0 if isinstance(action, GroupStateChanged) else router.vrid_of(inst)
            self.log.append(Record(self.now, router.name, vrid, action))
            self._check_action(router, vrid, action)
            if isinstance(action, SendAdvert) and router.alive:
                self._transmit(router, vrid, action)
        for vrid, fsm in router.fsms.items():
            deadline = fsm.next_deadline()
            assert deadline is None or deadline > self.now, (router.name, vrid, deadline)
            assert (vrid in router.vips) == (fsm.state is State.MASTER), (router.name, vrid)
            assert router.seen[vrid] is fsm.state, (router.name, vrid)

    def _check_action(self, router: Router, vrid: int, action: Action | GroupStateChanged) -> None:
        if isinstance(action, AddVips):
            assert vrid not in router.vips, f"{router.name}/{vrid}: VIPs added twice"
            router.vips.add(vrid)
        elif isinstance(action, RemoveVips):
            assert vrid in router.vips, f"{router.name}/{vrid}: VIPs removed while absent"
            router.vips.discard(vrid)
        elif isinstance(action, (BecomeMaster, BecomeBackup, BecomeFault, Stopped)):
            assert action.previous is router.seen[vrid], (router.name, vrid, action)
            router.seen[vrid] = _STATE_OF[type(action)]

    def _transmit(self, router: Router, vrid: int, advert: SendAdvert) -> None:
        version = router.fsms[vrid].config.version
        for other in self.routers.values():
            if other is router or not other.alive or other.segment != router.segment:
                continue
            if vrid not in other.fsms:
                continue
            if self.drop is not None and self.drop(self.now, router.name, other.name, vrid, advert):
                continue
            if self.loss and self.rng.random() < self.loss:
                continue
            ev = AdvertReceived(router.address, advert.priority, advert.interval, version)
            self._seq += 1
            heapq.heappush(
                self._queue, (self.now + self.latency, self._seq, router.name, other.name, vrid, ev)
            )

    def _deliver(self, src: str, dst: str, vrid: int, ev: AdvertReceived) -> None:
        router = self.routers[dst]
        if not router.alive or router.fsms[vrid].state in (State.INIT, State.STOPPED):
            return
        self.deliveries.append(Delivery(self.now, src, dst, vrid, ev.priority))
        self._handle(router, vrid, ev)
