"""Guest side of the IPVS benchmarks: run by bench/ipvs_vm.py inside the VM, as root,
in a network namespace of its own (``ip_vs`` loaded). Writes its results as JSON to
``--out`` after every step, so a timeout still leaves what was measured.

Steps: programming from cold (pyvrrpd's KernelIpvs vs ``ipvsadm -R``); each daemon
(-C, no checks) started until its table is complete, then reloaded with one weight
edited (the first reload under strace, counting its IPVS netlink writes); each daemon
with TCP_CHECK on every real server, its RSS once settled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.ipvs_vm import (
    EDIT_RS,
    N_RS,
    N_VS,
    RS_PORT,
    config_text,
    desired_state,
    netlink_sends,
    proc_table,
    restore_text,
    rip,
)
from tests import netlab

WORK = Path(tempfile.gettempdir()) / f"ipvs-guest-{os.getpid()}"  # made by main()
START_TIMEOUT = 420.0  # pyvrrpd's imports and 11,000-object config load, under TCG
RELOAD_TIMEOUT = 300.0
STOP_TIMEOUT = 180.0
RS_NETNS = "ipvsrs"
ACCEPTS = WORK / "accepts"  # the listener's count of accepted connections (every 100)
SETTLE = 3.0  # seconds of quiet after a reload shows, to catch late writes
SETTLE_TIMEOUT = 180.0  # for 1.5 rounds of checks once the table is complete
LISTENER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(65535)
print("ready", flush=True)
n = 0
while True:
    c, _ = s.accept()
    c.close()
    n += 1
    if n % 100 == 0:
        with open(sys.argv[2] + ".tmp", "w") as fh:
            fh.write(str(n))
        __import__("os").replace(sys.argv[2] + ".tmp", sys.argv[2])
"""

PY = sys.executable
PROCS: list[subprocess.Popen[Any]] = []


def say(msg: str) -> None:
    """Progress, relayed by the host."""
    print(f"ipvs-guest: {msg}", file=sys.stderr, flush=True)


def sh(*cmd: str, stdin: str | None = None) -> str:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True).stdout


def table() -> dict[str, dict[str, int]]:
    """The namespace's IPVS table, from /proc (cheaper than ipvsadm under TCG)."""
    return proc_table(Path("/proc/net/ip_vs").read_text())


def full(weights: dict[int, int] | None = None) -> Callable[[], bool]:
    """A condition: every service and destination in, `weights` (index -> w) shown."""
    want = {f"{rip(k)}:{RS_PORT}": w for k, w in (weights or {}).items()}

    def cond() -> bool:
        t = table()
        if len(t) != N_VS or sum(len(d) for d in t.values()) != N_VS * N_RS:
            return False
        seen = {dest: w for dests in t.values() for dest, w in dests.items() if dest in want}
        return seen == want

    return cond


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.25) -> float | None:
    """:func:`tests.netlab.wait_for`, polling every 0.25 s by default (the VM is slow)."""
    return netlab.wait_for(cond, timeout, step)


MISMATCHES: list[str] = []


def same_as_expected(weights: dict[int, int] | None = None) -> bool:
    """``ipvsadm -Sn``, sorted, equals the expected table line for line.

    A mismatch is described (a few differing lines) in MISMATCHES.
    """
    saved = set(sh("ipvsadm", "-Sn").splitlines())
    want = set(restore_text(weights=weights).splitlines())
    if saved == want:
        return True
    extra, missing = sorted(saved - want), sorted(want - saved)
    MISMATCHES.append(f"{len(saved)} lines; extra {extra[:3]}; missing {missing[:3]}")
    return False


def flush() -> None:
    sh("ipvsadm", "-C")


# --- 1. programming from cold ---------------------------------------------------------


async def program(trials: int, res: dict[str, Any]) -> None:
    from pyvrrpd.ipvs.backend import reconcile
    from pyvrrpd.ipvs.kernel import KernelIpvs

    desired = desired_state()
    text = restore_text()
    out: dict[str, Any] = {"pyvrrpd": [], "ipvsadm": [], "identical": True, "failures": []}
    res["program"] = out
    async with KernelIpvs() as kernel:
        assert kernel._sock is not None
        res["family_id"] = kernel._sock.prid
        for trial in range(trials):
            order = ["pyvrrpd", "ipvsadm"] if trial % 2 == 0 else ["ipvsadm", "pyvrrpd"]
            for impl in order:
                flush()
                if impl == "pyvrrpd":
                    t0 = time.perf_counter()
                    results = await reconcile(kernel, desired)
                    took = time.perf_counter() - t0
                    bad = [str(r) for r in results if not r.ok]
                    if bad or len(results) != N_VS * (N_RS + 1):
                        out["failures"].append(f"pyvrrpd: {len(results)} ops, {bad[:3]}")
                else:
                    t0 = time.perf_counter()
                    done = subprocess.run(
                        ["ipvsadm", "-R"], input=text, text=True, capture_output=True
                    )
                    took = time.perf_counter() - t0
                    if done.returncode != 0:
                        out["failures"].append(f"ipvsadm -R exit {done.returncode}: "
                                               f"{done.stderr[-500:]}")  # fmt: skip
                ok = same_as_expected()
                out["identical"] = out["identical"] and ok
                if ok:
                    out[impl].append(took)
                say(f"program #{trial + 1} {impl}: {took:.2f} s, table identical: {ok}")
    flush()


# --- processes ------------------------------------------------------------------------


def daemon_cmd(impl: str, conf: Path, d: Path) -> list[str]:
    if impl == "pyvrrpd":
        cmd = [PY, "-m", "pyvrrpd.cli.daemon", "-n", "-l", "-D", "-G", "-C"]
        cmd += ["--control-socket", str(d / "ctl.sock"), "--state-file", "none"]
    else:
        cmd = ["keepalived", "-n", "-l", "-D", "-C", "-r", str(d / "vrrp.pid")]
    return [*cmd, "-f", str(conf), "-p", str(d / "main.pid"), "-c", str(d / "check.pid")]


def spawn(cmd: list[str], logfile: Path, **kw: Any) -> subprocess.Popen[Any]:
    with open(logfile, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )
    PROCS.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL of its process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    # children left behind (keepalived's checker) go with the group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in PROCS:
        PROCS.remove(proc)


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


class Strace:
    """strace attached to processes, recording their sendto/sendmsg data."""

    def __init__(self, pids: list[int], out: Path) -> None:
        self.out = out
        cmd = ["strace", "-f", "-e", "trace=sendto,sendmsg,sendmmsg", "-e", "write=all"]
        cmd += ["-o", str(out)]
        for pid in pids:
            cmd += ["-p", str(pid)]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        PROCS.append(self.proc)
        attached = 0
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while attached < len(pids) and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            attached += "attached" in line

    def close(self) -> str:
        self.proc.send_signal(signal.SIGINT)  # detaches
        self.proc.communicate(timeout=60)
        PROCS.remove(self.proc)
        return self.out.read_text(errors="replace")


# --- 2. daemons without checks: start and reload --------------------------------------


def daemon(impl: str, reloads: int, family_id: int, res: dict[str, Any]) -> None:
    d = WORK / f"{impl}-nocheck"
    d.mkdir()
    conf = d / "keepalived.conf"
    conf.write_text(config_text(check=False))
    out: dict[str, Any] = {"reloads": []}
    res.setdefault("daemon", {})[impl] = out
    proc = spawn(daemon_cmd(impl, conf, d), d / "log")
    try:
        out["start_s"] = wait_for(full(), START_TIMEOUT, step=0.5)
        say(f"{impl} start to full table: {out['start_s']}")
        if out["start_s"] is None:
            out["log"] = (d / "log").read_text(errors="replace")[-3000:]
            return
        out["identical"] = same_as_expected()
        if impl == "pyvrrpd":  # SIGHUP is ignored until the handler is installed
            wait_for(lambda: "programmed" in (d / "log").read_text(errors="replace"), 60)
        time.sleep(SETTLE)
        for trial in range(reloads):
            weight = 2 if trial % 2 == 0 else 1
            weights = {EDIT_RS: weight}
            conf.write_text(config_text(check=False, weights=weights))
            tracer = Strace(tree(proc.pid), d / f"strace-{trial}") if trial == 0 else None
            logged = len((d / "log").read_bytes())
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGHUP)
            took = wait_for(full(weights), RELOAD_TIMEOUT, step=0.1)
            t_shown = time.monotonic() - t0
            time.sleep(SETTLE)
            rec: dict[str, Any] = {"weight": weight, "seconds": took}
            if tracer is not None:
                rec["strace"] = netlink_sends(tracer.close(), family_id)
                rec["seconds_traced"] = t_shown if took is not None else None
                rec["seconds"] = None
            rec["identical"] = same_as_expected(weights)
            rec["log"] = (d / "log").read_bytes()[logged:][-2000:].decode(errors="replace")
            out["reloads"].append(rec)
            say(f"{impl} reload #{trial + 1}: { ({k: v for k, v in rec.items() if k != 'log'}) }")
    finally:
        out["log_tail"] = (d / "log").read_text(errors="replace")[-1500:]
        stop(proc)
        flush()


# --- 3. RSS with checks ---------------------------------------------------------------


def _kib(path: str, field: str) -> int:
    """A "Field:   N kB" line of a /proc file (0 when the process is gone)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, Any]:
    """RSS, peak RSS and PSS of `pid`'s process tree (KiB)."""
    pids = tree(pid)
    return {
        "pids": len(pids),
        "rss_kib": sum(_kib(f"/proc/{p}/status", "VmRSS") for p in pids),
        "hwm_kib": sum(_kib(f"/proc/{p}/status", "VmHWM") for p in pids),
        "pss_kib": sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids),
    }


def setup_real_servers() -> subprocess.Popen[Any]:
    """The real servers: 172.16.0.0/16 as AnyIP on the loopback of a second namespace,
    routed through a veth pair, and one listener there accepting on every address.

    (Not local to the director: the kernel turns a destination on a local address into
    the "Local" forwarding method, and the table would no longer be the configured one.)
    """
    sh("ip", "netns", "add", RS_NETNS)
    sh("ip", "link", "add", "rs0", "type", "veth", "peer", "name", "rs1", "netns", RS_NETNS)
    sh("ip", "addr", "add", "192.168.77.1/30", "dev", "rs0")
    sh("ip", "link", "set", "rs0", "up")
    for cmd in (
        ["addr", "add", "192.168.77.2/30", "dev", "rs1"],
        ["link", "set", "rs1", "up"],
        ["link", "set", "lo", "up"],
        ["route", "add", "local", "172.16.0.0/16", "dev", "lo"],
    ):
        sh("ip", "-n", RS_NETNS, *cmd)
    sh("ip", "route", "add", "172.16.0.0/16", "via", "192.168.77.2")
    in_rs = ["ip", "netns", "exec", RS_NETNS]
    sh(*in_rs, "sysctl", "-qw", "net.core.somaxconn=65535")
    listener = subprocess.Popen(
        [*in_rs, PY, "-S", "-c", LISTENER, str(RS_PORT), str(ACCEPTS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    PROCS.append(listener)
    assert listener.stdout is not None
    if listener.stdout.readline().strip() != "ready":
        raise RuntimeError("the listener did not start")
    return listener


def accepts() -> int:
    """Connections the real servers' listener has accepted so far (to the 100)."""
    try:
        return int(ACCEPTS.read_text())
    except (OSError, ValueError):
        return 0


def rss(impl: str, delay_loop: int, samples: int, res: dict[str, Any]) -> None:
    """RSS once settled: table complete and 1.5 rounds of checks done (listener count)."""
    d = WORK / f"{impl}-check"
    d.mkdir()
    conf = d / "keepalived.conf"
    conf.write_text(config_text(check=True, delay_loop=delay_loop))
    out: dict[str, Any] = {"samples": []}
    res["rss"][impl] = out
    base = accepts()
    proc = spawn(daemon_cmd(impl, conf, d), d / "log")
    try:
        out["start_s"] = wait_for(full(), START_TIMEOUT, step=0.5)
        if out["start_s"] is None:
            out["log"] = (d / "log").read_text(errors="replace")[-3000:]
            say(f"{impl} with checks: table never complete")
            return
        t_full = time.monotonic()
        rounds = 3 * N_VS * N_RS // 2  # every real server checked once, most twice
        stable = True
        while accepts() - base < rounds and time.monotonic() - t_full < SETTLE_TIMEOUT:
            stable = stable and full()()
            time.sleep(1.0)
        out["settle_s"] = time.monotonic() - t_full
        out["checks_before_sampling"] = accepts() - base
        out["stable_while_settling"] = stable
        pids = tree(proc.pid)
        cpu0, n0, t0 = _cpu_s(pids), accepts(), time.monotonic()
        for _ in range(samples):
            out["samples"].append(memory(proc.pid))
            time.sleep(2.0)
        elapsed = time.monotonic() - t0
        out["cpu_share"] = (_cpu_s(pids) - cpu0) / elapsed
        out["checks_per_s"] = (accepts() - n0) / elapsed
        out["configured_checks_per_s"] = N_VS * N_RS / delay_loop
        out["stable_while_sampling"] = full()()
        say(f"{impl} with checks: {out}")
    finally:
        out["log_tail"] = (d / "log").read_text(errors="replace")[-1500:]
        stop(proc)
        flush()


# --- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ipvs_guest")
    p.add_argument("--out", required=True)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--delay-loop", type=int, default=6)
    args = p.parse_args(argv)
    if not Path("/proc/net/ip_vs").exists() or os.geteuid() != 0:
        say("needs root and ip_vs loaded (run through bench/ipvs_vm.py)")
        return 2
    WORK.mkdir()
    # both daemons get the same (raised) descriptor limit: 10,000 checks
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    res: dict[str, Any] = {"errors": [], "trials": args.trials, "quick": args.quick}
    outfile = Path(args.out)
    reloads, samples = (2, 3) if args.quick else (3, 5)

    def save() -> None:
        outfile.write_text(json.dumps(res, indent=1) + "\n")

    def step(name: str, fn: Callable[[], Any]) -> None:
        t0 = time.monotonic()
        say(f"== {name}")
        try:
            fn()
        except Exception as exc:
            res["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            say(f"{name} failed: {exc!r}")
        res.setdefault("step_s", {})[name] = time.monotonic() - t0
        save()

    try:
        # Without a local routing table (lo down in a fresh namespace) the kernel refuses
        # every destination with EINVAL: inet_addr_type() must say unicast or local.
        sh("ip", "link", "set", "lo", "up")
        flush()
        step("program", lambda: asyncio.run(program(args.trials, res)))
        family = int(res.get("family_id", 0))
        for impl in ("pyvrrpd", "keepalived"):
            step(f"daemon {impl}", partial(daemon, impl, reloads, family, res))
        res["rss"] = {"delay_loop": args.delay_loop}
        listener = setup_real_servers()
        for impl in ("pyvrrpd", "keepalived"):
            step(f"rss {impl}", partial(rss, impl, args.delay_loop, samples, res))
        stop(listener, timeout=5)
    finally:
        for proc in list(PROCS):
            stop(proc, timeout=5)
        res["mismatches"] = MISMATCHES
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
