"""Sync groups: direct SyncGroup tests and two-router scenarios in the RouterNet."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from pyvrrpd.vrrp.fsm import (
    AdvertReceived,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    FsmConfig,
    PriorityChanged,
    Reason,
    RemoveVips,
    SendAdvert,
    Start,
    State,
    Timer,
    VrrpFsm,
)
from pyvrrpd.vrrp.sync import GroupStateChanged, SyncGroup

from .routers import RouterNet

PEER = IPv4Address("10.0.0.9")
MDI_100 = 3.0 + 156 / 256
MDI_150 = 3.0 + 106 / 256


def group(n: int = 2, **kw: object) -> tuple[SyncGroup, list[VrrpFsm]]:
    fsms = [
        VrrpFsm(FsmConfig(name=f"VI_{i}", address=IPv4Address("10.0.0.5"), **kw))  # type: ignore[arg-type]
        for i in range(1, n + 1)
    ]
    return SyncGroup("G", fsms), fsms


def start_all(g: SyncGroup, fsms: list[VrrpFsm], now: float = 0.0) -> None:
    for m in fsms:
        g.handle(m.name, Start(), now)


def to_master(g: SyncGroup, fsms: list[VrrpFsm]) -> float:
    start_all(g, fsms)
    g.handle_timers(MDI_100)
    assert all(m.state is State.MASTER for m in fsms)
    return MDI_100


def test_group_construction_rules() -> None:
    g, fsms = group()
    assert all(m.in_sync_group for m in fsms) and g.members == tuple(fsms)
    with pytest.raises(ValueError):
        SyncGroup("H", [fsms[0]])  # already a member
    with pytest.raises(ValueError):
        SyncGroup("E", [])
    lone = VrrpFsm(FsmConfig(name="X", address=PEER))
    with pytest.raises(ValueError):
        SyncGroup("D", [lone, lone])


def test_members_go_master_together() -> None:
    g, fsms = group(3)
    start_all(g, fsms)
    assert g.state is State.BACKUP
    out = g.handle_timers(MDI_100)
    became = [name for name, a in out if isinstance(a, BecomeMaster)]
    assert sorted(became) == ["VI_1", "VI_2", "VI_3"]
    assert ("G", GroupStateChanged("G", State.BACKUP, State.MASTER)) in out
    assert g.state is State.MASTER


def test_member_held_while_another_hears_a_master() -> None:
    g, fsms = group(2)
    start_all(g, fsms)
    # VI_2 keeps hearing a better master; VI_1's timer expires but it is held back.
    for k in range(1, 20):
        g.handle("VI_2", AdvertReceived(PEER, 200, 1.0, 2), float(k))
        g.handle_timers(float(k))
    assert fsms[0].state is State.BACKUP and fsms[0].want_state is State.MASTER
    assert fsms[1].state is State.BACKUP and fsms[1].want_state is State.BACKUP
    # peer stops: VI_2 times out, and both go MASTER at that instant
    t = 19.0 + MDI_100
    out = g.handle_timers(t)
    assert {n for n, a in out if isinstance(a, BecomeMaster)} == {"VI_1", "VI_2"}


def test_one_member_stepping_down_takes_the_others_to_backup() -> None:
    g, fsms = group(3)
    now = to_master(g, fsms) + 0.5
    out = g.handle("VI_2", AdvertReceived(PEER, 200, 1.0, 2), now)
    assert [m.state for m in fsms] == [State.BACKUP] * 3
    forced = [(n, a) for n, a in out if n in ("VI_1", "VI_3")]
    assert ("VI_1", RemoveVips()) in forced
    assert ("VI_1", BecomeBackup(State.MASTER, Reason.SYNC_GROUP)) in forced
    assert not any(isinstance(a, SendAdvert) for _, a in forced)  # no priority 0 advert
    assert g.state is State.BACKUP


def test_fault_in_one_member_faults_the_group_and_recovers_together() -> None:
    g, fsms = group(2)
    now = to_master(g, fsms) + 0.5
    out = g.handle("VI_1", PriorityChanged(100, fault=True), now)
    assert [m.state for m in fsms] == [State.FAULT, State.FAULT]
    assert ("VI_1", BecomeFault(State.MASTER, Reason.FAULT)) in out
    assert ("VI_2", BecomeFault(State.MASTER, Reason.SYNC_GROUP)) in out
    assert ("VI_2", SendAdvert(0, 1.0)) in out  # a forced-fault master resigns too
    assert g.state is State.FAULT
    out = g.handle("VI_1", PriorityChanged(100, fault=False), now + 1)
    assert [m.state for m in fsms] == [State.BACKUP, State.BACKUP]
    assert ("VI_2", BecomeBackup(State.FAULT, Reason.SYNC_GROUP)) in out
    assert g.state is State.BACKUP


def test_group_stays_fault_until_every_member_recovers() -> None:
    g, fsms = group(2)
    start_all(g, fsms)
    g.handle("VI_1", PriorityChanged(100, fault=True), 1.0)
    g.handle("VI_2", PriorityChanged(100, fault=True), 1.0)
    g.handle("VI_1", PriorityChanged(100, fault=False), 2.0)
    assert [m.state for m in fsms] == [State.FAULT, State.FAULT]
    g.handle("VI_2", PriorityChanged(100, fault=False), 3.0)
    assert [m.state for m in fsms] == [State.BACKUP, State.BACKUP]


def test_fault_before_start_keeps_every_member_out() -> None:
    g, fsms = group(2)
    g.handle("VI_2", PriorityChanged(100, fault=True), 0.0)
    start_all(g, fsms)
    assert [m.state for m in fsms] == [State.FAULT, State.FAULT]
    assert g.next_deadline() is None


def test_owner_in_group_waits_for_the_group() -> None:
    fsms = [
        VrrpFsm(FsmConfig(name="A", address=PEER, priority=255)),
        VrrpFsm(FsmConfig(name="B", address=PEER, priority=100)),
    ]
    g = SyncGroup("G", fsms)
    start_all(g, fsms)
    assert [m.state for m in fsms] == [State.BACKUP, State.BACKUP]
    g.handle_timers(3.0 + 1 / 256)
    assert fsms[0].want_state is State.MASTER and fsms[0].state is State.BACKUP
    g.handle_timers(MDI_100)
    assert [m.state for m in fsms] == [State.MASTER, State.MASTER]


def test_next_deadline_is_min_of_members() -> None:
    g, fsms = group(2)
    fsms[1].handle(PriorityChanged(200), 0.0)
    start_all(g, fsms)
    assert g.next_deadline() == 3.0 + 56 / 256
    assert g.handle_timers(1.0) == []
    # a plain Timer to one member is also routed fine
    assert g.handle("VI_1", Timer(), 1.0) == []


# ------------------------------------------------------------------ network scenarios


def sync_pair() -> RouterNet:
    net = RouterNet()
    net.add_multi("A", "10.0.0.1", {1: {"priority": 150}, 2: {"priority": 150}}, sync=True)
    net.add_multi("B", "10.0.0.2", {1: {"priority": 100}, 2: {"priority": 100}}, sync=True)
    return net


def test_sync_cold_election_moves_together() -> None:
    net = sync_pair()
    net.start()
    net.run_until(10.0)
    assert net.masters(1) == ["A"] and net.masters(2) == ["A"]
    assert net.became_master("A", 1) == [MDI_150] == net.became_master("A", 2)


def test_sync_fault_fails_whole_group_over() -> None:
    net = sync_pair()
    net.start()
    net.run_until(10.2)
    net.inject("A", PriorityChanged(150, fault=True), vrid=1)
    assert net["A"].state(1) is State.FAULT and net["A"].state(2) is State.FAULT
    net.run_until(20.0)
    # B heard priority 0 on both VRIDs and took both over at its skew time
    assert net.became_master("B", 1) == [10.2 + 156 / 256]
    assert net.became_master("B", 2) == [10.2 + 156 / 256]
    net.inject("A", PriorityChanged(150, fault=False), vrid=1)
    t_rec = net.now
    net.run_until(40.0)
    assert net.masters(1) == ["A"] and net.masters(2) == ["A"]
    assert net.became_master("A", 1)[-1] == t_rec + MDI_150
    assert net.became_master("A", 2)[-1] == t_rec + MDI_150


def test_sync_preempt_needs_every_member() -> None:
    net = sync_pair()
    net.start()
    net.run_until(10.2)
    # Only B's VI_1 out-prioritises A: the group is held (keepalived avoids thrashing).
    net.inject("B", PriorityChanged(200), vrid=1)
    net.run_until(30.0)
    assert net.masters(1) == ["A"] and net.masters(2) == ["A"]
    assert net["B"].fsms[1].want_state is State.MASTER
    # Now VI_2 too: B's group takes both over, and A's group follows to BACKUP.
    net.inject("B", PriorityChanged(200), vrid=2)
    net.run_until(50.0)
    assert net.masters(1) == ["B"] and net.masters(2) == ["B"]
    assert net["A"].group is not None and net["A"].group.state is State.BACKUP
    a_back = [t for t, _, v, a in net.transitions("A") if isinstance(a, BecomeBackup) and v]
    assert len(a_back) >= 4  # 2 at start + both members on the step-down


def test_sync_partition_and_heal() -> None:
    net = sync_pair()
    net.start()
    net.run_until(10.0)
    net.partition(["A"], ["B"])
    net.run_until(20.0)
    assert net.masters(1) == ["A", "B"] and net.masters(2) == ["A", "B"]
    net.heal()
    net.run_until(25.0)
    assert net.masters(1) == ["A"] and net.masters(2) == ["A"]
    assert net["B"].group is not None and net["B"].group.state is State.BACKUP
