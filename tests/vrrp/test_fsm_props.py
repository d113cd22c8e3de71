"""Property tests: random event sequences and random networks.

* One machine fed random events: legal events (by an oracle written here, not
  taken from the implementation) never raise; illegal ones raise IllegalEvent
  and change nothing; the action stream stays consistent and
  ``next_deadline()`` is never in the past.
* Random lossless networks (after a lossy/partitioned phase) settle to exactly
  one master per VRID, the highest priority one when preemption is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.vrrp.fsm import (
    Action,
    AddVips,
    AdvertReceived,
    BecomeBackup,
    BecomeFault,
    BecomeMaster,
    Event,
    ForceBackup,
    ForceMaster,
    FsmConfig,
    IllegalEvent,
    PriorityChanged,
    PriorityUpdated,
    RemoveVips,
    SendAdvert,
    Shutdown,
    Start,
    State,
    Stopped,
    SyncFault,
    Timer,
    VrrpFsm,
)

from .routers import RouterNet

ME = IPv4Address("10.0.0.5")
SOURCES = [IPv4Address("10.0.0.1"), ME, IPv4Address("10.0.0.9"), IPv6Address("fe80::1")]
NEW_STATE = {
    BecomeMaster: State.MASTER,
    BecomeBackup: State.BACKUP,
    BecomeFault: State.FAULT,
    Stopped: State.STOPPED,
}

configs = st.builds(
    FsmConfig,
    name=st.just("VI"),
    address=st.just(ME),
    priority=st.integers(1, 255),
    advert_int=st.sampled_from([0.5, 1.0, 3.0]),
    version=st.sampled_from([2, 3]),
    preempt=st.booleans(),
    preempt_delay=st.sampled_from([0.0, 2.5]),
    down_timer_adverts=st.integers(1, 4),
    garp_master_delay=st.sampled_from([0.0, 5.0]),
    garp_master_refresh=st.sampled_from([0.0, 7.0]),
    garp_lower_prio_repeat=st.sampled_from([None, 0, 2]),
    lower_prio_no_advert=st.booleans(),
    higher_prio_send_advert=st.booleans(),
)

events: st.SearchStrategy[Event] = st.one_of(
    st.just(Start()),
    st.just(Timer()),
    st.just(Timer()),
    st.builds(
        AdvertReceived,
        src=st.sampled_from(SOURCES),
        priority=st.integers(-1, 256),
        max_adver_int=st.sampled_from([0.0, 0.25, 1.0, 2.0]),
        version=st.sampled_from([2, 3, 3]),
    ),
    st.builds(PriorityChanged, priority=st.integers(0, 255), fault=st.booleans()),
    st.just(Shutdown()),
    st.just(ForceMaster()),
    st.just(ForceBackup()),
    st.builds(SyncFault, active=st.booleans()),
)
steps = st.lists(
    st.tuples(events, st.sampled_from([0.0, 0.001, 0.3, 1.0, 2.7, 10.0, -0.5])),
    max_size=60,
)


def is_legal(fsm: VrrpFsm, ev: Event, now: float, last: float) -> bool:
    """Independent oracle of the documented legality rules."""
    if now < last:
        return False
    state = fsm.state
    idle = state in (State.INIT, State.STOPPED)
    cfg = fsm.config
    if isinstance(ev, Start):
        return idle
    if isinstance(ev, AdvertReceived):
        return (
            not idle
            and ev.version == cfg.version
            and 0 <= ev.priority <= 255
            and ev.max_adver_int > 0
            and ev.src.version == cfg.address.version
        )
    if isinstance(ev, PriorityChanged):
        return cfg.priority == 255 or 1 <= ev.priority <= 254
    if isinstance(ev, Shutdown):
        return state is not State.STOPPED
    if isinstance(ev, ForceMaster):
        return state in (State.BACKUP, State.MASTER)
    if isinstance(ev, ForceBackup):
        return not idle
    return True


@dataclass
class Tracker:
    """What an executor of the actions would believe."""

    priority: int
    state: State = State.INIT
    vips: bool = False

    def apply(self, fsm: VrrpFsm, actions: list[Action]) -> None:
        for i, a in enumerate(actions):
            if isinstance(a, AddVips):
                assert not self.vips
                self.vips = True
            elif isinstance(a, RemoveVips):
                assert self.vips
                self.vips = False
            elif isinstance(a, SendAdvert):
                if a.priority == 0:
                    assert self.state is State.MASTER
                    assert isinstance(actions[i + 1], RemoveVips)
                else:
                    becoming = i + 1 < len(actions) and isinstance(actions[i + 1], AddVips)
                    assert self.state is State.MASTER or becoming
                    assert a.priority == self.priority
                assert a.interval == fsm.config.advert_int
            elif isinstance(a, PriorityUpdated):
                assert a.old == self.priority and a.new != a.old
                self.priority = a.new
            elif isinstance(a, (BecomeMaster, BecomeBackup, BecomeFault, Stopped)):
                assert a.previous is self.state
                assert NEW_STATE[type(a)] is not self.state
                self.state = NEW_STATE[type(a)]


@settings(max_examples=300, deadline=None)
@given(configs, st.booleans(), steps)
def test_random_event_sequences(cfg: FsmConfig, sync: bool, seq: list[tuple[Event, float]]) -> None:
    fsm = VrrpFsm(cfg)
    if sync:
        fsm.join_sync_group()
    view = Tracker(cfg.priority)
    clock, last = 0.0, -math.inf  # a fresh machine accepts any first time
    for ev, dt in seq:
        now = clock + dt
        legal = is_legal(fsm, ev, now, last)
        before = fsm.status()
        try:
            actions = fsm.handle(ev, now)
        except IllegalEvent:
            assert not legal, (ev, now, before)
            assert fsm.status() == before
            continue
        assert legal, (ev, now, before)
        clock = last = now
        view.apply(fsm, actions)
        # invariants
        assert view.state is fsm.state
        assert view.vips == (fsm.state is State.MASTER)
        deadline = fsm.next_deadline()
        assert deadline is None or deadline > now
        assert (deadline is None) == (fsm.state not in (State.BACKUP, State.MASTER))
        faulty = fsm.tracker_fault or fsm.forced_fault
        if fsm.state not in (State.INIT, State.STOPPED):
            assert (fsm.state is State.FAULT) == faulty
        if cfg.priority == 255:
            assert fsm.priority == 255
        else:
            assert 1 <= fsm.priority <= 254
        assert view.priority == fsm.priority


# ----------------------------------------------------------------- network property

network = st.fixed_dictionaries(
    {
        "prios": st.lists(st.integers(1, 254), min_size=2, max_size=4),
        "version": st.sampled_from([2, 3]),
        "adv": st.sampled_from([1.0, 0.5]),
        "starts": st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.5, 7.0]), min_size=4, max_size=4),
        "loss": st.sampled_from([0.0, 0.3, 0.7]),
        "latency": st.sampled_from([0.0, 0.002, 0.05]),
        "split": st.lists(st.integers(0, 2), min_size=4, max_size=4),
        "seed": st.integers(0, 1000),
    }
)


@settings(max_examples=60, deadline=None)
@given(network)
def test_random_networks_settle_to_the_best_single_master(p: dict[str, object]) -> None:
    prios: list[int] = p["prios"]  # type: ignore[assignment]
    starts: list[float] = p["starts"]  # type: ignore[assignment]
    split: list[int] = p["split"]  # type: ignore[assignment]
    adv: float = p["adv"]  # type: ignore[assignment]
    net = RouterNet(latency=p["latency"], loss=p["loss"], seed=p["seed"])  # type: ignore[arg-type]
    names = [f"r{i}" for i in range(len(prios))]
    for i, (name, prio) in enumerate(zip(names, prios, strict=True)):
        net.add(name, f"10.0.0.{i + 1}", priority=prio, version=p["version"], advert_int=adv)
    for when, name in sorted(zip(starts, names, strict=False)):
        net.run_until(when)
        net.start(name)
    net.partition(*([n for n, s in zip(names, split, strict=False) if s == k] for k in (1, 2)))
    net.run_until(20.0)
    net.heal()
    net.loss = 0.0
    settle = (len(prios) + 1) * (4 * adv + 1.0)
    net.run_until(20.0 + settle)
    masters = net.masters()
    assert len(masters) == 1, masters
    best = max(prios)
    assert net[masters[0]].fsms[1].priority == best
    # and it stays that way
    net.run_until(20.0 + 2 * settle)
    assert net.masters() == masters


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 254), st.booleans()), min_size=2, max_size=4),
    st.integers(0, 1000),
)
def test_nopreempt_networks_still_settle_to_one_master(
    spec: list[tuple[int, bool]], seed: int
) -> None:
    net = RouterNet(loss=0.5, seed=seed, latency=0.001)
    for i, (prio, preempt) in enumerate(spec):
        net.add(f"r{i}", f"10.0.0.{i + 1}", priority=prio, preempt=preempt)
    net.start()
    net.run_until(30.0)
    net.loss = 0.0
    net.run_until(30.0 + (len(spec) + 1) * 5.0)
    assert len(net.masters()) == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 254), st.integers(1, 254), st.integers(0, 1000))
def test_sync_group_pairs_settle_together(pa: int, pb: int, seed: int) -> None:
    net = RouterNet(loss=0.4, seed=seed, latency=0.001)
    net.add_multi("A", "10.0.0.1", {1: {"priority": pa}, 2: {"priority": pa}}, sync=True)
    net.add_multi("B", "10.0.0.2", {1: {"priority": pb}, 2: {"priority": pb}}, sync=True)
    net.start()
    net.run_until(30.0)
    net.loss = 0.0
    net.run_until(50.0)
    m1, m2 = net.masters(1), net.masters(2)
    assert len(m1) == 1 and m1 == m2
    if pa != pb:
        assert m1 == (["A"] if pa > pb else ["B"])
