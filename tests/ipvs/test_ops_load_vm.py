"""Issue 6 on the real kernel: traffic must not notice operations.

Runs inside the IPVS VM (tests/ipvs/test_in_vm.py). Directors run the whole pyvrrpd
(VRRP and checkers) with DR virtual servers on their VIPs; a client sends steady HTTP
requests through the VIPs; ``ip -o monitor address`` and a /proc/net/ip_vs watcher
(tests/ipvs/opsprogs.py) record every change with its time.

- Reloads: ``PYVRRPD_RELOADS`` (default 15) random edits from tests/ipvs/edits.py
  (seed: ``PYVRRPD_OPS_SEED``, random when unset; every report and failure names it),
  one broken configuration in the middle. Between a reload's start and the next one's,
  no VIP of an instance left alone may be deleted or added, no unchanged service may
  lose or change a destination in the kernel, and no request to it may fail.
- rs4, a real server that never answers, is in some services (``PYVRRPD_OPS_DOWN=0``:
  not): its checks must keep it out of the table across reloads too.
- Crash: kill -9 of the master director's pyvrrpd, then ``pyvrrpctl release`` as the
  unit's ExecStopPost runs it, then a restart, under load (see the test's docstring).

vm-run does not pass the environment into the guest: put the variables in the command,
``scripts/vm-run env PYVRRPD_RELOADS=100 .venv/bin/python -m pytest -m ipvs -s <this file>``.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP

from tests.ipvs.edits import (
    DEFAULT_LAYOUT,
    Model,
    base_model,
    expected_table,
    generate,
    render,
    with_down_server,
)
from tests.ipvs.opslab import (
    CTL,
    AddressMonitor,
    Director,
    LoadClient,
    Request,
    TableWatcher,
    Window,
    add_real_servers,
    bad_requests,
    bad_tables,
    flaps,
    start_servers,
    table_view,
    wait_for,
)
from tests.netlab import Lab

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/net/ip_vs").exists()
        or os.geteuid() != 0
        or shutil.which("ipvsadm") is None,
        reason="needs root and a kernel with IPVS loaded: run inside the VM "
        "(tests/ipvs/test_in_vm.py, or scripts/vm-run python -m pytest -m ipvs tests/ipvs)",
    ),
]

RELOADS = int(os.environ.get("PYVRRPD_RELOADS", "15"))
#: Replay a prefix: only the first N edits of the sequence (PYVRRPD_OPS_UNTIL=N).
UNTIL = int(os.environ.get("PYVRRPD_OPS_UNTIL") or RELOADS)
#: rs4, a real server that never answers, in the edits (its checks keep it out); 0: none.
DOWN = os.environ.get("PYVRRPD_OPS_DOWN", "1") != "0"
SEED = int(os.environ.get("PYVRRPD_OPS_SEED") or random.SystemRandom().randrange(2**32))
#: A daemon start in the guest: pyroute2's import alone takes 17-45 s there.
START_TIMEOUT = 300.0
#: A reload's effects visible (new masters wait 3 x advert_int + skew; the guest is slow).
CONVERGE_TIMEOUT = 60.0
#: After convergence, before the next reload: late monitor lines land in their window.
SETTLE = 0.5
#: Requests per second per service, and each request's timeout.
RATE, REQ_TIMEOUT = 2.0, 5.0
CLIENT = "10.80.0.10"
REPLAY = (
    f"seed {SEED} (replay: PYVRRPD_OPS_SEED={SEED} PYVRRPD_RELOADS={RELOADS}"
    f" PYVRRPD_OPS_DOWN={int(DOWN)})"
)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def out(line: str) -> None:  # shown even under capture: the numbers are the point
        with capman.global_and_fixture_disabled():
            print(f"ops under load: {line}", flush=True)

    return out


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as lab:
        yield lab


def targets(model: Model) -> dict[str, str]:
    return {s.key: s.key for s in model.services}


def test_random_reloads_under_load(lab: Lab, report: Callable[[str], None]) -> None:
    layout = with_down_server() if DOWN else DEFAULT_LAYOUT
    base = base_model(layout)
    edits = generate(SEED, RELOADS, layout=layout, base=base)[:UNTIL]
    pool = layout.all_vips()
    report(f"{RELOADS} reloads, {REPLAY}")
    lab.add_host("c", [f"{CLIENT}/24"])
    d = lab.add_host("d", ["10.80.0.2/24"])
    add_real_servers(lab, layout.real_servers, pool)
    start_servers(lab, sorted(set(layout.real_servers) - layout.down), ["tcp:80", "tcp:8080"])
    director = Director.create(lab, d, render(base, layout))
    t0 = time.monotonic()
    director.start()
    programmed = director.wait_log("virtual server(s) programmed", START_TIMEOUT)
    assert programmed is not None, director.log_text()
    report(f"daemon start to 'programmed': {programmed:.1f} s")
    watcher = TableWatcher(lab, "d", lab.tmpdir / "ipvswatch")

    def converged(m: Model) -> bool:
        # the kernel's table read now: the watcher's last change may predate the reload
        # (a down server added, then removed by its check, leaves the same table)
        table = director.table()
        scheds = {s.split()[1]: s.split()[2] for s in table if s.startswith("TCP ")}
        return (
            table_view(table) == expected_table(m, layout)
            and scheds == {s.key: s.algo for s in m.services}
            and director.addresses(pool) == set(m.vips())
        )

    took = wait_for(lambda: converged(base), CONVERGE_TIMEOUT)
    assert took is not None, (watcher.current(), director.log_text())
    report(f"daemon start to every VIP and service in place: {time.monotonic() - t0:.1f} s")
    monitor = AddressMonitor(lab, d, lab.tmpdir / "monitor")
    client = LoadClient(lab, "c", RATE, REQ_TIMEOUT)
    client.targets(targets(base))
    starts: list[float] = [time.monotonic()]
    offsets: list[int] = [0]
    replies: list[float] = []
    settles: list[float] = []
    ipvs_ops: list[list[str]] = []
    time.sleep(2)  # requests under the base configuration
    try:
        for e in edits:
            client.targets(targets(e.before))
            offsets.append(monitor.offset())
            starts.append(time.monotonic())
            director.conf.write_text(e.text)
            where = f"edit {e.index} ({e.description}), {REPLAY}"
            if e.broken:  # pyvrrpctl itself, as systemctl reload runs it
                res = director.ctl("reload")
                assert res.returncode == 1, (where, res.stdout, res.stderr)
                assert res.stdout.startswith("reload refused"), (where, res.stdout)
                ipvs_ops.append([])
            else:
                answer = director.request("reload")
                assert answer.get("ok"), (where, answer)
                outcome = answer["outcome"]
                assert outcome["applied"], (where, outcome)
                got = {k: tuple(sorted(v)) for k, v in outcome["vrrp"].items()}
                assert got == e.vrrp_plan, (where, got)
                ipvs_ops.append(outcome["ipvs_ops"])
            replies.append(time.monotonic() - starts[-1])
            took = wait_for(lambda e=e: converged(e.after), CONVERGE_TIMEOUT)  # type: ignore[misc]
            assert took is not None, (where, director.table(), director.log_text()[-4000:])
            settles.append(time.monotonic() - starts[-1])
            assert director.proc is not None and director.proc.poll() is None, where
            time.sleep(SETTLE)
        time.sleep(2)
    finally:
        end = time.monotonic()
        results = client.stop()
        summary = watcher.stop()
        offsets.append(monitor.offset())
        monitor.stop()
    # the windows: before the first reload, then from each reload's start to the next's
    windows = [
        Window(
            -1,
            starts[0],
            starts[1] if edits else end,
            frozenset(targets(base)),
            frozenset(base.vips()),
            expected_table(base, layout),
        )
    ]
    for i, e in enumerate(edits):
        windows.append(
            Window(
                i,
                starts[i + 1],
                starts[i + 2] if i + 1 < len(edits) else end,
                e.unchanged_services,
                e.stable_vips,
                expected_table(e.after, layout),
            )
        )
    events = [monitor.events(offsets[i], offsets[i + 1]) for i in range(len(windows))]
    _report_reloads(report, edits, results, events, replies, settles, summary)
    for i, e in enumerate(edits):
        w = windows[i + 1]
        bad = [
            f"{r.target} {r.answer[:50]!r}"
            for r in results
            if r.failed and w.start <= r.start < w.end
        ]
        report(
            f"#{i} {e.description}: reply {replies[i]:.2f} s, settled {settles[i]:.2f} s; "
            f"{len(events[i + 1])} address event(s); IPVS ops {ipvs_ops[i]}; failed requests: "
            + ("; ".join(bad) or "0")
        )

    vip_flaps = flaps(zip(windows, events, strict=True))
    assert vip_flaps == [], (REPLAY, [(i, edits[i].description) for i, *_ in vip_flaps], vip_flaps)
    moved = bad_tables(watcher.records(), windows)
    assert moved == [], (REPLAY, [edits[i].description for i, *_ in moved[:3]], moved[:5])
    failed = bad_requests(results, windows)
    at = [(r, next(w.index for w in windows if w.start <= r.start < w.end)) for r in failed]
    assert failed == [], (REPLAY, at[:5], _ipvs_log(director.log_text()))
    # the observers observed: every VIP edit shows in the monitor, traffic ran throughout
    for e, ev in zip(edits, events[1:], strict=True):
        added = set(e.after.vips()) - set(e.before.vips())
        removed = set(e.before.vips()) - set(e.after.vips())
        assert added <= {a for deleted, a in ev if not deleted}, (REPLAY, e.description, ev)
        assert removed <= {a for deleted, a in ev if deleted}, (REPLAY, e.description, ev)
        if e.broken:  # the running configuration was kept: nothing moved at all
            assert ev == [], (REPLAY, ev)
    ok = [r for r in results if not r.failed]
    assert len(ok) >= len(windows), (len(ok), len(windows))
    assert {r.answer.split(":")[0] for r in ok} == set(layout.real_servers) - layout.down
    assert director.stop() == 0
    assert "Traceback" not in director.log_text(), director.log_text()[-4000:]


def _ipvs_log(text: str) -> str:
    """The daemon's IPVS and reload lines (the last 60), for a failure's message."""
    keep = [ln for ln in text.splitlines() if "IPVS" in ln or "reload" in ln or "10.80.0.14" in ln]
    return "\n".join(keep[-60:])


def _report_reloads(
    report: Callable[[str], None],
    edits: list,  # type: ignore[type-arg]
    results: list[Request],
    events: list[list[tuple[bool, str]]],
    replies: list[float],
    settles: list[float],
    summary: dict,  # type: ignore[type-arg]
) -> None:
    report(f"reloads done: {len(edits)} ({sum(e.broken for e in edits)} broken, refused)")
    report(
        "edit kinds: " + ", ".join(f"{k} {n}" for k, n in Counter(e.kind for e in edits).items())
    )
    sent, bad = Counter(r.target for r in results), Counter(r.target for r in results if r.failed)
    for key in sorted(sent):
        report(f"service {key}: {sent[key]} requests, {bad[key]} failed")
    report(f"address events: {sum(len(ev) for ev in events)} (on changed instances only)")
    if replies:
        report(
            f"reload reply: median {statistics.median(replies):.2f} s, max {max(replies):.2f} s; "
            f"reload to settled: median {statistics.median(settles):.2f} s, "
            f"max {max(settles):.2f} s"
        )
    report(f"table watcher: {summary}")


# -- crash: kill -9, release, restart ------------------------------------------------

VIP = "10.80.0.100"
#: Extra time allowed, in the emulated guest, beyond the skew time for the takeover on
#: the wire, and for the client's ARP entry to follow the VIP (gratuitous ARP).
WIRE_MARGIN, ARP_MARGIN = 1.0, 1.0
#: Long enough that the backup's master-down interval (3 x 20 s + skew) cannot explain a
#: takeover: pyvrrpctl starting in the guest takes seconds before it sends (27-35 s seen
#: on a loaded host: the guest reads its root file system over 9p).
ADVERT_INT = 20


def _pair_config(priority: int) -> str:
    return f"""global_defs {{
  router_id director{priority}
}}
vrrp_instance VI_1 {{
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int {ADVERT_INT}
  virtual_ipaddress {{
    {VIP}/32 dev eth0
  }}
}}
virtual_server {VIP} 80 {{
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.80.0.11 80 {{
    HTTP_GET {{
      url {{
        path /
        status_code 200
      }}
      connect_timeout 2
    }}
  }}
  real_server 10.80.0.12 80 {{
    HTTP_GET {{
      url {{
        path /
        status_code 200
      }}
      connect_timeout 2
    }}
  }}
}}
"""


def test_master_kill9_release_and_restart_under_load(
    lab: Lab, report: Callable[[str], None]
) -> None:
    """Two directors (priority 150 and 100, nopreempt), both with the same DR service.

    Asserted, and why:
    - From the kill until release starts, every request succeeds: the dead director's
      kernel still holds the VIP and its IPVS table and forwards alone.
    - After release, the backup is master within its skew time plus WIRE_MARGIN on the
      wire (priority-0 advert to its first advert), and its first advert comes sooner
      after the kill than its master-down interval (3 x ADVERT_INT + skew) would allow.
    - Failed requests, at most 2, all overlap the takeover window (release start to the
      VIP on the backup, plus ARP_MARGIN): a client sends one request at a time, and a
      connection opened through one director and continued through the other fails
      (the new director has no connection entry, its stack resets a non-SYN packet).
      That can happen once when the client's ARP entry follows the VIP, once when the
      dead node's VIP is removed. No failure before or after that window.
    - Neither director's IPVS table ever changes: not at the kill, the release (it
      touches no IPVS), nor the restart (the new daemon adopts the table, no flush).
    - The restarted director stays BACKUP (nopreempt): the VIP stays on the new master.
    """
    servers = {"rs1": "10.80.0.11", "rs2": "10.80.0.12"}
    lab.add_host("c", [f"{CLIENT}/24"])
    hosts = {"d1": lab.add_host("d1", ["10.80.0.2/24"]), "d2": lab.add_host("d2", ["10.80.0.3/24"])}
    add_real_servers(lab, servers, [VIP])
    start_servers(lab, servers, ["tcp:80"])
    prio = {"d1": 150, "d2": 100}
    directors = {n: Director.create(lab, h, _pair_config(prio[n])) for n, h in hosts.items()}
    for dr in directors.values():
        dr.start()
    for dr in directors.values():
        assert dr.wait_log("virtual server(s) programmed", START_TIMEOUT), dr.log_text()
    watchers = {n: TableWatcher(lab, n, lab.tmpdir / f"watch-{n}") for n in directors}
    full = {VIP + ":80": {f"{a}:80": 1 for a in servers.values()}}
    assert wait_for(lambda: all(table_view(w.current()) == full for w in watchers.values()), 60)

    def holders() -> list[str]:
        return [n for n, dr in directors.items() if dr.addresses([VIP])]

    assert wait_for(lambda: len(holders()) == 1, 3 * ADVERT_INT + 90) is not None, holders()
    name = holders()[0]
    other = "d2" if name == "d1" else "d1"
    master, backup = directors[name], directors[other]
    assert wait_for(lambda: backup.states() == {"VI_1": "BACKUP"}, 30) is not None
    skew = (256 - prio[other]) / 256
    report(f"master {name}, backup {other} (skew time {skew:.3f} s)")

    client = LoadClient(lab, "c", 10, REQ_TIMEOUT)
    client.targets({"vip": f"{VIP}:80"})
    try:
        time.sleep(3)
        # pyvrrpctl once beforehand (nothing to release): its modules are then in the
        # guest's page cache, as on a real host, not read cold over 9p (tens of seconds)
        warm = lab.exec(master.host, [*CTL, "release", "--state", str(lab.tmpdir / "none")],
                        check=False, timeout=300)  # fmt: skip
        assert warm.stdout.strip() == "nothing to release", (warm.stdout, warm.stderr)
        with lab.capture(backup.host, "ip proto 112") as cap:
            # kill just after an advert: the backup's master-down then ends no sooner
            # than 3 x ADVERT_INT + skew after the kill
            seen = backup.adverts_received("VI_1")
            assert wait_for(lambda: backup.adverts_received("VI_1") > seen, 3 * ADVERT_INT, 0.05)
            t_kill, wall_kill = time.monotonic(), time.time()
            master.kill9()
            time.sleep(1.5)  # well inside master-down (3 s + skew): nothing moves
            assert holders() == [name], holders()  # the dead director kept its VIP
            t_rel = time.monotonic()
            rel = lab.popen(master.host, [*CTL, "release", "--state", str(master.state)],
                            text=True, stderr=subprocess.STDOUT)  # fmt: skip
            took = wait_for(lambda: backup.addresses([VIP]) == {VIP}, 30, step=0.05)
            out, _ = rel.communicate(timeout=180)
            lab.forget(rel.pid)
            t_rel_end = time.monotonic()
        assert rel.returncode == 0, out
        assert took is not None, (out, backup.log_text()[-3000:])
        assert "sent priority 0 for VI_1" in out and f"removed {VIP}/32" in out, out
        assert holders() == [other]
        time.sleep(3)  # traffic through the new master
        t_restart = time.monotonic()
        master.start()
        started = master.wait_log("virtual server(s) programmed", START_TIMEOUT)
        assert started is not None, master.log_text()[-3000:]
        assert wait_for(lambda: master.states() == {"VI_1": "BACKUP"}, 60) is not None
        time.sleep(3)
    finally:
        results = client.stop()
        summaries = {n: w.stop() for n, w in watchers.items()}
    window = (t_rel, max(t_rel_end, t_rel + took) + ARP_MARGIN)
    adverts = [(float(p.time), str(p[IP].src), bytes(p[IP].payload)[2]) for p in cap.packets()]
    src_master, src_backup = (dr.host.addrs[0].split("/")[0] for dr in (master, backup))
    zero = next(t for t, src, pr in adverts if src == src_master and pr == 0)
    first = next(t for t, src, pr in adverts if src == src_backup and t > zero)
    wire = first - zero
    master_down = 3 * ADVERT_INT + skew
    failed = [r for r in results if r.failed]
    in_window = [r for r in failed if r.start < window[1] and r.start + r.duration > window[0]]
    dead_fwd = [r for r in results if t_kill <= r.start and r.start + r.duration < t_rel]
    report(f"requests: {len(results)} sent, {len(failed)} failed ({len(in_window)} in the "
           f"takeover window of {window[1] - window[0]:.2f} s)")  # fmt: skip
    report(f"requests answered while the master's daemon was dead: {len(dead_fwd)}")
    report(f"release -> VIP on the backup: {took:.2f} s (pyvrrpctl start included); "
           f"release ran {t_rel_end - t_rel:.2f} s; priority 0 -> backup's first advert "
           f"on the wire: {wire:.3f} s (skew {skew:.3f} s); kill -> backup's first advert "
           f"{first - wall_kill:.2f} s (master-down {master_down:.1f} s)")  # fmt: skip
    report(f"restart to table programmed: {started:.1f} s; {t_restart - t_kill:.1f} s after "
           f"the kill; watchers: {summaries}")  # fmt: skip

    assert dead_fwd and not any(r.failed for r in dead_fwd), dead_fwd
    # release, not master-down, made the backup master (else the guest was too slow)
    early = [t - wall_kill for t, src, _ in adverts if src == src_backup and t < zero]
    assert early == [], f"backup master before release's priority 0 (s after kill): {early}"
    assert first - wall_kill < master_down, (first - wall_kill, master_down)
    assert skew - 0.05 < wire < skew + WIRE_MARGIN, (wire, skew)
    assert failed == in_window, failed
    assert len(failed) <= 2, failed
    for n, w in watchers.items():
        recs = w.records()
        assert len(recs) == 1 and table_view(recs[0][1]) == full, (n, recs)
    assert holders() == [other]
    assert {r.answer for r in results if not r.failed} == {"rs1:80", "rs2:80"}
    for dr in directors.values():
        assert dr.stop() == 0
        assert "Traceback" not in dr.log_text(), dr.log_text()[-3000:]
