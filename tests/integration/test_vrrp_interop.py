"""Mixed pairs with real keepalived 2.2.7, in both roles, over the four common modes."""

from __future__ import annotations

import re
import time

import pytest

from tests.netlab import Host, Lab

from .vrrplab import global_conf, holders, instance_conf, start_daemon, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.keepalived]

MODES = {
    # name: (advert_int, version, vip, ip, unicast)
    "v2-multicast": (1, 2, "10.77.0.100/24", "10.77.0.100", False),
    "v3-multicast-ipv4": (0.1, 3, "10.77.0.100/24", "10.77.0.100", False),
    "v3-ipv6": (0.1, 3, "fd00:77::100/64", "fd00:77::100", False),
    "v3-unicast": (0.1, 3, "10.77.0.100/24", "10.77.0.100", True),
}
COMPLAINTS = re.compile(r"checksum|invalid|bad (ttl|auth)|wrong", re.IGNORECASE)


def conf(name: str, prio: int, mode: str, me: str, peer: str) -> str:
    interval, version, vip, _, unicast = MODES[mode]
    return global_conf(name) + instance_conf(
        priority=prio,
        vip=vip,
        advert_int=interval,
        version=version,
        unicast_src=me if unicast else None,
        peers=[peer] if unicast else (),
    )


@pytest.mark.usefixtures("need_keepalived")
@pytest.mark.parametrize("master_kind", ["pyvrrpd", "keepalived"])
@pytest.mark.parametrize("mode", list(MODES))
def test_mixed_pair(lab: Lab, mode: str, master_kind: str) -> None:
    interval, _, _, ip, _ = MODES[mode]
    backup_kind = "keepalived" if master_kind == "pyvrrpd" else "pyvrrpd"
    a = lab.add_host("a", ("10.77.0.1/24", "fd00:77::1/64"))
    b = lab.add_host("b", ("10.77.0.2/24", "fd00:77::2/64"))
    hosts: list[Host] = [a, b]
    dm = start_daemon(lab, a, master_kind, conf("A", 150, mode, "10.77.0.1", "10.77.0.2"))
    db = start_daemon(lab, b, backup_kind, conf("B", 100, mode, "10.77.0.2", "10.77.0.1"))
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 12) is not None, (
        dm.log_text()[-2000:],
        db.log_text()[-2000:],
    )
    end = time.monotonic() + max(1.0, 3 * interval)
    while time.monotonic() < end:  # exactly one master in steady state
        assert holders(lab, hosts, ip) == ["a"]
        time.sleep(0.05)

    lab.stop(dm.proc)  # SIGTERM: priority 0, the backup takes over in skew time
    skew = (256 - 100) / 256 * (1 if interval >= 1 and MODES[mode][1] == 2 else interval)
    took = wait_for(lambda: holders(lab, hosts, ip) == ["b"], 5)
    assert took is not None and took < skew + 1.0, (took, db.log_text()[-2000:])

    # the old master comes back and preempts
    dm = start_daemon(lab, a, master_kind, conf("A", 150, mode, "10.77.0.1", "10.77.0.2"))
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 12) is not None, dm.log_text()[-2000:]
    lab.stop(dm.proc)
    lab.stop(db.proc)
    for d in (dm, db):
        text = d.log_text()
        bad = [ln for ln in text.splitlines() if COMPLAINTS.search(ln)]
        assert not bad, f"{d.kind} complained: {bad[:5]}"
        assert "Traceback" not in text
