"""TCP_CHECK throughput: checks per second, CPU per check and latency on 2,100 local targets.

Each trial is a fresh child process (in a fresh network namespace when root, so the
TIME_WAIT sockets of one trial do not slow the next and nothing else on the host sees the
load), pinned to CPU 0. It starts a listener process pinned to CPU 1 that binds one socket
per target (distinct 127.2.x.y addresses, one port), then runs the checks through a
:class:`~pyvrrpd.checks.runner.CheckRegistry`, the path the balancer uses:

- burst: every target due at once (the raw capacity of one core);
- scheduled: every target each ``delay_loop`` (2,100 x 0.2 s = 10,500 checks/s offered),
  first runs spread by ``warmup``; checks/s, CPU per check, latency of each check and how
  late each run came compared with its schedule.

The listener naps 1 ms between non-blocking sweeps of its sockets: it never sleeps in
epoll, so a connect never has to wake it (a cross-CPU wake-up costs the connecting process
more than the check itself on this VM). Its own CPU is reported beside ours: accepting and
closing is the real servers' cost, not the checker's.

Standalone: ``python bench/bench_checks.py [--trials N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, log
from pyvrrpd.checks.base import Schedule
from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.checks.runner import CheckRegistry, CheckUpdate
from pyvrrpd.checks.tcp import TcpCheck

ROOT = Path(__file__).resolve().parent.parent
TARGETS = 2100
DELAY_LOOP = 0.2
GOAL_RATE = 10_000
GOAL_P99_MS = 50.0

LISTENER = r"""
import os, select, socket, sys, time
n, base, cpu = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
first = socket.socket(); first.bind((base, 0)); port = first.getsockname()[1]; first.close()
ep = select.epoll()
accepts = {}
a, b, c, _ = (int(x) for x in base.split("."))
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"{a}.{b}.{c + i // 250}.{1 + i % 250}", port))
    s.listen(4096)
    s.setblocking(False)
    ep.register(s.fileno(), select.EPOLLIN)
    accepts[s.fileno()] = s._accept
    socks.append(s)
print(port, flush=True)
close, nap = os.close, time.sleep
while True:
    nap(0.001)
    for fd, _ in ep.poll(0):
        accept = accepts[fd]
        try:
            while True:
                close(accept()[0])
        except BlockingIOError:
            pass
"""


def targets(n: int, port: int, base: int = 2) -> list[TcpCheck]:
    """One TCP_CHECK per listener address (127.<base>.x.y)."""
    out = []
    for i in range(n):
        addr = IPv4Address(f"127.{base}.{i // 250}.{1 + i % 250}")
        out.append(TcpCheck(Endpoint(addr, port, connect_timeout=5.0)))
    return out


def cpu_self() -> float:
    """CPU seconds (user + system) of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_user() -> float:
    """User CPU seconds of this process (the Python side; the rest is the kernel's TCP)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] if s else float("nan")


async def burst(checks: list[TcpCheck]) -> dict[str, float]:
    """Every check due at once, through the registry: the capacity of one core."""
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    first_start = last_end = 0.0
    ok = 0
    finished = asyncio.Event()

    def on_update(u: CheckUpdate) -> None:
        nonlocal ok, first_start, last_end
        last_end = loop.time()
        if not lat:
            first_start = last_end - u.result.latency
        lat.append(u.result.latency)
        ok += u.result.ok
        if len(lat) == len(checks):
            finished.set()

    # Every first run due ``warmup`` after its subscription (draw 1.0); subscribing untimed.
    sched = Schedule(delay_loop=3600.0, retry=0, warmup=0.3)
    async with CheckRegistry(draw=lambda: 1.0) as reg:
        for c in checks:
            reg.subscribe(c, sched, on_update)
        c0, u0 = cpu_self(), cpu_user()  # idle until the first run: CPU counts the runs only
        await asyncio.wait_for(finished.wait(), 60.0)
        used, user = cpu_self() - c0, cpu_user() - u0
    wall = last_end - first_start
    return {
        "n": len(checks),
        "ok": ok,
        "rate": len(checks) / wall,
        "cpu_us": used * 1e6 / len(checks),
        "user_us": user * 1e6 / len(checks),
        "p50_ms": pct(lat, 0.5) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
    }


async def scheduled(
    checks: list[TcpCheck], delay_loop: float, seconds: float, listener: int
) -> dict[str, float]:
    """The registry running every check each ``delay_loop`` (first runs spread by warmup)."""
    loop = asyncio.get_running_loop()
    measuring = False
    lat: list[float] = []
    late: list[float] = []
    last: dict[int, float] = {}  # by id(checker): hashing a checker is not pyvrrpd's cost
    failures = 0

    def on_update(u: CheckUpdate) -> None:
        nonlocal failures
        now = loop.time()
        key = id(u.checker)
        prev = last.get(key)
        last[key] = now
        if not measuring:
            return
        lat.append(u.result.latency)
        failures += not u.result.ok
        if prev is not None:  # run k ends at end(k-1) + delay_loop + lag + latency(k)
            late.append(now - prev - delay_loop - u.result.latency)

    sched = Schedule(delay_loop=delay_loop, retry=1, warmup=delay_loop)
    async with CheckRegistry() as reg:
        for c in checks:
            reg.subscribe(c, sched, on_update)
        await asyncio.sleep(delay_loop + 1.0)  # warmup spreads the first runs; settle
        measuring = True
        t0, c0, u0, l0 = time.perf_counter(), cpu_self(), cpu_user(), cpu_of(listener)
        await asyncio.sleep(seconds)
        wall, used, user, lused = (
            time.perf_counter() - t0,
            cpu_self() - c0,
            cpu_user() - u0,
            cpu_of(listener) - l0,
        )
        measuring = False
    done = len(lat)
    return {
        "n": len(checks),
        "offered": len(checks) / delay_loop,
        "rate": done / wall,
        "failed": failures,
        "cpu_us": used * 1e6 / max(done, 1),
        "user_us": user * 1e6 / max(done, 1),
        "cpu_pct": used / wall * 100,
        "p50_ms": pct(lat, 0.5) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "late_p99_ms": pct(late, 0.99) * 1e3,
        "listener_cpu_pct": lused / wall * 100,
    }


async def child_async(args: argparse.Namespace) -> dict[str, Any]:
    two = (os.cpu_count() or 1) >= 2
    if two:
        os.sched_setaffinity(0, {0})
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(args.targets), "127.2.0.1", "1" if two else "-1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        checks = targets(args.targets, port)
        out: dict[str, Any] = {"burst": []}
        for _ in range(args.rounds):
            out["burst"].append(await burst(checks))
        out["scheduled"] = await scheduled(checks, args.delay_loop, args.seconds, proc.pid)
        return out
    finally:
        proc.kill()
        proc.wait()


def child(args: argparse.Namespace) -> None:
    """One trial in this process; its measurements as JSON on stdout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.targets + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    print(json.dumps(asyncio.run(child_async(args))))


def trial(targets_n: int, rounds: int, delay_loop: float, seconds: float) -> dict[str, Any]:
    """One fresh child, in a fresh network namespace when we may make one."""
    cmd = [
        sys.executable, "-m", "bench.bench_checks", "--child", "--targets", str(targets_n),
        "--rounds", str(rounds), "--delay-loop", str(delay_loop), "--seconds", str(seconds),
    ]  # fmt: skip
    netns = os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip")
    if netns:
        cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    res = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=180 + seconds, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"bench_checks child failed: {res.stderr[-1500:]}")
    rec: dict[str, Any] = json.loads(res.stdout)
    rec["netns"] = bool(netns)
    return rec


def run(trials: int, quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """TCP_CHECK rows for bench/main.py: median over ``trials`` fresh children."""
    seconds, rounds = (3.0, 2) if quick else (6.0, 3)
    burst_mode = f"{TARGETS} targets due at once (loopback)"
    mode = (
        f"{TARGETS} targets x delay_loop {DELAY_LOOP:g} s = {TARGETS / DELAY_LOOP:,.0f}/s offered"
    )
    goal = f"goal >= {GOAL_RATE:,}/s on one core"
    rows = {
        "b_rate": Row("checks", "TCP_CHECK burst", burst_mode, "checks/s", bound=goal),
        "b_cpu": Row("checks", "TCP_CHECK burst CPU per check", burst_mode, "us"),
        "rate": Row("checks", "TCP_CHECK scheduled", mode, "checks/s", bound=goal),
        "cpu_us": Row("checks", "TCP_CHECK CPU per check", mode, "us"),
        "cap": Row("checks", "TCP_CHECK one-core capacity", mode, "checks/s", bound=goal),
        "cpu_pct": Row("checks", "TCP_CHECK checker CPU", mode, "% of a core"),
        "p50": Row("checks", "TCP_CHECK latency p50", mode, "ms"),
        "p99": Row("checks", "TCP_CHECK latency p99", mode, "ms", bound=f"goal < {GOAL_P99_MS:g}"),
        "late": Row("checks", "TCP_CHECK start lag p99", mode, "ms"),
        "lsn": Row("checks", "listener CPU (not pyvrrpd)", mode, "% of a core"),
    }
    raw: dict[str, Any] = {"trials": []}
    for i in range(trials):
        rec = trial(TARGETS, rounds, DELAY_LOOP, seconds)
        raw["trials"].append(rec)
        b = rec["burst"]
        rows["b_rate"].samples["pyvrrpd"].add(statistics.median(x["rate"] for x in b))
        rows["b_cpu"].samples["pyvrrpd"].add(statistics.median(x["cpu_us"] for x in b))
        s = rec["scheduled"]
        for key, name in (
            ("rate", "rate"), ("cpu_us", "cpu_us"), ("cpu_pct", "cpu_pct"), ("p50", "p50_ms"),
            ("p99", "p99_ms"), ("late", "late_p99_ms"), ("lsn", "listener_cpu_pct"),
        ):  # fmt: skip
            rows[key].samples["pyvrrpd"].add(s[name])
        rows["cap"].samples["pyvrrpd"].add(1e6 / s["cpu_us"])
        log(
            f"  checks #{i + 1}: burst {b[-1]['rate']:,.0f}/s {b[-1]['cpu_us']:.0f} us/check "
            f"({b[-1]['user_us']:.0f} user); scheduled {s['rate']:,.0f}/s ({s['failed']} failed), "
            f"{s['cpu_us']:.0f} us/check ({s['user_us']:.0f} user), "
            f"{s['cpu_pct']:.0f}% CPU, p50 {s['p50_ms']:.2f} ms p99 {s['p99_ms']:.2f} ms, "
            f"lag p99 {s['late_p99_ms']:.1f} ms; listener {s['listener_cpu_pct']:.0f}% CPU"
        )
    rows["rate"].note = (
        "pyvrrpd's CheckRegistry in one process pinned to CPU 0, listener pinned to CPU 1, "
        "fresh netns per trial; latency = connect+close of one check, start lag = how late "
        "a run started after its due time; below the offered rate (and with a large lag) "
        "when other load leaves this process less than the CPU it needs"
    )
    rows["cap"].note = "1 s of CPU / CPU per check: the rate one free core sustains"
    rows["b_rate"].note = (
        "keepalived not measured: its checker process exits at start-up when IPVS is "
        "absent (ipvs_start fails with virtual servers configured), as it is on this host"
    )
    return list(rows.values()), raw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--targets", type=int, default=TARGETS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--delay-loop", type=float, default=DELAY_LOOP)
    p.add_argument("--seconds", type=float, default=6.0)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    started = time.perf_counter()
    rows, _ = run(args.trials, args.quick)
    for r in rows:
        med = r.samples["pyvrrpd"].median
        print(f"{r.metric:32} {med:12,.2f} {r.unit:12} {r.bound}")
    print(f"total {time.perf_counter() - started:.1f} s, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
