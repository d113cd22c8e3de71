"""What the client sees on the bridge: VRRP adverts and gratuitous ARPs from a capture."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.integration.vrrplab import Daemon, start_daemon
from tests.netlab import Capture, Host, Lab

VRRP_OR_ARP = "ip proto 112 or arp"


@dataclass(frozen=True)
class WireEvent:
    """One packet of interest: a VRRP advert or a gratuitous ARP, with its capture time."""

    t: float  # capture timestamp (CLOCK_REALTIME, like time.time())
    kind: str  # "advert" or "garp"
    src_ip: str
    src_mac: str
    vrid: int = 0
    priority: int = 0
    vip: str = ""


def events(cap: Capture) -> list[WireEvent]:
    """Adverts and gratuitous ARPs in a capture, in time order."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import ARP, Ether

    out: list[WireEvent] = []
    for p in cap.packets():
        if Ether not in p:
            continue
        t = float(p.time)
        if IP in p and p[IP].proto == 112:
            body = bytes(p[IP].payload)
            if len(body) >= 3:
                out.append(WireEvent(t, "advert", p[IP].src, p[Ether].src, body[1], body[2]))
        elif ARP in p and p[ARP].psrc == p[ARP].pdst:
            out.append(WireEvent(t, "garp", p[ARP].psrc, p[Ether].src, vip=p[ARP].psrc))
    out.sort(key=lambda e: e.t)
    return out


def pcap_times(path: str) -> list[float]:
    """Timestamps of every record of a classic pcap file (fast; no decoding)."""
    import struct

    with open(path, "rb") as fh:
        data = fh.read()
    magic = struct.unpack_from("<I", data)[0]
    order, scale = {0xA1B2C3D4: ("<", 1e-6), 0xA1B23C4D: ("<", 1e-9)}.get(magic, (">", 1e-6))
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        magic_be = struct.unpack_from(">I", data)[0]
        scale = 1e-9 if magic_be == 0xA1B23C4D else 1e-6
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(order + "IIII", data, off)
        out.append(sec + frac * scale)
        off += 16 + incl
    return out


def first(evs: Sequence[WireEvent], kind: str, *, after: float = 0.0, **match: Any) -> WireEvent:
    """The first event of `kind` after time `after` whose fields equal `match`."""
    for e in evs:
        if e.kind == kind and e.t >= after and all(getattr(e, k) == v for k, v in match.items()):
            return e
    raise LookupError(f"no {kind} {match} after {after}")


def last(evs: Sequence[WireEvent], kind: str, *, before: float, **match: Any) -> WireEvent:
    """The last event of `kind` before time `before` whose fields equal `match`."""
    for e in reversed(evs):
        if e.kind == kind and e.t <= before and all(getattr(e, k) == v for k, v in match.items()):
            return e
    raise LookupError(f"no {kind} {match} before {before}")


def become_subreaper() -> None:
    """Adopt orphaned descendants (keepalived's VRRP child after kill -9) so they can be reaped.

    PID 1 of some containers never reaps; a zombie VRRP child left there keeps keepalived's
    pid file "alive" and the next start refuses with "daemon is already running".
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    """Reap adopted zombies (not group leaders, so never a Popen of ours)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, ppid, pgrp = fields[0], int(fields[1]), int(fields[2])
        pid = int(entry)
        if state == "Z" and ppid == me and pgrp != pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def start(lab: Lab, host: Host, impl: str, conf_text: str) -> Daemon:
    """start_daemon after removing pid files left by a killed predecessor."""
    d = lab.tmpdir / f"{host.name}-{impl}"
    for name in ("main.pid", "vrrp.pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d / name)
    return start_daemon(lab, host, impl, conf_text)


def kill_group(lab: Lab, d: Daemon) -> None:
    """kill -9 of the daemon's whole process group (keepalived's parent and children)."""
    lab.kill_group(d.proc)
    time.sleep(0.05)
    reap_orphans()


def stop(lab: Lab, d: Daemon) -> None:
    """SIGTERM to the daemon's main process and wait for it (the lab kills what is left)."""
    if d.proc.poll() is None:
        lab.stop(d.proc)
    else:
        lab.forget(d.proc.pid)
    # keepalived's children share the group; make sure nothing outlives the parent
    with contextlib.suppress(ProcessLookupError):
        os.killpg(d.proc.pid, signal.SIGKILL)
    time.sleep(0.05)
    reap_orphans()


def drop_address(lab: Lab, host: Any, cidr: str) -> None:
    """Remove an address left behind (keepalived and pyvrrpd keep the VIP after kill -9)."""
    lab.ip("addr", "del", cidr, "dev", "eth0", ns=host, check=False)


def netns_exec_overhead(lab: Lab, ns: str, n: int = 5) -> float:
    """Median wall time of ``ip netns exec NS true`` (part of every start measurement)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "true"], check=True)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]
