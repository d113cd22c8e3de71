"""CPU cost of 200 VRRP instances (v2, advert_int 1 s, one VIP each, one interface).

A master (priority 150) and a backup (100) of the same implementation; after every VIP is on
the master and the delayed gratuitous ARPs are done, utime+stime of every process of each
daemon's group (keepalived: parent and VRRP child) is read from /proc/PID/stat over the
whole window (one sample, in CPU seconds per minute; clock-tick resolution). For medians and
spread the window is also cut into equal slices measured with the scheduler's nanosecond
run time (/proc/PID/task/TID/schedstat), each slice one sample.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from tests.integration.vrrplab import Daemon, global_conf, instance_conf, wait_for
from tests.netlab import Host, Lab

from .common import IMPLS, Row, log
from .wire import pcap_times, start, stop

N_INSTANCES = 200
TICK = os.sysconf("SC_CLK_TCK")
SETTLE = 7.0  # keepalived and pyvrrpd repeat gratuitous ARPs 5 s after becoming master


def vip(i: int) -> str:
    return f"10.78.{i // 250}.{1 + i % 250}"


def conf(router: str, prio: int) -> str:
    """N_INSTANCES instances on eth0, VRIDs 1..N, one /32 VIP each."""
    body = "".join(
        instance_conf(f"VI_{i + 1}", vrid=i + 1, priority=prio, vip=f"{vip(i)}/32", version=2)
        for i in range(N_INSTANCES)
    )
    return global_conf(router) + body


def vip_count(lab: Lab, host: Host) -> int:
    out = lab.ip("-o", "-4", "addr", "show", "dev", "eth0", ns=host, check=False)
    return sum(" 10.78." in line for line in out.splitlines())


def group_pids(pgid: int) -> list[int]:
    """Every live process in a process group."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return sorted(pids)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14, 15 of stat(5)
    return total / TICK


def run_ns(pids: list[int]) -> int:
    """On-CPU time of every thread of the processes, in nanoseconds (schedstat)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as fh:
                    total += int(fh.read().split()[0])
            except OSError:
                continue
    return total


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of the processes (shared pages split between them)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


def measure(impl: str, window: float, slices: int, rows: dict[str, Row]) -> dict[str, Any]:
    """One pair of `impl`; fills the rows, returns raw numbers."""
    with Lab() as lab:
        a = lab.add_host("a", ["10.77.0.1/24"])
        b = lab.add_host("b", ["10.77.0.2/24"])
        c = lab.add_host("c", ["10.77.0.200/24"])
        t0 = time.monotonic()
        da: Daemon = start(lab, a, impl, conf("A", 150))
        db: Daemon = start(lab, b, impl, conf("B", 100))
        ok = wait_for(
            lambda: vip_count(lab, a) == N_INSTANCES and vip_count(lab, b) == 0, 90, step=0.2
        )
        if ok is None:
            raise RuntimeError(
                f"{impl}: {vip_count(lab, a)} VIPs on a, {vip_count(lab, b)} on b\n"
                f"{da.log_text()[-1500:]}\n{db.log_text()[-1500:]}"
            )
        all_master = time.monotonic() - t0
        log(f"  {impl}: all {N_INSTANCES} masters after {all_master:.1f} s; settling")
        time.sleep(SETTLE)
        pids = {"master": group_pids(da.proc.pid), "backup": group_pids(db.proc.pid)}
        # 200 adverts leave in one burst each second: tcpdump's default buffer drops some
        cap = lab.capture(c, "-B 16384 ip proto 112", name=f"cpu-{impl}")
        step = window / slices
        w0 = time.time()
        stat0 = {k: cpu_seconds(p) for k, p in pids.items()}
        marks = [(time.monotonic(), {k: run_ns(p) for k, p in pids.items()})]
        for _ in range(slices):
            time.sleep(step)
            marks.append((time.monotonic(), {k: run_ns(p) for k, p in pids.items()}))
        stat1 = {k: cpu_seconds(p) for k, p in pids.items()}
        w1 = time.time()
        cap.stop()
        pss = {k: pss_mib(p) for k, p in pids.items()}
        span = marks[-1][0] - marks[0][0]
        total = {r: (stat1[r] - stat0[r]) / span * 60 for r in ("master", "backup")}
        for role in ("master", "backup"):
            rows[f"stat-{role}"].samples[impl].add(total[role])
            for (t1, c1), (t2, c2) in itertools.pairwise(marks):
                rows[f"cpu-{role}"].samples[impl].add((c2[role] - c1[role]) / 1e9 / (t2 - t1) * 60)
            rows[f"pss-{role}"].samples[impl].add(pss[role])
        rate = sum(w0 <= t < w1 for t in pcap_times(str(cap.path))) / (w1 - w0)
        if not cap.complete:
            log(f"  {impl}: capture lost packets: {cap.captured} of {cap.received}")
        rows["adverts"].samples[impl].add(rate)
        rows["all-master"].samples[impl].add(all_master)
        log(f"  {impl}: CPU s/min master {total['master']:.2f}, backup {total['backup']:.2f}; "
            f"{rate:.0f} adverts/s on the wire; PSS {pss}")  # fmt: skip
        stop(lab, da)
        stop(lab, db)
        return {
            "pids": pids,
            "all_master_after": all_master,
            "window": span,
            "cpu_per_min_whole_window": total,
            "pss_mib": pss,
            "adverts_per_s": rate,
            "capture_complete": cap.complete,
        }


def run(window: float, slices: int) -> tuple[list[Row], dict[str, Any]]:
    """Both implementations, one after the other."""
    mode = f"{N_INSTANCES} x v2 1 s"
    rows = {
        "stat-master": Row("cpu", "CPU of the master (stat, whole window)", mode, "CPU s/min"),
        "stat-backup": Row("cpu", "CPU of the backup (stat, whole window)", mode, "CPU s/min"),
        "cpu-master": Row("cpu", "CPU of the master (schedstat, slices)", mode, "CPU s/min"),
        "cpu-backup": Row("cpu", "CPU of the backup (schedstat, slices)", mode, "CPU s/min"),
        "pss-master": Row("cpu", "memory (PSS) of the master", mode, "MiB"),
        "pss-backup": Row("cpu", "memory (PSS) of the backup", mode, "MiB"),
        "adverts": Row("cpu", "adverts on the wire", mode, "1/s", bound=f"{N_INSTANCES}"),
        "all-master": Row(
            "cpu",
            f"start → all {N_INSTANCES} VIPs on the master",
            mode,
            "s",
            bound="3.609 + start",
            note="polled every 0.2 s",
        ),
    }
    rows["stat-master"].note = (
        f"/proc/PID/stat utime+stime of every process in the daemon's group over "
        f"{window:.0f} s after settling (tick {1 / TICK:.2f} s)"
    )
    rows["cpu-master"].note = f"{slices} slices of {window / slices:.0f} s of the same window"
    raw: dict[str, Any] = {}
    for impl in reversed(IMPLS):
        log(f"cpu: {impl}")
        raw[impl] = measure(impl, window, slices, rows)
    return list(rows.values()), raw
