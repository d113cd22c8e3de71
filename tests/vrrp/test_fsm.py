"""Unit tests of one VrrpFsm driven by hand (no network)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from pyvrrpd.vrrp.fsm import (
    AddVips,
    AdvertReceived,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    ForceBackup,
    ForceMaster,
    FsmConfig,
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
    Stopped,
    SyncFault,
    Timer,
    VrrpFsm,
)

ME = IPv4Address("10.0.0.5")
LOW = IPv4Address("10.0.0.1")
HIGH = IPv4Address("10.0.0.9")


def make(**kw: object) -> VrrpFsm:
    kw.setdefault("address", ME)
    return VrrpFsm(FsmConfig(name="VI_1", **kw))  # type: ignore[arg-type]


def adv(src: IPv4Address | IPv6Address, prio: int, mai: float = 1.0, v: int = 2) -> AdvertReceived:
    return AdvertReceived(src, prio, mai, v)


def master(fsm: VrrpFsm, at: float = 0.0) -> VrrpFsm:
    """Drive a started fsm to MASTER by letting its down timer expire."""
    fsm.handle(Start(), at)
    deadline = fsm.next_deadline()
    assert deadline is not None
    fsm.handle(Timer(), deadline)
    assert fsm.state is State.MASTER
    return fsm


# ----------------------------------------------------------------- timing arithmetic


@pytest.mark.parametrize(
    ("prio", "version", "mai", "skew"),
    [
        (100, 2, 1.0, 156 / 256),
        (100, 2, 4.0, 156 / 256),  # v2 skew is not scaled by the interval
        (254, 2, 1.0, 2 / 256),
        (1, 2, 1.0, 255 / 256),
        (100, 3, 1.0, 156 / 256),
        (100, 3, 2.0, 156 * 2.0 / 256),
        (200, 3, 0.5, 56 * 0.5 / 256),
        (255, 3, 1.0, 1 / 256),
    ],
)
def test_skew_and_master_down(prio: int, version: int, mai: float, skew: float) -> None:
    fsm = make(priority=prio, version=version, advert_int=mai)
    assert fsm.skew_time == skew
    assert fsm.master_down_interval == 3 * mai + skew


def test_down_timer_adverts_changes_master_down() -> None:
    fsm = make(priority=100, down_timer_adverts=5, advert_int=2.0)
    assert fsm.master_down_interval == 10.0 + 156 / 256


# ------------------------------------------------------------------------ startup


def test_start_goes_backup_with_master_down_timer() -> None:
    fsm = make(priority=100)
    assert fsm.state is State.INIT and fsm.next_deadline() is None
    out = fsm.handle(Start(), 10.0)
    assert out == [BecomeBackup(State.INIT, Reason.STARTUP)]
    assert fsm.state is State.BACKUP
    assert fsm.next_deadline() == 10.0 + 3.0 + 156 / 256


def test_backup_timeout_becomes_master_with_ordered_actions() -> None:
    fsm = make(priority=100, garp_master_repeat=3)
    fsm.handle(Start(), 0.0)
    t = 3.0 + 156 / 256
    assert fsm.handle(Timer(), t - 0.001) == []  # early timer is harmless
    out = fsm.handle(Timer(), t)
    assert out == [
        SendAdvert(100, 1.0),
        AddVips(),
        SendGratuitous(3, GarpReason.MASTER),
        BecomeMaster(State.BACKUP, Reason.MASTER_DOWN),
    ]
    assert fsm.next_deadline() == t + 1.0


def test_owner_goes_master_at_once() -> None:
    fsm = make(priority=255)
    out = fsm.handle(Start(), 2.0)
    assert BecomeMaster(State.INIT, Reason.ADDRESS_OWNER) in out
    assert out[0] == SendAdvert(255, 1.0)
    assert fsm.state is State.MASTER


def test_start_with_fault_goes_fault() -> None:
    fsm = make()
    assert fsm.handle(PriorityChanged(100, fault=True), 0.0) == []
    assert fsm.state is State.INIT
    assert fsm.handle(Start(), 0.0) == [BecomeFault(State.INIT, Reason.FAULT)]
    assert fsm.next_deadline() is None


def test_restart_after_stop() -> None:
    fsm = master(make())
    fsm.handle(Shutdown(), 5.0)
    assert fsm.state is State.STOPPED
    assert fsm.handle(Start(), 6.0) == [BecomeBackup(State.STOPPED, Reason.STARTUP)]


# ------------------------------------------------------------------- backup rx


def test_backup_accepts_higher_and_resets_timer() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(HIGH, 150), 2.0)
    assert fsm.next_deadline() == 2.0 + 3.0 + 156 / 256
    assert fsm.status().master_address == HIGH and fsm.status().master_priority == 150


def test_backup_accepts_equal_priority_even_from_lower_address() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(LOW, 100), 2.0)
    assert fsm.next_deadline() == 2.0 + 3.0 + 156 / 256


def test_backup_ignores_lower_priority_when_preempting() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    first = fsm.next_deadline()
    fsm.handle(adv(HIGH, 50), 2.0)
    assert fsm.next_deadline() == first
    out = fsm.handle(Timer(), first)  # type: ignore[arg-type]
    assert out[-1] == BecomeMaster(State.BACKUP, Reason.PREEMPT)


def test_nopreempt_backup_accepts_lower_priority() -> None:
    fsm = make(priority=100, preempt=False)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(HIGH, 50), 2.0)
    assert fsm.next_deadline() == 2.0 + 3.0 + 156 / 256


def test_backup_priority_zero_sets_skew_timer() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(HIGH, 150), 1.0)
    fsm.handle(adv(HIGH, 0), 1.5)
    assert fsm.next_deadline() == 1.5 + 156 / 256
    out = fsm.handle(Timer(), 1.5 + 156 / 256)
    assert out[-1] == BecomeMaster(State.BACKUP, Reason.PRIORITY_ZERO)
    assert fsm.counters.pri_zero_received == 1


def test_v3_backup_adopts_master_interval() -> None:
    fsm = make(priority=100, version=3, advert_int=2.0)
    fsm.handle(Start(), 0.0)
    assert fsm.next_deadline() == 6.0 + 156 * 2.0 / 256
    fsm.handle(adv(HIGH, 200, mai=0.5, v=3), 1.0)
    assert fsm.master_adver_int == 0.5
    assert fsm.next_deadline() == 1.0 + (1.5 + 156 * 0.5 / 256)


def test_v2_backup_keeps_own_interval() -> None:
    fsm = make(priority=100, advert_int=1.0)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(HIGH, 200, mai=5.0), 1.0)
    assert fsm.master_adver_int == 1.0


def test_becoming_master_resets_v3_interval_and_sends_own() -> None:
    fsm = make(priority=100, version=3, advert_int=2.0)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(HIGH, 200, mai=0.5, v=3), 1.0)
    out = fsm.handle(Timer(), 1.0 + fsm.master_down_interval)
    assert out[0] == SendAdvert(100, 2.0)
    assert fsm.master_adver_int == 2.0


# ------------------------------------------------------------------- master rx


def test_master_answers_lower_priority_at_once() -> None:
    fsm = master(make(priority=100, garp_lower_prio_repeat=0))
    out = fsm.handle(adv(HIGH, 50), 4.0)
    assert out == [SendAdvert(100, 1.0)]
    assert fsm.next_deadline() == 5.0  # advert timer restarted
    assert fsm.state is State.MASTER


def test_master_lower_prio_no_advert() -> None:
    fsm = master(make(priority=100, lower_prio_no_advert=True, garp_lower_prio_repeat=0))
    assert fsm.handle(adv(HIGH, 50), 4.0) == []


def test_master_lower_prio_garp_bursts() -> None:
    fsm = master(
        make(priority=100, garp_master_delay=0, garp_lower_prio_repeat=2, garp_lower_prio_delay=3)
    )
    out = fsm.handle(adv(HIGH, 50), 4.0)
    assert SendGratuitous(2, GarpReason.LOWER_PRIO) in out
    out = fsm.handle(Timer(), 7.0)
    assert SendGratuitous(2, GarpReason.LOWER_PRIO_DELAYED) in out


def test_master_equal_priority_lower_address_answers() -> None:
    fsm = master(make(priority=100, garp_lower_prio_repeat=0))
    assert fsm.handle(adv(LOW, 100), 4.0) == [SendAdvert(100, 1.0)]
    assert fsm.state is State.MASTER


@pytest.mark.parametrize(("src", "prio"), [(HIGH, 100), (LOW, 101), (HIGH, 255)])
def test_master_steps_down_to_better(src: IPv4Address, prio: int) -> None:
    fsm = master(make(priority=100))
    out = fsm.handle(adv(src, prio), 4.0)
    assert out == [RemoveVips(), BecomeBackup(State.MASTER, Reason.HIGHER_PRIORITY)]
    assert fsm.next_deadline() == 4.0 + 3.0 + 156 / 256
    assert fsm.counters.release_master == 1


def test_master_higher_prio_send_advert() -> None:
    fsm = master(make(priority=100, higher_prio_send_advert=True))
    out = fsm.handle(adv(HIGH, 200), 4.0)
    assert out[0] == SendAdvert(100, 1.0)
    assert out[-1] == BecomeBackup(State.MASTER, Reason.HIGHER_PRIORITY)


def test_master_priority_zero_answers() -> None:
    fsm = master(make(priority=100))
    assert fsm.handle(adv(HIGH, 0), 4.0) == [SendAdvert(100, 1.0)]
    assert fsm.state is State.MASTER


def test_master_ignores_equal_priority_from_own_address() -> None:
    fsm = master(make(priority=100))
    assert fsm.handle(adv(ME, 100), 4.0) == []


def test_v3_master_steps_down_and_adopts_interval() -> None:
    fsm = master(make(priority=100, version=3, advert_int=1.0))
    fsm.handle(adv(HIGH, 200, mai=0.25, v=3), 4.0)
    assert fsm.master_adver_int == 0.25
    assert fsm.next_deadline() == 4.0 + 0.75 + 156 * 0.25 / 256


# ----------------------------------------------------------------------- GARP timers


def test_garp_delay_and_refresh() -> None:
    fsm = make(
        priority=100,
        garp_master_delay=5.0,
        garp_master_repeat=2,
        garp_master_refresh=60.0,
        garp_master_refresh_repeat=3,
    )
    master(fsm)
    t0 = 3.0 + 156 / 256
    garps: list[tuple[float, SendGratuitous]] = []
    t = t0
    while t < t0 + 130:
        deadline = fsm.next_deadline()
        assert deadline is not None
        t = deadline
        garps += [(t, a) for a in fsm.handle(Timer(), t) if isinstance(a, SendGratuitous)]
    assert garps[0] == (t0 + 5.0, SendGratuitous(2, GarpReason.MASTER_DELAYED))
    assert garps[1] == (t0 + 65.0, SendGratuitous(3, GarpReason.REFRESH))
    assert garps[2] == (t0 + 125.0, SendGratuitous(3, GarpReason.REFRESH))
    assert len(garps) == 3


def test_garp_timers_cancelled_on_step_down() -> None:
    fsm = master(make(priority=100, garp_master_delay=5.0, garp_master_refresh=10.0))
    fsm.handle(adv(HIGH, 200), 4.0)
    down = 4.0 + fsm.master_down_interval
    assert fsm.next_deadline() == down  # no GARP timer left behind
    assert fsm.handle(Timer(), down - 0.01) == []


# ----------------------------------------------------------------- priority / fault


def test_priority_change_in_backup_shifts_timer_by_skew() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    out = fsm.handle(PriorityChanged(200), 1.0)
    assert out == [PriorityUpdated(100, 200)]
    assert fsm.next_deadline() == 3.0 + 56 / 256


def test_priority_change_in_master_used_by_next_advert() -> None:
    fsm = master(make(priority=100))
    deadline = fsm.next_deadline()
    fsm.handle(PriorityChanged(60), 4.0)
    assert fsm.state is State.MASTER
    out = fsm.handle(Timer(), deadline)  # type: ignore[arg-type]
    assert out == [SendAdvert(60, 1.0)]


def test_owner_priority_is_never_changed() -> None:
    fsm = make(priority=255)
    fsm.handle(Start(), 0.0)
    assert fsm.handle(PriorityChanged(100), 0.5) == []
    assert fsm.priority == 255


def test_owner_fault_still_applies() -> None:
    fsm = make(priority=255)
    fsm.handle(Start(), 0.0)
    out = fsm.handle(PriorityChanged(255, fault=True), 0.5)
    assert out[0] == SendAdvert(0, 1.0)
    assert fsm.state is State.FAULT


def test_master_fault_resigns_with_priority_zero() -> None:
    fsm = master(make(priority=100))
    out = fsm.handle(PriorityChanged(100, fault=True), 4.0)
    assert out == [SendAdvert(0, 1.0), RemoveVips(), BecomeFault(State.MASTER, Reason.FAULT)]
    assert fsm.next_deadline() is None
    assert fsm.counters.pri_zero_sent == 1


def test_fault_ignores_adverts_and_recovers_to_backup() -> None:
    fsm = make(priority=100, version=3, advert_int=1.0)
    fsm.handle(Start(), 0.0)
    fsm.handle(adv(HIGH, 200, mai=0.5, v=3), 0.5)
    fsm.handle(PriorityChanged(100, fault=True), 1.0)
    assert fsm.handle(adv(LOW, 50, v=3), 2.0) == []
    assert fsm.state is State.FAULT and fsm.counters.adverts_received == 2
    out = fsm.handle(PriorityChanged(100, fault=False), 3.0)
    assert out == [BecomeBackup(State.FAULT, Reason.RECOVERED)]
    assert fsm.master_adver_int == 1.0  # leaving fault forgets the adopted interval
    assert fsm.next_deadline() == 3.0 + fsm.master_down_interval


# --------------------------------------------------------------------- shutdown


def test_shutdown_master() -> None:
    fsm = master(make(priority=100))
    out = fsm.handle(Shutdown(), 4.0)
    assert out == [SendAdvert(0, 1.0), RemoveVips(), Stopped(State.MASTER, Reason.SHUTDOWN)]
    assert fsm.next_deadline() is None


@pytest.mark.parametrize("fault", [False, True])
def test_shutdown_backup_or_fault_sends_nothing(fault: bool) -> None:
    fsm = make(priority=100)
    fsm.handle(PriorityChanged(100, fault=fault), 0.0)
    fsm.handle(Start(), 0.0)
    prev = fsm.state
    assert fsm.handle(Shutdown(), 1.0) == [Stopped(prev, Reason.SHUTDOWN)]


# -------------------------------------------------------------- sync group events


def test_force_master_and_backup() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    out = fsm.handle(ForceMaster(), 1.0)
    assert out[-1] == BecomeMaster(State.BACKUP, Reason.SYNC_GROUP)
    assert fsm.handle(ForceMaster(), 1.2) == []
    out = fsm.handle(ForceBackup(), 1.5)
    assert out == [RemoveVips(), BecomeBackup(State.MASTER, Reason.SYNC_GROUP)]
    assert fsm.handle(ForceBackup(), 1.7) == []


def test_sync_fault_holds_until_released() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    assert fsm.handle(SyncFault(True), 1.0) == [BecomeFault(State.BACKUP, Reason.SYNC_GROUP)]
    fsm.handle(PriorityChanged(100, fault=True), 2.0)
    fsm.handle(SyncFault(False), 3.0)
    assert fsm.state is State.FAULT  # own fault still there
    out = fsm.handle(PriorityChanged(100, fault=False), 4.0)
    assert out == [BecomeBackup(State.FAULT, Reason.RECOVERED)]


def test_sync_member_only_wants_master() -> None:
    fsm = make(priority=100)
    fsm.join_sync_group()
    fsm.handle(Start(), 0.0)
    t = 3.0 + 156 / 256
    assert fsm.handle(Timer(), t) == []
    assert fsm.state is State.BACKUP and fsm.want_state is State.MASTER
    assert fsm.next_deadline() == t + t
    fsm.handle(adv(HIGH, 200), t + 1)
    assert fsm.want_state is State.BACKUP


# ----------------------------------------------------------------- illegal events


@pytest.mark.parametrize(
    ("setup", "event"),
    [
        ("init", adv(HIGH, 100)),
        ("init", ForceMaster()),
        ("init", ForceBackup()),
        ("backup", Start()),
        ("master", Start()),
        ("fault", ForceMaster()),
        ("stopped", Shutdown()),
        ("stopped", adv(HIGH, 100)),
        ("backup", adv(HIGH, 256)),
        ("backup", adv(HIGH, -1)),
        ("backup", adv(HIGH, 100, mai=0.0)),
        ("backup", adv(HIGH, 100, mai=float("nan"))),
        ("backup", adv(HIGH, 100, v=3)),
        ("backup", adv(IPv6Address("fe80::1"), 100)),
        ("backup", PriorityChanged(0)),
        ("backup", PriorityChanged(255)),
    ],
)
def test_illegal_events_raise_and_change_nothing(setup: str, event: object) -> None:
    fsm = make(priority=100)
    if setup != "init":
        fsm.handle(Start(), 0.0)
    if setup == "master":
        fsm.handle(Timer(), 10.0)
    elif setup == "fault":
        fsm.handle(PriorityChanged(100, fault=True), 1.0)
    elif setup == "stopped":
        fsm.handle(Shutdown(), 1.0)
    before = fsm.status()
    with pytest.raises(IllegalEvent):
        fsm.handle(event, 20.0)  # type: ignore[arg-type]
    assert fsm.status() == before


def test_time_going_backwards_is_illegal() -> None:
    fsm = make()
    fsm.handle(Start(), 5.0)
    before = fsm.status()
    with pytest.raises(IllegalEvent):
        fsm.handle(Timer(), 4.0)
    assert fsm.status() == before


def test_late_packet_does_not_overtake_due_timer() -> None:
    fsm = make(priority=100)
    fsm.handle(Start(), 0.0)
    # The down timer (3.609375) expired before the shell got round to this packet.
    out = fsm.handle(adv(HIGH, 200), 4.0)
    assert [type(a) for a in out] == [
        SendAdvert,
        AddVips,
        SendGratuitous,
        BecomeMaster,
        RemoveVips,
        BecomeBackup,
    ]
    assert fsm.state is State.BACKUP


def test_config_validation() -> None:
    addr = ip_address("10.0.0.1")
    for bad in (
        {"priority": 0},
        {"priority": 256},
        {"version": 4},
        {"advert_int": 0.0},
        {"down_timer_adverts": 0},
        {"preempt_delay": -1.0},
    ):
        with pytest.raises(ValueError):
            FsmConfig(name="x", address=addr, **bad)


def test_counters_and_status() -> None:
    fsm = master(make(priority=100))
    fsm.handle(adv(LOW, 50), 4.0)
    fsm.handle(adv(HIGH, 0), 4.5)
    fsm.handle(Shutdown(), 5.0)
    c = fsm.counters
    assert (c.adverts_sent, c.adverts_received) == (4, 2)
    assert (c.pri_zero_sent, c.pri_zero_received) == (1, 1)
    assert (c.become_master, c.release_master, c.transitions) == (1, 1, 3)
    st = fsm.status()
    assert st.state is State.STOPPED and st.last_transition == 5.0


def test_dry_run_shows_the_takeover_and_changes_nothing() -> None:
    fsm = make(priority=100, garp_master_repeat=3)
    fsm.handle(Start(), 0.0)
    t = fsm.takeover_at()
    assert t == fsm.next_deadline() == 3.0 + 156 / 256
    before, counters = fsm.status(), fsm.counters
    dry = fsm.dry_run(Timer(), t)
    assert fsm.status() == before and fsm.counters == counters  # untouched
    assert fsm.last_time == 0.0
    assert dry == fsm.handle(Timer(), t)  # the real thing does exactly that
    assert fsm.state is State.MASTER and fsm.takeover_at() is None
    assert fsm.counters.become_master == 1
