"""The operator's views of a running daemon, without root: status (against the JSON
schema), dumps, the control socket, plan vs reload, drain, and the release state file.

The daemon runs on FakeNetBackend and FakeIpvs (virtual servers only: VRRP needs raw
sockets and is covered by tests/integration/test_ops_netns.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyvrrpd.cli import ctl
from pyvrrpd.cli.configtest import check
from pyvrrpd.control import ControlServer, request
from pyvrrpd.daemon import Daemon
from pyvrrpd.drain import Drainer, Pair, parse_proc_ip_vs, ramped_weight
from pyvrrpd.dumps import json_records, stats_text
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.model import DestKey, Protocol, ServiceKey
from pyvrrpd.ipvs.plan import describe
from pyvrrpd.net.fake import FakeNetBackend
from pyvrrpd.release import (
    HeldState,
    MasterRecord,
    StateRecorder,
    VipRecord,
    release,
    write_atomic,
)
from pyvrrpd.runtime import Operations
from pyvrrpd.sdnotify import SdNotifier
from pyvrrpd.status import render_text
from pyvrrpd.vrrp.packet import ChecksumForm, decode_advert, verify_checksum

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "status-schema.json"
VS1 = ServiceKey.of(Protocol.TCP, "10.0.0.1", 80)
VS2 = ServiceKey.of(Protocol.TCP, "10.0.0.9", 443)


def rs(addr: str, weight: int = 1) -> str:
    return f" real_server {addr} 80 {{\n  weight {weight}\n }}\n"


def vs(addr: str, port: int, servers: str) -> str:
    head = f"virtual_server {addr} {port} {{\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n"
    return head + servers + "}\n"


def validate(snap: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(snap, json.loads(SCHEMA.read_text()))


class Env:
    """A running daemon on fakes, its config file and its fake kernel table."""

    def __init__(self, tmp: Path, daemon: Daemon, fake: FakeIpvs) -> None:
        self.tmp = tmp
        self.daemon = daemon
        self.fake = fake
        self.conns: dict[Pair, int] = {}

    def write(self, text: str, name: str = "keepalived.conf") -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def table(self, key: ServiceKey = VS1) -> dict[str, int]:
        return {str(k): d.weight for k, d in self.fake.dests.get(key, {}).items()}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    path = tmp_path / "keepalived.conf"
    path.write_text(vs("10.0.0.1", 80, rs("192.0.2.1") + rs("192.0.2.2", 3)))
    code, result = check(str(path), None, out=open(os.devnull, "w"))  # noqa: SIM115
    assert result is not None, code
    args = argparse.Namespace(control_socket=None, state_file="none")
    async with contextlib.AsyncExitStack() as stack:
        daemon = Daemon(result, args, FakeNetBackend(), stack)
        fake = FakeIpvs()
        daemon.ipvs, daemon.ipvs_tried = fake, True
        e = Env(tmp_path, daemon, fake)
        daemon.drainer = Drainer(daemon.drains, counter=lambda: e.conns, poll=0.02)
        await daemon.start()
        try:
            yield e
        finally:
            await daemon.stop()


async def test_status_matches_the_schema(env: Env) -> None:
    snap = env.daemon.status()
    validate(snap)
    assert snap["ipvs"]["virtual_servers"][0]["name"] == "[10.0.0.1]:tcp:80"
    assert [s["weight"] for s in snap["ipvs"]["virtual_servers"][0]["servers"]] == [1, 3]
    text = render_text(snap)
    assert "[10.0.0.1]:tcp:80" in text and "[192.0.2.2]:80" in text
    with pytest.raises(Exception, match="less than the minimum"):
        validate({**snap, "reloads": -1})  # the schema does reject
    with pytest.raises(Exception, match="required property"):
        validate({k: v for k, v in snap.items() if k != "drains"})


async def test_plan_equals_what_reload_does(env: Env) -> None:
    new = env.write(
        vs("10.0.0.1", 80, rs("192.0.2.1", 2) + rs("192.0.2.3"))
        + vs("10.0.0.9", 443, rs("192.0.2.4")),
        "new.conf",
    )
    before = dict(env.fake.services), {k: dict(v) for k, v in env.fake.dests.items()}
    calls = len(env.fake.calls)
    plan = await env.daemon.plan(new)
    assert plan["valid"]
    assert len(env.fake.calls) == calls  # a dry run writes nothing
    assert (dict(env.fake.services), env.fake.dests) == before
    ops = plan["ipvs"]["ops"]
    assert ops == [
        "add service TCP 10.0.0.9:443",
        "add destination 192.0.2.3:80 to TCP 10.0.0.1:80",
        "add destination 192.0.2.4:80 to TCP 10.0.0.9:443",
        "edit destination 192.0.2.1:80 of TCP 10.0.0.1:80",
        "delete destination 192.0.2.2:80 from TCP 10.0.0.1:80",
    ]
    outcome = await env.daemon.reload(new)
    assert outcome.applied
    assert list(outcome.ipvs_ops) == ops
    assert [describe(op) for op in env.fake.calls[calls:] if not isinstance(op, str)] == ops
    assert env.table() == {"192.0.2.1:80": 2, "192.0.2.3:80": 1}
    again = await env.daemon.plan(new)
    assert again["ipvs"]["ops"] == []
    assert "no change" in ctl.render_plan(again)
    bad = await env.daemon.plan(env.write("virtual_server {\n", "bad.conf"))
    assert not bad["valid"] and bad["diagnostics"]


async def test_reload_keeps_the_balancer_and_removing_all_deletes(env: Env) -> None:
    engine = env.daemon.balancer
    new = env.write(vs("10.0.0.1", 80, rs("192.0.2.1") + rs("192.0.2.2", 4)), "new.conf")
    outcome = await env.daemon.reload(new)
    assert outcome.applied and outcome.ipvs_writes == 1
    assert env.daemon.balancer is engine  # reloaded in place: check states kept
    assert env.table() == {"192.0.2.1:80": 1, "192.0.2.2:80": 4}
    empty = env.write("global_defs {\n router_id X\n}\n", "empty.conf")
    assert (await env.daemon.plan(empty))["ipvs"]["ops"] == ["delete service TCP 10.0.0.1:80"]
    outcome = await env.daemon.reload(empty)
    assert outcome.applied and env.daemon.balancer is None
    assert env.fake.services == {}


async def test_drain_weight_zero_then_removed(env: Env) -> None:
    rs2 = (VS1, DestKey(ipaddress.ip_address("192.0.2.2"), 80))
    env.conns[rs2] = 2
    out = await env.daemon.drain("10.0.0.1:80", "192.0.2.2:80")
    assert out == {"vs": "[10.0.0.1]:tcp:80", "rs": "[192.0.2.2]:80", "removed": False,
                   "active": 0}  # fmt: skip
    assert env.table() == {"192.0.2.1:80": 1, "192.0.2.2:80": 0}
    await asyncio.sleep(0.1)
    assert env.table()["192.0.2.2:80"] == 0  # connections still active: kept
    assert env.daemon.status()["drains"][0]["active"] == 2
    outcome = await env.daemon.reload()  # a reload keeps the drain
    assert outcome.applied and env.table()["192.0.2.2:80"] == 0
    env.conns[rs2] = 0
    for _ in range(100):
        if "192.0.2.2:80" not in env.table():
            break
        await asyncio.sleep(0.01)
    assert env.table() == {"192.0.2.1:80": 1}
    assert env.daemon.status()["drains"][0]["removed"]
    validate(env.daemon.status())
    await env.daemon.reload()  # the balancer does not put it back
    assert env.table() == {"192.0.2.1:80": 1}
    with pytest.raises(LookupError):
        await env.daemon.drain("10.0.0.1:80", "192.0.2.99:80")
    await env.daemon.undrain("[10.0.0.1]:tcp:80", "[192.0.2.2]:80")
    assert env.table() == {"192.0.2.1:80": 1, "192.0.2.2:80": 3}


async def test_undrain_one_keeps_the_other_drained_and_ramps(env: Env) -> None:
    rs1 = (VS1, DestKey(ipaddress.ip_address("192.0.2.1"), 80))
    rs2 = (VS1, DestKey(ipaddress.ip_address("192.0.2.2"), 80))
    env.conns[rs1] = env.conns[rs2] = 1  # both kept at weight 0, not removed
    await env.daemon.drain("10.0.0.1:80", "192.0.2.1:80")
    await env.daemon.drain("10.0.0.1:80", "192.0.2.2:80")
    assert env.table() == {"192.0.2.1:80": 0, "192.0.2.2:80": 0}
    await env.daemon.undrain("10.0.0.1:80", "192.0.2.1:80")
    assert env.table() == {"192.0.2.1:80": 1, "192.0.2.2:80": 0}  # the other stays drained
    seen: list[int] = []
    await env.daemon.undrain("10.0.0.1:80", "192.0.2.2:80", ramp=0.5)
    for _ in range(200):
        weight = env.table()["192.0.2.2:80"]
        if not seen or seen[-1] != weight:
            seen.append(weight)
        if weight == 3 and not env.daemon.drains.ramps:
            break
        await asyncio.sleep(0.01)
    # weight 3 in 10 steps: max(1, round(3 * k / 10)) -> 1, 2, 3, never 0, never down
    assert seen == [1, 2, 3], seen
    assert not env.daemon.drains.ramps
    outcome = await env.daemon.reload()
    assert outcome.applied and outcome.ipvs_writes == 0


def test_check_entries_name_the_checker() -> None:
    from pyvrrpd.balancer.virtual_server import CheckStatus
    from pyvrrpd.checks.base import CheckResult, Schedule
    from pyvrrpd.checks.conn import Endpoint
    from pyvrrpd.checks.tcp import TcpCheck
    from pyvrrpd.status import _check_entry

    key = (TcpCheck(Endpoint(ipaddress.ip_address("192.0.2.1"), 80)), Schedule())
    entry = _check_entry(CheckStatus(key, True, True, CheckResult(True, "ok", latency=0.002)))
    assert entry["kind"] == "TCP_CHECK" and entry["target"] == "192.0.2.1:80"
    assert entry["last"]["latency"] == 0.002


def test_ramped_weight() -> None:
    args = ctl.build_parser().parse_args(["undrain", "10.0.0.1:80", "192.0.2.2:80", "--ramp", "30"])
    assert args.ramp == 30.0
    assert [ramped_weight(10, k / 10) for k in range(1, 11)] == list(range(1, 11))
    assert ramped_weight(0, 0.1) == 0 and ramped_weight(7, 1.0) == 7
    assert ramped_weight(100, 0.001) == 1


def test_proc_ip_vs_parsing() -> None:
    text = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
        "TCP  0A000001:0050 rr\n"
        "  -> C0000202:0050      Masq    0      7          1\n"
        "TCP  [fd00:0000:0000:0000:0000:0000:0000:0001]:01BB wlc\n"
        "  -> [fd00:0000:0000:0000:0000:0000:0000:0002]:01BB Route 1 3 0\n"
    )
    counts = parse_proc_ip_vs(text)
    assert counts[(VS1, DestKey(ipaddress.ip_address("192.0.2.2"), 80))] == 7
    v6 = ServiceKey.of(Protocol.TCP, "fd00::1", 443)
    assert counts[(v6, DestKey(ipaddress.ip_address("fd00::2"), 443))] == 3


async def test_control_socket_round_trip(env: Env, tmp_path: Path) -> None:
    path = str(tmp_path / "ctl" / "control.sock")
    server = ControlServer(path, Operations(env.daemon, SdNotifier("")).handlers())
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        answer = await asyncio.to_thread(request, path, "status")
        assert answer["ok"] and answer["status"]["pid"] == os.getpid()
        validate(answer["status"])
        bad = await asyncio.to_thread(request, path, "frobnicate")
        assert not bad["ok"] and "reload" in bad["commands"]
        refused = await asyncio.to_thread(
            request, path, "reload", path=env.write("virtual_server {\n", "bad.conf")
        )
        assert refused["ok"] and not refused["outcome"]["applied"]
        code = await asyncio.to_thread(
            ctl.main, ["-s", path, "reload", "-f", str(tmp_path / "bad.conf")]
        )
        assert code == 1
        code = await asyncio.to_thread(
            ctl.main, ["-s", path, "drain", "10.0.0.1:80", "10.9.9.9:80"]
        )
        assert code == 1
        with pytest.raises(OSError):
            await ControlServer(path, {}).start()  # a live daemon's socket is not taken over
    finally:
        await server.close()
    assert not os.path.exists(path)
    assert ctl.main(["-s", path, "status"]) == 3  # nobody answers


async def test_dump_files(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    ops = Operations(env.daemon, SdNotifier(""))
    assert ops.dump("json") == str(tmp_path / "keepalived.json")
    assert json.loads((tmp_path / "keepalived.json").read_text()) == []  # no VRRP instance
    data = Path(ops.dump("data")).read_text()
    assert "[10.0.0.1]:tcp:80" in data and "virtual_server 10.0.0.1 80" in data
    assert Path(ops.dump("stats")).name == "keepalived.stats"


def test_dump_builders_on_a_vrrp_snapshot() -> None:
    inst = {
        "name": "VI_1", "state": "MASTER", "interface": "eth0", "vrid": 51, "version": 3,
        "family": "IPv4", "priority": 150, "base_priority": 150, "effective_priority": 150,
        "trackers": [], "master": None, "address": "10.0.0.1", "advert_int": 1.0,
        "master_adver_int": 1.0, "master_down_interval": 3.4, "unicast_peers": [],
        "vips": ["10.0.0.100/24"], "excluded_vips": [],
        "counters": {"adverts_received": 4, "adverts_sent": 9, "priority_zero_received": 1,
                     "priority_zero_sent": 0, "transitions": 2, "became_master": 1,
                     "released_master": 0, "send_failures": 0},
        "drops": {"bad_ttl": 2},
    }  # fmt: skip
    snap = {"vrrp": [inst]}
    rec = json_records(snap)[0]
    assert rec["data"]["iname"] == "VI_1" and rec["data"]["state"] == 2
    assert rec["stats"]["advert_rcvd"] == 4 and rec["stats"]["ip_ttl_err"] == 2
    text = stats_text(snap)
    assert "VRRP Instance: VI_1" in text and "    TTL: 2" in text and "    Sent: 9" in text


# ------------------------------------------------------------------ release state file


def master(**kw: Any) -> MasterRecord:
    base: dict[str, Any] = {
        "instance": "VI_1", "ifname": "eth0", "family": 4, "vrid": 51, "version": 3,
        "src": "10.0.0.1", "destinations": ("224.0.0.18",), "mcast_group": "224.0.0.18",
        "auth_type": 0, "auth_data": "", "checksum": "pseudo_header",
        "addresses": ("10.0.0.100",), "advert_int": 0.5,
    }  # fmt: skip
    return MasterRecord(**{**base, **kw})


def test_state_file_round_trip_and_payload(tmp_path: Path) -> None:
    state = HeldState(1234, (VipRecord("VI_1", "10.0.0.100/24", "eth0"),), (master(),))
    path = str(tmp_path / "run" / "state.json")
    write_atomic(path, state.to_json())
    assert HeldState.from_json(Path(path).read_text()) == state
    assert os.listdir(tmp_path / "run") == ["state.json"]  # no temp file left
    rec = master()
    dst = ipaddress.ip_address("224.0.0.18")
    payload = rec.payload(dst)
    adv = decode_advert(payload, family=4)
    assert (adv.version, adv.vrid, adv.priority, adv.max_adver_int) == (3, 51, 0, 50)
    assert adv.addresses == (ipaddress.ip_address("10.0.0.100"),)
    src = ipaddress.ip_address("10.0.0.1")
    assert verify_checksum(payload, src, dst, ChecksumForm.PSEUDO_HEADER)
    v2 = master(
        version=2, auth_type=1, auth_data=b"secret".hex(), checksum="message", advert_int=1.0
    )
    adv2 = decode_advert(v2.payload(dst), family=4)
    assert adv2.auth_data == b"secret\0\0" and adv2.priority == 0


def test_release_refuses_for_a_live_daemon_and_skips_empty(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    assert release(path).lines() == ["nothing to release"]  # no file
    write_atomic(path, HeldState(os.getppid(), (VipRecord("VI_1", "10.0.0.1/24", "x0"),)).to_json())
    report = release(path)
    assert report.refused and "still running" in report.refused
    assert not HeldState.from_json(Path(path).read_text()).empty  # untouched
    write_atomic(path, HeldState(os.getppid()).to_json())
    assert release(path).lines() == ["nothing to release"]
    Path(path).write_text("{}")
    assert release(path).errors


def test_ctl_formats_follow_the_renderer() -> None:
    from pyvrrpd.config.render import FORMATS

    assert ctl.FORMATS == FORMATS


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_release_refuses_another_network_namespace(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    vip = (VipRecord("VI_1", "10.0.0.1/24", "x0"),)
    write_atomic(path, HeldState(dead_pid(), vip, netns="net:[1]").to_json())
    report = release(path)
    assert "network namespace net:[1]" in report.refused
    assert not report.removed and not report.adverts


def test_one_recorder_per_state_file(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    first = StateRecorder(path)
    first.write(HeldState(1, netns=first.netns))
    assert first.writes == 1 and not first.disabled
    second = StateRecorder(path)
    second.write(HeldState(2, (VipRecord("VI_1", "10.0.0.1/24", "x0"),)))
    assert second.disabled and second.writes == 0
    state = HeldState.from_json(Path(path).read_text())
    assert state.pid == 1 and state.netns.startswith("net:[")
    first.clear()  # a clean stop lets the next daemon have it
    third = StateRecorder(path)
    third.write(HeldState(3))
    assert third.writes == 1
    third.clear()
