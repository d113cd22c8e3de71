"""Events, actions, configuration and status types of the VRRP state machine.

See :mod:`pyvrrpd.vrrp.fsm` for the machine itself and the timing rules.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

Address = IPv4Address | IPv6Address

PRIO_OWNER = 255
PRIO_STOP = 0


class State(enum.Enum):
    """Instance state; INIT before Start, STOPPED after Shutdown."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOPPED = "STOPPED"


class Reason(enum.Enum):
    """Why a state change happened (for logs, notify scripts and SNMP master reason)."""

    STARTUP = "startup"
    ADDRESS_OWNER = "address-owner"
    MASTER_DOWN = "master-down"  # no advert within the master down interval
    PREEMPT = "preempt"  # took over from a lower priority master
    PRIORITY_ZERO = "priority-zero"  # the master resigned with a priority 0 advert
    HIGHER_PRIORITY = "higher-priority"  # master heard a better master
    FAULT = "fault"  # own trackers report a fault
    RECOVERED = "recovered"  # own trackers recovered
    SYNC_GROUP = "sync-group"  # forced by a sync group member
    SHUTDOWN = "shutdown"


class GarpReason(enum.Enum):
    """Which gratuitous ARP/NA burst a :class:`SendGratuitous` is."""

    MASTER = "master"  # on becoming master (garp_master_repeat)
    MASTER_DELAYED = "master-delayed"  # garp_master_delay later (garp_master_repeat)
    REFRESH = "refresh"  # every garp_master_refresh (garp_master_refresh_repeat)
    LOWER_PRIO = "lower-prio"  # master heard a lower priority advert
    LOWER_PRIO_DELAYED = "lower-prio-delayed"  # garp_lower_prio_delay after that


class IllegalEvent(Exception):
    """The event is not acceptable in the current state (state left unchanged)."""


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Start:
    """Leave INIT (or STOPPED): go BACKUP, FAULT, or MASTER at once for an address owner."""


@dataclass(frozen=True, slots=True)
class Timer:
    """Time has passed; fires every timer due at ``now``. Always legal, may be early."""


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """A validated advert for our VRID (auth/TTL/checksum/v2-interval checks done by the shell).

    ``max_adver_int`` is the advertised interval in seconds.
    """

    src: Address
    priority: int
    max_adver_int: float
    version: int


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """New effective priority and fault flag computed by :mod:`pyvrrpd.vrrp.priority`.

    ``priority`` is ignored for an address owner (it stays 255).
    """

    priority: int
    fault: bool = False


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Stop the instance; a master resigns with a priority 0 advert."""


@dataclass(frozen=True, slots=True)
class ForceMaster:
    """Sync group: go MASTER now (legal in BACKUP, no-op in MASTER)."""


@dataclass(frozen=True, slots=True)
class ForceBackup:
    """Sync group: a MASTER steps down without a priority 0 advert (no-op elsewhere)."""


@dataclass(frozen=True, slots=True)
class SyncFault:
    """Sync group: another member is (``active``) or is no longer in fault."""

    active: bool


Event = (
    Start
    | Timer
    | AdvertReceived
    | PriorityChanged
    | Shutdown
    | ForceMaster
    | ForceBackup
    | SyncFault
)

# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one advert now with this priority and interval (seconds) in the header."""

    priority: int
    interval: float


@dataclass(frozen=True, slots=True)
class AddVips:
    """Install the instance's virtual addresses, eVIPs, virtual routes and rules."""


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove the instance's virtual addresses, eVIPs, virtual routes and rules."""


@dataclass(frozen=True, slots=True)
class SendGratuitous:
    """Send ``repeat`` gratuitous ARPs (IPv4) / unsolicited NAs (IPv6) for every VIP."""

    repeat: int
    reason: GarpReason


@dataclass(frozen=True, slots=True)
class PriorityUpdated:
    """The effective priority changed (for notify_priority_changes)."""

    old: int
    new: int


@dataclass(frozen=True, slots=True)
class BecomeMaster:
    """Entered MASTER (run notify_master, after the preceding VIP/GARP actions)."""

    previous: State
    reason: Reason


@dataclass(frozen=True, slots=True)
class BecomeBackup:
    """Entered BACKUP (run notify_backup)."""

    previous: State
    reason: Reason


@dataclass(frozen=True, slots=True)
class BecomeFault:
    """Entered FAULT (run notify_fault)."""

    previous: State
    reason: Reason


@dataclass(frozen=True, slots=True)
class Stopped:
    """Entered STOPPED (run notify_stop)."""

    previous: State
    reason: Reason


Action = (
    SendAdvert
    | AddVips
    | RemoveVips
    | SendGratuitous
    | PriorityUpdated
    | BecomeMaster
    | BecomeBackup
    | BecomeFault
    | Stopped
)
StateAction = BecomeMaster | BecomeBackup | BecomeFault | Stopped

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class FsmConfig:
    """What the state machine needs from a ``vrrp_instance`` block (times in seconds).

    ``garp_lower_prio_repeat``/``garp_lower_prio_delay`` default (``None``) to the
    ``garp_master_*`` values, as keepalived.  keepalived's ``state MASTER`` has no
    effect here: every non-owner instance starts as BACKUP.  ``preempt_delay``
    (keepalived semantics): the delay starts at the first lower priority advert
    heard in BACKUP; until it has passed such adverts are accepted (resetting
    the down timer), afterwards they are ignored so the down timer expires.
    Equal priority adverts are always accepted by a backup; the address
    tie-break only settles two simultaneous masters.
    """

    name: str
    address: Address  # our primary address, compared on equal priority
    priority: int = 100
    advert_int: float = 1.0
    version: int = 2
    preempt: bool = True
    preempt_delay: float = 0.0
    down_timer_adverts: int = 3
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_repeat: int | None = None
    garp_lower_prio_delay: float | None = None
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= PRIO_OWNER:
            raise ValueError(f"priority {self.priority} not in 1..255")
        if self.version not in (2, 3):
            raise ValueError(f"VRRP version {self.version} not 2 or 3")
        if not (math.isfinite(self.advert_int) and self.advert_int > 0):
            raise ValueError(f"advert_int {self.advert_int} must be > 0")
        if self.down_timer_adverts < 1:
            raise ValueError("down_timer_adverts must be >= 1")
        for attr in ("preempt_delay", "garp_master_delay", "garp_master_refresh"):
            if not getattr(self, attr) >= 0:
                raise ValueError(f"{attr} must be >= 0")

    @property
    def is_owner(self) -> bool:
        """Priority 255: the address owner."""
        return self.priority == PRIO_OWNER

    @property
    def lower_prio_repeat(self) -> int:
        """Effective garp_lower_prio_repeat."""
        rep = self.garp_lower_prio_repeat
        return self.garp_master_repeat if rep is None else rep

    @property
    def lower_prio_delay(self) -> float:
        """Effective garp_lower_prio_delay."""
        delay = self.garp_lower_prio_delay
        return self.garp_master_delay if delay is None else delay


# ------------------------------------------------------------------------------ status


@dataclass(slots=True)
class Counters:
    """Per-instance statistics (keepalived's ``vrrp_stats`` subset)."""

    transitions: int = 0
    become_master: int = 0
    release_master: int = 0
    adverts_sent: int = 0
    adverts_received: int = 0
    pri_zero_sent: int = 0
    pri_zero_received: int = 0


@dataclass(frozen=True, slots=True)
class FsmStatus:
    """Read-only snapshot for the status/control socket."""

    name: str
    state: State
    want_state: State
    priority: int
    base_priority: int
    tracker_fault: bool
    forced_fault: bool
    master_adver_int: float
    master_down_interval: float
    master_address: Address | None
    master_priority: int | None
    preempt_until: float | None
    last_transition: float | None
    next_deadline: float | None
    counters: Counters = field(default_factory=Counters)
