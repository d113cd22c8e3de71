"""Sans-I/O VRRP instance state machine (RFC 5798 section 6, keepalived behaviour).

One :class:`VrrpFsm` per ``vrrp_instance``.  The asyncio shell feeds it frozen
events with the current monotonic time and executes the returned actions in
order; the machine never reads a clock, touches a socket or sleeps::

    actions = fsm.handle(AdvertReceived(src, prio, mai, 3), loop.time())
    ...
    deadline = fsm.next_deadline()          # call handle(Timer(), t) at t >= deadline

Every ``handle`` first fires the timers already due at ``now`` (so a late timer
is never overtaken by a packet), then applies the event, then fires timers the
event made due.  After it returns, ``next_deadline()`` is ``None`` or ``> now``.
An illegal event raises :class:`IllegalEvent` and leaves the machine untouched.

Timing (all in float seconds):

* skew: v2 ``(256 - p) / 256`` (not scaled by the interval, as keepalived);
  v3 ``(256 - p) * MAI / 256``; an address owner uses ``p = 255``.
* master down interval: ``down_timer_adverts * MAI + skew``.  A v3 backup adopts
  the master's advertised interval as MAI; v2 ignores the advertised interval
  (the shell must already have dropped v2 adverts whose interval differs from
  ours, as keepalived does).
* Gratuitous ARP / unsolicited NA scheduling is done *here*: on becoming master
  the machine emits ``SendGratuitous(repeat, MASTER)`` and keeps timers for the
  ``garp_master_delay`` second burst, the ``garp_master_refresh`` period and the
  ``garp_lower_prio_delay`` burst.  The shell only spaces the ``repeat`` packets
  per address (``garp_interval``/``gna_interval``) and picks ARP vs NA.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

from pyvrrpd.vrrp.fsm_types import (
    PRIO_OWNER,
    PRIO_STOP,
    Action,
    Address,
    AddVips,
    AdvertReceived,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    Counters,
    Event,
    ForceBackup,
    ForceMaster,
    FsmConfig,
    FsmStatus,
    GarpReason,
    IllegalEvent,
    PriorityChanged,
    PriorityUpdated,
    Reason,
    RemoveVips,
    SendAdvert,
    SendGratuitous,
    Shutdown,
    Start,
    State,
    StateAction,
    Stopped,
    SyncFault,
    Timer,
)

__all__ = [
    "PRIO_OWNER",
    "PRIO_STOP",
    "Action",
    "AddVips",
    "Address",
    "AdvertReceived",
    "BecomeBackup",
    "BecomeFault",
    "BecomeMaster",
    "Counters",
    "Event",
    "ForceBackup",
    "ForceMaster",
    "FsmConfig",
    "FsmStatus",
    "GarpReason",
    "IllegalEvent",
    "PriorityChanged",
    "PriorityUpdated",
    "Reason",
    "RemoveVips",
    "SendAdvert",
    "SendGratuitous",
    "Shutdown",
    "Start",
    "State",
    "StateAction",
    "Stopped",
    "SyncFault",
    "Timer",
    "VrrpFsm",
]

# ------------------------------------------------------------------------------ machine


class VrrpFsm:
    """The state machine of one VRRP instance; see the module docstring."""

    def __init__(self, config: FsmConfig) -> None:
        self.config = config
        self._state = State.INIT
        self._priority = config.priority
        self._fault_self = False
        self._fault_forced = False
        self._in_sync_group = False
        self._want_master = False
        self._mai = config.advert_int
        self._master_addr: Address | None = None
        self._master_priority: int | None = None
        self._next_master_reason = Reason.MASTER_DOWN
        self._preempt_until: float | None = None
        self._down_at: float | None = None
        self._advert_at: float | None = None
        self._garp_at: float | None = None
        self._refresh_at: float | None = None
        self._lower_garp_at: float | None = None
        self._last_now = -math.inf
        self._last_transition: float | None = None
        self._counters = Counters()

    # ------------------------------------------------------------------ queries

    @property
    def name(self) -> str:
        """Instance name."""
        return self.config.name

    @property
    def state(self) -> State:
        """Current state."""
        return self._state

    @property
    def priority(self) -> int:
        """Effective priority (255 for an owner)."""
        return self._priority

    @property
    def tracker_fault(self) -> bool:
        """Own trackers report a fault."""
        return self._fault_self

    @property
    def forced_fault(self) -> bool:
        """Held in FAULT by a sync group."""
        return self._fault_forced

    @property
    def in_sync_group(self) -> bool:
        """Member of a sync group (master-down expiry then only *wants* MASTER)."""
        return self._in_sync_group

    @property
    def want_state(self) -> State:
        """The state this instance would be in ignoring its sync group."""
        if self._state in (State.INIT, State.STOPPED):
            return self._state
        if self._fault_self:
            return State.FAULT
        if self._state is State.MASTER or self._want_master:
            return State.MASTER
        return State.BACKUP

    @property
    def master_adver_int(self) -> float:
        """Master advertisement interval in use (v3 backups adopt the master's)."""
        return self._mai

    @property
    def skew_time(self) -> float:
        """Skew time for the current priority and interval."""
        p = PRIO_OWNER if self.config.is_owner else self._priority
        if self.config.version == 2:
            return (256 - p) / 256
        return (256 - p) * self._mai / 256

    @property
    def master_down_interval(self) -> float:
        """``down_timer_adverts * MAI + skew``."""
        return self.config.down_timer_adverts * self._mai + self.skew_time

    @property
    def counters(self) -> Counters:
        """A copy of the statistics."""
        return replace(self._counters)

    def takeover_at(self) -> float | None:
        """When this backup's timer may make it master (None unless BACKUP)."""
        return self._down_at if self._state is State.BACKUP else None

    def dry_run(self, event: Event, now: float) -> list[Action]:
        """What ``handle(event, now)`` would return, leaving this machine as it is.

        The shell runs the takeover path once before the deadline, so that it meets warm
        caches when it runs for real.
        """
        twin = copy.copy(self)
        twin._counters = replace(self._counters)  # the only mutable part it holds
        return twin.handle(event, now)

    def next_deadline(self) -> float | None:
        """When ``handle(Timer(), t)`` must next be called, or None."""
        if self._state is State.BACKUP:
            return self._down_at
        if self._state is State.MASTER:
            times = [
                t
                for t in (self._advert_at, self._garp_at, self._refresh_at, self._lower_garp_at)
                if t is not None
            ]
            return min(times) if times else None
        return None

    def status(self) -> FsmStatus:
        """Snapshot of everything observable."""
        return FsmStatus(
            name=self.name,
            state=self._state,
            want_state=self.want_state,
            priority=self._priority,
            base_priority=self.config.priority,
            tracker_fault=self._fault_self,
            forced_fault=self._fault_forced,
            master_adver_int=self._mai,
            master_down_interval=self.master_down_interval,
            master_address=self._master_addr,
            master_priority=self._master_priority,
            preempt_until=self._preempt_until,
            last_transition=self._last_transition,
            next_deadline=self.next_deadline(),
            counters=self.counters,
        )

    @property
    def last_time(self) -> float:
        """The ``now`` of the latest event handled (-inf before the first)."""
        return self._last_now

    def join_sync_group(self) -> None:
        """Mark as a sync group member (called by :class:`~pyvrrpd.vrrp.sync.SyncGroup`)."""
        if self._state is not State.INIT:
            raise IllegalEvent(f"{self.name}: can only join a sync group in INIT")
        self._in_sync_group = True

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply ``event`` at time ``now`` and return the actions to execute, in order."""
        self._check(event, now)
        self._last_now = now
        out: list[Action] = []
        self._fire_timers(now, out)
        match event:
            case Start():
                self._on_start(now, out)
            case AdvertReceived():
                self._on_advert(event, now, out)
            case PriorityChanged():
                self._on_priority(event, now, out)
            case Shutdown():
                self._on_shutdown(now, out)
            case ForceMaster():
                if self._state is State.BACKUP:
                    self._become_master(now, Reason.SYNC_GROUP, out)
            case ForceBackup():
                if self._state is State.MASTER:
                    self._leave_master(False, out)
                    self._enter_backup(now, State.MASTER, Reason.SYNC_GROUP, out)
            case SyncFault(active=active):
                self._fault_forced = active
                self._reconcile_fault(now, Reason.SYNC_GROUP, out)
            case Timer():
                pass
        self._fire_timers(now, out)
        return out

    def _check(self, event: Event, now: float) -> None:
        if not math.isfinite(now) or now < self._last_now:
            raise IllegalEvent(f"{self.name}: time went backwards ({now} < {self._last_now})")
        st = self._state
        idle = st in (State.INIT, State.STOPPED)
        match event:
            case Start() if not idle:
                raise IllegalEvent(f"{self.name}: Start in {st.value}")
            case AdvertReceived():
                if idle:
                    raise IllegalEvent(f"{self.name}: advert received in {st.value}")
                self._check_advert(event)
            case PriorityChanged(priority=p):
                if not self.config.is_owner and not 1 <= p <= 254:
                    raise IllegalEvent(f"{self.name}: effective priority {p} not in 1..254")
            case Shutdown() if st is State.STOPPED:
                raise IllegalEvent(f"{self.name}: Shutdown when already stopped")
            case ForceMaster() if st not in (State.BACKUP, State.MASTER):
                raise IllegalEvent(f"{self.name}: ForceMaster in {st.value}")
            case ForceBackup() if idle:
                raise IllegalEvent(f"{self.name}: ForceBackup in {st.value}")
            case _:
                pass

    def _check_advert(self, ev: AdvertReceived) -> None:
        if ev.version != self.config.version:
            raise IllegalEvent(
                f"{self.name}: v{ev.version} advert for a v{self.config.version} instance"
            )
        if not 0 <= ev.priority <= PRIO_OWNER:
            raise IllegalEvent(f"{self.name}: advert priority {ev.priority} out of range")
        if not (math.isfinite(ev.max_adver_int) and ev.max_adver_int > 0):
            raise IllegalEvent(f"{self.name}: advert interval {ev.max_adver_int} invalid")
        if ev.src.version != self.config.address.version:
            raise IllegalEvent(f"{self.name}: advert source {ev.src} of the wrong family")

    # ------------------------------------------------------------------ timers

    def _fire_timers(self, now: float, out: list[Action]) -> None:
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > now:
                return
            if self._state is State.BACKUP:
                self._on_master_down(now, out)
                continue
            cfg = self.config
            if self._advert_at is not None and self._advert_at <= now:
                self._send_advert(self._priority, out)
                self._advert_at = now + cfg.advert_int
            if self._garp_at is not None and self._garp_at <= now:
                out.append(SendGratuitous(cfg.garp_master_repeat, GarpReason.MASTER_DELAYED))
                self._garp_at = None
            if self._refresh_at is not None and self._refresh_at <= now:
                out.append(SendGratuitous(cfg.garp_master_refresh_repeat, GarpReason.REFRESH))
                self._refresh_at = now + cfg.garp_master_refresh
            if self._lower_garp_at is not None and self._lower_garp_at <= now:
                out.append(SendGratuitous(cfg.lower_prio_repeat, GarpReason.LOWER_PRIO_DELAYED))
                self._lower_garp_at = None

    def _on_master_down(self, now: float, out: list[Action]) -> None:
        if self._in_sync_group:
            # keepalived: a member only wants MASTER; the group decides, and the
            # down timer is re-armed meanwhile.
            self._want_master = True
            self._down_at = now + self.master_down_interval
        else:
            self._become_master(now, self._next_master_reason, out)

    # ------------------------------------------------------------------ events

    def _on_start(self, now: float, out: list[Action]) -> None:
        prev = self._state
        self._mai = self.config.advert_int
        self._want_master = False
        self._preempt_until = None
        self._master_addr = self._master_priority = None
        self._next_master_reason = Reason.MASTER_DOWN
        if self._fault_self or self._fault_forced:
            reason = Reason.FAULT if self._fault_self else Reason.SYNC_GROUP
            self._enter_fault(now, prev, reason, out)
        elif self.config.is_owner and not self._in_sync_group:
            self._become_master(now, Reason.ADDRESS_OWNER, out)
        else:
            self._enter_backup(now, prev, Reason.STARTUP, out)

    def _on_advert(self, ev: AdvertReceived, now: float, out: list[Action]) -> None:
        self._counters.adverts_received += 1
        if ev.priority == PRIO_STOP:
            self._counters.pri_zero_received += 1
        if self._state is State.BACKUP:
            self._backup_rx(ev, now)
        elif self._state is State.MASTER:
            self._master_rx(ev, now, out)
        # FAULT: adverts are ignored (keepalived drops them before processing).

    def _backup_rx(self, ev: AdvertReceived, now: float) -> None:
        cfg = self.config
        if ev.priority == PRIO_STOP:
            self._down_at = now + self.skew_time
            self._next_master_reason = Reason.PRIORITY_ZERO
            return
        delaying = cfg.preempt_delay > 0 and (
            self._preempt_until is None or self._preempt_until > now
        )
        if not cfg.preempt or ev.priority >= self._priority or delaying:
            if cfg.version == 3:
                self._mai = ev.max_adver_int
            self._down_at = now + self.master_down_interval
            self._master_addr, self._master_priority = ev.src, ev.priority
            self._next_master_reason = Reason.MASTER_DOWN
            self._want_master = False
            if cfg.preempt_delay > 0:
                if ev.priority >= self._priority:
                    self._preempt_until = None
                elif self._preempt_until is None:
                    self._preempt_until = now + cfg.preempt_delay
        else:
            # Lower priority master and we may preempt: ignore it, the running
            # down timer will make us master.
            self._master_addr, self._master_priority = ev.src, ev.priority
            self._next_master_reason = Reason.PREEMPT

    def _master_rx(self, ev: AdvertReceived, now: float, out: list[Action]) -> None:
        cfg = self.config
        if ev.priority == PRIO_STOP:
            self._send_advert(self._priority, out)
            self._advert_at = now + cfg.advert_int
            return
        ours = int(cfg.address)
        theirs = int(ev.src)
        higher = ev.priority > self._priority or (ev.priority == self._priority and theirs > ours)
        if higher:
            if cfg.higher_prio_send_advert:
                self._send_advert(self._priority, out)
            self._leave_master(False, out)
            if cfg.version == 3:
                self._mai = ev.max_adver_int
            self._master_addr, self._master_priority = ev.src, ev.priority
            self._enter_backup(now, State.MASTER, Reason.HIGHER_PRIORITY, out)
            return
        if ev.priority == self._priority and theirs == ours:
            return  # our own address: nothing sensible to do (keepalived only warns)
        # Lower priority (or equal with a lower address): reassert at once.
        if not cfg.lower_prio_no_advert:
            self._send_advert(self._priority, out)
            self._advert_at = now + cfg.advert_int
        if cfg.lower_prio_repeat > 0:
            out.append(SendGratuitous(cfg.lower_prio_repeat, GarpReason.LOWER_PRIO))
            if cfg.lower_prio_delay > 0:
                self._lower_garp_at = now + cfg.lower_prio_delay

    def _on_priority(self, ev: PriorityChanged, now: float, out: list[Action]) -> None:
        if not self.config.is_owner and ev.priority != self._priority:
            old_mdi = self.master_down_interval
            out.append(PriorityUpdated(self._priority, ev.priority))
            self._priority = ev.priority
            if self._state is State.BACKUP and self._down_at is not None:
                # keepalived shifts the running timer by the change in skew.
                self._down_at = max(now, self._down_at + (self.master_down_interval - old_mdi))
        self._fault_self = ev.fault
        self._reconcile_fault(now, Reason.FAULT if ev.fault else Reason.RECOVERED, out)

    def _reconcile_fault(self, now: float, reason: Reason, out: list[Action]) -> None:
        faulty = self._fault_self or self._fault_forced
        st = self._state
        if st in (State.INIT, State.STOPPED):
            return
        if faulty and st is not State.FAULT:
            why = Reason.FAULT if self._fault_self else Reason.SYNC_GROUP
            if st is State.MASTER:
                self._leave_master(True, out)
            self._enter_fault(now, st, why, out)
        elif not faulty and st is State.FAULT:
            self._mai = self.config.advert_int
            self._enter_backup(now, st, reason, out)

    def _on_shutdown(self, now: float, out: list[Action]) -> None:
        prev = self._state
        if prev is State.MASTER:
            self._leave_master(True, out)
        self._clear_timers()
        self._want_master = False
        self._set_state(now, State.STOPPED)
        out.append(Stopped(prev, Reason.SHUTDOWN))

    # ------------------------------------------------------------------ transitions

    def _send_advert(self, priority: int, out: list[Action]) -> None:
        out.append(SendAdvert(priority, self.config.advert_int))
        self._counters.adverts_sent += 1
        if priority == PRIO_STOP:
            self._counters.pri_zero_sent += 1

    def _set_state(self, now: float, new: State) -> None:
        if new is not self._state:
            self._counters.transitions += 1
            self._last_transition = now
        self._state = new

    def _clear_timers(self) -> None:
        self._down_at = self._advert_at = self._garp_at = None
        self._refresh_at = self._lower_garp_at = None

    def _become_master(self, now: float, reason: Reason, out: list[Action]) -> None:
        cfg = self.config
        prev = self._state
        self._clear_timers()
        self._want_master = False
        self._preempt_until = None
        self._mai = cfg.advert_int
        self._master_addr, self._master_priority = cfg.address, self._priority
        # Advert first so the old master drops the VIPs before our GARPs go out.
        self._send_advert(self._priority, out)
        out.append(AddVips())
        out.append(SendGratuitous(cfg.garp_master_repeat, GarpReason.MASTER))
        self._advert_at = now + cfg.advert_int
        if cfg.garp_master_delay > 0:
            self._garp_at = now + cfg.garp_master_delay
        if cfg.garp_master_refresh > 0:
            self._refresh_at = now + cfg.garp_master_delay + cfg.garp_master_refresh
        self._counters.become_master += 1
        self._set_state(now, State.MASTER)
        out.append(BecomeMaster(prev, reason))

    def _leave_master(self, send_zero: bool, out: list[Action]) -> None:
        if send_zero:
            self._send_advert(PRIO_STOP, out)
        out.append(RemoveVips())
        self._clear_timers()
        self._counters.release_master += 1

    def _enter_backup(self, now: float, prev: State, reason: Reason, out: list[Action]) -> None:
        self._clear_timers()
        self._preempt_until = None
        self._want_master = False
        self._next_master_reason = Reason.MASTER_DOWN
        self._set_state(now, State.BACKUP)
        self._down_at = now + self.master_down_interval
        out.append(BecomeBackup(prev, reason))

    def _enter_fault(self, now: float, prev: State, reason: Reason, out: list[Action]) -> None:
        self._clear_timers()
        self._want_master = False
        self._mai = self.config.advert_int
        self._set_state(now, State.FAULT)
        out.append(BecomeFault(prev, reason))
