"""A pyvrrpd master under a flood of hostile VRRP packets from another namespace.

The attacker writes Ethernet frames with AF_PACKET (so any IP header goes out as built):
TTL != 255, bad checksums, wrong VRID, truncated messages, wrong versions, spoofed higher
priority with a wrong password (VRRPv2) or from a non-peer (VRRPv3 unicast with
check_unicast_src), and a storm of valid-looking lower-priority adverts. The master must
stay master with its VIP throughout, and ``pyvrrpctl status --json`` must account for
every packet by reason, exactly. CPU seconds of the daemon per 10,000 packets are printed.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from pyvrrpd.control import request
from pyvrrpd.vrrp.packet import (
    Advert,
    AuthType,
    ChecksumForm,
    compute_checksum,
    encode_advert,
    encode_ipv4_packet,
)
from pyvrrpd.vrrp.rx_filter import Accepted, PeerTtl, RxPolicy, inspect
from tests.integration.vrrplab import (
    Daemon,
    global_conf,
    has_address,
    instance_conf,
    start_daemon,
    wait_for,
)
from tests.netlab import Host, Lab

from .mutate import raw_ipv4

CTL = [sys.executable, "-m", "pyvrrpd.cli.ctl"]
VIP = "10.77.0.100"
MASTER_IP = IPv4Address("10.77.0.1")
PEER_IP = IPv4Address("10.77.0.2")
ATTACKER_IP = IPv4Address("10.77.0.66")
GROUP = IPv4Address("224.0.0.18")
GROUP_MAC = "01:00:5e:00:00:12"
TOTAL = 10_000
CHUNK = 50  # packets per burst: far fewer than the socket buffer of the daemon holds

# A sender run inside the attacker's namespace: length-prefixed IPv4 packets from a file,
# one Ethernet frame each (the kernel adds the link header). For every line read on stdin
# it sends the next CHUNK packets back to back and answers with a line, so the test can
# wait for the daemon to count them before the next burst: a burst always fits the
# daemon's socket buffer, whatever else the machine is doing.
SENDER = r"""
import socket, struct, sys
ifname, mac, path, chunk = sys.argv[1:5]
mac, chunk = bytes.fromhex(mac.replace(":", "")), int(chunk)
data = open(path, "rb").read()
pkts, i = [], 0
while i < len(data):
    (n,) = struct.unpack_from("!H", data, i); pkts.append(data[i + 2 : i + 2 + n]); i += 2 + n
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
addr = (ifname, 0x0800, 0, 0, mac)
for k in range(0, len(pkts), chunk):
    if not sys.stdin.readline():
        break
    for p in pkts[k : k + chunk]:
        s.sendto(p, addr)
    print(min(k + chunk, len(pkts)), flush=True)
"""


@dataclass(frozen=True)
class Category:
    """Hostile packets of one kind and where the daemon must count them.

    ``where`` is ``drops`` (the instance's drop counters), ``unmatched`` (drops before an
    instance is known: ``vrrp_unmatched_drops``) or ``received`` (a valid advert the
    instance accepted: ``counters.adverts_received``).
    """

    name: str
    where: str
    reason: str
    make: Callable[[random.Random], bytes]


def v2(prio: int, *, vrid: int = 51, auth: bytes = b"secret", atype: int = AuthType.PASS) -> Advert:
    return Advert(2, vrid, prio, 100, (IPv4Address(VIP),), auth_type=atype, auth_data=auth)


def v3(prio: int, *, vrid: int = 51) -> Advert:
    return Advert(3, vrid, prio, 10, (IPv4Address(VIP),))


def packet(adv: Advert, src: IPv4Address, dst: IPv4Address, ttl: int = 255) -> bytes:
    return encode_ipv4_packet(adv, src=src, dst=dst, ttl=ttl)


def bad_checksum(adv: Advert, src: IPv4Address, dst: IPv4Address) -> bytes:
    good = encode_advert(adv, src=src, dst=dst)
    c = int.from_bytes(good[6:8], "big") ^ 0x5A5A
    return raw_ipv4(good[:6] + c.to_bytes(2, "big") + good[8:], src=src, dst=dst)


def with_version(adv: Advert, version: int, src: IPv4Address, dst: IPv4Address) -> bytes:
    """The advert with another version nibble, its checksum still right."""
    msg = encode_advert(adv, src=src, dst=dst)
    msg = bytes([version << 4 | 1]) + msg[1:]
    c = compute_checksum(msg, src=src, dst=dst, form=ChecksumForm.PSEUDO_HEADER)
    return raw_ipv4(msg[:6] + c.to_bytes(2, "big") + msg[8:], src=src, dst=dst)


def truncated(adv: Advert, src: IPv4Address, dst: IPv4Address, rng: random.Random) -> bytes:
    msg = encode_advert(adv, src=src, dst=dst)
    return raw_ipv4(msg[: rng.choice((0, 3, 7, 10))], src=src, dst=dst)


def categories_v2() -> list[Category]:
    """Against a VRRPv2 multicast master with auth_pass "secret" (priority 200)."""
    s, g = PEER_IP, GROUP
    return [
        Category(
            "ttl", "drops", "bad_ttl", lambda r: packet(v2(250), s, g, r.choice((1, 64, 254)))
        ),
        Category("checksum", "drops", "bad_checksum", lambda r: bad_checksum(v2(250), s, g)),
        Category("vrid", "unmatched", "unknown_vrid", lambda r: packet(v2(250, vrid=52), s, g)),
        Category("truncated", "unmatched", "truncated", lambda r: truncated(v2(250), s, g, r)),
        Category("version", "unmatched", "bad_version", lambda r: with_version(v2(250), 4, s, g)),
        Category("v3_to_v2", "drops", "version_mismatch", lambda r: packet(v3(250), s, g)),
        Category(
            "wrong_auth",
            "drops",
            "auth_failure",
            lambda r: packet(v2(r.choice((201, 254, 255)), auth=b"hacker"), ATTACKER_IP, g),
        ),
        Category(
            "auth_type", "drops", "auth_type", lambda r: packet(v2(254, atype=0, auth=b""), s, g)
        ),
        Category("storm", "received", "adverts_received", lambda r: packet(v2(100), s, g)),
    ]


def categories_v3_unicast() -> list[Category]:
    """Against a VRRPv3 unicast master (priority 200, peer 10.77.0.2, check_unicast_src)."""
    s, d = PEER_IP, MASTER_IP
    spoof = IPv4Address("10.77.0.99")
    return [
        Category("non_peer", "drops", "not_a_peer", lambda r: packet(v3(254), ATTACKER_IP, d)),
        Category("spoofed_src", "drops", "not_a_peer", lambda r: packet(v3(255), spoof, d)),
        Category("ttl_non_peer", "drops", "not_a_peer", lambda r: packet(v3(254), spoof, d, 1)),
        Category("checksum", "drops", "bad_checksum", lambda r: bad_checksum(v3(250), s, d)),
        Category("vrid", "unmatched", "unknown_vrid", lambda r: packet(v3(250, vrid=52), s, d)),
        Category("truncated", "unmatched", "truncated", lambda r: truncated(v3(250), s, d, r)),
        Category("version", "unmatched", "bad_version", lambda r: with_version(v3(250), 5, s, d)),
        Category("v2_to_v3", "drops", "version_mismatch", lambda r: packet(v2(250), s, d)),
        Category("storm", "received", "adverts_received", lambda r: packet(v3(100), s, d)),
    ]


def status(d: Daemon) -> dict[str, Any]:
    sock = str(d.conf.parent / "control.sock")
    res = subprocess.run(
        [*CTL, "-s", sock, "status", "--json"], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    snap: dict[str, Any] = json.loads(res.stdout)
    return snap


def counts(snap: dict[str, Any]) -> Counter[str]:
    """Every counter the flood can move, keyed ``where:reason``."""
    (inst,) = snap["vrrp"]
    c: Counter[str] = Counter()
    for k, v in inst["drops"].items():
        c[f"drops:{k}"] = v
    for k, v in snap["vrrp_unmatched_drops"].items():
        c[f"unmatched:{k}"] = v
    c["received:adverts_received"] = inst["counters"]["adverts_received"]
    return c


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def kernel_counters(pid: int) -> dict[str, Any]:
    """IP counters of the namespace of ``pid`` and the drops of its raw VRRP sockets."""
    with open(f"/proc/{pid}/net/snmp") as fh:
        snmp = fh.read().splitlines()
    ip = dict(zip(snmp[0].split()[1:], map(int, snmp[1].split()[1:]), strict=True))
    with open(f"/proc/{pid}/net/raw") as fh:
        raw = fh.read().splitlines()[1:]
    drops = sum(int(line.split()[-1]) for line in raw if line.split()[1].endswith(":0070"))
    keep = ("InReceives", "InHdrErrors", "InAddrErrors", "InDiscards", "InDelivers")
    return {"ip": {k: ip[k] for k in keep}, "raw_socket_drops": drops}


class VipWatch:
    """Samples, every 50 ms, that the master holds the VIP."""

    def __init__(self, lab: Lab, host: Host) -> None:
        self.lab, self.host = lab, host
        self.samples = 0
        self.missing = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples += 1
            if not has_address(self.lab, self.host, VIP):
                self.missing += 1
            self._stop.wait(0.05)

    def __enter__(self) -> VipWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flood(
    lab: Lab, master: Host, attacker: Host, d: Daemon, cats: list[Category], dst_mac: str
) -> None:
    rng = random.Random(1)
    per = TOTAL // len(cats)
    plan = [c for c in cats for _ in range(per)]
    plan += cats[: TOTAL - len(plan)]  # exactly TOTAL packets
    rng.shuffle(plan)
    sent = Counter(f"{c.where}:{c.reason}" for c in plan)
    wire = b"".join(len(p).to_bytes(2, "big") + p for p in (c.make(rng) for c in plan))

    before = status(d)
    assert before["vrrp"][0]["state"] == "MASTER"
    pid = before["pid"]
    k0 = kernel_counters(pid)
    idle0 = cpu_seconds(pid)
    time.sleep(1.0)
    idle = cpu_seconds(pid) - idle0
    path = lab.tmpdir / "flood.bin"
    path.write_bytes(wire)
    sock = str(d.conf.parent / "control.sock")
    base = counts(before)
    request_count = [0]

    def delivered() -> int:
        """Packets the daemon counted plus those the kernel dropped at its socket."""
        request_count[0] += 1
        snap = request(sock, "status")["status"]
        lost = kernel_counters(pid)["raw_socket_drops"] - k0["raw_socket_drops"]
        return (counts(snap) - base).total() + lost

    c0, t0 = cpu_seconds(pid), time.monotonic()
    with VipWatch(lab, master) as watch:
        cmd = [sys.executable, "-c", SENDER, attacker.ifname, dst_mac, str(path), str(CHUNK)]
        proc = lab.popen(attacker, cmd, stdin=subprocess.PIPE, text=True, bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            done = 0
            while done < TOTAL:
                proc.stdin.write("\n")
                done = int(proc.stdout.readline())
                target = done
                assert wait_for(lambda t=target: delivered() >= t, 10, step=0.002) is not None
        finally:
            proc.stdin.close()
            lab.stop(proc)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pid) - c0
    polls = request_count[0]
    p0 = cpu_seconds(pid)
    for _ in range(polls):  # what the status polls cost the daemon, to subtract
        request(sock, "status")
    poll_cpu = cpu_seconds(pid) - p0
    cpu_flood = cpu - poll_cpu - idle * wall
    after = status(d)
    k1 = kernel_counters(pid)
    got = counts(after) - counts(before)
    inst0, inst1 = before["vrrp"][0], after["vrrp"][0]
    kernel = {
        "ip": {k: v - k0["ip"][k] for k, v in k1["ip"].items()},
        "raw_socket_drops": k1["raw_socket_drops"] - k0["raw_socket_drops"],
    }
    sent_adverts = inst1["counters"]["adverts_sent"] - inst0["counters"]["adverts_sent"]
    print(
        f"\n{TOTAL} hostile packets in bursts of {CHUNK} in {wall:.2f} s: "
        f"daemon CPU {cpu:.2f} s, of which {polls} status polls {poll_cpu:.2f} s and idle "
        f"{idle * wall:.2f} s -> {cpu_flood * 10_000 / TOTAL:.2f} CPU s per 10^4 packets; "
        f"adverts sent meanwhile {sent_adverts}; VIP samples {watch.samples}; kernel {kernel}"
    )
    print("sent by reason:", dict(sorted(sent.items())))
    print("counted       :", dict(sorted(got.items())))
    lost = kernel["raw_socket_drops"]
    # Every packet is counted by the daemon or was dropped by the kernel at the socket
    # (receive buffer full: seen only on a loaded machine, when the daemon was not
    # scheduled for tens of ms); nothing was dropped earlier (InHdrErrors, InDiscards).
    assert got.total() + lost == TOTAL, (kernel, dict(got))
    assert kernel["ip"]["InHdrErrors"] == kernel["ip"]["InDiscards"] == 0
    if lost == 0:
        assert got == sent, f"sent {dict(sent)}\ngot  {dict(got)}"
    else:  # the kernel does not say which were lost: each reason at most what was sent
        print(f"kernel dropped {lost} at the socket (receive buffer full)")
        assert all(got[k] <= sent[k] for k in got) and set(got) <= set(sent)
        assert lost <= TOTAL // 20
    assert watch.samples >= 5 and watch.missing == 0, "the master lost its VIP"
    assert inst1["state"] == "MASTER"
    for k in ("transitions", "released_master", "became_master"):
        assert inst1["counters"][k] == inst0["counters"][k], k
    # the only accepted adverts were the lower-priority storm: each makes the master
    # reassert once (keepalived does the same unless lower_prio_no_advert)
    assert sent_adverts <= sent["received:adverts_received"] + 20 * wall + 10
    assert cpu_flood < 10, "over 1 ms of CPU per hostile packet"


def start_master(lab: Lab, conf: str) -> tuple[Host, Host, Host, Daemon]:
    m = lab.add_host("m", (f"{MASTER_IP}/24",))
    peer = lab.add_host("p", (f"{PEER_IP}/24",))  # answers ARP for the unicast peer only
    x = lab.add_host("x", (f"{ATTACKER_IP}/24",))
    d = start_daemon(lab, m, "pyvrrpd", global_conf("M") + conf)
    assert wait_for(lambda: has_address(lab, m, VIP), 10) is not None, d.log_text()
    sock = d.conf.parent / "control.sock"
    assert wait_for(sock.exists, 5) is not None
    return m, peer, x, d


@pytest.mark.netns
def test_v2_pass_auth_master_survives_flood(lab: Lab) -> None:
    conf = instance_conf(
        priority=200,
        advert_int=1,
        version=2,
        extra="authentication {\n    auth_type PASS\n    auth_pass secret\n}",
    )
    m, _, x, d = start_master(lab, conf)
    flood(lab, m, x, d, categories_v2(), GROUP_MAC)


@pytest.mark.netns
def test_v3_unicast_master_survives_flood(lab: Lab) -> None:
    conf = instance_conf(
        priority=200,
        advert_int=0.1,
        version=3,
        unicast_src=str(MASTER_IP),
        peers=[str(PEER_IP)],
        extra="check_unicast_src",
    )
    m, _, x, d = start_master(lab, conf)
    flood(lab, m, x, d, categories_v3_unicast(), lab.mac(m))


def test_categories_are_what_they_claim() -> None:
    """Each hostile packet, run through the pure filters with the daemon's policy,
    lands in the reason the flood test expects (so the namespace test checks counting,
    not our packet crafting)."""
    vip = frozenset({IPv4Address(VIP)})
    pol_v2 = RxPolicy(51, 2, 4, 100, auth_type=AuthType.PASS, auth_data=b"secret", vips=vip)
    pol_v2 = replace(pol_v2, checksum=ChecksumForm.MESSAGE, mcast_group=GROUP)
    pol_v3 = RxPolicy(
        51, 3, 4, 10, unicast=True, peers={PEER_IP: PeerTtl()}, check_unicast_src=True, vips=vip
    )
    rng = random.Random(3)
    for pol, cats in ((pol_v2, categories_v2()), (pol_v3, categories_v3_unicast())):
        for cat in cats:
            for _ in range(20):
                data = cat.make(rng)
                r = inspect(data, socket.AF_INET, PEER_IP, None, None, {51: pol}.get)
                if cat.where == "received":
                    assert isinstance(r, Accepted), (cat.name, r)
                    assert r.event.priority < 200
                else:
                    assert not isinstance(r, Accepted), cat.name
                    assert r.reason.value == cat.reason, (cat.name, r)
                    assert (r.vrid is None or r.vrid == 52) == (cat.where == "unmatched"), cat.name
