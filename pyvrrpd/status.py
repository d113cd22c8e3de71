"""Status snapshots of the running daemon: JSON-able data and a text view.

The JSON shape is documented in docs/status-schema.json; the text view reads like FRR's
``show vrrp`` and ``ipvsadm -Ln``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from . import __version__
from .vrrp.priority import contribution

if TYPE_CHECKING:
    from .daemon import Daemon
    from .vrrp.engine import VrrpEngine

SCHEMA_VERSION = 1


def vrrp_status(engine: VrrpEngine) -> list[dict[str, Any]]:
    """One entry per running VRRP instance."""
    out = []
    for name, inst in engine.instances.items():
        st = inst.fsm.status()
        s = inst.settings
        c = st.counters
        trackers = []
        for t in engine.tracker_table.statuses(name):
            amount = contribution(t)
            trackers.append(
                {
                    "name": t.name,
                    "kind": t.kind.value,
                    "up": t.up,
                    "value": t.value,
                    "weight": t.weight,
                    "reverse": t.reverse,
                    "contribution": "FAULT" if amount is None else amount,
                }
            )
        out.append(
            {
                "name": name,
                "state": st.state.value,
                "interface": s.ifname,
                "vrid": s.vrid,
                "version": s.version,
                "family": f"IPv{s.family}",
                "priority": st.priority,
                "base_priority": st.base_priority,
                "effective_priority": st.priority,
                "trackers": trackers,
                "master": None
                if st.master_address is None
                else {"address": str(st.master_address), "priority": st.master_priority},
                "address": str(inst.address),
                "advert_int": s.advert_int,
                "master_adver_int": st.master_adver_int,
                "master_down_interval": st.master_down_interval,
                "unicast_peers": [str(p) for p in s.peers],
                "vips": [str(v.address) for v in s.vips],
                "excluded_vips": [str(v.address) for v in s.excluded_vips],
                "counters": {
                    "adverts_received": c.adverts_received,
                    "adverts_sent": c.adverts_sent,
                    "priority_zero_received": c.pri_zero_received,
                    "priority_zero_sent": c.pri_zero_sent,
                    "transitions": c.transitions,
                    "became_master": c.become_master,
                    "released_master": c.release_master,
                    "send_failures": inst.tx_failures,
                },
                "drops": dict(inst.drops),
            }
        )
    return out


def _check_entry(c: Any) -> dict[str, Any]:
    """One check, compactly: what it is, where it points, and its last result."""
    check = c.check
    if isinstance(check, tuple) and check:  # the balancer's key: (checker, schedule)
        check = check[0]
    endpoint = getattr(check, "endpoint", None)
    last = c.last
    return {
        "kind": str(getattr(check, "kind", type(check).__name__)),
        "target": endpoint.describe() if endpoint is not None else None,
        "up": c.up,
        "has_run": c.has_run,
        "last": None
        if last is None
        else {
            "ok": last.ok,
            "cause": last.cause,
            "latency": last.latency,
            "weight": last.weight,
        },
    }


def lvs_status(status: Any) -> dict[str, Any]:
    """The balancer's status as plain data (checks summarised, not their full settings)."""
    return {
        "virtual_servers": [
            {
                "name": vs.name,
                "quorum_up": vs.quorum_up,
                "weight_sum": vs.weight_sum,
                "sorry_active": vs.sorry_active,
                "suspended": vs.suspended,
                "servers": [
                    {
                        "name": rs.name,
                        "alive": rs.alive,
                        "weight": rs.weight,
                        "in_pool": rs.in_pool,
                        "checks": [_check_entry(c) for c in rs.checks],
                    }
                    for rs in vs.servers
                ],
            }
            for vs in status.virtual_servers
        ],
        "applies": status.applies,
        "failed_ops": status.failed_ops,
    }


def snapshot(daemon: Daemon) -> dict[str, Any]:
    """Everything ``pyvrrpctl status --json`` shows."""
    balancer = daemon.balancer
    lvs: Any = lvs_status(balancer.status()) if balancer is not None else None
    return {
        "schema": SCHEMA_VERSION,
        "version": __version__,
        "pid": os.getpid(),
        "config": daemon.result.files[0] if daemon.result.files else None,
        "uptime": round(time.time() - daemon.started, 3),
        "reloads": daemon.reloads,
        "vrrp": vrrp_status(daemon.vrrp) if daemon.vrrp is not None else [],
        "vrrp_unmatched_drops": dict(daemon.vrrp.drops) if daemon.vrrp is not None else {},
        "ipvs": lvs,
        "drains": [d.as_dict() for d in daemon.drains.items.values()],
    }


def render_text(snap: dict[str, Any]) -> str:
    """A human view of a snapshot."""
    lines = [
        f"pyvrrpd {snap['version']} pid {snap['pid']}, config {snap['config']}, "
        f"up {snap['uptime']:.0f} s, {snap['reloads']} reload(s)",
        "",
    ]
    for i in snap["vrrp"]:
        master = i["master"]
        lines += [
            f"VRRP instance {i['name']}: {i['state']}",
            f"  interface {i['interface']}  VRID {i['vrid']}  VRRPv{i['version']} "
            f"{i['family']}  address {i['address']}",
            f"  priority {i['effective_priority']} (configured {i['base_priority']})  "
            f"advert interval {i['advert_int']} s  master down {i['master_down_interval']:.3f} s",
            "  current master: "
            + (
                f"{master['address']} priority {master['priority']}"
                if master
                else ("this node" if i["state"] == "MASTER" else "unknown")
            ),
            "  virtual addresses: " + (", ".join(i["vips"]) or "none"),
        ]
        for t in i["trackers"]:
            state = {True: "up", False: "down", None: "unknown"}[t["up"]]
            if t["kind"] == "file":
                state = f"value {t['value']}"
            lines.append(
                f"  track {t['kind']} {t['name']}: {state}, weight {t['weight']}"
                f"{' reverse' if t['reverse'] else ''} -> {t['contribution']}"
            )
        c = i["counters"]
        lines.append(
            f"  adverts in {c['adverts_received']} out {c['adverts_sent']}, "
            f"transitions {c['transitions']}, drops "
            + (", ".join(f"{k} {v}" for k, v in sorted(i["drops"].items())) or "none")
        )
        lines.append("")
    lvs = snap["ipvs"]
    if lvs:
        lines.append("Prot LocalAddress:Port Scheduler Flags")
        lines.append("  -> RemoteAddress:Port           Weight  State  Last check")
        for vs in lvs["virtual_servers"]:
            flags = []
            if not vs["quorum_up"]:
                flags.append("quorum down")
            if vs["sorry_active"]:
                flags.append("sorry server in")
            if vs["suspended"]:
                flags.append("suspended")
            lines.append(f"{vs['name']}  {' '.join(flags)}".rstrip())
            for rs in vs["servers"]:
                last = ""
                if rs["checks"]:
                    ch = rs["checks"][0]
                    last = " ".join(str(ch.get(k, "")) for k in ("kind", "cause") if ch.get(k))
                state = "UP" if rs["alive"] else "DOWN"
                lines.append(f"  -> {rs['name']:<28} {rs['weight']:<7} {state:<6} {last}")
        lines.append("")
    for d in snap.get("drains", []):
        state = "removed" if d["removed"] else f"draining, {d['active']} active connection(s)"
        lines.append(f"drain {d['rs']} of {d['vs']}: {state}")
    return "\n".join(lines)
