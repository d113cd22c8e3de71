"""The demo (``python -m pyvrrpd.demo``): its pure parts, its servers, and whole runs.

- pure: DNS wire format (dnspython and the daemon's DNS_CHECK judge are the oracles), the
  /proc/net readers, the generated director configs (through pyvrrpd's own loader),
  narration and waiting with a fake clock;
- netns: the in-process real servers inside a namespace; the VRRP-only demo on the host
  (exit 0, key narration lines, nothing left behind); SIGTERM mid-run cleans up;
- slow: the full demo (IPVS) in the VM via scripts/vm-run, skipped without the VM tools.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from pyvrrpd.checks.dns import judge_reply
from pyvrrpd.cli.configtest import check
from pyvrrpd.demo import dnswire, layout, modes, procnet
from pyvrrpd.demo.narrate import DemoFailure, Narrator, wait_for

ROOT = Path(__file__).resolve().parents[1]


# -- DNS wire format -------------------------------------------------------------------


def test_txt_query_answered_with_the_responders_name() -> None:
    query = dnswire.encode_query(0x1234, "whoami.demo", dnswire.TYPE_TXT)
    parsed_query = dns.message.from_wire(query)
    assert parsed_query.question[0].name.to_text() == "whoami.demo."
    answer = dnswire.reply(query, "dns2")
    assert dnswire.decode_txt_answer(answer, 0x1234) == "dns2"
    assert dnswire.decode_txt_answer(answer, 0x1235) is None  # another query's answer
    msg = dns.message.from_wire(answer)
    assert msg.id == 0x1234
    assert msg.answer[0].rdtype == dns.rdatatype.TXT
    assert [s.decode() for s in msg.answer[0][0].strings] == ["dns2"]


def test_a_query_passes_the_daemons_dns_check() -> None:
    query = dns.message.make_query("example.org", "A")
    wire = dnswire.reply(query.to_wire(), "dns1")
    assert judge_reply(query.id, wire) == ""
    msg = dns.message.from_wire(wire)
    assert msg.answer[0][0].address == "192.0.2.100"


def test_garbage_gets_formerr_and_other_types_no_answer() -> None:
    bad = dnswire.reply(b"\x00\x07\x01", "dns1")
    assert bad[:2] == b"\x00\x07" and bad[3] & 0x0F == dnswire.RCODE_FORMERR
    query = dns.message.make_query("example.org", "MX")
    msg = dns.message.from_wire(dnswire.reply(query.to_wire(), "dns1"))
    assert msg.rcode() == 0 and msg.answer == []
    with pytest.raises(dnswire.DnsFormatError):
        dnswire.decode_question(b"\x00" * 11)


# -- /proc/net readers -----------------------------------------------------------------

IP_VS = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0000264:0050 rr
  -> C000020C:0050      Route   1      0          2
  -> C000020B:0050      Route   1      0          3
UDP  C0000264:0035 sh
  -> C0000216:0035      Route   2      0          4
FWM  00000007 wlc
  -> C0000215:0000      Masq    1      0          0
"""

IP_VS_CONN = """\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0000232 D2A4 C0000264 0050 C000020B 0050 TIME_WAIT       119
UDP C0000233 8000 C0000264 0035 C0000216 0035 UDP             299
"""

ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.100      0x1         0x2         02:00:C0:00:02:02     *        eth0
192.0.2.9        0x1         0x0         00:00:00:00:00:00     *        eth0
"""


def test_parse_ip_vs() -> None:
    table = procnet.parse_ip_vs(IP_VS)
    web = table[("TCP", "192.0.2.100", 80)]
    assert web.scheduler == "rr"
    assert web.dest_addrs() == ["192.0.2.12", "192.0.2.11"]
    assert web.dests[0] == procnet.IpvsDest("192.0.2.12", 80, "Route", 1)
    dns_svc = table[("UDP", "192.0.2.100", 53)]
    assert (dns_svc.scheduler, dns_svc.dests[0].weight) == ("sh", 2)
    assert table[("FWM", "", 7)].dests[0].forward == "Masq"
    assert procnet.parse_ip_vs(IP_VS.split("TCP")[0]) == {}


def test_parse_ip_vs_conn_and_arp() -> None:
    tcp, udp = procnet.parse_ip_vs_conn(IP_VS_CONN)
    assert (tcp.client, tcp.client_port, tcp.vaddr, tcp.vport) == (
        "192.0.2.50",
        0xD2A4,
        "192.0.2.100",
        80,
    )
    assert (tcp.dest, tcp.state) == ("192.0.2.11", "TIME_WAIT")
    assert (udp.protocol, udp.client, udp.dest_port) == ("UDP", "192.0.2.51", 53)
    assert procnet.parse_arp(ARP) == {"192.0.2.100": "02:00:c0:00:02:02"}  # incomplete: out


# -- the directors' configuration ------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_director_configs_load_cleanly(tmp_path: Path, index: int) -> None:
    role = layout.ROLES[index]
    path = tmp_path / "keepalived.conf"
    path.write_text(layout.director_config(role))
    out = io.StringIO()
    code, result = check(str(path), out=out)
    assert (code, out.getvalue()) == (0, "")  # no diagnostics at all
    assert result is not None
    (vi,) = result.config.vrrp_instances
    assert (vi.state.name, vi.priority, vi.interface) == (role.state, role.priority, "eth0")
    got = {
        (str(vs.address), vs.port): (
            vs.lvs_sched.name,
            vs.lvs_method.method.name,
            vs.protocol.name,
            len(vs.real_servers),
        )
        for vs in result.config.virtual_servers
        if vs.lvs_sched and vs.lvs_method and vs.protocol
    }
    assert got == {
        ("192.0.2.100", 80): ("RR", "DR", "TCP", 2),
        ("192.0.2.100", 53): ("SH", "DR", "UDP", 2),
    }


def test_master_down_interval_and_macs() -> None:
    assert layout.master_down_interval(150) == pytest.approx(3.4140625)
    assert layout.master_down_interval(100) == pytest.approx(3.609375)
    assert layout.DIRECTORS[0].mac == "02:00:c0:00:02:01"
    assert len({n.mac for n in layout.nodes(True)}) == len(layout.nodes(True))


# -- narration -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_narrator_stamps_checks_and_summary() -> None:
    clock = FakeClock()
    out = io.StringIO()
    n = Narrator(out=out, clock=clock)
    clock.now += 1.5
    n.say("one\ntwo")
    n.check(True, "fine", "bad")
    n.timing("takeover", 3.456, "3.61 s")
    with pytest.raises(DemoFailure, match="it broke"):
        n.check(False, "fine", "it broke")
    n.summary()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[   1.50 s] one"
    assert lines[1] == " " * len("[   1.50 s] ") + "two"
    assert "[   1.50 s] ok: fine" in lines
    assert "[   1.50 s] FAILED: it broke" in lines
    assert lines[-1] == "[   1.50 s] takeover     3.46 s   (expected 3.61 s)"
    assert n.checks_passed == 1


def test_wait_for_measures_and_times_out() -> None:
    clock = FakeClock()
    start = clock.now
    took = wait_for(lambda: clock.now - start >= 0.5, 5, 0.25, clock, clock.sleep)
    assert took == 0.5
    assert wait_for(lambda: False, 1.0, 0.25, clock, clock.sleep) is None


# -- in namespaces ---------------------------------------------------------------------

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"pvdtest{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "192.0.2.100/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.netns
@needs_netns
def test_server_pool_in_a_namespace(netns: str) -> None:
    from pyvrrpd.demo.probes import dns_whoami, http_get
    from pyvrrpd.demo.servers import ServerPool

    pool = ServerPool()
    try:
        pool.add_http("web1", netns, 80)
        pool.add_dns("dns1", netns, ["127.0.0.1", "192.0.2.100"], 53)
        assert pool.running() == ["dns1", "web1"]
        assert http_get(netns, "192.0.2.100", 80, 2).who == "web1"
        ans = dns_whoami(netns, "192.0.2.100", 53, 2, src="127.0.0.1")
        assert ans.who == "dns1" and ans.port > 0
        pool.stop("web1")
        refused = http_get(netns, "192.0.2.100", 80, 2)
        assert (refused.who, refused.error) == (None, "ECONNREFUSED")
        assert dns_whoami(netns, "192.0.2.100", 53, 2).who == "dns1"
    finally:
        pool.close()


def _demo_leftovers(pid: int) -> tuple[list[str], list[int]]:
    """Namespaces and processes a demo run with this pid left behind."""
    prefix = f"pvd{pid}x"
    names = [p.name for p in Path("/run/netns").glob(f"{prefix}*")]
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"/{prefix}".encode() in cmdline:
                procs.append(int(entry.name))
    return names, procs


@pytest.mark.netns
@needs_netns
def test_vrrp_only_demo_on_the_host() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvrrpd.demo", "--mode", "vrrp"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, out + err
    assert "VRRP part only: asked for the VRRP part only (--mode vrrp)" in out
    assert re.search(r"director1 became MASTER \d+\.\d\d s after its VRRP started", out)
    assert "ok: director2 holds the VIP" in out
    assert "ok: client's ARP: 192.0.2.100 is at 02:00:c0:00:02:02 (director2)" in out
    assert "ok: director2 stepped down ('Entering BACKUP STATE'), VIP on director1 only" in out
    assert re.search(r"RESULT: OK, all \d+ checks passed", out)
    takeover = re.search(r"takeover: VIP on director2 after kill -9 +(\d+\.\d+) s", out)
    assert takeover is not None and 2.0 < float(takeover.group(1)) < 4.5, out
    # every line is stamped with the seconds since start, in order
    stamps = [float(m) for m in re.findall(r"^\[ *(\d+\.\d+) s\]", out, re.M)]
    assert len(stamps) > 20 and stamps == sorted(stamps)
    assert _demo_leftovers(proc.pid) == ([], [])


@pytest.mark.netns
@needs_netns
def test_sigterm_mid_run_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvrrpd.demo", "--mode", "vrrp"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 30
    while "pyvrrpd up" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "pyvrrpd up" in seen, seen
    names, procs = _demo_leftovers(proc.pid)
    assert len(names) == 4 and len(procs) == 2  # switch, 2 directors, client; 2 daemons
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, seen + rest
    assert _demo_leftovers(proc.pid) == ([], [])


# -- the full demo in the VM -----------------------------------------------------------


@pytest.mark.slow
def test_full_demo_in_the_vm() -> None:
    if modes.in_guest():
        pytest.skip("already inside the VM")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if missing := modes.vm_missing():
        pytest.skip("cannot boot the IPVS VM, missing: " + ", ".join(missing))
    proc = subprocess.run(
        [sys.executable, "-m", "pyvrrpd.demo"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=modes.VM_TIMEOUT_S + 60,
        check=False,
    )
    out = proc.stdout
    print(out)
    assert proc.returncode == 0, out[-6000:]
    for expected in [
        "full demo (VRRP + IPVS)",
        "ok: round robin: the answers alternate between web1 and web2",
        "ok: source hashing: 192.0.2.50 stays on",
        "ok: director1's TCP_CHECK removed 192.0.2.12:80 from IPVS",
        "ok: all answered by web1",
        "ok: director2 holds the VIP",
        "ok: forwarded by director2",
        "ok: director1's IPVS table still lists web1 and web2 (adopted)",
    ]:
        assert expected in out, expected
    assert re.search(r"RESULT: OK, all \d+ checks passed", out)
