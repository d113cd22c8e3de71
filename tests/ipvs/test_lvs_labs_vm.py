"""Issue 4 acceptance on the real kernel: pyvrrpd as an LVS director, with real traffic.

Runs inside the IPVS VM (tests/ipvs/test_in_vm.py boots it once for every ``-m ipvs``
test). One lab (tests/ipvs/lvslab.py) and one daemon start serve every test in file
order, because starting pyvrrpd in the guest is slow (pyroute2's import): DR, NAT,
quorum/sorry server, IPv6 and fwmark services, UDP with ``sh``, then ``kill -9`` and a
restart under load. ``ipvsadm -Ln``, run in the director's namespace, is the observer;
the client counts which real server answered.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ipvs.lvslab import (
    CLIENT,
    CLIENT_EXTRA,
    FWMARK,
    RS,
    RS6,
    SWITCH_PORT,
    VIP6,
    VIP_DR,
    VIP_NAT,
    VIP_QUORUM,
    IpvsTable,
    LvsLab,
)
from tests.netlab import Lab

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/net/ip_vs").exists()
        or os.geteuid() != 0
        or shutil.which("ipvsadm") is None,
        reason="needs root, ipvsadm and a kernel with IPVS loaded: run inside the VM "
        "(tests/ipvs/test_in_vm.py, or scripts/vm-run python -m pytest -m ipvs tests/ipvs)",
    ),
]

#: Check timers of the config: delay_loop + connect_timeout + retry x delay_before_retry.
CHECK_BOUND = 1 + 1 + 1 * 1
#: Extra allowed for the emulated guest (~20x slower than native) on top of CHECK_BOUND.
GUEST_MARGIN = 5.0
#: A daemon start in the guest: pyroute2's import alone takes 17-45 s there.
START_TIMEOUT = 150.0

DR = f"TCP  {VIP_DR}:80 rr"
NAT = f"TCP  {VIP_NAT}:80 rr"
QUORUM = f"TCP  {VIP_QUORUM}:80 rr"
UDP = f"UDP  {VIP_NAT}:53 sh"
V6 = f"TCP  [{VIP6}]:80 wrr persistent 30"
FWM = f"FWM  {FWMARK} wlc persistent 60"


def full(t: IpvsTable) -> bool:
    """Every real server of every virtual server is in the pool."""
    return (
        set(t.dests(DR)) == {f"{RS['rs1']}:80", f"{RS['rs2']}:80"}
        and set(t.dests(NAT)) == {f"{RS['rs3']}:80", f"{RS['rs4']}:80"}
        and set(t.dests(QUORUM)) == {f"{RS['rs3']}:80", f"{RS['rs4']}:80"}
        and set(t.dests(UDP)) == {f"{RS['rs3']}:53", f"{RS['rs4']}:53"}
        and len(t.dests(V6)) == 2
        and len(t.dests(FWM)) == 2
    )


def names(answers: list[str]) -> Counter[str]:
    return Counter(a.split(":")[0] for a in answers)


@pytest.fixture(scope="module")
def lvs(request: pytest.FixtureRequest) -> Iterator[LvsLab]:
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def report(line: str) -> None:  # shown even under capture: the timings are the point
        with capman.global_and_fixture_disabled():
            print(line, flush=True)

    with Lab() as lab:
        lvs = LvsLab(lab)
        lvs.report = report
        t0 = time.monotonic()
        lvs.build()
        lvs.note("lab build: 7 namespaces (s)", time.monotonic() - t0)
        t0 = time.monotonic()
        lvs.start_servers(
            [
                ("rs1", "rs1", ["tcp:80"]),
                ("rs2", "rs2", ["tcp:80"]),
                ("rs3", "rs3", ["tcp:80", "tcp:8080", "udp:53"]),
                ("rs4", "rs4", ["tcp:80", "udp:53"]),
                ("switch", "rs4", [f"tcp:{SWITCH_PORT}"]),
            ]
        )
        lvs.start_client()
        lvs.note("5 servers and the client started (s)", time.monotonic() - t0)
        t0 = time.monotonic()
        lvs.start_daemon()
        took = _wait_log(lvs, "virtual server(s) programmed", START_TIMEOUT)
        assert took is not None, f"no table programmed:\n{lvs.log_text()}"
        lvs.note("daemon start to 'programmed' (s)", took)
        assert lvs.wait_table(full, 10) is not None, lvs.ipvsadm("-Ln") + lvs.log_text()
        lvs.note("daemon start to full table (s)", time.monotonic() - t0)
        yield lvs


def test_dr_requests_reach_both_real_servers(lvs: LvsLab) -> None:
    t0 = time.monotonic()
    answers = lvs.requests(VIP_DR, count=10)
    lvs.note("10 DR requests (s)", time.monotonic() - t0)
    assert names(answers) == {"rs1": 5, "rs2": 5}, answers  # rr: strict alternation
    dests = lvs.table().dests(DR)
    assert dests == {f"{RS['rs1']}:80": ("Route", 1), f"{RS['rs2']}:80": ("Route", 1)}


def test_dr_stopped_real_server_leaves_and_comes_back(lvs: LvsLab) -> None:
    rs1 = f"{RS['rs1']}:80"
    lvs.stop_server("rs1")
    try:
        gone = lvs.wait_table(lambda t: rs1 not in t.dests(DR), CHECK_BOUND + 20)
        assert gone is not None, lvs.ipvsadm("-Ln")
        lvs.note("DR real server removed after its service stopped (s)", gone)
        assert gone <= CHECK_BOUND + GUEST_MARGIN, f"removed after {gone:.1f} s"
        assert set(lvs.table().dests(DR)) == {f"{RS['rs2']}:80"}
        answers = lvs.requests(VIP_DR, count=6)
        assert names(answers) == {"rs2": 6}, answers
    finally:
        lvs.start_server("rs1", "rs1", "tcp:80")
    back = lvs.wait_table(lambda t: rs1 in t.dests(DR), CHECK_BOUND + 20)
    assert back is not None, lvs.ipvsadm("-Ln")
    lvs.note("DR real server back after its service started (s)", back)
    assert back <= CHECK_BOUND + GUEST_MARGIN, f"back after {back:.1f} s"
    assert names(lvs.requests(VIP_DR, count=4)) == {"rs1": 2, "rs2": 2}


def test_nat_requests_answered_by_both(lvs: LvsLab) -> None:
    answers = lvs.requests(VIP_NAT, count=10)
    assert names(answers) == {"rs3": 5, "rs4": 5}, answers
    assert {a.split(":")[1] for a in answers} == {"80"}
    dests = lvs.table().dests(NAT)
    assert dests == {f"{RS['rs3']}:80": ("Masq", 1), f"{RS['rs4']}:80": ("Masq", 1)}
    # replies: through the director for NAT, around it for DR (counters fold every 2 s)
    time.sleep(2.5)
    stats = stats_by_service(lvs.ipvsadm("-Ln", "--stats", "--exact"))
    assert stats[f"TCP  {VIP_NAT}:80"]["outpkts"] > 0, stats
    assert stats[f"TCP  {VIP_DR}:80"]["inpkts"] > 0, stats
    assert stats[f"TCP  {VIP_DR}:80"]["outpkts"] == 0, stats


def stats_by_service(text: str) -> dict[str, dict[str, int]]:
    """``ipvsadm -Ln --stats --exact``: service -> its packet counters."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 7 and words[0] in ("TCP", "UDP", "FWM"):
            conns, inpkts, outpkts = (int(w) for w in words[2:5])
            out[f"{words[0]}  {words[1]}"] = {"conns": conns, "inpkts": inpkts, "outpkts": outpkts}
    return out


def test_quorum_loss_brings_the_sorry_server(lvs: LvsLab) -> None:
    sorry = f"{RS['rs3']}:8080"
    assert names(lvs.requests(VIP_QUORUM, count=4)) == {"rs3": 2, "rs4": 2}
    lvs.stop_server("switch")  # rs4's check fails: weights 1 < quorum 2
    try:
        took = lvs.wait_table(lambda t: set(t.dests(QUORUM)) == {sorry}, CHECK_BOUND + 20)
        assert took is not None, lvs.ipvsadm("-Ln")
        lvs.note("quorum lost -> sorry server alone (s)", took)
        assert lvs.table().dests(QUORUM) == {sorry: ("Masq", 1)}
        assert lvs.requests(VIP_QUORUM, count=4) == ["rs3:8080"] * 4
        # the NAT virtual server has no quorum: rs4:80 itself is still up there
        assert set(lvs.table().dests(NAT)) == {f"{RS['rs3']}:80", f"{RS['rs4']}:80"}
    finally:
        lvs.start_server("switch", "rs4", f"tcp:{SWITCH_PORT}")
    want = {f"{RS['rs3']}:80", f"{RS['rs4']}:80"}
    took = lvs.wait_table(lambda t: set(t.dests(QUORUM)) == want, CHECK_BOUND + 20)
    assert took is not None, lvs.ipvsadm("-Ln")
    lvs.note("quorum back -> sorry server gone (s)", took)
    assert names(lvs.requests(VIP_QUORUM, count=4)) == {"rs3": 2, "rs4": 2}


def test_ipv6_and_fwmark_services_as_configured(lvs: LvsLab) -> None:
    t = lvs.table()
    assert V6 in t.services, t.services
    assert t.dests(V6) == {f"[{RS6['rs3']}]:80": ("Masq", 2), f"[{RS6['rs4']}]:80": ("Masq", 3)}
    assert FWM in t.services, t.services
    # DR cannot translate ports: the kernel keeps port 0 for an fwmark service's servers
    assert t.dests(FWM) == {f"{RS['rs1']}:0": ("Route", 4), f"{RS['rs2']}:0": ("Route", 5)}
    # IPv6 traffic too (persistence: one client sticks to one real server)
    answers = lvs.requests(VIP6, count=4)
    assert len(set(answers)) == 1 and answers[0] in ("rs3:80", "rs4:80"), answers


def test_udp_sh_keeps_a_source_on_one_server(lvs: LvsLab) -> None:
    assert lvs.table().dests(UDP) == {
        f"{RS['rs3']}:53": ("Masq", 1),
        f"{RS['rs4']}:53": ("Masq", 1),
    }
    seen: dict[str, set[str]] = {}
    for src in (CLIENT, *CLIENT_EXTRA):
        answers: list[str] = lvs.ask(f"udp {VIP_NAT} 53 8 2 {src}")
        assert all(not a.startswith("!") for a in answers), answers
        seen[src] = set(answers)
        assert len(seen[src]) == 1, (src, answers)  # sh: the same server every time
        # a new socket (new source port) from the same address: still the same server
        again: list[str] = lvs.ask(f"udp {VIP_NAT} 53 2 2 {src}")
        assert set(again) == seen[src], (src, again)
    # several sources: the hash spreads them over both servers
    assert set().union(*seen.values()) == {"rs3:53", "rs4:53"}, seen


def test_kill9_and_restart_under_load_keep_table_and_traffic(lvs: LvsLab) -> None:
    before = lvs.table()
    assert full(before)
    watcher = lvs.start_watcher(0.1)
    proc_watcher = lvs.start_proc_watcher(0.1)
    proc = lvs.client_proc
    assert proc is not None and proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"load {VIP_DR} 80 10 2\n")
    proc.stdin.flush()
    try:
        time.sleep(2)
        lvs.kill_daemon()
        killed = time.monotonic()
        time.sleep(2)
        lvs.start_daemon()
        started = _wait_log(lvs, "virtual server(s) programmed", START_TIMEOUT)
        assert started is not None, lvs.log_text()
        lvs.note("restart: start to table programmed (s)", started)
        time.sleep(3)  # the restarted daemon's checks run a few rounds
    finally:
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        result: dict[str, Any] = json.loads(proc.stdout.readline())
        snapshots = lvs.stop_watcher(watcher)
        watched = lvs.stop_proc_watcher(proc_watcher)
    lvs.note("kill -9 -> restart -> settled, under load (s)", time.monotonic() - killed)
    results = result["results"]
    failed = [r for r in results if r[2].startswith("!")]
    lvs.note("load requests sent", len(results))
    lvs.note("ipvsadm -Ln snapshots", len(snapshots))
    lvs.note("/proc/net/ip_vs samples", watched["samples"])
    lvs.note("/proc/net/ip_vs longest gap between samples (s)", watched["max_gap"])
    assert len(results) >= 10 * 5, result
    assert not failed, failed[:5]
    assert names([r[2] for r in results]).keys() == {"rs1", "rs2"}
    assert len(snapshots) >= 20, len(snapshots)
    entries = before.entries()
    changed = [s for s in snapshots if s.entries() != entries]
    assert not changed, (sorted(entries), sorted(changed[0].entries()))
    assert lvs.table().entries() == entries
    # the kernel's own listing, read every 100 ms: never a change
    assert watched["samples"] >= 10 * 20, watched["samples"]
    assert watched["changes"] == [], (watched["first"], watched["changes"][0])
    assert watched["first"].count("->") == sum(len(d) for d in before.services.values()) + 1
    assert "error" not in lvs.log_text().lower(), lvs.log_text()


def _wait_log(lvs: LvsLab, text: str, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if text in lvs.log_text():
            return time.monotonic() - start
        if lvs.daemon is not None and lvs.daemon.poll() is not None:
            return None
        time.sleep(0.2)
    return None
