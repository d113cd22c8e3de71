"""IPVS benchmarks on a real kernel: one scripts/vm-run boot runs bench/ipvs_guest.py.

Measured in the guest (Debian's stock kernel under qemu/TCG, ~20x slower than native:
compare ratios, not absolute times), pyvrrpd beside the C tool in the same run:

1. programming 1,000 services x 10 destinations from an empty table: pyvrrpd's
   KernelIpvs (dump, plan, apply: the daemon's path) vs ``ipvsadm --restore`` of the same
   rules; both tables checked identical (``ipvsadm -Sn``, sorted) before a time counts;
   and the daemons' start until the table is complete (pyvrrpd -C vs keepalived -C);
2. the netlink writes of a reload that changes one weight of the 10,000 (strace of the
   running daemon's sendto/sendmsg, decoded; SIGHUP), and the reload's wall time;
3. the daemon's RSS at 1,000 x 10 with TCP_CHECK on every real server (the real
   servers are an AnyIP range on the guest's loopback with one accepting listener).

The pure helpers here (configuration and restore text, /proc/net/ip_vs and strace
parsers) are shared with the guest and tested on the host (tests/test_bench_ipvs.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyvrrpd.ipvs.model import Dest, FwdMethod, Protocol, Service, ServiceEntry, ServiceKey

from .common import Row, log

ROOT = Path(__file__).resolve().parents[1]
VM_RUN = ROOT / "scripts" / "vm-run"
N_VS, N_RS = 1000, 10
VIP_PORT, RS_PORT = 80, 8080
#: The real server whose weight the reload benchmark edits (virtual server 500, its 6th).
EDIT_RS = 500 * N_RS + 5
VM_TIMEOUT = 1500
NETNS = "ipvsbench"
PART = "ipvs"

# --- the table: configuration, restore text, model ----------------------------------


def vip(v: int) -> str:
    """Address of virtual server `v` (as bench.config_test.generate numbers them)."""
    return f"10.10.{v // 250}.{1 + v % 250}"


def rip(k: int) -> str:
    """Address of real server `k` (global index, as bench.config_test.generate)."""
    return f"172.16.{k // 250}.{1 + k % 250}"


def config_text(
    n_vs: int = N_VS,
    n_rs: int = N_RS,
    *,
    check: bool = True,
    delay_loop: int = 6,
    weights: Mapping[int, int] | None = None,
) -> str:
    """keepalived.conf of `n_vs` NAT virtual servers x `n_rs` real servers.

    With the defaults it is bench.config_test.generate(n_vs, n_rs, 0) to the byte;
    `check` False drops the TCP_CHECKs; `weights` maps a real server's global index to
    its weight (default 1).
    """
    weights = weights or {}
    out = ["global_defs {\n    router_id BENCH\n}\n"]
    k = 0
    for v in range(n_vs):
        out.append(
            f"virtual_server {vip(v)} {VIP_PORT} {{\n    delay_loop {delay_loop}\n"
            f"    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n"
        )
        for _ in range(n_rs):
            body = f"        weight {weights.get(k, 1)}\n"
            if check:
                body += "        TCP_CHECK {\n            connect_timeout 3\n        }\n"
            out.append(f"    real_server {rip(k)} {RS_PORT} {{\n{body}    }}\n")
            k += 1
        out.append("}\n")
    return "".join(out)


def restore_text(
    n_vs: int = N_VS, n_rs: int = N_RS, weights: Mapping[int, int] | None = None
) -> str:
    """``ipvsadm --restore`` input of the same table, in ``ipvsadm -Sn``'s own format."""
    weights = weights or {}
    lines = []
    k = 0
    for v in range(n_vs):
        svc = f"-t {vip(v)}:{VIP_PORT}"
        lines.append(f"-A {svc} -s rr")
        for _ in range(n_rs):
            lines.append(f"-a {svc} -r {rip(k)}:{RS_PORT} -m -w {weights.get(k, 1)}")
            k += 1
    return "\n".join(lines) + "\n"


def desired_state(
    n_vs: int = N_VS, n_rs: int = N_RS, weights: Mapping[int, int] | None = None
) -> dict[ServiceKey, ServiceEntry]:
    """The same table as pyvrrpd's model (what its balancer derives from config_text)."""
    weights = weights or {}
    state: dict[ServiceKey, ServiceEntry] = {}
    k = 0
    for v in range(n_vs):
        key = ServiceKey.of(Protocol.TCP, vip(v), VIP_PORT)
        dests = {}
        for _ in range(n_rs):
            d = Dest(ipaddress.IPv4Address(rip(k)), RS_PORT, FwdMethod.NAT, weights.get(k, 1))
            dests[d.key] = d
            k += 1
        state[key] = ServiceEntry(Service(key, "rr"), dests)
    return state


def save_lines(state: Mapping[ServiceKey, ServiceEntry]) -> list[str]:
    """``ipvsadm -Sn`` lines of a table of TCP services with NAT destinations, sorted."""
    lines = []
    fwd = {FwdMethod.NAT: "-m", FwdMethod.DR: "-g", FwdMethod.TUN: "-i"}
    for key, entry in state.items():
        assert key.protocol is Protocol.TCP and not key.fwmark
        svc = f"-t {key.address}:{key.port}"
        lines.append(f"-A {svc} -s {entry.service.scheduler}")
        for d in entry.dests.values():
            lines.append(f"-a {svc} -r {d.address}:{d.port} {fwd[d.fwd]} -w {d.weight}")
    return sorted(lines)


# --- observing: /proc/net/ip_vs and strace --------------------------------------------


def _hex_endpoint(text: str) -> str:
    addr, port = text.split(":")
    return f"{ipaddress.IPv4Address(int(addr, 16))}:{int(port, 16)}"


def proc_table(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/ip_vs (IPv4): {"TCP 10.10.0.1:80 rr": {"172.16.0.1:8080": weight}}."""
    table: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("TCP", "UDP", "SCTP") and ":" in parts[1]:
            name = f"{parts[0]} {_hex_endpoint(parts[1])} {parts[2]}"
            current = table.setdefault(name, {})
        elif len(parts) >= 4 and parts[0] == "->" and parts[1][:1] != "R" and current is not None:
            current[_hex_endpoint(parts[1])] = int(parts[3])
    return table


_SYSCALL = re.compile(r"^(?:\[pid\s+)?(\d+)?\]?\s*(?:<\.\.\. )?(sendto|sendmsg|sendmmsg)\b")
_HEXLINE = re.compile(r"^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})")
_NLHDR_LEN = 16

#: IPVS generic-netlink commands that change the kernel's state.
WRITE_CMDS = {
    1: "NEW_SERVICE",
    2: "SET_SERVICE",
    3: "DEL_SERVICE",
    5: "NEW_DEST",
    6: "SET_DEST",
    7: "DEL_DEST",
    9: "NEW_DAEMON",
    10: "DEL_DAEMON",
    12: "SET_CONFIG",
    14: "SET_INFO",
    16: "ZERO",
    17: "FLUSH",
}


def netlink_sends(strace_out: str, family_id: int) -> dict[str, Any]:
    """IPVS messages in the output of ``strace -e trace=sendto,sendmsg -e write=all``.

    Each syscall's data is rebuilt from strace's hex dump and split into netlink
    messages; those of the IPVS family (`family_id`) are counted by command.
    Returns {"writes": n, "by_cmd": {name: n}, "reads": n, "write_syscalls": n,
    "syscalls": n} (syscalls: sends carrying any IPVS message).
    """
    records: list[bytearray] = []
    for line in strace_out.splitlines():
        if _SYSCALL.match(line):
            records.append(bytearray())
        elif (m := _HEXLINE.match(line)) and records:
            records[-1] += bytes.fromhex(m.group(1))
    by_cmd: Counter[str] = Counter()
    reads = write_syscalls = syscalls = 0
    for data in records:
        writes_here = ipvs_here = 0
        offset = 0
        while offset + _NLHDR_LEN < len(data):
            length = int.from_bytes(data[offset : offset + 4], sys.byteorder)
            mtype = int.from_bytes(data[offset + 4 : offset + 6], sys.byteorder)
            if length < _NLHDR_LEN:
                break
            if mtype == family_id:
                ipvs_here += 1
                cmd = data[offset + _NLHDR_LEN]
                if cmd in WRITE_CMDS:
                    by_cmd[WRITE_CMDS[cmd]] += 1
                    writes_here += 1
                else:
                    reads += 1
            offset += (length + 3) & ~3
        syscalls += ipvs_here > 0
        write_syscalls += writes_here > 0
    return {
        "writes": sum(by_cmd.values()),
        "by_cmd": dict(sorted(by_cmd.items())),
        "reads": reads,
        "write_syscalls": write_syscalls,
        "syscalls": syscalls,
    }


# --- the host side --------------------------------------------------------------------


def missing_tools() -> list[str]:
    """What this host lacks to boot the IPVS VM and run the part (empty: nothing)."""
    missing = []
    if not list(Path("/boot").glob("vmlinuz-*-amd64")):
        missing.append("/boot/vmlinuz-*-amd64 (linux-image-amd64)")
    for tool in ("qemu-system-x86_64", "busybox", "ipvsadm", "vng", "virtme-run", "keepalived"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            missing.append(tool)
    if shutil.which("strace") is None:
        missing.append("strace (apt-get install strace)")
    if not VM_RUN.exists():
        missing.append(str(VM_RUN))
    return missing


def boot_guest(trials: int, quick: bool, out: Path) -> tuple[int, list[str]]:
    """Run bench.ipvs_guest in one VM, in a fresh network namespace; (exit code, log)."""
    guest = [sys.executable, "-m", "bench.ipvs_guest", "--out", str(out), "--trials", str(trials)]
    if quick:
        guest.append("--quick")
    script = f'ip netns add {NETNS} && exec ip netns exec {NETNS} "$@"'
    cmd = [str(VM_RUN), "bash", "-c", script, "ipvs-bench", *guest]
    env = dict(os.environ, VM_RUN_TIMEOUT=str(VM_TIMEOUT), VM_RUN_PYTHON=sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    lines: list[str] = []
    with subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace",
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line.startswith(("vm-run:", "ipvs-guest:")) or "Traceback" in line:
                log(f"  {line}")
        rc = proc.wait(timeout=VM_TIMEOUT + 60)
    return rc, lines


def _row(metric: str, mode: str, unit: str, note: str = "", bound: str = "") -> Row:
    return Row(PART, metric, mode, unit, bound=bound, note=note)


def build_rows(res: dict[str, Any]) -> list[Row]:
    """The result rows from the guest's JSON (missing measurements leave cells empty)."""
    rows = []
    table = f"{N_VS} VS x {N_RS} RS NAT, TCG guest"
    prog = res.get("program", {})
    r = _row(
        "program from cold (keepalived col.: ipvsadm --restore)", table, "s",
        bound="goal ratio <= 1.0",
        note="pyvrrpd: KernelIpvs dump+plan+apply of 11,000 objects (the daemon's path) vs "
        "ipvsadm -R of the same rules; flushed before each trial; a trial counts only if "
        f"ipvsadm -Sn (sorted) equals the expected table; identical: {prog.get('identical')}",
    )  # fmt: skip
    for impl, col in (("pyvrrpd", "pyvrrpd"), ("ipvsadm", "keepalived")):
        for v in prog.get(impl, []):
            r.samples[col].add(v)
    both = zip(prog.get("pyvrrpd", []), prog.get("ipvsadm", []), strict=False)
    pairs = [f"{p / k:.2f}" for p, k in both]
    if pairs:  # both run back to back in each trial: robust to the host's load changing
        r.note += f"; per-trial ratios {', '.join(pairs)}"
    rows.append(r)
    start = _row(
        "daemon start to full table", f"{table}, no checks", "s",
        note="spawn of pyvrrpd -C / keepalived -C until /proc/net/ip_vs holds all 11,000 "
        "objects (pyvrrpd's includes its imports: pyroute2 alone takes seconds in the guest)",
    )  # fmt: skip
    writes = _row(
        "netlink writes, reload changing 1 weight", f"{table}, no checks", "msgs",
        bound="goal: 1",
        note="IPVS write messages (NEW/SET/DEL service/dest, FLUSH, ...) the daemon sent "
        "between SIGHUP and a settled table, decoded from strace -e sendto,sendmsg",
    )  # fmt: skip
    wall = _row(
        "reload to table change",
        f"{table}, no checks",
        "s",
        note="SIGHUP with one weight edited until /proc/net/ip_vs shows it (untraced reloads)",
    )
    for impl in ("pyvrrpd", "keepalived"):
        d = res.get("daemon", {}).get(impl, {})
        if d.get("start_s") is not None:
            start.samples[impl].add(d["start_s"])
        for t in d.get("reloads", []):
            if t.get("strace"):
                writes.samples[impl].add(t["strace"]["writes"])
            elif t.get("seconds") is not None:
                wall.samples[impl].add(t["seconds"])
    rows += [start, writes, wall]
    checks = res.get("rss", {})
    mode = f"{table}, TCP_CHECK delay_loop {checks.get('delay_loop', '?')}"
    rss = _row(
        "daemon RSS (VmRSS, sum of processes)", mode, "MiB",
        note="settled: table complete and 15,000 checks done since the start (the listener's "
        "accept count); samples 2 s apart in one run; real servers: 172.16.0.0/16 as AnyIP "
        "in a second namespace behind a veth, one listener accepting on :8080",
    )  # fmt: skip
    hwm = _row("daemon peak RSS (VmHWM, sum)", mode, "MiB")
    pss = _row("daemon PSS (smaps_rollup, sum)", mode, "MiB")
    rate = _row(
        "TCP checks completed per second", mode, "checks/s",
        bound=f"configured {N_VS * N_RS / max(1, checks.get('delay_loop', 6)):.0f}/s",
        note="connections the listener (one Python process) accepted while RSS was "
        "sampled; the higher of the two rates is a floor of the listener's capacity",
    )  # fmt: skip
    cpu = _row("checker CPU share while settled", mode, "CPU s/s")
    for impl in ("pyvrrpd", "keepalived"):
        got = checks.get(impl, {})
        for s in got.get("samples", []):
            rss.samples[impl].add(s["rss_kib"] / 1024)
            hwm.samples[impl].add(s["hwm_kib"] / 1024)
            pss.samples[impl].add(s["pss_kib"] / 1024)
        if got.get("checks_per_s") is not None:
            rate.samples[impl].add(got["checks_per_s"])
            cpu.samples[impl].add(got["cpu_share"])
    rows += [rss, hwm, pss, rate, cpu]
    return rows


def run(trials: int, quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """Boot the VM once and run every IPVS measurement; skip (no rows) when it cannot."""
    if os.environ.get("VM_RUN_GUEST"):
        return [], {"skipped": "already inside the VM"}
    if missing := missing_tools():
        reason = "cannot boot the IPVS VM, missing: " + ", ".join(missing)
        log(f"  skipped: {reason}")
        return [], {"skipped": reason}
    workdir = Path(tempfile.mkdtemp(prefix=".ipvs-bench-", dir=ROOT))
    out = workdir / "result.json"
    started = time.monotonic()
    try:
        rc, lines = boot_guest(trials, quick, out)
        raw: dict[str, Any] = {"vm_exit": rc, "vm_wall_s": time.monotonic() - started}
        if out.exists():
            raw["guest"] = json.loads(out.read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if "guest" not in raw:
        reasons = {124: "VM timed out", 125: "VM did not boot (or modprobe ip_vs failed)"}
        raw["skipped"] = reasons.get(rc, f"guest exited {rc} without results")
        raw["tail"] = lines[-60:]
        log(f"  skipped: {raw['skipped']}")
        return [], raw
    if rc != 0:
        raw["tail"] = lines[-60:]
    return build_rows(raw["guest"]), raw


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ipvs_vm [--quick] [--trials N]``: the part alone, table printed."""
    import argparse

    from .common import markdown_table, notes_section

    p = argparse.ArgumentParser(prog="python -m bench.ipvs_vm", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--trials", type=int)
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    args = p.parse_args(argv)
    trials = args.trials or (2 if args.quick else 5)
    rows, raw = run(trials, args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2) + "\n")
    if not rows:
        print(f"ipvs part skipped: {raw.get('skipped')}")
        print("\n".join(raw.get("tail", [])))
        return 1
    print(markdown_table(rows))
    print(notes_section(rows, raw["guest"].get("errors", [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
