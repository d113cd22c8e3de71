"""keepalived's signal-driven dump files, written from a status snapshot.

SIGUSR1 writes ``keepalived.data`` (the state, readable), SIGUSR2 ``keepalived.stats``
(per-instance counters), SIGRTMIN+2 ``keepalived.json`` (a list with one
``{"data": ..., "stats": ...}`` object per instance, with keepalived's key names where
pyvrrpd has the value). Files go to ``$TMPDIR`` (default /tmp), as keepalived's do.
The builders are pure (snapshot in, text out); :func:`write_dump` does the I/O.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

from .status import render_text

DATA_FILE = "keepalived.data"
STATS_FILE = "keepalived.stats"
JSON_FILE = "keepalived.json"

# keepalived's numeric states in keepalived.json
_STATE_NUM = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3, "STOPPED": 0}


def dump_dir(env: dict[str, str] | None = None) -> str:
    """Where dumps go: ``$TMPDIR``, else /tmp."""
    env = dict(os.environ) if env is None else env
    return env.get("TMPDIR") or "/tmp"


def data_text(snap: dict[str, Any], config_text: str = "") -> str:
    """``keepalived.data``: the status view, then the running configuration."""
    out = ["------< pyvrrpd data dump >------", "", render_text(snap)]
    if config_text:
        out += ["------< running configuration >------", "", config_text]
    return "\n".join(out).rstrip("\n") + "\n"


def stats_text(snap: dict[str, Any]) -> str:
    """``keepalived.stats``: counters per VRRP instance, keepalived's layout."""
    lines: list[str] = []
    for i in snap["vrrp"]:
        c = i["counters"]
        drops = i["drops"]
        lines += [
            f"VRRP Instance: {i['name']}",
            "  Advertisements:",
            f"    Received: {c['adverts_received']}",
            f"    Sent: {c['adverts_sent']}",
            f"  Became master: {c['became_master']}",
            f"  Released master: {c['released_master']}",
            "  Packet Errors:",
            f"    Length: {drops.get('truncated', 0) + drops.get('bad_length', 0)}",
            f"    TTL: {drops.get('bad_ttl', 0)}",
            f"    Invalid Type: {drops.get('bad_type', 0)}",
            f"    Advertisement Interval: {drops.get('interval_mismatch', 0)}",
            f"    Address List: {drops.get('addr_list', 0) + drops.get('bad_addr_count', 0)}",
            "  Authentication Errors:",
            f"    Invalid Type: {drops.get('auth_type', 0)}",
            f"    Failure: {drops.get('auth_failure', 0)}",
            "  Priority Zero:",
            f"    Received: {c['priority_zero_received']}",
            f"    Sent: {c['priority_zero_sent']}",
        ]
        if drops:
            lines.append("  Drops by reason:")
            lines += [f"    {k}: {v}" for k, v in sorted(drops.items())]
    return "\n".join(lines) + ("\n" if lines else "")


def json_records(snap: dict[str, Any]) -> list[dict[str, Any]]:
    """``keepalived.json``: keepalived's ``[{"data": {...}, "stats": {...}}]`` shape."""
    out = []
    for i in snap["vrrp"]:
        c = i["counters"]
        drops = i["drops"]
        master = i["master"]
        data = {
            "iname": i["name"],
            "ifp_ifname": i["interface"],
            "vrid": i["vrid"],
            "version": i["version"],
            "state": _STATE_NUM.get(i["state"], 0),
            "state_name": i["state"],
            "base_priority": i["base_priority"],
            "effective_priority": i["effective_priority"],
            "master_priority": master["priority"] if master else 0,
            "master_address": master["address"] if master else None,
            "adver_int": i["advert_int"],
            "master_adver_int": i["master_adver_int"],
            "vipset": i["state"] == "MASTER",
            "vips": i["vips"],
            "evips": i["excluded_vips"],
            "unicast_peers": i["unicast_peers"],
            "source_address": i["address"],
        }
        stats = {
            "advert_rcvd": c["adverts_received"],
            "advert_sent": c["adverts_sent"],
            "become_master": c["became_master"],
            "release_master": c["released_master"],
            "packet_len_err": drops.get("truncated", 0) + drops.get("bad_length", 0),
            "ip_ttl_err": drops.get("bad_ttl", 0),
            "invalid_type_rcvd": drops.get("bad_type", 0),
            "addr_list_err": drops.get("addr_list", 0) + drops.get("bad_addr_count", 0),
            "advert_interval_err": drops.get("interval_mismatch", 0),
            "invalid_authtype": drops.get("auth_type", 0),
            "auth_failure": drops.get("auth_failure", 0),
            "pri_zero_rcvd": c["priority_zero_received"],
            "pri_zero_sent": c["priority_zero_sent"],
            "send_failures": c["send_failures"],
            "drops": dict(drops),
        }
        out.append({"data": data, "stats": stats})
    return out


def json_text(snap: dict[str, Any]) -> str:
    """The JSON dump as text."""
    return json.dumps(json_records(snap), indent=1, sort_keys=True) + "\n"


def write_dump(name: str, text: str, directory: str | None = None) -> str:
    """Write one dump file (replacing it); returns its path."""
    directory = directory or dump_dir()
    path = os.path.join(directory, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)  # O_EXCL, random name
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)  # replaces a symlink itself, never its target
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
