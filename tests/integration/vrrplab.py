"""Helpers for VRRP labs: configs, daemons (pyvrrpd or keepalived), who holds the VIP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.netlab import Host, Lab
from tests.netlab import wait_for as wait_for  # re-exported for the tests


def instance_conf(
    name: str = "VI_1",
    *,
    vrid: int = 51,
    priority: int = 100,
    vip: str = "10.77.0.100/24",
    advert_int: float = 1,
    version: int | None = None,
    state: str = "BACKUP",
    unicast_src: str | None = None,
    peers: Sequence[str] = (),
    extra: str = "",
    interface: str = "eth0",
) -> str:
    """One vrrp_instance block."""
    lines = [
        f"vrrp_instance {name} {{",
        f"    state {state}",
        f"    interface {interface}",
        f"    virtual_router_id {vrid}",
        f"    priority {priority}",
        f"    advert_int {advert_int}",
    ]
    if version is not None:
        lines.append(f"    version {version}")
    if unicast_src:
        lines.append(f"    unicast_src_ip {unicast_src}")
    if peers:
        lines.append("    unicast_peer {")
        lines += [f"        {p}" for p in peers]
        lines.append("    }")
    lines += ["    virtual_ipaddress {", f"        {vip} dev {interface}", "    }"]
    if extra:
        lines += ["    " + ln for ln in extra.strip().splitlines()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def global_conf(router_id: str, extra: str = "") -> str:
    """A global_defs block (script security on, so notify scripts are allowed)."""
    body = f"    router_id {router_id}\n    enable_script_security\n    script_user root\n"
    return "global_defs {\n" + body + extra + "}\n"


@dataclass
class Daemon:
    """A VRRP daemon started in a lab namespace."""

    kind: str  # "pyvrrpd" or "keepalived"
    host: Host
    proc: subprocess.Popen[Any]
    conf: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_daemon(
    lab: Lab, host: Host, kind: str, conf_text: str, extra: Sequence[str] = ()
) -> Daemon:
    """Start pyvrrpd or keepalived with keepalived's command line (plus ``extra``
    arguments), logging to a file."""
    d = lab.tmpdir / f"{host.name}-{kind}"
    d.mkdir(exist_ok=True)
    conf = d / "keepalived.conf"
    conf.write_text(conf_text)
    log = d / "log"
    cmd = [sys.executable, "-m", "pyvrrpd.cli.daemon"] if kind == "pyvrrpd" else ["keepalived"]
    cmd += ["-n", "-l", "-D", "-G", "--vrrp", "-f", str(conf), "-p", str(d / "main.pid"),
            "-r", str(d / "vrrp.pid")]  # fmt: skip
    if kind == "pyvrrpd":  # keep the control socket and state file inside the lab
        cmd += ["--control-socket", str(d / "control.sock"), "--state-file",
                str(d / "state.json")]  # fmt: skip
    cmd += extra
    fh = open(log, "wb")  # noqa: SIM115 (closed with the process)
    proc = lab.popen(host, cmd, stdout=fh, stderr=subprocess.STDOUT)
    fh.close()
    return Daemon(kind, host, proc, conf, log)


def has_address(lab: Lab, host: Host, addr: str) -> bool:
    """Whether ``addr`` (no prefix) is configured in the host namespace."""
    out = lab.ip("-o", "addr", "show", ns=host, check=False)
    return any(f" {addr}/" in line for line in out.splitlines())


def holders(lab: Lab, hosts: Sequence[Host], addr: str) -> list[str]:
    """Names of the hosts that hold ``addr``."""
    return [h.name for h in hosts if has_address(lab, h, addr)]
