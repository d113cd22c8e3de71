"""LVS labs in network namespaces: director (pyvrrpd), real servers, client; ipvsadm parsing.

Used by tests/ipvs/test_lvs_labs_vm.py inside the IPVS VM. The real servers and the client
run tests/ipvs/lvsprogs.py; the director runs pyvrrpd with keepalived's command line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.netlab import Host, Lab

# --- the test side: reading ipvsadm ---------------------------------------------------


@dataclass(frozen=True)
class IpvsTable:
    """``ipvsadm -Ln`` parsed: service line -> {destination: (forward, weight)}."""

    services: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> IpvsTable:
        services: dict[str, dict[str, tuple[str, int]]] = {}
        current: dict[str, tuple[str, int]] | None = None
        for line in text.splitlines():
            if re.match(r"^(TCP|UDP|SCTP|FWM)\s", line):
                current = services.setdefault(line.rstrip(), {})
                continue
            m = re.match(r"^\s+->\s+(\S+)\s+(\S+)\s+(\d+)\s+\d+\s+\d+\s*$", line)
            if m and current is not None:
                current[m.group(1)] = (m.group(2), int(m.group(3)))
        return cls(services)

    def dests(self, service_prefix: str) -> dict[str, tuple[str, int]]:
        """The destinations of the one service whose line starts with `service_prefix`."""
        found = [v for k, v in self.services.items() if k.startswith(service_prefix)]
        return found[0] if len(found) == 1 else {}

    def entries(self) -> frozenset[str]:
        """Every service and destination as a comparable string."""
        out = set(self.services)
        for service, dests in self.services.items():
            out |= {f"{service} -> {d} {fwd} {w}" for d, (fwd, w) in dests.items()}
        return frozenset(out)


# --- the test side: the lab -----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PROGS = Path(__file__).resolve().with_name("lvsprogs.py")

CLIENT = "10.80.0.10"
CLIENT6 = "fd80::10"
CLIENT_EXTRA = ("10.80.0.21", "10.80.0.22", "10.80.0.23", "10.80.0.24")
VIP_DR = "10.80.0.100"  # rs1, rs2 by direct routing
VIP_NAT = "10.80.0.101"  # rs3, rs4 by NAT (TCP 80 and UDP 53)
VIP_QUORUM = "10.80.0.102"  # rs3, rs4 by NAT, quorum 2, sorry server rs3:8080
VIP6 = "fd80::100"  # rs3, rs4 by NAT over IPv6
FWMARK = 7  # rs1, rs2 (table only: no marking in the guest)
RS = {"rs1": "10.80.0.11", "rs2": "10.80.0.12", "rs3": "10.81.0.13", "rs4": "10.81.0.14"}
RS6 = {"rs3": "fd81::13", "rs4": "fd81::14"}
#: The port whose listener on rs4 decides its quorum check (stop it: rs4 is down).
SWITCH_PORT = 9001
#: Check timers of every checked real server.
TIMERS = "connect_timeout 1\n    retry 1\n    delay_before_retry 1"


def _rs_block(addr: str, port: int | None, weight: int, check: str) -> str:
    where = addr if port is None else f"{addr} {port}"
    return f"  real_server {where} {{\n   weight {weight}\n{check}  }}\n"


def _check(kind: str, body: str = "") -> str:
    inner = f"{body}\n" if body else ""
    return f"   {kind} {{\n{inner}    {TIMERS}\n   }}\n"


def lvs_config() -> str:
    """The director's keepalived.conf: every virtual server of the labs."""
    http = _check("HTTP_GET", "    url {\n     path /\n     status_code 200\n    }")
    tcp = _check("TCP_CHECK")
    switch = _check("TCP_CHECK", f"    connect_port {SWITCH_PORT}")
    udp = _check("UDP_CHECK")
    head = "  delay_loop 1\n"
    vs = [
        f"virtual_server {VIP_DR} 80 {{\n{head}  lb_algo rr\n  lb_kind DR\n  protocol TCP\n"
        + _rs_block(RS["rs1"], 80, 1, http)
        + _rs_block(RS["rs2"], 80, 1, http)
        + "}\n",
        f"virtual_server {VIP_NAT} 80 {{\n{head}  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n"
        + _rs_block(RS["rs3"], 80, 1, tcp)
        + _rs_block(RS["rs4"], 80, 1, tcp)
        + "}\n",
        f"virtual_server {VIP_QUORUM} 80 {{\n{head}  lb_algo rr\n  lb_kind NAT\n"
        f"  protocol TCP\n  quorum 2\n  sorry_server {RS['rs3']} 8080\n"
        + _rs_block(RS["rs3"], 80, 1, tcp)
        + _rs_block(RS["rs4"], 80, 1, switch)
        + "}\n",
        f"virtual_server {VIP6} 80 {{\n{head}  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n"
        "  persistence_timeout 30\n"
        + _rs_block(RS6["rs3"], 80, 2, "")
        + _rs_block(RS6["rs4"], 80, 3, "")
        + "}\n",
        f"virtual_server fwmark {FWMARK} {{\n{head}  lb_algo wlc\n  lb_kind DR\n"
        "  persistence_timeout 60\n"
        + _rs_block(RS["rs1"], None, 4, "")
        + _rs_block(RS["rs2"], None, 5, "")
        + "}\n",
        f"virtual_server {VIP_NAT} 53 {{\n{head}  lb_algo sh\n  lb_kind NAT\n  protocol UDP\n"
        + _rs_block(RS["rs3"], 53, 1, udp)
        + _rs_block(RS["rs4"], 53, 1, udp)
        + "}\n",
    ]
    return "global_defs {\n  router_id lvslab\n}\n" + "".join(vs)


def _sysctl(lab: Lab, host: Host, *settings: str) -> None:
    lab.exec(host, ["sysctl", "-qw", *settings])


class LvsLab:
    """Client, director (pyvrrpd) and four real servers on one bridge, two subnets.

    rs1, rs2 (10.80.0.0/24, VIP on lo) are reached by direct routing; rs3, rs4
    (10.81.0.0/24, fd81::/64) sit behind the director, their default gateway, for NAT.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.servers: dict[str, subprocess.Popen[Any]] = {}
        self.daemon: subprocess.Popen[Any] | None = None
        self.daemon_log: Path | None = None
        self.client_proc: subprocess.Popen[Any] | None = None
        self.conf = lab.tmpdir / "keepalived.conf"
        self.starts = 0
        self.timings: dict[str, float] = {}
        self.report: Callable[[str], None] = print

    def note(self, what: str, value: float) -> None:
        """Record a timing (or count) and report it at once."""
        self.timings[what] = value
        self.report(f"LVS lab: {what}: {value:.1f}")

    # -- building ------------------------------------------------------------------

    def build(self) -> None:
        lab = self.lab
        c = lab.add_host("c", [f"{CLIENT}/24", f"{CLIENT6}/64"])
        for addr in CLIENT_EXTRA:
            lab.ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=c)
        d = lab.add_host("d", ["10.80.0.2/24", "10.81.0.1/24", "fd80::2/64", "fd81::1/64"])
        for vip in (VIP_DR, VIP_NAT, VIP_QUORUM):
            lab.ip("addr", "add", f"{vip}/32", "dev", "eth0", ns=d)
        lab.ip("addr", "add", f"{VIP6}/128", "dev", "eth0", "nodad", ns=d)
        _sysctl(lab, d, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        # replies of rs3/rs4 leave the director by the interface they came in on
        _sysctl(lab, d, "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0")
        for name in ("rs1", "rs2"):
            h = lab.add_host(name, [f"{RS[name]}/24"])
            for scope in ("all", "eth0"):
                _sysctl(lab, h, f"net.ipv4.conf.{scope}.arp_ignore=1")
                _sysctl(lab, h, f"net.ipv4.conf.{scope}.arp_announce=2")
            lab.ip("addr", "add", f"{VIP_DR}/32", "dev", "lo", ns=h)
        for name in ("rs3", "rs4"):
            h = lab.add_host(name, [f"{RS[name]}/24", f"{RS6[name]}/64"])
            lab.ip("route", "add", "default", "via", "10.81.0.1", ns=h)
            lab.ip("-6", "route", "add", "default", "via", "fd81::1", ns=h)
            # the director forwards their replies out of the interface they came in on: an
            # ICMP redirect would send later replies straight to the client, un-NATed
            for scope in ("all", "eth0"):
                _sysctl(lab, h, f"net.ipv4.conf.{scope}.accept_redirects=0")
                _sysctl(lab, h, f"net.ipv6.conf.{scope}.accept_redirects=0")
        self.conf.write_text(lvs_config())

    # -- programs ------------------------------------------------------------------

    def _python(self, host: str, *args: str) -> subprocess.Popen[Any]:
        cmd = [sys.executable, "-S", "-u", str(PROGS), *args]
        return self.lab.popen(
            host, cmd, cwd=ROOT, stdin=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
        )

    def start_server(self, name: str, host: str, *specs: str) -> None:
        """Start ``serve`` on `host` (tracked as `name`); returns once it listens."""
        self.start_servers([(name, host, specs)])

    def start_servers(self, servers: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        """Start several servers (name, host, specs) at once; returns once all listen."""
        for name, host, specs in servers:
            self.servers[name] = self._python(host, "serve", name, *specs)
        for name, host, _ in servers:
            stdout = self.servers[name].stdout
            assert stdout is not None
            line = stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"server {name} on {host} did not start: {line!r}")

    def stop_server(self, name: str) -> None:
        """Stop a server started by start_server (SIGTERM, by PID)."""
        self.lab.stop(self.servers.pop(name))

    def start_client(self) -> None:
        self.client_proc = self._python("c", "client")
        assert self.client_proc.stdout is not None
        line = self.client_proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"client did not start: {line!r}")

    def ask(self, command: str) -> Any:
        """Send one command to the client and return its JSON answer."""
        proc = self.client_proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the client exited")
        return json.loads(line)

    def requests(self, vip: str, port: int = 80, count: int = 10, timeout: float = 3) -> list[str]:
        """`count` HTTP requests from the client to vip:port, one connection each."""
        result: list[str] = self.ask(f"tcp {vip} {port} {count} {timeout}")
        return result

    def start_daemon(self) -> None:
        """Start pyvrrpd (checkers only, keepalived's command line) on the director."""
        d = self.lab.tmpdir / f"pyvrrpd-{self.starts}"
        d.mkdir()
        self.starts += 1
        self.daemon_log = d / "log"
        cmd = [sys.executable, "-m", "pyvrrpd.cli.daemon", "-n", "-l", "-D", "-G", "--check"]
        cmd += ["-f", str(self.conf), "-p", str(d / "main.pid"), "-c", str(d / "check.pid")]
        with open(self.daemon_log, "wb") as fh:
            self.daemon = self.lab.popen("d", cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        log = self.daemon_log
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    def kill_daemon(self) -> None:
        """``kill -9`` of the daemon's process group."""
        assert self.daemon is not None
        self.lab.kill_group(self.daemon)
        self.daemon = None

    # -- observing -----------------------------------------------------------------

    def table(self, *extra: str) -> IpvsTable:
        """The director's table as ``ipvsadm -Ln`` shows it."""
        return IpvsTable.parse(self.ipvsadm("-Ln", *extra))

    def ipvsadm(self, *args: str) -> str:
        return self.lab.exec("d", ["ipvsadm", *args]).stdout

    def wait_table(
        self, cond: Callable[[IpvsTable], bool], timeout: float, step: float = 0.1
    ) -> float | None:
        """Poll the table until `cond` holds: the seconds it took, or None."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if cond(self.table()):
                return time.monotonic() - start
            time.sleep(step)
        return None

    def start_watcher(self, period: float = 0.1) -> subprocess.Popen[Any]:
        """``ipvsadm -Ln`` every `period` seconds on the director, until stopped."""
        script = f"while :; do echo @; ipvsadm -Ln; sleep {period}; done"
        return self.lab.popen("d", ["sh", "-c", script], text=True, stderr=subprocess.STDOUT)

    def start_proc_watcher(self, period: float = 0.1) -> subprocess.Popen[Any]:
        """/proc/net/ip_vs read every `period` s by one process on the director (no spawns)."""
        proc = self._python("d", "watch", str(period))
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the /proc watcher did not start")
        return proc

    def stop_proc_watcher(self, proc: subprocess.Popen[Any]) -> dict[str, Any]:
        """Stop the /proc watcher: its report (see lvsprogs.watch)."""
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        report: dict[str, Any] = json.loads(proc.stdout.readline())
        self.lab.stop(proc)
        return report

    def stop_watcher(self, proc: subprocess.Popen[Any]) -> list[IpvsTable]:
        """Stop the watcher: every complete snapshot it took."""
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        self.lab.forget(proc.pid)
        chunks = out.split("@\n")[1:]
        # the last chunk may have been cut by the kill
        return [IpvsTable.parse(c) for c in chunks[:-1]]
