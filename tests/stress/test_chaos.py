"""Randomised faults over 2 and 3 VRRP nodes (and a mix with keepalived), each followed
by a check that the VIP is where the model says, within a master-down interval plus a
margin (see tests/stress/chaos.py). Seeded: a failure prints ``CHAOS_SEED=N``; set that
variable to replay it. Long mode: ``python -m bench.chaos --faults 200``.
"""

from __future__ import annotations

import pytest

from tests.netlab import Lab

from .chaos import FAULTS, Chaos, ChaosFailure, Node, daemon_logs, expected_holders, seed_from_env


def run_chaos(lab: Lab, kinds: list[str], faults: int) -> None:
    seed = seed_from_env()
    chaos = Chaos(lab, kinds, seed)
    try:
        chaos.start()
        records = chaos.run(faults)
    except ChaosFailure as exc:
        pytest.fail(f"{exc}\n{daemon_logs(chaos)}")
    assert len(records) == faults
    assert {r.fault for r in records} <= set(FAULTS)
    worst = max(t for r in records for t in r.took)
    print(f"seed {seed}: {faults} faults, slowest convergence {worst:.2f} s")


@pytest.mark.netns
def test_chaos_two_pyvrrpd_nodes(lab: Lab) -> None:
    run_chaos(lab, ["pyvrrpd", "pyvrrpd"], 12)


@pytest.mark.netns
def test_chaos_three_pyvrrpd_nodes(lab: Lab) -> None:
    run_chaos(lab, ["pyvrrpd", "pyvrrpd", "pyvrrpd"], 20)


@pytest.mark.netns
@pytest.mark.keepalived
def test_chaos_mixed_with_keepalived(lab: Lab, need_keepalived: None) -> None:
    run_chaos(lab, ["pyvrrpd", "keepalived", "pyvrrpd"], 20)


def _node(name: str, prio: int, **kw: object) -> Node:
    n = Node(name, "pyvrrpd", int(name[1:]), None, prio, None)  # type: ignore[arg-type]
    n.running = True
    for k, v in kw.items():
        setattr(n, k, v)
    return n


def test_model_single_segment_highest_wins() -> None:
    nodes = [_node("n0", 100), _node("n1", 163), _node("n2", 136)]
    assert expected_holders(nodes) == {"n1"}
    nodes[1].failing = True  # 113: n2 (136) is now highest
    assert expected_holders(nodes) == {"n2"}
    nodes[2].link_up = False
    assert expected_holders(nodes) == {"n1"}
    assert expected_holders(nodes, exclude="n1") == {"n0"}


def test_model_partitions() -> None:
    a, b, c = _node("n0", 220), _node("n1", 133), _node("n2", 106)
    a.isolated = b.isolated = True  # a-b cut, both still reach c
    assert expected_holders([a, b, c]) == {"n0", "n1"}
    b.isolated = False
    assert expected_holders([a, b, c]) == {"n0"}
    a.isolated, c.isolated = True, True  # c cannot hear a, b hears a: c is master too
    assert expected_holders([a, b, c]) == {"n0", "n2"}
    assert expected_holders([a, c]) == {"n0", "n2"}
    a.running = False
    assert expected_holders([a, b, c]) == {"n1"}
