"""Helpers of the ops-under-load test (tests/ipvs/test_ops_load_vm.py): directors running
the whole pyvrrpd (VRRP and checkers), DR real servers, and three observers — a load
client, ``ip -o monitor address`` and an IPVS table watcher — all timestamped on the
monotonic clock so that what they saw can be laid against the reloads; and the pure
functions that do that (host-tested in tests/ipvs/test_edits.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import netlab
from tests.netlab import Host, Lab

ROOT = Path(__file__).resolve().parents[2]
LVSPROGS = Path(__file__).resolve().with_name("lvsprogs.py")
OPSPROGS = Path(__file__).resolve().with_name("opsprogs.py")
CTL = [sys.executable, "-m", "pyvrrpd.cli.ctl"]


def prog(lab: Lab, host: str, path: Path, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
    """A standard-library program of tests/ipvs run by path (fast start in the guest)."""
    kwargs.setdefault("stdin", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    cmd = [sys.executable, "-S", "-u", str(path), *args]
    return lab.popen(host, cmd, cwd=ROOT, text=True, **kwargs)


def expect_line(proc: subprocess.Popen[Any], want: str, what: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != want:
        raise RuntimeError(f"{what}: expected {want!r}, got {line!r}")


# -- building ----------------------------------------------------------------------


def add_real_servers(lab: Lab, servers: Mapping[str, str], vips: Iterable[str]) -> None:
    """DR real servers: every VIP on ``lo``, ARP for them neither answered nor announced."""
    vips = list(vips)
    for name, addr in servers.items():
        h = lab.add_host(name, [f"{addr}/24"])
        settings = [f"net.ipv4.conf.{s}.{k}" for s in ("all", "eth0") for k in ("arp_ignore",)]
        lab.exec(h, ["sysctl", "-qw", *(f"{k}=1" for k in settings)])
        settings = [f"net.ipv4.conf.{s}.arp_announce" for s in ("all", "eth0")]
        lab.exec(h, ["sysctl", "-qw", *(f"{k}=2" for k in settings)])
        batch = "".join(f"addr add {v}/32 dev lo\n" for v in vips)
        res = subprocess.run(["ip", "-n", h.ns, "-batch", "-"], input=batch, text=True,
                             capture_output=True, check=False)  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"VIPs on {name}'s lo: {res.stderr}")


def start_servers(lab: Lab, names: Iterable[str], specs: Sequence[str]) -> list[Any]:
    """lvsprogs ``serve`` on each real server; returns once all listen."""
    procs = [prog(lab, n, LVSPROGS, "serve", n, *specs) for n in names]
    for p in procs:
        expect_line(p, "ready", "real server")
    return procs


# -- a director --------------------------------------------------------------------


@dataclass
class Director:
    """pyvrrpd (VRRP and checkers) in a namespace, with its own socket and state file."""

    lab: Lab
    host: Host
    conf: Path
    dir: Path
    proc: subprocess.Popen[Any] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, lab: Lab, host: Host, text: str) -> Director:
        d = lab.tmpdir / f"director-{host.name}"
        d.mkdir()
        conf = d / "keepalived.conf"
        conf.write_text(text)
        return cls(lab, host, conf, d)

    @property
    def sock(self) -> str:
        return str(self.dir / "control.sock")

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    def start(self) -> None:
        log = self.dir / f"log-{self.starts}"
        self.starts += 1
        self.logs.append(log)
        cmd = [sys.executable, "-m", "pyvrrpd.cli.daemon", "-n", "-l", "-D", "-f", str(self.conf),
               "-p", str(self.dir / "pid"), "--control-socket", self.sock,
               "--state-file", str(self.state)]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(self.dir)}
        env.pop("NOTIFY_SOCKET", None)
        with open(log, "wb") as fh:
            self.proc = self.lab.popen(
                self.host, cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env
            )

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def wait_log(self, text: str, timeout: float) -> float | None:
        """Seconds until the current run's log shows `text` (None: timeout or exit)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.logs and text in self.logs[-1].read_text(errors="replace"):
                return time.monotonic() - start
            if self.proc is None or self.proc.poll() is not None:
                return None
            time.sleep(0.2)
        return None

    def kill9(self) -> None:
        """``kill -9`` of the daemon's process group (no clean-up of any kind)."""
        assert self.proc is not None
        self.lab.kill_group(self.proc)
        self.proc = None

    def stop(self) -> int:
        assert self.proc is not None
        rc = self.lab.stop(self.proc)
        self.proc = None
        return rc

    def request(self, command: str, timeout: float = 120.0, **params: Any) -> dict[str, Any]:
        """One control-socket request, as pyvrrpctl sends it (the socket is a file: no
        namespace needed)."""
        from pyvrrpd.control import request

        return request(self.sock, command, timeout=timeout, **params)

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The pyvrrpctl command itself, in the director's namespace."""
        return self.lab.exec(self.host, [*CTL, "-s", self.sock, *args], check=False,
                             timeout=timeout)  # fmt: skip

    def states(self) -> dict[str, str]:
        """VRRP instance -> state, from the status ({} while the socket does not answer:
        it is bound once the daemon has started, a killed one's file refuses)."""
        try:
            snap = self.request("status", timeout=30)["status"]
        except OSError:
            return {}
        return {i["name"]: i["state"] for i in snap.get("vrrp", [])}

    def adverts_received(self, instance: str) -> int:
        """How many adverts `instance` has accepted (-1 while the socket does not answer)."""
        try:
            snap = self.request("status", timeout=30)["status"]
        except OSError:
            return -1
        found = [i for i in snap.get("vrrp", []) if i["name"] == instance]
        return int(found[0]["counters"]["adverts_received"]) if found else -1

    def table(self) -> dict[str, dict[str, list[Any]]]:
        """The kernel's table now (/proc/net/ip_vs, as opsprogs.parse_proc reads it)."""
        from tests.ipvs.opsprogs import parse_proc

        return parse_proc(self.lab.exec(self.host, ["cat", "/proc/net/ip_vs"]).stdout)

    def addresses(self, pool: Iterable[str]) -> set[str]:
        """Which addresses of `pool` are on the director's interface now."""
        out = self.lab.ip("-o", "-4", "addr", "show", "dev", self.host.ifname, ns=self.host)
        here = {m.group(1) for m in re.finditer(r"inet (\S+)/", out)}
        return here & set(pool)


# -- observers ---------------------------------------------------------------------


class AddressMonitor:
    """``ip -o monitor address`` on a host, into a file read by offsets."""

    def __init__(self, lab: Lab, host: Host, path: Path) -> None:
        self.path = path
        self.fh = open(path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = lab.popen(host, ["ip", "-o", "monitor", "address"], stdout=self.fh,
                              stderr=subprocess.STDOUT)  # fmt: skip
        self.lab = lab

    def offset(self) -> int:
        return self.path.stat().st_size

    def events(self, start: int = 0, end: int | None = None) -> list[tuple[bool, str]]:
        data = self.path.read_bytes()[start:end].decode(errors="replace")
        return parse_monitor(data)

    def stop(self) -> None:
        self.lab.stop(self.proc)
        self.fh.close()


def parse_monitor(text: str) -> list[tuple[bool, str]]:
    """``ip -o monitor address`` lines -> [(deleted, address without prefix)] (IPv4 only)."""
    out = []
    for line in text.splitlines():
        m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/\d+", line)
        if m:
            out.append((line.startswith("Deleted"), m.group(1)))
    return out


class TableWatcher:
    """opsprogs ``ipvswatch`` on a director, its changes written to a file."""

    def __init__(self, lab: Lab, host: str, path: Path, period: float = 0.1) -> None:
        self.lab, self.path = lab, path
        self.fh = open(path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = prog(lab, host, OPSPROGS, "ipvswatch", str(period), stdout=self.fh)
        deadline = time.monotonic() + 60
        while not self.records() and time.monotonic() < deadline:
            time.sleep(0.1)  # the first table is printed at once
        self.summary: dict[str, Any] = {}

    def records(self) -> list[tuple[float, dict[str, dict[str, list[Any]]]]]:
        """Every change seen so far: (monotonic time, table)."""
        out = []
        for line in self.path.read_text().splitlines():
            if line.startswith("["):
                with_time = json.loads(line)
                out.append((float(with_time[0]), with_time[1]))
        return out

    def current(self) -> dict[str, dict[str, list[Any]]]:
        recs = self.records()
        return recs[-1][1] if recs else {}

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)
        self.lab.forget(self.proc.pid)
        self.fh.close()
        lines = [ln for ln in self.path.read_text().splitlines() if ln.startswith("{")]
        self.summary = json.loads(lines[-1]) if lines else {}
        return self.summary


def table_view(table: Mapping[str, Mapping[str, Sequence[Any]]]) -> dict[str, dict[str, int]]:
    """A watched table as ``vip:port`` -> {dest: weight} (TCP services only)."""
    out = {}
    for service, dests in table.items():
        words = service.split()
        if words[0] == "TCP":
            out[words[1]] = {d: int(v[1]) for d, v in dests.items()}
    return out


class LoadClient:
    """opsprogs ``load`` in the client namespace: requests to a changing set of targets."""

    def __init__(self, lab: Lab, host: str, rate: float, timeout: float) -> None:
        self.lab = lab
        self.proc = prog(lab, host, OPSPROGS, "load", str(rate), str(timeout))
        expect_line(self.proc, "ready", "load client")

    def targets(self, targets: Mapping[str, str]) -> None:
        """Name -> ``host:port``; replaces the running set (returns once applied)."""
        assert self.proc.stdin is not None
        words = " ".join(f"{n}={where}" for n, where in sorted(targets.items()))
        self.proc.stdin.write(f"targets {words}\n")
        self.proc.stdin.flush()
        expect_line(self.proc, "ok", "load client")

    def stop(self) -> list[Request]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.lab.stop(self.proc)
        return [Request(*r) for r in json.loads(line)["results"]]


# -- laying observations against the reloads (pure) --------------------------------


@dataclass(frozen=True)
class Request:
    """One request of the load client."""

    target: str
    start: float
    duration: float
    answer: str

    @property
    def failed(self) -> bool:
        return self.answer.startswith("!")


@dataclass(frozen=True)
class Window:
    """From one reload's start to the next's: what must not move meanwhile."""

    index: int  # -1: before the first reload
    start: float
    end: float
    unchanged_services: frozenset[str]
    stable_vips: frozenset[str]
    table: Mapping[str, Mapping[str, int]]  # what the unchanged services must show


def bad_requests(requests: Iterable[Request], windows: Sequence[Window]) -> list[Request]:
    """Failed requests to a service left unchanged by every window the request spans."""
    out = []
    for r in requests:
        if not r.failed:
            continue
        spans = [w for w in windows if w.start < r.start + r.duration and r.start < w.end]
        if spans and all(r.target in w.unchanged_services for w in spans):
            out.append(r)
    return out


def bad_tables(
    records: Iterable[tuple[float, Mapping[str, Mapping[str, Sequence[Any]]]]],
    windows: Sequence[Window],
) -> list[tuple[int, float, str, dict[str, int] | None]]:
    """Watched tables in which an unchanged service was not exactly as configured:
    (window, time, service, what the table showed)."""
    out = []
    for t, table in records:
        w = next((w for w in windows if w.start <= t < w.end), None)
        if w is None:
            continue
        view = table_view(table)
        for key in sorted(w.unchanged_services):
            if view.get(key) != w.table[key]:
                out.append((w.index, t, key, view.get(key)))
    return out


def flaps(
    events_by_window: Iterable[tuple[Window, list[tuple[bool, str]]]],
) -> list[tuple[int, bool, str]]:
    """Address events on a stable VIP: (window, deleted, address)."""
    return [
        (w.index, deleted, addr)
        for w, events in events_by_window
        for deleted, addr in events
        if addr in w.stable_vips
    ]


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.2) -> float | None:
    """:func:`tests.netlab.wait_for`, polling every 0.2 s by default (the VM is slow)."""
    return netlab.wait_for(cond, timeout, step)
