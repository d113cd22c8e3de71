"""Takeover time of a master/backup pair, pyvrrpd pair beside keepalived pair.

Takeover = the new master's first gratuitous ARP - the old master's last advert (the
priority-0 advert after SIGTERM), both read from one tcpdump in a client namespace on the
bridge (MAC learning off, so unicast adverts are flooded to the client too). Master 150,
backup 100. Per trial: kill -9 of the master's process group, restart it and let it preempt,
then SIGTERM, restart it again; then kill -9 followed by ``pyvrrpctl release`` as systemd's
ExecStopPost runs it (keepalived has no such step: its row is a plain kill -9). That last
one is timed from the kill (the release's own start-up counts), to the backup's first GARP.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from tests.integration.vrrplab import (
    Daemon,
    global_conf,
    holders,
    instance_conf,
    wait_for,
)
from tests.netlab import Host, Lab

from .common import IMPLS, Row, log
from .wire import VRRP_OR_ARP, drop_address, events, first, kill_group, last, start, stop

A_IP, B_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2", "10.77.0.200"
VIP, VIP_CIDR = "10.77.0.100", "10.77.0.100/24"
P_MASTER, P_BACKUP = 150, 100


@dataclass(frozen=True)
class Mode:
    """A VRRP flavour to measure."""

    name: str
    version: int
    advert_int: float
    unicast: bool

    def skew(self, prio: int) -> float:
        """RFC skew time: v2 is not scaled by the interval, v3 is."""
        scale = 1.0 if self.version == 2 else self.advert_int
        return (256 - prio) * scale / 256

    def bound(self, event: str) -> float:
        """Master-down interval (kill -9) or skew (priority 0) for the backup."""
        skew = self.skew(P_BACKUP)
        return skew if event == "sigterm" else 3 * self.advert_int + skew


MODES = (
    Mode("v2, 1 s, multicast", 2, 1.0, False),
    Mode("v3, 0.1 s, unicast", 3, 0.1, True),
    Mode("v3, 0.05 s, multicast", 3, 0.05, False),
)
EVENTS = {
    "kill9": "kill -9 (group)",
    "sigterm": "SIGTERM (prio 0)",
    "release": "kill -9 + release (keepalived: kill -9)",
}
CTL = [sys.executable, "-m", "pyvrrpd.cli.ctl"]


def conf(router: str, prio: int, mode: Mode, me: str, peer: str) -> str:
    """One instance: the VIP on eth0, multicast or unicast to the peer."""
    return global_conf(router) + instance_conf(
        priority=prio,
        vip=VIP_CIDR,
        advert_int=mode.advert_int,
        version=mode.version,
        unicast_src=me if mode.unicast else None,
        peers=[peer] if mode.unicast else (),
    )


class Pair:
    """A master (a) and a backup (b) of one implementation, plus a client (c)."""

    def __init__(self, lab: Lab, impl: str, mode: Mode) -> None:
        self.lab, self.impl, self.mode = lab, impl, mode
        self.a = lab.add_host("a", [f"{A_IP}/24"])
        self.b = lab.add_host("b", [f"{B_IP}/24"])
        self.c = lab.add_host("c", [f"{CLIENT_IP}/24"])
        self.mac_b = lab.mac(self.b)
        self.conf_a = conf("A", P_MASTER, mode, A_IP, B_IP)
        self.conf_b = conf("B", P_BACKUP, mode, B_IP, A_IP)
        self.da = start(lab, self.a, impl, self.conf_a)
        self.db = start(lab, self.b, impl, self.conf_b)
        self.wait_master(self.a, "initial election")

    @property
    def hosts(self) -> list[Host]:
        return [self.a, self.b]

    def wait_master(self, host: Host, what: str, timeout: float = 20.0) -> None:
        if wait_for(lambda: holders(self.lab, self.hosts, VIP) == [host.name], timeout) is None:
            raise RuntimeError(
                f"{self.impl} {self.mode.name}: {host.name} not sole VIP holder ({what}); "
                f"holders={holders(self.lab, self.hosts, VIP)}\n"
                f"a: {self.da.log_text()[-1500:]}\nb: {self.db.log_text()[-1500:]}"
            )

    def restart_a(self) -> None:
        """Start the old master again and wait until it has preempted."""
        drop_address(self.lab, self.a, VIP_CIDR)
        self.da = start(self.lab, self.a, self.impl, self.conf_a)
        self.wait_master(self.a, "preempt after restart")

    def trial(self, event: str) -> dict[str, Any]:
        """One takeover; returns the timestamps and the takeover time."""
        adv = self.mode.advert_int
        time.sleep(max(0.3, 2 * adv))  # steady state after the preempt
        cap = self.lab.capture(self.c, VRRP_OR_ARP, name=f"{self.impl}-{event}")
        time.sleep(max(0.3, 1.5 * adv))  # at least one advert of the master in the capture
        old: Daemon = self.da
        t_event = time.time()
        if event in ("kill9", "release"):
            kill_group(self.lab, old)
            if event == "release" and self.impl == "pyvrrpd":
                state = str(old.conf.parent / "state.json")
                self.lab.exec(self.a, [*CTL, "release", "--state", state], timeout=20)
        else:
            old.proc.send_signal(signal.SIGTERM)
        took = wait_for(lambda: holders(self.lab, [self.b], VIP) == ["b"], 15)
        time.sleep(0.1)  # the gratuitous ARP follows the address
        cap.stop()
        if event == "sigterm":
            stop(self.lab, old)
        if took is None:
            raise RuntimeError(f"{self.impl}: b never took the VIP\n{self.db.log_text()[-2000:]}")
        evs = events(cap)
        garp = first(evs, "garp", after=t_event, src_mac=self.mac_b, vip=VIP)
        last_adv = last(evs, "advert", before=garp.t, src_ip=A_IP)
        b_adv = first(evs, "advert", after=t_event, src_ip=B_IP)
        rec = {
            "event": event,
            "kill_to_garp": garp.t - t_event,
            "t_signal": t_event,
            "last_advert_a": last_adv.t,
            "last_advert_a_priority": last_adv.priority,
            "first_advert_b": b_adv.t,
            "first_garp_b": garp.t,
            "takeover": garp.t - last_adv.t,
            "advert_to_advert": b_adv.t - last_adv.t,
            "captured": cap.captured,
            "received": cap.received,
            "complete": cap.complete,
        }
        self.restart_a()
        return rec


def measure(impl: str, mode: Mode, trials: int, rows: dict[tuple[str, str], Row]) -> list[Any]:
    """All trials of one implementation in one mode; fills `rows`, returns the raw records."""
    records: list[dict[str, Any]] = []
    with Lab() as lab:
        pair = Pair(lab, impl, mode)
        for i in range(trials):
            for event in EVENTS:
                for attempt in range(3):
                    rec = pair.trial(event)
                    if rec["complete"] and (
                        event != "sigterm" or rec["last_advert_a_priority"] == 0
                    ):
                        break
                    prio = rec["last_advert_a_priority"]
                    got = f"{rec['captured']} / {rec['received']}"
                    log(f"  retry {event}: captured {got}, last prio {prio} (try {attempt + 1})")
                records.append(rec)
                row = rows[(mode.name, event)]
                row.samples[impl].add(rec["kill_to_garp" if event == "release" else "takeover"])
                rows[(mode.name, event + "-adv")].samples[impl].add(rec["advert_to_advert"])
                log(f"  {impl} {mode.name} {event} #{i + 1}: takeover {rec['takeover']:.4f} s "
                    f"(first advert {rec['advert_to_advert']:.4f} s)")  # fmt: skip
        stop(lab, pair.da)
        stop(lab, pair.db)
    return records


def run(trials: int, modes: tuple[Mode, ...] = MODES) -> tuple[list[Row], dict[str, Any]]:
    """Every mode, both implementations (keepalived first, then pyvrrpd)."""
    rows: dict[tuple[str, str], Row] = {}
    for mode in modes:
        for event, label in EVENTS.items():
            what = "GARP - kill" if event == "release" else "GARP - last advert"
            rows[(mode.name, event)] = Row(
                "takeover", f"{label}: {what}", mode.name, "s",
                bound=f"{mode.bound(event):.3f}",
            )  # fmt: skip
            rows[(mode.name, event + "-adv")] = Row(
                "takeover", f"{label}: new advert - last advert", mode.name, "s",
            )  # fmt: skip
    raw: dict[str, Any] = {}
    for mode in modes:
        for impl in reversed(IMPLS):
            log(f"takeover: {impl}, {mode.name}")
            raw[f"{impl} {mode.name}"] = measure(impl, mode, trials, rows)
    order = [rows[(m.name, e + s)] for m in modes for s in ("", "-adv") for e in EVENTS]
    return order, raw
