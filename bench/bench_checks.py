"""Throughput of TCP_CHECK: 1,000 targets on 127.0.0.0/8, checks per second, CPU per check.

Runs standalone (``python bench/bench_checks.py``) in well under 30 s. A listener process
binds one socket per target (distinct 127.2.x.y addresses, one port) and accepts and
closes; this process runs the checks, so its CPU time is the checker's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from ipaddress import IPv4Address

from pyvrrpd.checks.base import Schedule
from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.checks.runner import CheckRegistry, CheckUpdate, run_once
from pyvrrpd.checks.tcp import TcpCheck

LISTENER = r"""
import selectors, socket, sys
n, base = int(sys.argv[1]), sys.argv[2]
first = socket.socket(); first.bind((base, 0)); port = first.getsockname()[1]; first.close()
sel = selectors.DefaultSelector()
a, b, c, _ = (int(x) for x in base.split("."))
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"{a}.{b}.{c + i // 250}.{1 + i % 250}", port))
    s.listen(512)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print(port, flush=True)
while True:
    for key, _ in sel.select():
        try:
            conn, _ = key.fileobj.accept()
            conn.close()
        except BlockingIOError:
            pass
"""


def targets(n: int, port: int) -> list[TcpCheck]:
    """One TCP_CHECK per listener address."""
    out = []
    for i in range(n):
        addr = IPv4Address(f"127.2.{i // 250}.{1 + i % 250}")
        out.append(TcpCheck(Endpoint(addr, port, connect_timeout=5.0)))
    return out


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def burst(checks: list[TcpCheck], rounds: int) -> None:
    """All checks at once, ``rounds`` times: the raw capacity."""
    for r in range(rounds):
        t0, c0 = time.perf_counter(), cpu()
        results = await asyncio.gather(*(run_once(c) for c in checks))
        wall, used = time.perf_counter() - t0, cpu() - c0
        ok = sum(res.ok for res in results)
        lat = sorted(res.latency for res in results)
        p50, p99 = lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3
        print(
            f"burst {r + 1}: {len(checks)} checks ({ok} ok) in {wall:.3f} s = "
            f"{len(checks) / wall:,.0f} checks/s, CPU {used * 1e6 / len(checks):.0f} us/check, "
            f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms"
        )


async def scheduled(checks: list[TcpCheck], delay_loop: float, seconds: float) -> None:
    """The registry running every check each ``delay_loop`` (spread by warmup)."""
    count = 0
    failures = 0

    def on_update(u: CheckUpdate) -> None:
        nonlocal count, failures
        count += 1
        failures += not u.result.ok

    sched = Schedule(delay_loop=delay_loop, retry=1, warmup=delay_loop)
    async with CheckRegistry() as reg:
        for c in checks:
            reg.subscribe(c, sched, on_update)
        await asyncio.sleep(delay_loop)  # let warmup spread the first runs
        count, failures = 0, 0
        t0, c0 = time.perf_counter(), cpu()
        await asyncio.sleep(seconds)
        wall, used = time.perf_counter() - t0, cpu() - c0
        done = count
    print(
        f"scheduled: {len(checks)} checks every {delay_loop:g} s for {wall:.1f} s: "
        f"{done / wall:,.0f} checks/s ({failures} failed), CPU {used / wall * 100:.0f}% "
        f"of one core, {used * 1e6 / max(done, 1):.0f} us/check"
    )


async def main_async(args: argparse.Namespace) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(args.targets), "127.2.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        checks = targets(args.targets, port)
        print(f"{args.targets} listeners on 127.2.0.1-127.2.{(args.targets - 1) // 250}.x:{port}")
        await burst(checks, args.rounds)
        await scheduled(checks, args.delay_loop, args.seconds)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--targets", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--delay-loop", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.targets + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    started = time.perf_counter()
    asyncio.run(main_async(args))
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
