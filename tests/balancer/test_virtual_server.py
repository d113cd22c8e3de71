"""The real-server, quorum and sorry-server rules of one virtual server (pure)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.balancer.mapping import RealServerSpec, VirtualServerSpec
from pyvrrpd.balancer.virtual_server import Notice, RunScript, VirtualServerState
from pyvrrpd.checks.base import CheckResult, CheckState
from pyvrrpd.ipvs.model import FwdMethod, Protocol, Service, ServiceKey

KEY = ServiceKey.of(Protocol.TCP, "10.0.0.1", 80)
UP = CheckState(up=True, has_run=True, last=CheckResult(True, "ok"))
DOWN = CheckState(up=False, has_run=True, last=CheckResult(False, "refused"))


def rs(n: int, weight: int = 1, **kw: object) -> RealServerSpec:
    address = ip_address(f"192.168.0.{n}")
    return RealServerSpec(
        name=f"[{address}]:80",
        address=address,
        nat_port=80,
        weight=weight,
        fwd=FwdMethod.NAT,
        notify_up=(f"/bin/up{n}",),
        notify_down=(f"/bin/down{n}",),
        **kw,  # type: ignore[arg-type]
    )


def vs(servers: list[RealServerSpec], **kw: object) -> VirtualServerSpec:
    return VirtualServerSpec(
        name="[10.0.0.1]:tcp:80",
        services=(Service(KEY, "rr"),),
        real_servers=tuple(servers),
        quorum_up=("/bin/qup",),
        quorum_down=("/bin/qdown",),
        **kw,  # type: ignore[arg-type]
    )


def state(spec: VirtualServerSpec, alpha: bool = False, checks: int = 1) -> VirtualServerState:
    ids = [[(f"c{i}", alpha) for i in range(checks)] for _ in spec.real_servers]
    st_ = VirtualServerState(spec, ids)
    st_.start()
    return st_


def pool(s: VirtualServerState) -> dict[str, int]:
    """{last octet:port -> weight} of the only service."""
    ((_, entry),) = s.desired().items()
    return {f"{d.address.packed[-1]}": d.weight for d in entry.dests.values()}


def scripts(actions: list[Notice | RunScript]) -> list[str]:
    return [a.script[0] for a in actions if isinstance(a, RunScript)]


def test_servers_start_alive_and_leave_on_failure() -> None:
    s = state(vs([rs(1), rs(2, weight=3)]))
    assert pool(s) == {"1": 1, "2": 3}
    assert scripts(s.on_check(0, "c0", DOWN)) == ["/bin/down1"]
    assert pool(s) == {"2": 3}
    assert scripts(s.on_check(0, "c0", DOWN)) == []  # no change, no script
    assert scripts(s.on_check(0, "c0", UP)) == ["/bin/up1"]
    assert pool(s) == {"1": 1, "2": 3}


def test_alpha_starts_down_and_notifies_first_failure() -> None:
    s = state(vs([rs(1), rs(2)]), alpha=True)
    assert pool(s) == {}
    assert not s.quorum_up
    assert scripts(s.on_check(0, "c0", DOWN)) == ["/bin/down1"]  # first result of alpha
    assert scripts(s.on_check(0, "c0", DOWN)) == []
    assert scripts(s.on_check(1, "c0", UP)) == ["/bin/up2", "/bin/qup"]
    assert pool(s) == {"2": 1}


def test_all_checks_must_be_up() -> None:
    s = state(vs([rs(1)]), checks=2)
    s.on_check(0, "c0", DOWN)
    s.on_check(0, "c1", DOWN)
    assert pool(s) == {}
    assert s.on_check(0, "c0", UP) == [] and pool(s) == {}  # c1 still down
    s.on_check(0, "c1", UP)
    assert pool(s) == {"1": 1}


def test_inhibit_keeps_weight_zero() -> None:
    s = state(vs([rs(1, weight=5, inhibit=True), rs(2)]))
    s.on_check(0, "c0", DOWN)
    assert pool(s) == {"1": 0, "2": 1}
    s.on_check(0, "c0", UP)
    assert pool(s) == {"1": 5, "2": 1}


def test_inhibit_with_alpha_is_in_table_from_start() -> None:
    s = state(vs([rs(1, inhibit=True)]), alpha=True)
    assert pool(s) == {"1": 0}


def test_start_scripts() -> None:
    spec = vs([rs(1)])
    assert scripts(VirtualServerState(spec, [[("c0", False)]]).start()) == ["/bin/qup"]
    # quorum down at start: quorum_down only runs when there is a sorry server
    assert scripts(VirtualServerState(spec, [[("c0", True)]]).start()) == []
    sorry = replace(spec, sorry_server=rs(9))
    st_ = VirtualServerState(sorry, [[("c0", True)]])
    assert scripts(st_.start()) == ["/bin/qdown"]
    assert pool(st_) == {"9": 1}


def test_quorum_and_sorry_server() -> None:
    spec = vs([rs(1, weight=2), rs(2, weight=2), rs(3, weight=2)], quorum=4,
              sorry_server=rs(9))  # fmt: skip
    s = state(spec)
    assert s.quorum_up and pool(s) == {"1": 2, "2": 2, "3": 2}
    s.on_check(0, "c0", DOWN)
    assert s.quorum_up and pool(s) == {"2": 2, "3": 2}
    acts = s.on_check(1, "c0", DOWN)  # 2 < 4: lost
    assert scripts(acts) == ["/bin/down2", "/bin/qdown"]
    assert not s.quorum_up and pool(s) == {"9": 1}  # alive server 3 leaves too
    acts = s.on_check(0, "c0", UP)
    assert scripts(acts) == ["/bin/up1", "/bin/qup"]
    assert pool(s) == {"1": 2, "3": 2}


def test_sorry_server_inhibit() -> None:
    spec = vs([rs(1)], sorry_server=rs(9, inhibit=True))
    s = state(spec)
    assert pool(s) == {"1": 1, "9": 0}
    s.on_check(0, "c0", DOWN)
    assert pool(s) == {"9": 1}
    s.on_check(0, "c0", UP)
    assert pool(s) == {"1": 1, "9": 0}


def test_inhibited_alive_server_gets_zero_while_sorry_is_in() -> None:
    spec = vs([rs(1, weight=1, inhibit=True), rs(2, weight=1)], quorum=2, sorry_server=rs(9))
    s = state(spec)
    s.on_check(1, "c0", DOWN)
    assert pool(s) == {"1": 0, "9": 1}


@pytest.mark.parametrize(
    ("weights", "quorum", "hysteresis", "downs", "expect_up"),
    [
        ([1, 1, 1], 2, 0, 1, True),  # 2 >= 2
        ([1, 1, 1], 2, 0, 2, False),  # 1 < 2
        ([1, 1, 1], 2, 1, 2, True),  # 1 >= 2 - 1 keeps it
        ([1, 1, 1], 2, 1, 3, False),  # 0 always loses
        ([1, 1, 1], 1, 5, 2, False),  # quorum never gained: 3 < 1 + 5
        ([5, 1], 3, 0, 1, False),  # the heavy one went down first
    ],
)
def test_quorum_table(
    weights: list[int], quorum: int, hysteresis: int, downs: int, expect_up: bool
) -> None:
    s = state(vs([rs(i + 1, w) for i, w in enumerate(weights)], quorum=quorum,
                 hysteresis=hysteresis))  # fmt: skip
    for i in range(downs):
        s.on_check(i, "c0", DOWN)
    assert s.quorum_up is expect_up


def test_dynamic_weights() -> None:
    s = state(vs([rs(1, weight=10), rs(2)], quorum=5), checks=2)
    # MISC_CHECK misc_dynamic: absolute weight 3; FILE_CHECK: +4
    s.on_check(0, "c0", replace(UP, weight=3))
    assert pool(s) == {"1": 3, "2": 1}
    s.on_check(0, "c1", replace(UP, weight=4, weight_delta=True))
    assert pool(s) == {"1": 7, "2": 1}
    # a negative total is clamped at 0; quorum follows weights (0 + 1 < 5)
    acts = s.on_check(0, "c1", replace(UP, weight=-20, weight_delta=True))
    assert pool(s) == {"1": 0, "2": 1}
    assert not s.quorum_up and "/bin/qdown" in scripts(acts)
    s.on_check(0, "c1", replace(UP, weight=None))
    assert pool(s) == {"1": 3, "2": 1}


def test_ha_suspend_freezes_the_pool() -> None:
    s = state(vs([rs(1)], ha_suspend=True))
    assert s.suspended
    assert s.on_check(0, "c0", DOWN) == [] and pool(s) == {"1": 1}
    s.set_suspended(False)
    s.on_check(0, "c0", DOWN)
    assert pool(s) == {}


def test_omega_scripts_at_stop() -> None:
    s = state(vs([rs(1), rs(2)], omega=True))
    s.on_check(1, "c0", DOWN)
    acts = s.stop()
    assert scripts(acts) == ["/bin/down1", "/bin/qdown"]
    assert all(isinstance(a, RunScript) and a.timeout == 1.0 for a in acts)
    assert state(vs([rs(1)])).stop() == []


def test_status() -> None:
    s = state(vs([rs(1), rs(2, inhibit=True)]))
    s.on_check(1, "c0", DOWN)
    st_ = s.status()
    assert (st_.quorum_up, st_.weight_sum) == (True, 1)
    a, b = st_.servers
    assert (a.alive, a.in_pool, b.alive, b.in_pool) == (True, True, False, False)
    assert b.checks[0].last == CheckResult(False, "refused")


# --- properties -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 5),
    quorum=st.integers(1, 5),
    hysteresis=st.integers(1, 3),
    flips=st.integers(2, 30),
    which=st.integers(0, 4),
)
def test_hysteresis_never_flaps_on_one_alternating_server(
    n: int, quorum: int, hysteresis: int, flips: int, which: int
) -> None:
    """With unit weights and hysteresis > 0, one server going down/up changes the quorum at
    most once (the band quorum-h .. quorum+h is wider than one unit of weight)."""
    s = state(vs([rs(i + 1) for i in range(n)], quorum=quorum, hysteresis=hysteresis))
    victim = which % n
    changes = 0
    last = s.quorum_up
    for i in range(flips):
        s.on_check(victim, "c0", DOWN if i % 2 == 0 else UP)
        if s.quorum_up != last:
            changes += 1
            last = s.quorum_up
    assert changes <= 1


events = st.lists(
    st.tuples(st.integers(0, 3), st.booleans(), st.one_of(st.none(), st.integers(-3, 6))),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(evs=events, quorum=st.integers(1, 6), hysteresis=st.integers(0, 2), inhibit=st.booleans())
def test_invariants(
    evs: list[tuple[int, bool, int | None]], quorum: int, hysteresis: int, inhibit: bool
) -> None:
    """After any sequence of results: the sorry server is in exactly when the quorum is
    down; when it is, no real server has weight; dead servers are absent or (inhibit)
    weight 0; quorum state agrees with the last crossing of the thresholds."""
    servers = [rs(i + 1, weight=2, inhibit=inhibit) for i in range(4)]
    s = state(vs(servers, quorum=quorum, hysteresis=hysteresis, sorry_server=rs(9)))
    for idx, up, weight in evs:
        check = CheckState(up=up, has_run=True, weight=weight if up else None)
        s.on_check(idx, "c0", check)
        total = s.weight_sum()
        if s.quorum_up:
            assert total >= quorum - hysteresis and total > 0
        else:
            assert total < quorum + hysteresis or total == 0
        p = pool(s)
        assert ("9" in p) == (not s.quorum_up) == s.sorry_active
        status = {srv.name: srv for srv in s.status().servers}
        for spec in servers:
            octet = str(spec.address.packed[-1])
            alive = status[spec.name].alive
            if s.sorry_active or not alive:
                assert p.get(octet, 0) == 0
                assert (octet in p) == inhibit
            else:
                assert p[octet] == status[spec.name].weight
