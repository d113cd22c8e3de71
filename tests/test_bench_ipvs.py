"""The pure helpers of the IPVS benchmark (bench/ipvs_vm.py): table texts and parsers."""

from __future__ import annotations

import difflib
import ipaddress
import sys
from pathlib import Path

from bench.config_test import generate
from bench.ipvs_vm import (
    EDIT_RS,
    build_rows,
    config_text,
    desired_state,
    netlink_sends,
    proc_table,
    restore_text,
    rip,
    save_lines,
)
from pyvrrpd.balancer.engine import BalancerEngine
from pyvrrpd.config.load import load_config
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.model import Dest, FwdMethod, Protocol, Service, ServiceKey
from pyvrrpd.ipvs.plan import AddDest, AddService, EditDest
from pyvrrpd.ipvs.wire import encode_op, encode_request

IPVS_FAMILY = 0x20


def test_config_is_config_test_generate_without_vrrp() -> None:
    assert config_text(4, 3) == generate(4, 3, 0)
    assert "TCP_CHECK" not in config_text(4, 3, check=False)
    assert config_text(4, 3, check=False).count("real_server") == 12


def test_a_weight_edit_changes_one_line() -> None:
    before = config_text(3, 4).splitlines()
    after = config_text(3, 4, weights={5: 2}).splitlines()
    changed = [
        line for line in list(difflib.unified_diff(before, after, lineterm="", n=0))[2:]
        if line[:1] in "+-" and not line.startswith("@@")
    ]  # fmt: skip
    assert changed == ["-        weight 1", "+        weight 2"]
    assert before[after.index("        weight 2") - 1].strip().startswith(f"real_server {rip(5)}")


def test_restore_text_is_the_save_format_of_the_model() -> None:
    weights = {1: 7}
    lines = restore_text(3, 2, weights).splitlines()
    assert sorted(lines) == save_lines(desired_state(3, 2, weights))
    assert lines[:3] == [
        "-A -t 10.10.0.1:80 -s rr",
        "-a -t 10.10.0.1:80 -r 172.16.0.1:8080 -m -w 1",
        "-a -t 10.10.0.1:80 -r 172.16.0.2:8080 -m -w 7",
    ]
    assert len(restore_text().splitlines()) == 11_000
    assert 0 <= EDIT_RS < 10_000


def test_pyvrrpd_derives_the_same_table_from_the_config(tmp_path: Path) -> None:
    weights = {4: 3}
    for check in (True, False):
        path = tmp_path / f"k{check}.conf"
        path.write_text(config_text(5, 3, check=check, weights=weights))
        engine = BalancerEngine(load_config(path).config, FakeIpvs())
        for state in engine.states:  # what start() does first: servers without alpha are up
            state.start()
        assert engine.desired() == desired_state(5, 3, weights)


PROC_NET_IP_VS = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A0A0001:0050 rr
  -> AC100002:1F90      Masq    3      0          0
  -> AC100001:1F90      Masq    1      0          0
TCP  0A0A0002:0050 rr
"""


def test_proc_table_parses_services_and_weights() -> None:
    assert proc_table(PROC_NET_IP_VS) == {
        "TCP 10.10.0.1:80 rr": {"172.16.0.2:8080": 3, "172.16.0.1:8080": 1},
        "TCP 10.10.0.2:80 rr": {},
    }


def _hexdump(data: bytes) -> str:
    """strace's -e write= dump of `data`."""
    out = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        cells = " ".join(f"{b:02x}" for b in chunk[:8])
        if len(chunk) > 8:
            cells += "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append(f" | {off:05x}  {cells:<49}  {text:<16} |")
    return "\n".join(out)


def test_netlink_sends_counts_ipvs_writes_by_command() -> None:
    key = ServiceKey.of(Protocol.TCP, "10.10.0.1", 80)
    dest = Dest(ipaddress.IPv4Address(rip(0)), 8080, FwdMethod.NAT, 2)
    batch = (
        encode_op(AddService(Service(key, "rr")), IPVS_FAMILY, 1)
        + encode_op(AddDest(key, dest), IPVS_FAMILY, 2)
        + encode_request(4, IPVS_FAMILY, 0x301, 3)  # a service dump: a read
    )
    edit = encode_op(EditDest(key, dest), IPVS_FAMILY, 4)
    nlctrl = encode_request(3, 0x10, 0x5, 5, b"\x09\x00\x02\x00IPVS\x00\x00\x00\x00")
    text = "\n".join(
        [
            f"301   sendto(5, [...], {len(batch)}, 0, NULL, 0) = {len(batch)}",
            _hexdump(batch),
            "302   sendmsg(3, {msg_iov=[...]}, 0 <unfinished ...>",
            "301   sendto(5, [...], 32, 0, NULL, 0) = 32",
            _hexdump(nlctrl),
            "302   <... sendmsg resumed>) = 60",
            f" * {len(edit)} bytes in buffer 0",
            _hexdump(edit),
            "302   +++ exited with 0 +++",
        ]
    )
    got = netlink_sends(text, IPVS_FAMILY)
    assert got == {
        "writes": 3,
        "by_cmd": {"NEW_DEST": 1, "NEW_SERVICE": 1, "SET_DEST": 1},
        "reads": 1,
        "write_syscalls": 2,
        "syscalls": 2,
    }
    assert netlink_sends(text, 0x21)["syscalls"] == 0
    assert sys.byteorder == "little"  # the dumps above are host-order headers


def test_rows_from_the_guest_results() -> None:
    guest = {
        "program": {"pyvrrpd": [3.0, 4.0], "ipvsadm": [9.0, 10.0], "identical": True},
        "daemon": {
            "pyvrrpd": {
                "start_s": 100.0,
                "reloads": [{"strace": {"writes": 1}, "seconds": None}, {"seconds": 50.0}],
            },
            "keepalived": {"start_s": 50.0, "reloads": [{"strace": {"writes": 1}}]},
        },
        "rss": {
            "delay_loop": 6,
            "keepalived": {
                "samples": [{"rss_kib": 2048, "hwm_kib": 4096, "pss_kib": 1024}],
                "checks_per_s": 1600.0,
                "cpu_share": 0.5,
            },
        },
    }
    rows = {r.metric: r for r in build_rows(guest)}
    program = rows["program from cold (keepalived col.: ipvsadm --restore)"]
    assert program.samples["keepalived"].values == [9.0, 10.0]
    assert program.ratio() == 3.5 / 9.5
    assert "per-trial ratios 0.33, 0.40" in program.note
    writes = rows["netlink writes, reload changing 1 weight"]
    assert writes.samples["pyvrrpd"].values == [1] == writes.samples["keepalived"].values
    assert rows["reload to table change"].samples["pyvrrpd"].values == [50.0]
    assert rows["reload to table change"].samples["keepalived"].values == []
    assert rows["daemon RSS (VmRSS, sum of processes)"].samples["keepalived"].values == [2.0]
    assert rows["daemon peak RSS (VmHWM, sum)"].samples["pyvrrpd"].values == []
    assert rows["TCP checks completed per second"].bound == "configured 1667/s"
    assert build_rows({})  # nothing measured: the rows are there, empty
