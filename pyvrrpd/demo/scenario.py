"""The demo's story, step by step; each step narrates what it measured and checks it."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable

from .lab import (
    ENTER_BACKUP,
    ENTER_MASTER,
    IPVS_PROGRAMMED,
    VRRP_STARTED,
    DemoLab,
    DirectorRun,
)
from .layout import (
    ADVERT_INT,
    CLIENT,
    DIRECTORS,
    DNS,
    DNS_PORT,
    ROLES,
    VIP,
    VRID,
    WEB,
    WEB_PORT,
    master_down_interval,
)
from .narrate import DemoFailure, Narrator, wait_for
from .probes import Answer, poke

D1, D2 = DIRECTORS


def run(lab: DemoLab, n: Narrator) -> None:
    """The whole demo (the VRRP part alone when the lab is not `full`)."""
    build(lab, n)
    if lab.full:
        real_servers(lab, n)
    election(lab, n)
    if lab.full:
        ipvs_tables(lab, n)
        web_batch(lab, n, "director1")
        dns_batch(lab, n, "director1")
        real_server_fails(lab, n)
    master_killed(lab, n)
    old_master_returns(lab, n)


def build(lab: DemoLab, n: Narrator) -> None:
    n.step("Building the lab: network namespaces on one bridge")
    t0 = time.monotonic()
    lab.build()
    rows = []
    for d, role in zip(DIRECTORS, ROLES, strict=True):
        rows.append(f"{d.name:<10} {d.addr:<12} pyvrrpd, {role.state} priority {role.priority}")
    if lab.full:
        for s in WEB:
            rows.append(f"{s.name:<10} {s.addr:<12} HTTP :{WEB_PORT}, VIP on lo, arp_ignore=1")
        for s in DNS:
            rows.append(f"{s.name:<10} {s.addr:<12} DNS :{DNS_PORT}/udp, VIP on lo, arp_ignore=1")
    rows.append(f"{CLIENT.name:<10} {', '.join(CLIENT.addrs)}")
    n.say(
        f"built in {time.monotonic() - t0:.2f} s (namespace prefix {lab.topo.prefix}):\n"
        + "\n".join("  " + r for r in rows)
    )


def real_servers(lab: DemoLab, n: Narrator) -> None:
    n.step("Real servers: tiny HTTP servers and DNS responders that answer their own name")
    t0 = time.monotonic()
    servers = lab.all_servers()
    for s in servers:
        lab.start_server(s)
    pending = list(servers)

    def all_ready() -> bool:
        pending[:] = [s for s in pending if not lab.server_answers(s)]
        return not pending

    took = wait_for(all_ready, lab.pace.server_start, lab.pace.poll)
    n.check(
        took is not None,
        f"{', '.join(s.name for s in servers)} answer on their own addresses "
        f"({time.monotonic() - t0:.2f} s after start)",
        f"not answering after {lab.pace.server_start:.0f} s: " + ", ".join(s.name for s in pending),
    )


def _config_summary(vrrp_only: bool) -> str:
    lines = [
        f"vrrp_instance VI_WEB: VRID {VRID}, advert_int {ADVERT_INT}, auth PASS, "
        f"VIP {VIP}/24 on eth0",
    ]
    if vrrp_only:
        lines.append("started with --vrrp: the virtual_server blocks are not run (no IPVS)")
    else:
        lines.append(f"virtual_server {VIP} {WEB_PORT}: TCP, lb_algo rr, lb_kind DR, TCP_CHECK")
        lines.append(f"virtual_server {VIP} {DNS_PORT}: UDP, lb_algo sh, lb_kind DR, DNS_CHECK")
        lines.append(
            "health checks: delay_loop 1, connect_timeout 1, retry 1, delay_before_retry 1"
        )
    return "\n".join("  " + line for line in lines)


def _watch_directors(
    lab: DemoLab,
    n: Narrator,
    runs: list[DirectorRun],
    done: Callable[[list[str]], bool],
    timeout: float,
    what: str,
) -> dict[str, float]:
    """Narrate daemons coming up and VIP holder changes until `done(holders)`.

    Returns when things were first seen (time.monotonic()): ``up NAME`` when a run logged
    its VRRP start, ``vip A+B`` when the VIP holders were A and B.
    """
    seen: dict[str, float] = {}
    start = time.monotonic()
    previous: list[str] | None = None
    while True:
        now = time.monotonic()
        for r in runs:
            if f"up {r.node.name}" not in seen and r.logged(VRRP_STARTED):
                seen[f"up {r.node.name}"] = now
                ipvs = " (IPVS programmed first)" if r.logged(IPVS_PROGRAMMED) else ""
                n.say(
                    f"{r.node.name}: pyvrrpd up, VRRP started {now - r.started:.2f} s after "
                    f"launch{ipvs}"
                )
            if not r.alive():
                tail = "\n".join(r.log_text().splitlines()[-15:])
                n.say(f"{r.node.name}: pyvrrpd exited with {r.proc.returncode}:\n{tail}")
                raise DemoFailure(f"pyvrrpd on {r.node.name} exited with {r.proc.returncode}")
        holders = lab.vip_holders()
        if holders != previous:
            n.say(f"VIP {VIP} held by: {', '.join(holders) or 'nobody'}")
            seen.setdefault(f"vip {'+'.join(holders)}", now)
            previous = holders
        if all(f"up {r.node.name}" in seen for r in runs) and done(holders):
            return seen
        if now - start > timeout:
            raise DemoFailure(
                f"{what}: not reached after {timeout:.0f} s (VIP held by "
                f"{', '.join(holders) or 'nobody'})"
            )
        time.sleep(lab.pace.poll)


def election(lab: DemoLab, n: Narrator) -> None:
    vrrp_only = not lab.full
    n.step("Directors: pyvrrpd with keepalived's command line (-n -l -D -f CONF -p PID -r PID)")
    n.say("configuration (etc/lvs-dr-web.conf's shape):\n" + _config_summary(vrrp_only))
    runs = [lab.start_director(d, vrrp_only=vrrp_only) for d in DIRECTORS]
    d1 = runs[0]
    seen = _watch_directors(
        lab,
        n,
        runs,
        lambda h: h == [D1.name] and d1.logged(ENTER_MASTER),
        lab.pace.daemon_start + lab.pace.vrrp,
        "election",
    )
    n.check(True, "director1 logged 'Entering MASTER STATE' and holds the VIP", "")
    election_s = seen[f"vip {D1.name}"] - seen[f"up {D1.name}"]
    expected = master_down_interval(ROLES[0].priority)
    n.timing(
        "election: director1 MASTER after its VRRP start",
        election_s,
        f"~{expected:.2f} s, master_down of priority 150",
    )
    n.say(
        f"director1 became MASTER {election_s:.2f} s after its VRRP started (a backup waits "
        f"master_down = 3 x advert_int + (256-150)/256 = {expected:.2f} s)"
    )
    time.sleep(ADVERT_INT * 1.5)
    n.check(
        lab.vip_holders() == [D1.name],
        "the VIP stays on director1 only (one advert later)",
        f"VIP holders changed to {lab.vip_holders()}",
    )
    n.say(f"director1 eth0: {lab.eth0_addrs(D1)};  director2 eth0: {lab.eth0_addrs(D2)}")
    client_arp(lab, n, D1.name, time.monotonic(), "its first packet to the VIP")


def client_arp(lab: DemoLab, n: Narrator, director: str, since: float, event: str) -> float:
    """Wait until the client's ARP entry for the VIP points at `director`.

    Returns the seconds from `since` (a time.monotonic() of `event`).
    """
    mac = next(d.mac for d in DIRECTORS if d.name == director)

    def right() -> bool:
        got = lab.client_vip_mac()
        if got is None:
            poke(lab.ns(CLIENT), VIP)
        return got == mac

    took = wait_for(right, lab.pace.vrrp, lab.pace.poll)
    now = lab.client_vip_mac()
    n.check(
        took is not None,
        f"client's ARP: {VIP} is at {mac} ({director}), "
        f"{time.monotonic() - since:.2f} s after {event}",
        f"client's ARP for {VIP} is {now} ({lab.director_by_mac(now)}), not {director}",
    )
    return time.monotonic() - since


def ipvs_tables(lab: DemoLab, n: Narrator) -> None:
    n.step("IPVS: both directors program the virtual servers (only the VIP holder gets traffic)")
    want_web = sorted(s.addr for s in WEB)
    want_dns = sorted(s.addr for s in DNS)
    for d in DIRECTORS:
        t = wait_for(
            lambda d=d: (
                sorted(lab.dests(d, "TCP", WEB_PORT)) == want_web  # type: ignore[misc]
                and sorted(lab.dests(d, "UDP", DNS_PORT)) == want_dns
            ),
            lab.pace.checks,
            lab.pace.poll,
        )
        n.check(
            t is not None,
            f"{d.name}: 2 services, 2 real servers each",
            f"{d.name}'s IPVS table is incomplete:\n{lab.ipvsadm(d)}",
        )
    n.say("director1# ipvsadm -Ln\n" + _indent(lab.ipvsadm(D1)))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def web_batch(lab: DemoLab, n: Narrator, via: str, count: int = 6, only: str = "") -> None:
    """`count` HTTP requests through the VIP: rr alternates (or all go to `only`)."""
    answers = [lab.web_request() for _ in range(count)]
    seq = [a.who or f"<{a.error}>" for a in answers]
    n.say(f"{count} HTTP requests to {VIP}:{WEB_PORT}: {' '.join(seq)}")
    n.check(
        all(a.who for a in answers), "every request answered", f"requests failed: {' '.join(seq)}"
    )
    if only:
        n.check(set(seq) == {only}, f"all answered by {only}", f"expected only {only}")
    else:
        alternates = set(seq) == {w.name for w in WEB} and all(
            a != b for a, b in itertools.pairwise(seq)
        )
        n.check(
            alternates,
            "round robin: the answers alternate between web1 and web2",
            "the answers do not alternate (rr)",
        )
    _check_via(lab, n, "TCP", WEB_PORT, answers, via)


def _check_via(
    lab: DemoLab, n: Narrator, proto: str, port: int, answers: list[Answer], via: str
) -> None:
    ports = [a.port for a in answers]
    found = lab.forwarded_by(proto, port, ports)
    counts = Counter(found.get(p, "no director") for p in ports)
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    n.check(
        counts == Counter({via: len(ports)}),
        f"forwarded by {via} (its /proc/net/ip_vs_conn has all {len(ports)} client ports)",
        f"expected every connection via {via}; IPVS connection entries: {text}",
    )


def dns_batch(lab: DemoLab, n: Narrator, via: str, count: int = 4) -> None:
    """Queries from each client address: sh keeps each source on one server."""
    mapping = []
    every: list[Answer] = []
    for src in CLIENT.addrs:
        answers = [lab.dns_query(src) for _ in range(count)]
        every += answers
        seq = [a.who or f"<{a.error}>" for a in answers]
        n.say(f"{count} DNS queries from {src} to {VIP}:{DNS_PORT}: {' '.join(seq)}")
        n.check(
            all(a.who for a in answers) and len(set(seq)) == 1,
            f"source hashing: {src} stays on {seq[0]}",
            f"queries from {src} did not all reach one server",
        )
        mapping.append(f"{src} -> {seq[0]}")
    n.say("sh hashes the client's address: " + ", ".join(mapping))
    _check_via(lab, n, "UDP", DNS_PORT, every, via)


def real_server_fails(lab: DemoLab, n: Narrator) -> None:
    web2 = WEB[1]
    n.step("A real server fails: web2's HTTP service stops (connections are refused)")
    log_before = {d.name: len(lab.directors[d.name].log_text()) for d in DIRECTORS}
    t0 = time.monotonic()
    lab.stop_server(web2)
    for d in DIRECTORS:
        t = wait_for(
            lambda d=d: web2.addr not in lab.dests(d, "TCP", WEB_PORT),  # type: ignore[misc]
            lab.pace.checks,
            lab.pace.poll,
        )
        took = time.monotonic() - t0
        n.check(
            t is not None,
            f"{d.name}'s TCP_CHECK removed {web2.addr}:{WEB_PORT} from IPVS, "
            f"{took:.2f} s after it stopped",
            f"{web2.addr} still listed on {d.name}",
        )
        if d is D1:
            n.timing(
                "real server removed from IPVS (director1)",
                took,
                "1-3 s: delay_loop 1 + 1 retry after 1 s",
            )
    new = lab.directors[D1.name].log_text()[log_before[D1.name] :]
    lines = [_log_message(ln, f"{web2.addr}:{WEB_PORT}") for ln in new.splitlines()]
    lines = [ln for ln in lines if ln][:3]
    if lines:
        n.say("director1's log:\n" + "\n".join("  " + ln for ln in lines))
    n.say("director1# ipvsadm -Ln\n" + _indent(lab.ipvsadm(D1)))
    web_batch(lab, n, "director1", count=4, only=WEB[0].name)
    n.say("web2's HTTP service starts again")
    t0 = time.monotonic()
    lab.start_server(web2)
    t = wait_for(
        lambda: web2.addr in lab.dests(D1, "TCP", WEB_PORT),
        lab.pace.checks + lab.pace.server_start,
        lab.pace.poll,
    )
    took = time.monotonic() - t0
    n.check(
        t is not None,
        f"web2 back in director1's table {took:.2f} s after its restart",
        "web2 did not come back into director1's table",
    )
    n.timing("real server back in IPVS after restart", took)


def _log_message(line: str, server: str) -> str:
    """The message of a daemon log line about the check or removal of `server` (or "")."""
    msg = line.split(": ", 1)[1] if ": " in line else line
    if f"[{server.split(':')[0]}]" in msg and "service" in msg:
        return msg
    if server.split(":")[0] in msg and " is now " in msg:
        return f"{msg.split(' ', 1)[0]} {server} is now {msg.split(' is now ', 1)[1]}"
    return ""


class Prober:
    """A background client: one HTTP request through the VIP every `interval` seconds."""

    def __init__(self, lab: DemoLab, interval: float) -> None:
        self.lab = lab
        self.interval = interval
        self.results: list[tuple[float, Answer]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.results.append((t, self.lab.web_request()))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> str:
        """Stop and describe what the client saw."""
        self._stop.set()
        self._thread.join(timeout=self.lab.pace.request_timeout + 5)
        sent = len(self.results)
        failed = [t for t, a in self.results if a.who is None]
        return f"{sent} requests, {sent - len(failed)} answered, {len(failed)} failed"


def master_killed(lab: DemoLab, n: Narrator) -> None:
    n.step("The master director fails: kill -9 of pyvrrpd on director1")
    prober = None
    if lab.full:
        prober = Prober(lab, lab.pace.probe_every)
        prober.start()
        n.say(f"a background client sends a request every {lab.pace.probe_every} s")
        time.sleep(1.0)
    t0 = time.monotonic()
    lab.kill9_director(D1)
    took = wait_for(lambda: D2.name in lab.vip_holders(), lab.pace.vrrp, lab.pace.poll / 2)
    elapsed = time.monotonic() - t0
    md = master_down_interval(ROLES[1].priority)
    n.check(
        took is not None,
        f"director2 holds the VIP {elapsed:.2f} s after the kill",
        f"director2 did not take the VIP within {lab.pace.vrrp:.0f} s",
    )
    n.timing(
        "takeover: VIP on director2 after kill -9",
        elapsed,
        f"{md - ADVERT_INT:.2f}-{md:.2f} s, master_down of priority 100 after the last advert",
    )
    d2 = lab.directors[D2.name]
    n.check(
        wait_for(lambda: d2.logged(ENTER_MASTER), lab.pace.vrrp, lab.pace.poll) is not None,
        "director2 logged 'Entering MASTER STATE'",
        "director2 holds the VIP but did not log MASTER",
    )
    n.say(
        f"director1 eth0: {lab.eth0_addrs(D1)} (like keepalived, a killed daemon leaves "
        "its VIP, and its IPVS table, in the kernel)"
    )
    arp = client_arp(lab, n, D2.name, t0, "the kill")
    n.timing("client's ARP moved to director2 (gratuitous ARP)", arp)
    if prober is not None:
        time.sleep(1.0)
        n.say("background client during the takeover: " + prober.stop())
        web_batch(lab, n, "director2")
        dns_batch(lab, n, "director2")


def old_master_returns(lab: DemoLab, n: Narrator) -> None:
    n.step("The old master comes back: pyvrrpd restarted on director1 (preempts, priority 150)")
    d2 = lab.directors[D2.name]
    backups_before = d2.log_text().count(ENTER_BACKUP)
    if D1.name in lab.vip_holders():
        n.say("director1 still has the VIP the killed daemon left (it is not MASTER)")
    run = lab.start_director(D1, vrrp_only=not lab.full)
    seen = _watch_directors(
        lab,
        n,
        [run],
        lambda h: h == [D1.name] and run.logged(ENTER_MASTER),
        lab.pace.daemon_start + lab.pace.vrrp,
        "recovery",
    )
    up = seen[f"up {D1.name}"]
    master_s = seen[f"vip {D1.name}"] - up
    n.check(
        d2.log_text().count(ENTER_BACKUP) > backups_before,
        "director2 stepped down ('Entering BACKUP STATE'), VIP on director1 only",
        "director2 did not log its return to BACKUP",
    )
    n.timing("restart: pyvrrpd up on director1 (VRRP started)", up - run.started)
    n.timing(
        "recovery: VIP on director1 only, after its VRRP start",
        master_s,
        f"~{master_down_interval(ROLES[0].priority):.2f} s",
    )
    client_arp(lab, n, D1.name, seen[f"vip {D1.name}"], "the VIP moved back")
    if lab.full:
        want = sorted(s.addr for s in WEB)
        t = wait_for(
            lambda: sorted(lab.dests(D1, "TCP", WEB_PORT)) == want, lab.pace.checks, lab.pace.poll
        )
        n.check(
            t is not None,
            "director1's IPVS table still lists web1 and web2 (adopted)",
            f"director1's table:\n{lab.ipvsadm(D1)}",
        )
        web_batch(lab, n, "director1")
        dns_batch(lab, n, "director1")
