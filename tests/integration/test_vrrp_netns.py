"""pyvrrpd nodes in network namespaces, observed from outside: who holds the VIP."""

from __future__ import annotations

import time

import pytest

from tests.netlab import Host, Lab

from .vrrplab import Daemon, global_conf, holders, instance_conf, start_daemon, wait_for

pytestmark = pytest.mark.netns

V4 = ("10.77.0.1/24", "fd00:77::1/64")
V4B = ("10.77.0.2/24", "fd00:77::2/64")
V4C = ("10.77.0.3/24", "fd00:77::3/64")


def steady(lab: Lab, hosts: list[Host], ip: str, expect: list[str], seconds: float) -> None:
    """The VIP stays on exactly the expected hosts for the whole window."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert holders(lab, hosts, ip) == expect
        time.sleep(0.05)


def kill9(lab: Lab, d: Daemon) -> None:
    lab.kill_group(d.proc)


def pair(lab: Lab, conf_a: str, conf_b: str) -> tuple[Host, Host, Daemon, Daemon]:
    a = lab.add_host("a", V4)
    b = lab.add_host("b", V4B)
    da = start_daemon(lab, a, "pyvrrpd", global_conf("A") + conf_a)
    db = start_daemon(lab, b, "pyvrrpd", global_conf("B") + conf_b)
    return a, b, da, db


@pytest.mark.parametrize(
    ("label", "vip", "ip", "kw"),
    [
        ("v3-ipv4-multicast", "10.77.0.100/24", "10.77.0.100", {"version": 3}),
        ("v3-ipv6-multicast", "fd00:77::100/64", "fd00:77::100", {"version": 3}),
        (
            "v3-ipv4-unicast",
            "10.77.0.100/24",
            "10.77.0.100",
            {"version": 3, "unicast": True},
        ),
    ],
)
def test_pair_election_sigterm_preempt_kill(
    lab: Lab, label: str, vip: str, ip: str, kw: dict[str, object]
) -> None:
    interval = 0.1
    uc = bool(kw.get("unicast"))
    conf_a = instance_conf(
        priority=150,
        vip=vip,
        advert_int=interval,
        version=3,
        unicast_src="10.77.0.1" if uc else None,
        peers=["10.77.0.2"] if uc else (),
    )
    conf_b = instance_conf(
        priority=100,
        vip=vip,
        advert_int=interval,
        version=3,
        unicast_src="10.77.0.2" if uc else None,
        peers=["10.77.0.1"] if uc else (),
    )
    a, b, da, db = pair(lab, conf_a, conf_b)
    hosts = [a, b]
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 10) is not None, da.log_text()
    steady(lab, hosts, ip, ["a"], 1.0)

    # SIGTERM: priority 0, the backup takes over within skew time (+ margin), VIP gone on a
    lab.stop(da.proc)
    took = wait_for(lambda: holders(lab, hosts, ip) == ["b"], 3)
    assert took is not None and took < (256 - 100) / 256 * interval + 0.5, (took, db.log_text())

    # preempt back: a restarts with the higher priority and wins
    da = start_daemon(lab, a, "pyvrrpd", global_conf("A") + conf_a)
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 10) is not None, da.log_text()
    steady(lab, hosts, ip, ["a"], 0.5)

    # kill -9: b takes over within master-down interval (+ margin)
    kill9(lab, da)
    master_down = 3 * interval + (256 - 100) / 256 * interval
    took = wait_for(lambda: "b" in holders(lab, hosts, ip), 5)
    assert took is not None and took < master_down + 0.5, (took, db.log_text())
    lab.stop(db.proc)
    assert holders(lab, hosts, ip) == ["a"]  # the dead node's VIP stays (as keepalived)
    assert "Traceback" not in db.log_text()


def test_v2_pair_with_auth_and_three_nodes(lab: Lab) -> None:
    auth = "authentication {\n    auth_type PASS\n    auth_pass s3cret\n}"
    hosts = [lab.add_host(n, addrs) for n, addrs in (("a", V4), ("b", V4B), ("c", V4C))]
    prios = {"a": 100, "b": 200, "c": 150}
    ds = {
        h.name: start_daemon(
            lab,
            h,
            "pyvrrpd",
            global_conf(h.name) + instance_conf(priority=prios[h.name], extra=auth),
        )
        for h in hosts
    }
    ip = "10.77.0.100"
    assert wait_for(lambda: holders(lab, hosts, ip) == ["b"], 10) is not None
    steady(lab, hosts, ip, ["b"], 1.5)
    lab.stop(ds["b"].proc)
    assert wait_for(lambda: holders(lab, hosts, ip) == ["c"], 3) is not None
    steady(lab, hosts, ip, ["c"], 1.0)
    for d in ds.values():
        assert "Traceback" not in d.log_text()


def test_wrong_auth_is_dropped_and_counted_as_split_brain(lab: Lab) -> None:
    def conf(prio: int, pw: str) -> str:
        auth = f"authentication {{\n    auth_type PASS\n    auth_pass {pw}\n}}"
        return instance_conf(priority=prio, advert_int=1, extra=auth)

    a, b, da, db = pair(lab, conf(150, "one"), conf(100, "two"))
    ip = "10.77.0.100"
    # Neither accepts the other's adverts: both become master (as keepalived would).
    assert wait_for(lambda: holders(lab, [a, b], ip) == ["a", "b"], 10) is not None
    lab.stop(da.proc)
    lab.stop(db.proc)
    assert "auth_failure" in db.log_text() or "auth_failure" in da.log_text()


def test_link_down_moves_master_and_partition_heals(lab: Lab) -> None:
    interval = 0.1
    conf_a = instance_conf(priority=150, advert_int=interval, version=3)
    conf_b = instance_conf(priority=100, advert_int=interval, version=3)
    a, b, da, db = pair(lab, conf_a, conf_b)
    hosts = [a, b]
    ip = "10.77.0.100"
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 10) is not None

    # link down on the master's own interface: FAULT there, b takes over
    lab.link_down(a, side="host")
    assert wait_for(lambda: holders(lab, hosts, ip) == ["b"], 3) is not None
    lab.link_up(a, side="host")
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 5) is not None

    # partition: both become master; heal: a single master again
    lab.partition(a, b)
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a", "b"], 3) is not None
    lab.heal(a, b)
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 3) is not None
    steady(lab, hosts, ip, ["a"], 0.5)
    lab.stop(da.proc)
    lab.stop(db.proc)


def test_gratuitous_arp_and_na_on_takeover(lab: Lab) -> None:
    client = lab.add_host("client", ("10.77.0.9/24", "fd00:77::9/64"))
    a = lab.add_host("a", V4)
    excluded = "virtual_ipaddress_excluded {\n    fd00:77::100/64 dev eth0\n}"
    conf = instance_conf(priority=150, advert_int=0.1, version=3, extra=excluded)
    with lab.capture(client, "arp or icmp6") as cap:
        d = start_daemon(lab, a, "pyvrrpd", global_conf("A") + conf)
        assert wait_for(lambda: holders(lab, [a], "10.77.0.100") == ["a"], 10) is not None
        time.sleep(0.5)
    pkts = cap.packets()
    garps = [
        p
        for p in pkts
        if p.haslayer("ARP") and p["ARP"].psrc == "10.77.0.100" and p["ARP"].pdst == "10.77.0.100"
    ]
    nas = [p for p in pkts if p.haslayer("ICMPv6ND_NA") and p["ICMPv6ND_NA"].tgt == "fd00:77::100"]
    assert len(garps) >= 1 and len(nas) >= 1
    lab.stop(d.proc)


def test_track_script_moves_master_and_notify_runs(lab: Lab) -> None:
    flag = lab.tmpdir / "healthy"
    flag.write_text("ok")
    notes = lab.tmpdir / "notes"
    notify = lab.tmpdir / "notify.sh"
    notify.write_text(f'#!/bin/sh\necho "$@" >> {notes}\n')
    notify.chmod(0o755)
    script_block = (
        f'vrrp_script chk {{\n    script "/usr/bin/test -e {flag}"\n    interval 0.2\n'
        "    weight -60\n    fall 1\n    rise 1\n}\n"
    )
    track = f'track_script {{\n    chk\n}}\nnotify "{notify}"'
    conf_a = script_block + instance_conf(priority=150, advert_int=0.1, version=3, extra=track)
    conf_b = instance_conf(priority=100, advert_int=0.1, version=3)
    a, b, da, db = pair(lab, conf_a, conf_b)
    hosts = [a, b]
    ip = "10.77.0.100"
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 10) is not None, da.log_text()
    assert wait_for(lambda: notes.exists() and "INSTANCE VI_1 MASTER" in notes.read_text(), 3)
    flag.unlink()  # the script fails: a drops to 90, b (100) takes over
    assert wait_for(lambda: holders(lab, hosts, ip) == ["b"], 5) is not None, da.log_text()
    flag.write_text("ok")  # a is back at 150 and preempts
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 5) is not None, da.log_text()
    lab.stop(da.proc)
    lab.stop(db.proc)
    text = notes.read_text()
    assert "INSTANCE VI_1 BACKUP 150" in text or "INSTANCE VI_1 BACKUP 90" in text
    assert "INSTANCE VI_1 STOP" in text


def test_sync_group_moves_together(lab: Lab) -> None:
    def node(prio: int) -> str:
        group = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
        return (
            group
            + instance_conf("VI_1", vrid=51, priority=prio, advert_int=0.1, version=3)
            + instance_conf(
                "VI_2", vrid=52, priority=prio, advert_int=0.1, version=3, vip="10.77.0.101/24"
            )
        )

    a, b, da, db = pair(lab, node(150), node(100))
    hosts = [a, b]

    def both_on(name: str) -> bool:
        return holders(lab, hosts, "10.77.0.100") == [name] and holders(
            lab, hosts, "10.77.0.101"
        ) == [name]

    assert wait_for(lambda: both_on("a"), 10) is not None, da.log_text()
    lab.stop(da.proc)
    assert wait_for(lambda: both_on("b"), 3) is not None, db.log_text()
    lab.stop(db.proc)


def test_use_vmac_master_owns_virtual_mac(lab: Lab) -> None:
    client = lab.add_host("client", ("10.77.0.9/24",))
    conf_a = instance_conf(priority=150, advert_int=0.1, version=3, extra="use_vmac")
    conf_b = instance_conf(priority=100, advert_int=0.1, version=3, extra="use_vmac")
    ip = "10.77.0.100"
    vmac = "00:00:5e:00:01:33"
    with lab.capture(client, "arp") as cap:
        a, b, da, db = pair(lab, conf_a, conf_b)
        hosts = [a, b]
        assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 10) is not None
        assert vmac in lab.ip("-o", "link", "show", "vrrp.51", ns=a)
        assert f" {ip}/24" in lab.ip("-o", "addr", "show", "dev", "vrrp.51", ns=a)
        lab.exec(client, ["ping", "-c", "1", "-W", "2", ip])  # answered via the VMAC
    announced = [
        p
        for p in cap.packets()
        if p.haslayer("ARP")
        and p["ARP"].psrc == ip
        and p["ARP"].op in (1, 2)
        and p["ARP"].pdst in (ip, "10.77.0.9")
        and (p["ARP"].op == 2 or p["ARP"].pdst == ip)
    ]
    assert announced, "no gratuitous ARP or ARP reply for the VIP"
    assert {p["ARP"].hwsrc for p in announced} == {vmac}
    lab.stop(da.proc)
    assert wait_for(lambda: holders(lab, hosts, ip) == ["b"], 3) is not None, db.log_text()
    assert "vrrp.51" not in lab.ip("-o", "link", "show", ns=a)  # removed on stop
    lab.stop(db.proc)


def test_virtual_routes_and_rules_follow_master(lab: Lab) -> None:
    extra = (
        "virtual_routes {\n    10.99.0.0/24 via 10.77.0.254 dev eth0\n}\n"
        "virtual_rules {\n    from 10.77.0.100 table 100 priority 100\n}"
    )
    conf_a = instance_conf(priority=150, advert_int=0.1, version=3, extra=extra)
    conf_b = instance_conf(priority=100, advert_int=0.1, version=3, extra=extra)
    a, b, da, db = pair(lab, conf_a, conf_b)
    hosts = [a, b]
    ip = "10.77.0.100"
    assert wait_for(lambda: holders(lab, hosts, ip) == ["a"], 10) is not None, da.log_text()

    def has_route(h: Host) -> bool:
        return "10.99.0.0/24 via 10.77.0.254" in lab.ip("route", ns=h)

    def has_rule(h: Host) -> bool:
        return "from 10.77.0.100 lookup 100" in lab.ip("rule", ns=h)

    assert wait_for(lambda: has_route(a) and has_rule(a), 2) is not None, da.log_text()
    assert not has_route(b) and not has_rule(b)
    lab.stop(da.proc)
    assert wait_for(lambda: has_route(b) and has_rule(b), 3) is not None, db.log_text()
    assert not has_route(a) and not has_rule(a)
    lab.stop(db.proc)


def test_restarted_backup_removes_stale_vip(lab: Lab) -> None:
    a = lab.add_host("a", V4)
    b = lab.add_host("b", V4B)
    lab.ip("addr", "add", "10.77.0.100/24", "dev", "eth0", ns=b)  # left by a kill -9
    da = start_daemon(lab, a, "pyvrrpd", global_conf("A") + instance_conf(priority=150))
    db = start_daemon(lab, b, "pyvrrpd", global_conf("B") + instance_conf(priority=100))
    # b removes the address at start, before a even wins the election
    assert wait_for(lambda: holders(lab, [b], "10.77.0.100") == [], 5) is not None
    assert wait_for(lambda: holders(lab, [a, b], "10.77.0.100") == ["a"], 10) is not None
    lab.stop(da.proc)
    lab.stop(db.proc)
