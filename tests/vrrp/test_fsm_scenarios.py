"""Scenario tests: two and three routers exchanging adverts in memory on a float clock.

All interesting times are binary fractions, so the expected takeover instants
are asserted as exact floats computed the same way the RFC states them.
"""

from __future__ import annotations

from pyvrrpd.vrrp.fsm import (
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    PriorityChanged,
    Reason,
    SendAdvert,
    State,
)
from pyvrrpd.vrrp.priority import TrackerKind, TrackerStatus, effective_priority

from .routers import RouterNet


def skew2(prio: int) -> float:
    """VRRPv2 skew time."""
    return (256 - prio) / 256


def mdi2(prio: int, adv: float = 1.0) -> float:
    """VRRPv2 master down interval."""
    return 3 * adv + skew2(prio)


def mdi3(prio: int, mai: float) -> float:
    """VRRPv3 master down interval."""
    return 3 * mai + (256 - prio) * mai / 256


def pair() -> RouterNet:
    net = RouterNet()
    net.add("r1", "10.0.0.1", priority=150)
    net.add("r2", "10.0.0.2", priority=100)
    return net


def last_advert_before(net: RouterNet, node: str, t: float, vrid: int = 1) -> float:
    return max(at for at, prio in net.adverts(node, vrid) if at <= t and prio > 0)


# ------------------------------------------------------------------------ election


def test_cold_election_two_routers() -> None:
    net = pair()
    net.start()
    net.run_until(20.0)
    assert net.masters() == ["r1"]
    assert net.became_master("r1") == [mdi2(150)]
    assert net.became_master("r2") == []
    assert net["r2"].state() is State.BACKUP
    # the master advertises every second from the election on
    times = [t for t, _ in net.adverts("r1")]
    assert times[:3] == [mdi2(150), mdi2(150) + 1.0, mdi2(150) + 2.0]


def test_cold_election_three_routers_start_order_irrelevant() -> None:
    net = RouterNet()
    net.add("r1", "10.0.0.1", priority=100)
    net.add("r2", "10.0.0.2", priority=200)
    net.add("r3", "10.0.0.3", priority=150)
    net.start("r3", "r1", "r2")
    net.run_until(30.0)
    assert net.masters() == ["r2"]
    assert net.became_master("r2") == [mdi2(200)]
    assert all(net[n].state() is State.BACKUP for n in ("r1", "r3"))
    # the backups follow the master: r2 is their recorded master
    st = net["r1"].fsms[1].status()
    assert str(st.master_address) == "10.0.0.2" and st.master_priority == 200


def test_late_joiner_with_lower_priority_stays_backup() -> None:
    net = pair()
    net.start("r1")
    net.run_until(10.0)
    net.start("r2")
    net.run_until(30.0)
    assert net.masters() == ["r1"] and net.became_master("r2") == []


# ------------------------------------------------------------------------ failover


def test_failover_after_master_silence_exact_time() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    net.crash("r1")
    net.run_until(20.0)
    t_last = last_advert_before(net, "r1", 10.2)
    assert net.became_master("r2") == [t_last + mdi2(100)]
    assert net.masters() == ["r2"]
    assert net["r2"].fsms[1].status().counters.become_master == 1


def test_three_routers_failover_goes_to_next_best() -> None:
    net = RouterNet()
    net.add("r1", "10.0.0.1", priority=200)
    net.add("r2", "10.0.0.2", priority=150)
    net.add("r3", "10.0.0.3", priority=100)
    net.start()
    net.run_until(8.0)
    net.crash("r1")
    net.run_until(30.0)
    t_last = last_advert_before(net, "r1", 8.0)
    assert net.became_master("r2") == [t_last + mdi2(150)]
    assert net.became_master("r3") == []
    assert net.masters() == ["r2"]


def test_priority_zero_takeover_at_skew() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    net.shutdown("r1")
    net.run_until(20.0)
    assert net["r1"].state() is State.STOPPED
    assert net.became_master("r2") == [10.2 + skew2(100)]
    became = [a for _, _, _, a in net.transitions("r2") if isinstance(a, BecomeMaster)]
    assert became == [BecomeMaster(State.BACKUP, Reason.PRIORITY_ZERO)]
    assert net["r2"].fsms[1].counters.pri_zero_received == 1


# ------------------------------------------------------------------------ preemption


def test_preempt_back_when_better_router_returns() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    net.crash("r1")
    net.run_until(20.1)
    net.revive("r1")
    net.run_until(40.0)
    # r1 ignores r2's lower adverts and takes over when its own down timer expires.
    assert net.became_master("r1") == [mdi2(150), 20.1 + mdi2(150)]
    back = [(t, a) for t, _, _, a in net.transitions("r2") if isinstance(a, BecomeBackup)]
    assert back[-1] == (20.1 + mdi2(150), BecomeBackup(State.MASTER, Reason.HIGHER_PRIORITY))
    assert net.masters() == ["r1"]
    assert net.actions("r1")[-1][1] != BecomeMaster(State.BACKUP, Reason.MASTER_DOWN)
    reason = [a for _, _, _, a in net.transitions("r1") if isinstance(a, BecomeMaster)][-1]
    assert reason == BecomeMaster(State.BACKUP, Reason.PREEMPT)


def test_nopreempt_keeps_lower_master() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    net.crash("r1")
    net.run_until(20.1)
    net.revive("r1", preempt=False)
    net.run_until(60.0)
    assert net.masters() == ["r2"]
    assert net.became_master("r1") == [mdi2(150)]
    assert net["r1"].state() is State.BACKUP


def test_preempt_delay() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    net.crash("r1")
    net.run_until(20.1)
    net.revive("r1", preempt_delay=10.0)
    net.run_until(60.0)
    # The delay starts at the first lower priority advert r1 hears; adverts are
    # accepted (timer reset) while the delay runs, then ignored.
    heard = [d.time for d in net.deliveries if d.dst == "r1" and d.time > 20.1]
    t_first = heard[0]
    accepted = [t for t in heard if t < t_first + 10.0]
    takeover = accepted[-1] + mdi2(150)
    assert net.became_master("r1") == [mdi2(150), takeover]
    assert takeover >= t_first + 10.0
    assert takeover - 20.1 > mdi2(150) + 9.0  # much later than without the delay
    assert net.masters() == ["r1"]


def test_equal_priority_tie_broken_by_higher_address() -> None:
    net = RouterNet(latency=0.01)
    net.add("r1", "10.0.0.1", priority=100)
    net.add("r2", "10.0.0.2", priority=100)
    net.start()
    net.run_until(20.0)
    t0 = mdi2(100)
    # Both time out together and become master; each hears the other 10 ms later
    # and the lower address gives way.
    assert net.became_master("r1") == [t0] and net.became_master("r2") == [t0]
    r1_back = [(t, a) for t, _, _, a in net.transitions("r1") if isinstance(a, BecomeBackup)]
    assert r1_back[1:] == [(t0 + 0.01, BecomeBackup(State.MASTER, Reason.HIGHER_PRIORITY))]
    assert net.masters() == ["r2"]


def test_equal_priority_ipv6_tie_break() -> None:
    net = RouterNet(latency=0.01)
    net.add("r1", "fe80::2", priority=100, version=3)
    net.add("r2", "fe80::1", priority=100, version=3)
    net.start()
    net.run_until(20.0)
    assert net.masters() == ["r1"]


# ------------------------------------------------------------------------ owner


def test_owner_is_master_immediately_and_preempts() -> None:
    net = RouterNet()
    net.add("own", "10.0.0.1", priority=255)
    net.add("r2", "10.0.0.2", priority=254)
    net.start("r2")
    net.run_until(10.0)
    assert net.masters() == ["r2"]
    net.start("own")
    net.run_until(20.0)
    assert net.became_master("own") == [10.0]
    back = [t for t, _, _, a in net.transitions("r2") if isinstance(a, BecomeBackup)]
    assert back == [0.0, 10.0]
    assert net.masters() == ["own"]


def test_owner_restart_reclaims_at_once() -> None:
    net = RouterNet()
    net.add("own", "10.0.0.1", priority=255)
    net.add("r2", "10.0.0.2", priority=100)
    net.start()
    net.run_until(5.0)
    net.crash("own")
    net.run_until(15.0)
    assert net.masters() == ["r2"]
    net.revive("own")
    net.run_until(15.5)
    assert net.masters() == ["own"]
    assert net.became_master("own")[-1] == 15.0


# ------------------------------------------------------------------------ trackers


def test_tracker_weight_moves_master() -> None:
    net = RouterNet()
    net.add("r1", "10.0.0.1", priority=150)
    net.add("r2", "10.0.0.2", priority=120)
    net.start()
    net.run_until(10.2)
    eth = TrackerStatus("eth1", TrackerKind.INTERFACE, up=False, weight=-60)
    res = effective_priority(150, [eth])
    assert res.priority == 90 and not res.blocks_up
    net.inject("r1", PriorityChanged(res.priority, res.blocks_up))
    net.run_until(30.0)
    # r2 accepted r1's last priority-150 advert, then ignores the 90 ones.
    t_last150 = max(t for t, p in net.adverts("r1") if p == 150)
    assert net.became_master("r2") == [t_last150 + mdi2(120)]
    assert net.masters() == ["r2"]
    # r1 heard 120 > 90 and stepped down at that same instant
    back = [t for t, _, _, a in net.transitions("r1") if isinstance(a, BecomeBackup)]
    assert back[-1] == t_last150 + mdi2(120)
    # interface back up: priority 150 again, r1 preempts after its down interval
    net.inject("r1", PriorityChanged(effective_priority(150, []).priority))
    net.run_until(60.0)
    # the running down timer (from r2's last accepted advert) is shifted by the
    # skew difference, so r1 takes over one priority-150 down interval after it
    t_acc = max(d.time for d in net.deliveries if d.dst == "r1" and d.time <= 30.0)
    assert net.became_master("r1")[-1] == t_acc + mdi2(150)
    assert net.masters() == ["r1"]


def test_weight_zero_tracker_fault_and_recovery() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    down = effective_priority(150, [TrackerStatus("chk", TrackerKind.SCRIPT, up=False)])
    assert down.fault
    out = net.inject("r1", PriorityChanged(down.priority, down.blocks_up))
    assert out == [
        SendAdvert(0, 1.0),
        *out[1:2],
        BecomeFault(State.MASTER, Reason.FAULT),
    ]
    net.run_until(20.0)
    assert net["r1"].state() is State.FAULT
    assert net.became_master("r2") == [10.2 + skew2(100)]
    up = effective_priority(150, [TrackerStatus("chk", TrackerKind.SCRIPT, up=True)])
    net.inject("r1", PriorityChanged(up.priority, up.blocks_up))
    assert net["r1"].state() is State.BACKUP
    net.run_until(40.0)
    assert net.became_master("r1") == [mdi2(150), 20.0 + mdi2(150)]
    assert net.masters() == ["r1"]


# ------------------------------------------------------------------------ VRRPv3


def test_v3_backup_adopts_master_interval_for_failover() -> None:
    net = RouterNet()
    net.add("r1", "10.0.0.1", priority=150, version=3, advert_int=0.5)
    net.add("r2", "10.0.0.2", priority=100, version=3, advert_int=2.0)
    net.start()
    net.run_until(10.1)
    assert net.became_master("r1") == [mdi3(150, 0.5)]
    assert net["r2"].fsms[1].master_adver_int == 0.5
    net.crash("r1")
    net.run_until(30.0)
    t_last = last_advert_before(net, "r1", 10.1)
    assert net.became_master("r2") == [t_last + mdi3(100, 0.5)]
    # as master r2 advertises its own 2 s interval
    sent = [t for t, _ in net.adverts("r2")]
    assert sent[1] - sent[0] == 2.0


def test_v3_centisecond_intervals() -> None:
    net = RouterNet()
    net.add("r1", "2001:db8::1", priority=200, version=3, advert_int=0.25)
    net.add("r2", "2001:db8::2", priority=100, version=3, advert_int=0.25)
    net.start()
    net.run_until(5.0)
    assert net.became_master("r1") == [mdi3(200, 0.25)]
    assert net.masters() == ["r1"]


# ------------------------------------------------------------------- loss/partition


def test_two_lost_adverts_do_not_cause_failover() -> None:
    lost = {5, 6}  # r1's 6th and 7th adverts (0-based count)
    count = {"n": 0}

    def drop(t: float, src: str, dst: str, vrid: int, adv: SendAdvert) -> bool:
        if src != "r1":
            return False
        count["n"] += 1
        return count["n"] - 1 in lost

    net = pair()
    net.drop = drop
    net.start()
    net.run_until(30.0)
    assert net.became_master("r2") == []


def test_three_lost_adverts_cause_brief_takeover_and_reassert() -> None:
    count = {"n": 0}

    def drop(t: float, src: str, dst: str, vrid: int, adv: SendAdvert) -> bool:
        if src != "r1":
            return False
        count["n"] += 1
        return 5 <= count["n"] - 1 <= 7

    net = pair()
    net.drop = drop
    net.start()
    net.run_until(30.0)
    r1_sent = [t for t, _ in net.adverts("r1")]
    t_last_ok = r1_sent[4]
    takeover = t_last_ok + mdi2(100)
    assert net.became_master("r2") == [takeover]
    # r1 answers r2's lower advert at once, and r2 steps down at that instant
    answer = [t for t in r1_sent if t == takeover]
    assert answer == [takeover]
    back = [t for t, _, _, a in net.transitions("r2") if isinstance(a, BecomeBackup)]
    assert back[-1] == takeover
    assert net.masters() == ["r1"]


def test_random_loss_then_recovery_single_master() -> None:
    net = RouterNet(loss=0.4, seed=7)
    net.add("r1", "10.0.0.1", priority=150)
    net.add("r2", "10.0.0.2", priority=120)
    net.add("r3", "10.0.0.3", priority=100)
    net.start()
    net.run_until(120.0)
    flaps = sum(len(net.became_master(n)) for n in ("r1", "r2", "r3"))
    assert flaps > 1  # the loss did cause extra elections
    net.loss = 0.0
    net.run_until(130.0)
    assert net.masters() == ["r1"]


def test_partition_split_brain_then_heal() -> None:
    net = pair()
    net.start()
    net.run_until(10.2)
    net.partition(["r1"], ["r2"])
    net.run_until(20.3)
    t_last = last_advert_before(net, "r1", 10.2)
    assert net.became_master("r2") == [t_last + mdi2(100)]
    assert sorted(net.masters()) == ["r1", "r2"]  # split brain
    net.heal()
    net.run_until(30.0)
    assert net.masters() == ["r1"]
    # the first advert sent after the heal settles it at once
    first = min(t for n in ("r1", "r2") for t, _ in net.adverts(n) if t >= 20.3)
    back = [t for t, _, _, a in net.transitions("r2") if isinstance(a, BecomeBackup)]
    assert back[-1] == first


def test_three_way_partition_and_heal() -> None:
    net = RouterNet()
    for i, p in enumerate((100, 200, 150), start=1):
        net.add(f"r{i}", f"10.0.0.{i}", priority=p)
    net.start()
    net.run_until(10.0)
    net.partition(["r1"], ["r2"], ["r3"])
    net.run_until(20.0)
    assert sorted(net.masters()) == ["r1", "r2", "r3"]
    net.heal()
    net.run_until(25.0)
    assert net.masters() == ["r2"]


def test_latency_larger_than_skew_gap_gives_brief_dual_master() -> None:
    net = RouterNet(latency=0.2)
    net.add("r1", "10.0.0.1", priority=101)
    net.add("r2", "10.0.0.2", priority=100)
    net.start()
    net.run_until(30.0)
    # r2's timer expires 1/256 s after r1 won, before r1's advert arrives 0.2 s later.
    assert net.became_master("r2") == [mdi2(100)]
    back = [t for t, _, _, a in net.transitions("r2") if isinstance(a, BecomeBackup)]
    assert back[-1] == mdi2(101) + 0.2
    assert net.masters() == ["r1"]


def test_advert_received_counters_match_deliveries() -> None:
    net = pair()
    net.start()
    net.run_until(20.0)
    delivered = sum(1 for d in net.deliveries if d.dst == "r2")
    assert net["r2"].fsms[1].counters.adverts_received == delivered
    assert net["r1"].fsms[1].counters.adverts_sent == len(net.adverts("r1"))
