"""The demo's lab: the topology of :mod:`.layout` built, its processes, what it observes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import probes
from .layout import (
    CLIENT,
    DIRECTORS,
    DNS,
    DNS_PORT,
    ROLES,
    VIP,
    WEB,
    WEB_PORT,
    Node,
    director_config,
    nodes,
)
from .procnet import IpvsConn, IpvsService, parse_arp, parse_ip_vs, parse_ip_vs_conn
from .servers import ServerPool
from .topology import Topology

VRRP_STARTED = "VRRP: 1 instance(s) started"
IPVS_PROGRAMMED = "virtual server(s) programmed"
ENTER_MASTER = "Entering MASTER STATE"
ENTER_BACKUP = "Entering BACKUP STATE"


@dataclass(frozen=True, slots=True)
class Pace:
    """Timeouts and polling for where the demo runs (under emulation code is ~20x slower)."""

    request_timeout: float = 2.0
    server_start: float = 15.0
    daemon_start: float = 30.0
    vrrp: float = 12.0
    checks: float = 15.0
    poll: float = 0.05
    probe_every: float = 0.2

    @classmethod
    def for_guest(cls) -> Pace:
        """The VM's pace: imports take tens of seconds, every step is slower."""
        return cls(8.0, 90.0, 200.0, 25.0, 45.0, 0.2, 0.5)


@dataclass
class DirectorRun:
    """One run of pyvrrpd on a director: the process, its log and when it started."""

    node: Node
    proc: subprocess.Popen[Any]
    log: Path
    started: float

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def logged(self, text: str) -> bool:
        return text in self.log_text()

    def alive(self) -> bool:
        return self.proc.poll() is None


class DemoLab:
    """Two directors, (full) two web and two DNS real servers, and a client."""

    def __init__(self, topo: Topology, pace: Pace, *, full: bool, pyzip: str = "") -> None:
        self.topo = topo
        self.pace = pace
        self.full = full
        self.python = [sys.executable]
        self.env: dict[str, str] | None = None
        if pyzip:  # modules from one archive, no site-packages (see modes.build_pyzip)
            self.python += ["-S", "-P"]
            self.env = dict(os.environ, PYTHONPATH=pyzip)
        self.servers = ServerPool()
        self.directors: dict[str, DirectorRun] = {}
        self.runs = 0
        self.configs: dict[str, Path] = {}

    def close(self) -> None:
        """Stop the real servers (before the namespaces go)."""
        self.servers.close()

    # -- building -----------------------------------------------------------------

    def build(self) -> None:
        """The bridge, every node, and the real servers' LVS-DR setup (VIP on lo, ARP)."""
        real = [n for n in nodes(self.full) if n.role in ("web", "dns")]
        self.topo.build(nodes(self.full), {n.name: [f"addr add {VIP}/32 dev lo"] for n in real})
        for node in real:
            for conf in ("all", "eth0"):
                probes.write_sysctl(self.ns(node), f"net.ipv4.conf.{conf}.arp_ignore", "1")
                probes.write_sysctl(self.ns(node), f"net.ipv4.conf.{conf}.arp_announce", "2")
        for node, role in zip(DIRECTORS, ROLES, strict=True):
            path = self.topo.workdir / f"{node.name}.conf"
            path.write_text(director_config(role))
            self.configs[node.name] = path

    def ns(self, node: Node) -> str:
        return self.topo.ns(node)

    # -- real servers -------------------------------------------------------------

    def start_server(self, node: Node) -> None:
        """Start the node's HTTP server or DNS responder (in this process, see .servers)."""
        if node.role == "web":
            self.servers.add_http(node.name, self.ns(node), WEB_PORT)
        else:
            self.servers.add_dns(node.name, self.ns(node), [node.addr, VIP], DNS_PORT)

    def stop_server(self, node: Node) -> None:
        """Stop the node's service: its sockets close, connections are refused."""
        self.servers.stop(node.name)

    def server_answers(self, node: Node) -> bool:
        """Whether the server answers the client on its own address with its name."""
        t = self.pace.request_timeout
        if node.role == "web":
            ans = probes.http_get(self.ns(CLIENT), node.addr, WEB_PORT, t)
        else:
            ans = probes.dns_whoami(self.ns(CLIENT), node.addr, DNS_PORT, t)
        return ans.who == node.name

    # -- directors ----------------------------------------------------------------

    def start_director(self, node: Node, *, vrrp_only: bool) -> DirectorRun:
        """Start pyvrrpd with keepalived's command line on a director."""
        self.runs += 1
        stem = self.topo.workdir / f"{node.name}-{self.runs}"
        argv = [*self.python, "-m", "pyvrrpd.cli.daemon", "-n", "-l", "-D"]
        argv += ["-f", str(self.configs[node.name])]
        argv += ["-p", f"{stem}.pid", "-r", f"{stem}.vrrp.pid"]
        # two daemons on one machine: each its own control socket and state file
        home = self.topo.workdir / node.name
        argv += ["--control-socket", f"{home}.ctl", "--state-file", f"{home}.state.json"]
        if vrrp_only:
            argv.append("--vrrp")
        log = Path(f"{stem}.log")
        proc = self.topo.spawn(node, argv, log, self.env)
        run = DirectorRun(node, proc, log, time.monotonic())
        self.directors[node.name] = run
        return run

    def kill9_director(self, node: Node) -> None:
        """kill -9 the director's pyvrrpd (VIP and IPVS table stay in its kernel)."""
        self.topo.kill(self.directors[node.name].proc.pid)

    def vip_holders(self) -> list[str]:
        """Directors that have the VIP configured."""
        return [d.name for d in DIRECTORS if probes.holds(self.ns(d), VIP)]

    def eth0_addrs(self, node: Node) -> str:
        """``ip -4 addr`` of the node's eth0, one line."""
        out = self.topo.ip("-4", "-o", "addr", "show", "dev", "eth0", ns=self.ns(node))
        return " ".join(line.split()[3] for line in out.splitlines() if len(line.split()) > 3)

    # -- IPVS ---------------------------------------------------------------------

    def table(self, node: Node) -> dict[tuple[str, str, int], IpvsService]:
        """The director's IPVS table."""
        return parse_ip_vs(probes.read_net(self.ns(node), "ip_vs"))

    def dests(self, node: Node, protocol: str, port: int) -> list[str]:
        """Real servers listed for VIP:port on the director."""
        svc = self.table(node).get((protocol, VIP, port))
        return svc.dest_addrs() if svc is not None else []

    def conns(self, node: Node) -> list[IpvsConn]:
        """The director's IPVS connection entries."""
        return parse_ip_vs_conn(probes.read_net(self.ns(node), "ip_vs_conn"))

    def ipvsadm(self, node: Node) -> str:
        """``ipvsadm -Ln`` in the director's namespace (or the /proc table without it)."""
        if shutil.which("ipvsadm"):
            res = subprocess.run(
                ["ip", "netns", "exec", self.ns(node), "ipvsadm", "-Ln"],
                capture_output=True,
                text=True,
                check=False,
            )
            if res.returncode == 0:
                return res.stdout.rstrip()
        return probes.read_net(self.ns(node), "ip_vs").rstrip()

    # -- the client ---------------------------------------------------------------

    def client_vip_mac(self) -> str | None:
        """The MAC the client's ARP table has for the VIP."""
        return parse_arp(probes.read_net(self.ns(CLIENT), "arp")).get(VIP)

    def director_by_mac(self, mac: str | None) -> str:
        """The director name behind `mac` (or the MAC itself)."""
        for d in DIRECTORS:
            if d.mac == mac:
                return d.name
        return mac or "none"

    def web_request(self, src: str = "") -> probes.Answer:
        """One HTTP request through the VIP."""
        return probes.http_get(self.ns(CLIENT), VIP, WEB_PORT, self.pace.request_timeout, src)

    def dns_query(self, src: str) -> probes.Answer:
        """One DNS query through the VIP from client address `src`."""
        return probes.dns_whoami(self.ns(CLIENT), VIP, DNS_PORT, self.pace.request_timeout, src)

    def forwarded_by(self, protocol: str, port: int, client_ports: list[int]) -> dict[int, str]:
        """Which director's IPVS forwarded each of the client's source ports."""
        found: dict[int, str] = {}
        wanted = set(client_ports)
        for d in DIRECTORS:
            for c in self.conns(d):
                if c.protocol == protocol and c.vport == port and c.client_port in wanted:
                    found.setdefault(c.client_port, d.name)
        return found

    def all_servers(self) -> tuple[Node, ...]:
        return (*WEB, *DNS)
