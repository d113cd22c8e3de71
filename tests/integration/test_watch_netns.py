"""``pyvrrpctl watch`` on a lab segment: two pyvrrpd nodes and a keepalived node.

a (pyvrrpd) is master of VRID 51 (VRRPv3, 0.2 s) over b (pyvrrpd, silent backup); b is
master of VRID 52 (VRRPv2, PASS auth); k (keepalived) is master of VRID 61.  A client
namespace runs the watch.  Then a and b are cut from each other (the client still hears
both) and the watch must report the split brain of VRID 51.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.netlab import Host, Lab

from .vrrplab import global_conf, holders, instance_conf, start_daemon, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.keepalived]

AUTH = "authentication {\n    auth_type PASS\n    auth_pass s3cr3t\n}"


def vi51(prio: int) -> str:
    return instance_conf("VI_51", vrid=51, priority=prio, vip="10.77.0.51/24",
                         advert_int=0.2, version=3)  # fmt: skip


def watch(lab: Lab, host: Host, *args: str, timeout: float = 20) -> tuple[int, str, str]:
    res = lab.exec(
        host,
        [sys.executable, "-m", "pyvrrpd.cli.ctl", "watch", "eth0", *args],
        check=False,
        timeout=timeout,
    )
    return res.returncode, res.stdout, res.stderr


def speakers(doc: dict[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
    return {(s["vrid"], s["source"]): s for s in doc["speakers"]}


@pytest.mark.usefixtures("need_keepalived")
def test_watch_lists_the_speakers_and_sees_split_brain(lab: Lab) -> None:
    a = lab.add_host("a", ["10.77.0.1/24"])
    b = lab.add_host("b", ["10.77.0.2/24"])
    k = lab.add_host("k", ["10.77.0.3/24"])
    c = lab.add_host("c", ["10.77.0.9/24"])
    da = start_daemon(lab, a, "pyvrrpd", global_conf("A") + vi51(150))
    vi52 = instance_conf("VI_52", vrid=52, priority=120, vip="10.77.0.52/24", version=2,
                         extra=AUTH)  # fmt: skip
    db = start_daemon(lab, b, "pyvrrpd", global_conf("B") + vi51(100) + vi52)
    vi61 = instance_conf("VI_61", vrid=61, priority=200, vip="10.77.0.61/24", version=2)
    dk = start_daemon(lab, k, "keepalived", global_conf("K") + vi61)
    hosts = [a, b, k]
    for vip, owner, d in (
        ("10.77.0.51", "a", da),
        ("10.77.0.52", "b", db),
        ("10.77.0.61", "k", dk),
    ):
        assert wait_for(lambda v=vip, o=owner: holders(lab, hosts, v) == [o], 15) is not None, (
            vip,
            d.log_text()[-2000:],
        )

    rc, out, err = watch(lab, c, "--duration", "3", "--json", "--vrid", "51", "--vrid", "52")
    assert rc == 0, err
    doc = json.loads(out)
    sp = speakers(doc)
    assert set(sp) == {(51, "10.77.0.1"), (52, "10.77.0.2"), (61, "10.77.0.3")}  # b is silent
    s51, s52, s61 = sp[51, "10.77.0.1"], sp[52, "10.77.0.2"], sp[61, "10.77.0.3"]
    assert (s51["version"], s51["priority"], s51["advert_int"]) == (3, 150, 0.2)
    assert (s52["version"], s52["priority"], s52["advert_int"]) == (2, 120, 1.0)
    assert (s61["version"], s61["priority"], s61["advert_int"]) == (2, 200, 1.0)
    assert s51["checksum"] == "pseudo-header"
    assert s52["checksum"] == s61["checksum"] == "message"
    assert s52["auth"] == "pass" and s52["auth_password_present"] is True
    assert "s3cr3t" not in out
    assert s51["addresses"] == ["10.77.0.51"] and s61["addresses"] == ["10.77.0.61"]
    assert all(s["ttl"] == 255 and s["family"] == 4 for s in sp.values())
    assert 8 <= s51["packets"] <= 20, s51  # 0.2 s adverts for 3 s
    assert 2 <= s52["packets"] <= 5, s52
    assert s61["flags"] == ["foreign VRID"]
    assert s51["flags"] == [] and s52["flags"] == [], doc["warnings"]
    assert doc["warnings"] == ["foreign VRIDs on this segment: 61"]

    # cut a and b apart: b takes VRID 51 over as well, the client hears both masters
    lab.partition(a, b)
    both = wait_for(lambda: holders(lab, hosts, "10.77.0.51") == ["a", "b"], 10)
    assert both is not None, db.log_text()[-2000:]
    rc, out, err = watch(lab, c, "--once", "--duration", "1.5", "--show-auth")
    assert rc == 0, err
    rows = {ln.split()[3]: ln for ln in out.splitlines()[2:] if ln.split()[:1] == ["51"]}
    assert set(rows) == {"10.77.0.1", "10.77.0.2"}, out
    assert all("2 masters!" in ln for ln in rows.values()), out
    assert "VRID 51 (IPv4): 2 masters! 10.77.0.1 prio 150, 10.77.0.2 prio 100" in out
    assert "pass:s3cr3t" in out  # --show-auth
    lab.heal(a, b)
    for d in (da, db, dk):
        lab.stop(d.proc)
        assert "Traceback" not in d.log_text()


def test_watch_on_a_missing_interface_fails_clearly(lab: Lab) -> None:
    c = lab.add_host("c", ["10.77.0.9/24"])
    res = lab.exec(
        c,
        [sys.executable, "-m", "pyvrrpd.cli.ctl", "watch", "nosuch0", "--once", "--duration", "1"],
        check=False,
    )
    assert res.returncode == 1
    assert "pyvrrpctl watch: cannot capture on nosuch0" in res.stderr
    assert "Traceback" not in res.stderr
