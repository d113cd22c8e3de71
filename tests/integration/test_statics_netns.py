"""static_ipaddress/static_routes/static_rules and ``-V``, against a real kernel in a
namespace, with keepalived 2.2.7 as the reference for what stays after a stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from scapy.layers.inet import IP

from tests.netlab import Host, Lab

from .vrrplab import Daemon, global_conf, has_address, instance_conf, start_daemon, wait_for

pytestmark = pytest.mark.netns

STATICS = """
static_ipaddress {
    192.0.2.10/32 dev eth0
    192.0.2.11/32 dev eth0
}
static_routes {
    198.51.100.0/24 via 10.78.0.254 dev eth0
}
static_rules {
    from 192.0.2.10 table 100 priority 100
}
"""


def conf(statics: str = STATICS) -> str:
    inst = instance_conf("VI_1", priority=150, advert_int=0.1, version=3)
    return global_conf("A") + statics + inst.replace("10.77.0.100", "10.78.0.100")


def state(lab: Lab, host: Host) -> tuple[set[str], str, str]:
    """(addresses on eth0, routes, rules) of the host."""
    out = lab.ip("-o", "-4", "addr", "show", "dev", "eth0", ns=host)
    addrs = {line.split()[3] for line in out.splitlines()}
    return addrs, lab.ip("route", ns=host), lab.ip("rule", ns=host)


def stop(lab: Lab, d: Daemon) -> None:
    os.kill(d.proc.pid, signal.SIGTERM)
    d.proc.wait(10)
    lab.forget(d.proc.pid)


def test_statics_in_place_reloaded_as_a_diff_and_removed_at_stop(lab: Lab) -> None:
    a = lab.add_host("a", ("10.78.0.1/24",))
    d = start_daemon(lab, a, "pyvrrpd", conf())
    assert wait_for(lambda: has_address(lab, a, "10.78.0.100"), 10) is not None
    addrs, routes, rules = state(lab, a)
    assert {"192.0.2.10/32", "192.0.2.11/32"} <= addrs
    assert "198.51.100.0/24 via 10.78.0.254 dev eth0 proto keepalived" in routes
    assert "100:\tfrom 192.0.2.10 lookup 100" in rules
    mon_log = lab.tmpdir / "monitor"
    with open(mon_log, "wb") as fh:
        mon = lab.popen(a, ["ip", "-o", "monitor", "address"], stdout=fh, stderr=subprocess.STDOUT)
    time.sleep(0.3)
    d.conf.write_text(conf(STATICS.replace("192.0.2.11/32", "192.0.2.12/32")))
    os.kill(d.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: has_address(lab, a, "192.0.2.12"), 5) is not None
    time.sleep(0.3)
    lab.stop(mon)
    events = [ln for ln in mon_log.read_text().splitlines() if " inet " in ln]
    assert len(events) == 2, events  # one removed, one added; nothing else touched
    assert any(ln.startswith("Deleted") and "192.0.2.11/32" in ln for ln in events)
    assert any(not ln.startswith("Deleted") and "192.0.2.12/32" in ln for ln in events)
    stop(lab, d)
    addrs, routes, rules = state(lab, a)
    assert addrs == {"10.78.0.1/24"}
    assert "198.51.100.0" not in routes and "192.0.2.10" not in rules
    assert "Traceback" not in d.log_text()


@pytest.mark.keepalived
@pytest.mark.parametrize("kind", ["pyvrrpd", "keepalived"])
def test_dont_release_vrrp_keeps_vips_not_statics(lab: Lab, kind: str) -> None:
    """-V: the VIP stays and no priority-0 advert leaves; the statics go (keepalived 2.2.7
    does exactly this)."""
    a = lab.add_host("a", ("10.78.0.1/24",))
    b = lab.add_host("b", ("10.78.0.2/24",))
    d = start_daemon(lab, a, kind, conf(), extra=["-V"])
    assert wait_for(lambda: has_address(lab, a, "10.78.0.100"), 10) is not None
    with lab.capture(b, "ip proto 112") as cap:
        time.sleep(0.3)
        stop(lab, d)
        time.sleep(0.3)
    priorities = [bytes(p[IP].payload)[2] for p in cap.packets()]
    assert priorities and 0 not in priorities, priorities
    addrs, routes, rules = state(lab, a)
    assert addrs == {"10.78.0.1/24", "10.78.0.100/24"}
    assert "198.51.100.0" not in routes and "192.0.2.10" not in rules
