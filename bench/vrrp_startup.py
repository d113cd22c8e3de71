"""Start-up: from process start (just before Popen) to the node's first packets on the wire.

A single node starts alone (v3, advert_int 0.1 s, multicast). With priority 255 and
``state MASTER`` it is master at once, so its first advert measures the daemon's own
start-up. keepalived 2.2.7 takes that shortcut only with ``state MASTER``: with priority 255
and ``state BACKUP`` it still waits the master-down interval (3·0.1 s + skew), shown as a
row of its own. With priority 100 a node first waits the master-down interval
(3·0.1 + skew = 0.361 s); its first gratuitous ARP marks MASTER with the VIP configured.
All from one client capture.
"""

from __future__ import annotations

import time
from typing import Any

from tests.integration.vrrplab import global_conf, holders, instance_conf, wait_for
from tests.netlab import Lab

from .common import IMPLS, Row, log
from .wire import VRRP_OR_ARP, drop_address, events, first, netns_exec_overhead, start, stop

A_IP, CLIENT_IP = "10.77.0.1", "10.77.0.200"
VIP, VIP_CIDR = "10.77.0.100", "10.77.0.100/24"
ADVERT_INT = 0.1


CASES = (
    # (priority, state, metric, bound)
    (255, "MASTER", "start → first advert (prio 255, state MASTER)", ""),
    (255, "BACKUP", "start → first advert (prio 255, state BACKUP)", ""),
    (100, "BACKUP", "start → MASTER with VIP: first GARP (prio 100)", "0.361 + start"),
)


def conf(prio: int, state: str) -> str:
    return global_conf("A") + instance_conf(
        priority=prio, vip=VIP_CIDR, advert_int=ADVERT_INT, version=3, state=state
    )


def one(lab: Lab, impl: str, prio: int, state: str) -> dict[str, Any]:
    """Start the node, wait for its VIP, return times from start to advert and GARP."""
    a, c = lab.hosts["a"], lab.hosts["c"]
    cap = lab.capture(c, VRRP_OR_ARP, name=f"start-{impl}-{prio}")
    text = conf(prio, state)
    t0 = time.time()
    d = start(lab, a, impl, text)
    took = wait_for(lambda: holders(lab, [a], VIP) == ["a"], 20, step=0.01)
    time.sleep(0.15)  # the advert and GARP around the address
    cap.stop()
    stop(lab, d)
    drop_address(lab, a, VIP_CIDR)
    if took is None:
        raise RuntimeError(f"{impl} prio {prio}: no VIP\n{d.log_text()[-2000:]}")
    evs = events(cap)
    adv = first(evs, "advert", after=t0, src_ip=A_IP)
    garp = first(evs, "garp", after=t0, vip=VIP)
    return {
        "priority": prio,
        "state": state,
        "t_popen": t0,
        "first_advert": adv.t - t0,
        "first_garp": garp.t - t0,
        "complete": cap.complete,
    }


def run(trials: int) -> tuple[list[Row], dict[str, Any]]:
    """Both implementations, each case `trials` starts."""
    mode = "v3, 0.1 s, multicast"
    rows = [Row("startup", metric, mode, "s", bound=bound) for _, _, metric, bound in CASES]
    raw: dict[str, Any] = {}
    with Lab() as lab:
        lab.add_host("a", [f"{A_IP}/24"])
        lab.add_host("c", [f"{CLIENT_IP}/24"])
        overhead = netns_exec_overhead(lab, lab.hosts["a"].ns)
        raw["ip_netns_exec_true"] = overhead
        for impl in IMPLS:
            recs = []
            for i in range(trials):
                for (prio, state, _, _), row in zip(CASES, rows, strict=True):
                    rec = one(lab, impl, prio, state)
                    recs.append(rec)
                    row.samples[impl].add(rec["first_garp" if prio < 255 else "first_advert"])
                    log(f"  {impl} start #{i + 1} prio {prio} {state}: advert "
                        f"{rec['first_advert']:.3f} s, GARP {rec['first_garp']:.3f} s")  # fmt: skip
            raw[impl] = recs
    rows[
        0
    ].note = f"Popen to first packet; includes `ip netns exec` ({overhead * 1e3:.1f} ms alone)"
    return rows, raw
