"""The ops-under-load test's pure parts on the host: the random-edit generator
(tests/ipvs/edits.py) and the analysis of what the observers saw (opslab, opsprogs).

Every configuration the generator writes must load cleanly with pyvrrpd's own loader (every broken
one must be refused), and its prediction of what a reload leaves alone must agree with
pyvrrpd's reload planner: the VM test relies on both.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import ConfigError, Severity
from pyvrrpd.config.load import LoadResult, load_config
from pyvrrpd.vrrp.engine import views
from pyvrrpd.vrrp.reload import plan_reload
from tests.ipvs.edits import (
    BROKEN,
    DEFAULT_LAYOUT,
    STEPS,
    Layout,
    Model,
    base_model,
    classify,
    expected_table,
    generate,
    random_edit,
    render,
    with_down_server,
)
from tests.ipvs.opslab import (
    Request,
    Window,
    bad_requests,
    bad_tables,
    flaps,
    parse_monitor,
    table_view,
)
from tests.ipvs.opsprogs import parse_proc

ENV = Environment(interfaces=frozenset({"lo", "eth0"}))


def load(tmp: Path, text: str) -> LoadResult:
    path = tmp / "keepalived.conf"
    path.write_text(text)
    return load_config(path, config_id="director", env=ENV)


def errors(result: LoadResult) -> list[str]:
    return [d.format() for d in result.diagnostics if d.severity is Severity.ERROR]


def invariants(m: Model, layout: Layout = DEFAULT_LAYOUT) -> None:
    """What every model the generator makes must satisfy (the VM test relies on it)."""
    assert m.instances and m.services
    held = m.vips()
    assert len(held) == sum(len(i.vips) for i in m.instances)  # no VIP in two instances
    for inst in m.instances:
        assert inst.vips and set(inst.vips) <= set(DEFAULT_LAYOUT.pools[inst.name])
        assert 100 <= inst.priority < 255  # never 255: a change to it would restart
    for s in m.services:
        assert s.vip in held, s  # traffic to every service has a VIP on the director
        assert s.reals and len({r.name for r in s.reals}) == len(s.reals)
        assert all(1 <= r.weight <= 5 for r in s.reals)
        assert {r.name for r in s.reals} - layout.down  # a real server that answers
    assert len({s.key for s in m.services}) == len(m.services)


def test_same_seed_same_edits_other_seed_other_edits() -> None:
    a, b, c = generate(7, 30), generate(7, 30), generate(8, 30)
    assert [e.text for e in a] == [e.text for e in b]
    assert [e.text for e in a] != [e.text for e in c]


def test_broken_in_the_middle_by_default_and_changes_nothing() -> None:
    edits = generate(3, 15)
    assert [e.index for e in edits if e.broken] == [7]
    bad = edits[7]
    assert bad.after == bad.before == edits[6].after == edits[8].before
    assert bad.unchanged_instances == {i.name for i in bad.before.instances}
    assert bad.unchanged_services == bad.kept_services == {s.key for s in bad.before.services}
    assert bad.stable_vips == set(bad.before.vips())
    assert any(bad.text.endswith(t) for t in BROKEN.values())


def test_every_kind_of_edit_shows_up() -> None:
    kinds = {e.kind for e in generate(11, 300, broken=range(0, 300, 50))}
    assert kinds == {*STEPS, "broken"}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_edits_change_the_model_and_keep_invariants(seed: int, count: int) -> None:
    edits = generate(seed, count)
    prev = base_model()
    for e in edits:
        assert e.before == prev
        invariants(e.after)
        assert (e.after == e.before) is e.broken
        prev = e.after


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_what_is_left_alone_is_really_the_same(seed: int) -> None:
    rng = random.Random(seed)
    before = base_model()
    for _ in range(rng.randint(0, 10)):
        before = random_edit(before, DEFAULT_LAYOUT, rng)[1]
    _, after, _ = random_edit(before, DEFAULT_LAYOUT, rng)
    c = classify(before, after)
    for name in c["unchanged_instances"]:
        assert before.instance(name) == after.instance(name)
        assert set(after.vips()) >= {v for v, n in before.vips().items() if n == name}
    for vip in c["stable_vips"]:
        assert before.vips()[vip] == after.vips()[vip]
    assert c["unchanged_services"] <= c["kept_services"]
    for key in c["kept_services"]:
        old, new = before.service(key), after.service(key)
        assert old is not None and new is not None and old.vip in c["stable_vips"]
        assert (old == new) is (key in c["unchanged_services"])
    # what is not kept really went away or lost its VIP's stability
    for s in after.services:
        if s.key not in c["kept_services"]:
            assert before.service(s.key) is None or s.vip not in c["stable_vips"]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_down_real_server_is_never_expected_and_never_alone(seed: int) -> None:
    layout = with_down_server()
    edits = generate(seed, 30, layout=layout, base=base_model(layout))
    assert any("real_server 10.80.0.14 " in e.text for e in edits)
    for e in edits:
        invariants(e.after, layout)
        for dests in expected_table(e.after, layout).values():
            assert dests and "10.80.0.14" not in " ".join(dests)


def test_expected_table_lists_every_real_server_with_its_weight() -> None:
    table = expected_table(base_model())
    assert table == {
        "10.80.0.100:80": {"10.80.0.11:80": 1, "10.80.0.12:80": 1, "10.80.0.13:80": 1},
        "10.80.0.100:8080": {"10.80.0.11:8080": 1, "10.80.0.12:8080": 1},
        "10.80.0.110:80": {"10.80.0.12:80": 1, "10.80.0.13:80": 1},
    }


@pytest.mark.parametrize(("seed", "down"), [(1, False), (2, False), (3, True)])
def test_configs_load_and_the_planner_agrees(tmp_path: Path, seed: int, down: bool) -> None:
    """pyvrrpd loads every edit without error (refuses the broken ones) and its reload
    planner classifies the instances as the edit predicts."""
    layout = with_down_server() if down else DEFAULT_LAYOUT
    base = base_model(layout)
    edits = generate(seed, 40, broken=(10, 30), layout=layout, base=base)
    old = load(tmp_path, render(base, layout))
    assert errors(old) == []
    for e in edits:
        if e.broken:
            try:
                refused = errors(load(tmp_path, e.text))
            except ConfigError:
                refused = ["unreadable"]
            assert refused, e.description
            continue
        new = load(tmp_path, e.text)
        assert errors(new) == [], (e.description, errors(new))
        got = plan_reload(views(old.config), views(new.config))
        want = {k: tuple(sorted(getattr(got, k))) for k in e.vrrp_plan}
        assert want == e.vrrp_plan, e.description
        addrs = {str(s.address) for s in new.config.virtual_servers}
        assert addrs == {s.vip for s in e.after.services}
        old = new


# -- the observers' analysis (tests/ipvs/opslab.py, opsprogs.py) -----------------------

PROC = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A500064:0050 rr
  -> 0A50000C:0050      Route   3      0          1
  -> 0A50000B:0050      Route   1      2          0
FWM  00000007 wlc persistent 60
  -> 0A50000B:0000      Route   4      0          0
"""


def test_proc_table_parsed_and_viewed() -> None:
    table = parse_proc(PROC)
    assert table == {
        "TCP 10.80.0.100:80 rr": {"10.80.0.12:80": ["Route", 3], "10.80.0.11:80": ["Route", 1]},
        "FWM 7 wlc": {"10.80.0.11:0": ["Route", 4]},
    }
    assert table_view(table) == {"10.80.0.100:80": {"10.80.0.12:80": 3, "10.80.0.11:80": 1}}


def test_monitor_lines_parsed() -> None:
    text = (
        "2: eth0    inet 10.80.0.101/32 scope global eth0\\       valid_lft forever\n"
        "Deleted 2: eth0    inet 10.80.0.100/32 scope global eth0\\       valid_lft forever\n"
        "2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n"
    )
    assert parse_monitor(text) == [(False, "10.80.0.101"), (True, "10.80.0.100")]


def window(index: int, start: float, end: float, services: set[str]) -> Window:
    table = {k: {"10.80.0.11:80": 1} for k in services}
    return Window(index, start, end, frozenset(services), frozenset({"10.80.0.100"}), table)


def test_failures_count_only_where_the_service_was_left_alone() -> None:
    wins = [window(-1, 0, 10, {"a", "b"}), window(0, 10, 20, {"a"}), window(1, 20, 30, {"a", "b"})]
    reqs = [
        Request("a", 5, 0.1, "!timeout"),  # a unchanged: counts
        Request("b", 12, 0.1, "!refused"),  # b changed in window 0: does not
        Request("b", 9.5, 1.0, "!reset"),  # spans into window 0 where b changed: does not
        Request("b", 25, 0.1, "rs1:80"),  # answered
        Request("b", 26, 0.1, "!late"),  # b unchanged again in window 1: counts
    ]
    assert bad_requests(reqs, wins) == [reqs[0], reqs[4]]


def test_tables_and_flaps_checked_per_window() -> None:
    wins = [window(-1, 0, 10, {"10.80.0.100:80"}), window(0, 10, 20, set())]
    good = {"TCP 10.80.0.100:80 rr": {"10.80.0.11:80": ["Route", 1]}}
    lost: dict[str, dict[str, list[object]]] = {"TCP 10.80.0.100:80 rr": {}}
    records = [(1.0, good), (5.0, lost), (12.0, lost)]
    assert bad_tables(records, wins) == [(-1, 5.0, "10.80.0.100:80", {})]
    evs = [(True, "10.80.0.100"), (False, "10.80.0.101")]
    assert flaps([(wins[0], evs), (wins[1], [])]) == [(-1, True, "10.80.0.100")]
