"""Operations on pyvrrpd daemons in namespaces: pyvrrpctl status/plan/reload, dump
signals, sd_notify messages, and crash takeover with ``pyvrrpctl release``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP

from pyvrrpd.cli.daemon import SIGNUMS
from tests.netlab import Host, Lab

from .vrrplab import global_conf, holders, instance_conf, wait_for

pytestmark = pytest.mark.netns

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "status-schema.json"
CTL = [sys.executable, "-m", "pyvrrpd.cli.ctl"]


@dataclass
class Node:
    host: Host
    proc: subprocess.Popen[Any]
    dir: Path
    conf: Path
    sock: str
    state: Path
    log: Path

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """pyvrrpctl against this node's socket (a unix socket: no network involved)."""
        cmd = [*CTL, "-s", self.sock, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def start(lab: Lab, host: Host, conf_text: str, notify: str | None = None) -> Node:
    """pyvrrpd in the host's namespace with its own socket, state file and TMPDIR."""
    d = lab.tmpdir / host.name
    d.mkdir()
    conf = d / "keepalived.conf"
    conf.write_text(conf_text)
    sock, state, log = str(d / "control.sock"), d / "state.json", d / "log"
    env = {**os.environ, "TMPDIR": str(d)}
    env.pop("NOTIFY_SOCKET", None)
    if notify:
        env["NOTIFY_SOCKET"] = notify
    cmd = [sys.executable, "-m", "pyvrrpd.cli.daemon", "-n", "-l", "-D", "--vrrp",
           "-f", str(conf), "-p", str(d / "pid"), "--control-socket", sock,
           "--state-file", str(state)]  # fmt: skip
    with open(log, "wb") as fh:
        proc = lab.popen(host, cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    return Node(host, proc, d, conf, sock, state, log)


def notify_socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(15)
    return s


def next_message(s: socket.socket, key: str) -> list[str]:
    """The next notify message holding ``key`` (keep-alives and others skipped)."""
    while True:
        msg = s.recv(4096).decode().split("\n")
        if key in msg:
            return msg


def test_ctl_status_plan_reload_dumps_and_notify(lab: Lab) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    a = lab.add_host("a", ("10.77.0.1/24",))
    conf = global_conf("A") + instance_conf(priority=150, advert_int=0.1, version=3)
    ns = notify_socket(lab.tmpdir / "notify")
    try:
        t0 = time.monotonic()
        node = start(lab, a, conf, notify=str(lab.tmpdir / "notify"))
        ready = next_message(ns, "READY=1")
        assert os.path.exists(node.sock), "READY=1 before the control socket was bound"
        assert any(ln.startswith("STATUS=VRRP:") for ln in ready), ready
        assert wait_for(lambda: holders(lab, [a], "10.77.0.100") == ["a"], 5) is not None
        print(f"READY=1 after {time.monotonic() - t0:.2f} s")

        res = node.ctl("status", "--json")
        assert res.returncode == 0, res.stderr
        snap = json.loads(res.stdout)
        jsonschema.validate(snap, json.loads(SCHEMA.read_text()))
        assert [(i["name"], i["state"]) for i in snap["vrrp"]] == [("VI_1", "MASTER")]
        assert "VRRP instance VI_1: MASTER" in node.ctl("status").stdout

        new = node.dir / "new.conf"
        two_vips = "10.77.0.100/24 dev eth0\n        10.77.0.101/24 dev eth0"
        new.write_text(
            conf.replace("priority 150", "priority 140").replace(
                "10.77.0.100/24 dev eth0", two_vips
            )
            + instance_conf(
                "VI_2", vrid=52, priority=150, vip="10.77.0.200/24", advert_int=0.1, version=3
            )
        )
        plan = node.ctl("plan", "-f", str(new))
        assert plan.returncode == 0, plan.stderr
        vrrp_lines = [ln for ln in plan.stdout.splitlines() if ln.startswith("VRRP")]
        assert vrrp_lines == [
            "VRRP addresses changed in place: VI_1",
            "VRRP priority changed in place: VI_1",
            "VRRP added: VI_2",
        ]
        assert holders(lab, [a], "10.77.0.101") == []  # a plan applies nothing
        reload = node.ctl("reload", "-f", str(new))
        assert reload.returncode == 0, reload.stderr
        assert reload.stdout.splitlines()[0] == "reload applied"
        assert [ln for ln in reload.stdout.splitlines() if ln.startswith("VRRP")] == vrrp_lines
        assert next_message(ns, "RELOADING=1")[1].startswith("MONOTONIC_USEC=")
        assert "READY=1" in next_message(ns, "READY=1")
        assert wait_for(lambda: holders(lab, [a], "10.77.0.200") == ["a"], 5) is not None

        bad = node.dir / "bad.conf"
        bad.write_text("vrrp_instance X {\n  virtual_router_id 999\n")
        refused = node.ctl("reload", "-f", str(bad))
        assert refused.returncode == 1 and refused.stdout.startswith("reload refused")

        files = {
            "DATA": "keepalived.data",
            "STATS": "keepalived.stats",
            "JSON": "keepalived.json",
        }
        for name, file in files.items():
            os.kill(node.proc.pid, SIGNUMS[name])
            assert wait_for((node.dir / file).exists, 3) is not None, node.log.read_text()
        records = json.loads((node.dir / "keepalived.json").read_text())
        assert {r["data"]["iname"]: r["data"]["state"] for r in records} == {"VI_1": 2, "VI_2": 2}
        assert "VRRP Instance: VI_2" in (node.dir / "keepalived.stats").read_text()
        data = (node.dir / "keepalived.data").read_text()
        assert "VRRP instance VI_1: MASTER" in data and "vrrp_instance VI_2" in data

        held = json.loads(node.state.read_text())
        assert {m["instance"] for m in held["masters"]} == {"VI_1", "VI_2"}
        assert lab.stop(node.proc) == 0
        assert "STOPPING=1" in next_message(ns, "STOPPING=1")
        held = json.loads(node.state.read_text())
        assert held["masters"] == [] and held["vips"] == []  # a clean stop leaves nothing
        assert not os.path.exists(node.sock)
        assert "Traceback" not in node.log.read_text()
    finally:
        ns.close()


def test_crash_release_takeover(lab: Lab) -> None:
    a = lab.add_host("a", ("10.77.0.1/24",))
    b = lab.add_host("b", ("10.77.0.2/24",))
    hosts = [a, b]
    # advert_int 1: master down on b is 3 x 1 + skew (0.61) = 3.61 s; after a priority-0
    # advert only the skew time (256 - 100) / 256 x 1 = 0.61 s.
    na = start(lab, a, global_conf("A") + instance_conf(priority=150, version=3))
    nb = start(lab, b, global_conf("B") + instance_conf(priority=100, version=3))
    assert wait_for(lambda: holders(lab, hosts, "10.77.0.100") == ["a"], 10) is not None
    assert wait_for(lambda: nb.ctl("status", "--json").stdout.count('"BACKUP"') == 1, 5)
    held = json.loads(na.state.read_text())
    assert [m["instance"] for m in held["masters"]] == ["VI_1"]
    assert [v["address"] for v in held["vips"]] == ["10.77.0.100/24"]

    os.killpg(na.proc.pid, signal.SIGKILL)
    na.proc.wait()
    lab.forget(na.proc.pid)
    time.sleep(0.3)  # b has heard no advert for 0.3 s: still well inside its 3.6 s
    assert holders(lab, hosts, "10.77.0.100") == ["a"]  # the dead node kept its VIP

    with lab.capture(b, "ip proto 112") as cap:
        rel = lab.popen(a, [*CTL, "release", "--state", str(na.state)], stderr=subprocess.STDOUT)
        took = wait_for(lambda: holders(lab, [b], "10.77.0.100") == ["b"], 3, step=0.01)
        out, _ = rel.communicate(timeout=20)
        lab.forget(rel.pid)
    assert rel.returncode == 0, out
    assert took is not None, out
    # on the wire: a's priority-0 advert, then b's first advert as master
    adverts = [(float(p.time), str(p[IP].src), bytes(p[IP].payload)[2]) for p in cap.packets()]
    zero = next(t for t, src, prio in adverts if src == "10.77.0.1" and prio == 0)
    first = next(t for t, src, prio in adverts if src == "10.77.0.2" and t > zero)
    wire = first - zero
    print(f"release -> VIP on b: {took:.3f} s (pyvrrpctl start included); "
          f"priority 0 -> b master on the wire: {wire:.3f} s (skew time 0.609 s)")  # fmt: skip
    assert 0.5 < wire < 0.61 + 0.3, wire  # the skew time, not the 3.6 s master-down
    assert holders(lab, hosts, "10.77.0.100") == ["b"]  # nothing left on the dead node
    assert b"sent priority 0 for VI_1" in out and b"removed 10.77.0.100/24 dev eth0" in out
    again = lab.exec(a, [*CTL, "release", "--state", str(na.state)])
    assert again.stdout.strip() == "nothing to release"
    lab.stop(nb.proc)
